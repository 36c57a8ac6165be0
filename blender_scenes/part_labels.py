"""Which part of the avatar each pixel shows: the labels the part segmenter (rodin_core.parts) learns from.

Each pixel centre's camera ray is cast against the avatar's triangles (Blender's BVH, as renderer.depth_map
does); the part is the class of the hit object's material (avatar_factory names every material `rodin_<part>`).
No render is needed, and the labels are exact at the pixel centre.
"""

from __future__ import annotations

import bpy
import numpy as np

from rodin_core.parts import PART_CLASSES
from rodin_core.rig import Intrinsics

from .avatar_factory import object_triangles
from .renderer import cast_pixels, mesh_bvh, pixel_rays

# avatar_factory's materials -> PART_CLASSES (lips, blush and age lines are skin; eye whites, irises and pupils are
# the eyes).
MATERIAL_PART = {
    "skin": "skin",
    "lips": "skin",
    "blush": "skin",
    "wrinkles": "skin",
    "eye_white": "eyes",
    "iris": "eyes",
    "pupil": "eyes",
    "brows": "brows",
    "hair": "hair",
    "facial_hair": "facial_hair",
    "glasses": "glasses",
    "headwear": "headwear",
    "shirt": "shirt",
    "earrings": "earrings",
}


def object_part(obj: bpy.types.Object) -> int:
    """The PART_CLASSES index of one of the avatar's objects, by its material."""
    if not obj.data.materials:
        raise ValueError(f"avatar object {obj.name!r} has no material; cannot tell which part it is")
    name = obj.data.materials[0].name.split(".")[0].removeprefix("rodin_")
    if name not in MATERIAL_PART:
        raise ValueError(
            f"avatar object {obj.name!r} has material {name!r}, which no part names (MATERIAL_PART)"
        )
    return PART_CLASSES.index(MATERIAL_PART[name])


def part_label_maps(objects: list[bpy.types.Object], poses: list[np.ndarray], intr: Intrinsics) -> np.ndarray:
    """(V, H, W) uint8 PART_CLASSES indices of the avatar's `objects` seen by cameras at `poses` (c2w)."""
    pieces = object_triangles(objects)
    parts = np.concatenate([np.full(len(t), object_part(o), np.uint8) for o, (_, t) in zip(objects, pieces)])
    offsets = np.cumsum([0] + [len(v) for v, _ in pieces])
    vertices = np.concatenate([v for v, _ in pieces])
    faces = np.concatenate([t + o for (_, t), o in zip(pieces, offsets)])
    bvh = mesh_bvh(vertices, faces)
    maps = np.zeros((len(poses), intr.h, intr.w), np.uint8)
    for k, c2w in enumerate(poses):
        dirs, _ = pixel_rays(c2w, intr)
        flat = maps[k].reshape(-1)
        for i, hit in enumerate(cast_pixels(bvh, c2w, dirs)):
            if hit is not None:
                flat[i] = parts[hit[2]]
    return maps
