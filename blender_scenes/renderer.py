"""Cycles set-up and per-view rendering: one scene, a camera moved between views, RGBA PNGs, depth.

The scene (render settings, lights, camera) is built once per process; only the avatar changes between
records. Depth is computed by ray casting the avatar's triangle mesh with Blender's BVH (planar depth
along the camera's -Z axis, 0 on background), which is exact and independent of Cycles' pass layout.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Vector
from mathutils.bvhtree import BVHTree

from .camera_rig import FOV, Intrinsics

CAMERA_NAME = "RodinCamera"


def setup_scene(resolution: int, samples: int = 16, device: str = "auto") -> bpy.types.Scene:
    """Empties the file and configures Cycles, colour management, lights and the camera."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    cycles = scene.cycles
    cycles.samples = samples
    cycles.use_adaptive_sampling = False
    cycles.use_denoising = False
    cycles.max_bounces = 4
    cycles.diffuse_bounces = 2
    cycles.glossy_bounces = 2
    cycles.transmission_bounces = 2
    cycles.transparent_max_bounces = 4
    cycles.seed = 0
    cycles.device = _pick_device(device)
    scene.render.resolution_x = resolution
    scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.image_settings.color_depth = "8"
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.render.threads_mode = "AUTO"

    world = bpy.data.worlds.new("RodinWorld")
    world.use_nodes = True
    background = world.node_tree.nodes.get("Background")
    background.inputs["Color"].default_value = (0.6, 0.6, 0.62, 1.0)
    background.inputs["Strength"].default_value = 0.7
    scene.world = world

    # A fixed key/fill/rim set: lighting is baked into the learned colours, so it must never change.
    for name, energy, rotation in (
        ("key", 3.0, (math.radians(50), 0, math.radians(-35))),
        ("fill", 1.0, (math.radians(70), 0, math.radians(50))),
        ("rim", 1.5, (math.radians(-60), 0, math.radians(160))),
    ):
        light = bpy.data.lights.new(f"Rodin_{name}", type="SUN")
        light.energy = energy
        light.angle = math.radians(10)
        obj = bpy.data.objects.new(f"Rodin_{name}", light)
        obj.rotation_euler = rotation
        scene.collection.objects.link(obj)

    cam_data = bpy.data.cameras.new(CAMERA_NAME)
    cam_data.lens_unit = "FOV"
    cam_data.sensor_fit = "HORIZONTAL"
    cam_data.angle = FOV
    cam_data.clip_start = 0.05
    cam_data.clip_end = 100.0
    cam = bpy.data.objects.new(CAMERA_NAME, cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam
    return scene


def _pick_device(device: str) -> str:
    if device == "cpu":
        return "CPU"
    try:
        prefs = bpy.context.preferences.addons["cycles"].preferences
        for kind in ("OPTIX", "CUDA", "HIP", "METAL", "ONEAPI"):
            try:
                prefs.compute_device_type = kind
            except TypeError:
                continue
            prefs.get_devices()
            if any(d.type == kind for d in prefs.devices):
                for d in prefs.devices:
                    d.use = d.type == kind
                return "GPU"
    except (KeyError, AttributeError):
        pass
    if device == "gpu":
        raise RuntimeError("--device gpu was asked for but Cycles finds no GPU; use --device cpu or auto")
    return "CPU"


class ViewRenderer:
    """Renders the current avatar from given camera poses; measures time spent inside Cycles."""

    def __init__(self, scene: bpy.types.Scene) -> None:
        self.scene = scene
        self.camera = scene.objects[CAMERA_NAME]
        self.render_seconds = 0.0

    def render(self, c2w: np.ndarray, path: Path) -> None:
        self.camera.matrix_world = Matrix(c2w.tolist())
        self.scene.render.filepath = str(path)
        started = time.perf_counter()
        with _quiet_stdout():
            bpy.ops.render.render(write_still=True)
        self.render_seconds += time.perf_counter() - started


@contextlib.contextmanager
def _quiet_stdout():
    """Blender prints a 'Saved: ...' line per image at the C level; keep it out of progress bars."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def mesh_bvh(vertices: np.ndarray, faces: np.ndarray) -> BVHTree:
    """The avatar's ray-casting structure, built once and shared by all its views."""
    return BVHTree.FromPolygons(vertices.tolist(), faces.tolist(), all_triangles=True)


def depth_map(
    vertices: np.ndarray, faces: np.ndarray, c2w: np.ndarray, intr: Intrinsics, bvh: BVHTree | None = None
) -> np.ndarray:
    """Planar depth (along the camera's -Z) of the mesh for each pixel centre; 0 where no surface is hit."""
    bvh = bvh or mesh_bvh(vertices, faces)
    dirs, ray_len = pixel_rays(c2w, intr)
    # Distance along each ray, converted to planar depth afterwards in one vectorised step.
    dist = np.zeros(intr.w * intr.h, dtype=np.float64)
    for i, hit in enumerate(cast_pixels(bvh, c2w, dirs)):
        if hit is not None:
            dist[i] = hit[3]
    return (dist / ray_len).astype(np.float32).reshape(intr.h, intr.w)


def pixel_rays(c2w: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Unit world directions (H * W, 3) through each pixel centre, row by row from the top, and each direction's
    length before normalising (its planar depth per unit of distance is 1 / that)."""
    cols, rows = np.meshgrid(np.arange(intr.w) + 0.5, np.arange(intr.h) + 0.5)
    dirs_cam = np.stack(
        [(cols - intr.cx) / intr.fl_x, -(rows - intr.cy) / intr.fl_y, -np.ones_like(cols)], axis=-1
    )
    dirs_world = dirs_cam.reshape(-1, 3) @ c2w[:3, :3].T
    ray_len = np.linalg.norm(dirs_world, axis=1)
    return dirs_world / ray_len[:, None], ray_len


def cast_pixels(bvh: BVHTree, c2w: np.ndarray, dirs: np.ndarray):
    """Yields BVHTree.ray_cast's (location, normal, face index, distance) per direction from the camera, or None
    where the ray hits nothing."""
    origin = Vector(c2w[:3, 3].tolist())
    cast = bvh.ray_cast
    for d in dirs.tolist():
        hit = cast(origin, Vector(d))
        yield hit if hit[3] is not None else None
