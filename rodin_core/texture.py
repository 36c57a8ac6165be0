"""UV atlases (xatlas) and albedo textures baked from a colour field.

Each texel is mapped back to its point on the surface; the field's colour there is taken as seen from outside
along the surface normal (the direction an artist's camera usually looks from). Texels no triangle covers get
the colour of the nearest covered texel, so seams and mipmaps do not bleed background into the mesh.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import xatlas
from scipy import ndimage

ColorFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (N, 3) points, (N, 3) dirs -> (N, 3) rgb


def uv_atlas(
    verts: np.ndarray, faces: np.ndarray, texture_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xatlas charts packed for a square texture: (vertex map into verts, new faces, per-new-vertex uv)."""
    atlas = xatlas.Atlas()
    atlas.add_mesh(verts.astype(np.float32), faces.astype(np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution = texture_size
    pack.padding = 2
    pack.bilinear = True
    atlas.generate(pack_options=pack)
    vmapping, new_faces, uvs = atlas[0]
    return vmapping.astype(np.int64), new_faces.astype(np.int64), uvs.astype(np.float32)


def rasterize_uv(
    uvs: np.ndarray, faces: np.ndarray, size: int, face_chunk: int = 20000
) -> tuple[np.ndarray, np.ndarray]:
    """For every texel centre: the face covering it in UV space (-1 if none) and its barycentric coordinates.

    Texel (row, col) has its centre at u = (col + 0.5) / size, v = 1 - (row + 0.5) / size (row 0 = top).
    """
    face_id = torch.full((size * size,), -1, dtype=torch.long)
    bary = torch.zeros(size * size, 3)
    # Continuous texel coordinates: a texel centre sits at integer (x, y).
    xy = torch.from_numpy(uvs).double() * size - 0.5
    xy[:, 1] = (size - 1) - xy[:, 1]  # v up -> rows down
    tri = xy[torch.from_numpy(faces)]  # (F, 3, 2)
    for start in range(0, len(faces), face_chunk):
        t = tri[start : start + face_chunk]
        lo = t.amin(dim=1).ceil().clamp(0, size - 1).long()
        hi = t.amax(dim=1).floor().clamp(0, size - 1).long()
        w = (hi[:, 0] - lo[:, 0] + 1).clamp(min=0)
        h = (hi[:, 1] - lo[:, 1] + 1).clamp(min=0)
        counts = w * h
        if counts.sum() == 0:
            continue
        local = torch.repeat_interleave(torch.arange(len(t)), counts)
        offsets = torch.arange(int(counts.sum())) - torch.repeat_interleave(counts.cumsum(0) - counts, counts)
        px = lo[local, 0] + offsets % w[local]
        py = lo[local, 1] + torch.div(offsets, w[local], rounding_mode="floor")
        a, b, c = t[local, 0], t[local, 1], t[local, 2]
        p = torch.stack([px, py], dim=-1).double()
        v0, v1, v2 = b - a, c - a, p - a
        den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
        ok = den.abs() > 1e-12
        den = torch.where(ok, den, torch.ones_like(den))
        l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
        l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
        l0 = 1 - l1 - l2
        inside = ok & (l0 >= -1e-6) & (l1 >= -1e-6) & (l2 >= -1e-6)
        texel = (py * size + px)[inside]
        face_id[texel] = local[inside] + start
        bary[texel] = torch.stack([l0, l1, l2], dim=-1)[inside].float()
    return face_id.reshape(size, size).numpy(), bary.reshape(size, size, 3).numpy()


def fill_empty(image: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Copies into every uncovered texel the value of the nearest covered one."""
    if covered.all() or not covered.any():
        return image
    _, (rows, cols) = ndimage.distance_transform_edt(~covered, return_indices=True)
    return image[rows, cols]


@torch.no_grad()
def bake_texture(
    verts: np.ndarray,
    faces: np.ndarray,
    normals: np.ndarray,
    color_fn: ColorFn,
    size: int,
    chunk: int = 65536,
    cancel=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Atlas + baked albedo: returns per-corner uvs (F, 3, 2) aligned with `faces`, and an (S, S, 3) uint8 image."""
    if not 64 <= size <= 8192:
        raise ValueError(f"texture size must be between 64 and 8192; got {size}")
    vmap, atlas_faces, uvs = uv_atlas(verts, faces, size)
    face_id, bary = rasterize_uv(uvs, atlas_faces, size)
    covered = face_id >= 0
    corners = vmap[atlas_faces[face_id[covered]]]  # (T, 3) original vertex indices of each texel's face
    w = torch.from_numpy(bary[covered])[..., None]
    points = (torch.from_numpy(verts)[corners] * w).sum(1)
    normal = torch.nn.functional.normalize((torch.from_numpy(normals)[corners] * w).sum(1), dim=-1)
    colours = torch.empty(len(points), 3)
    for start in range(0, len(points), chunk):
        if cancel is not None and cancel.is_set():
            from .samplers import GenerationCancelled

            raise GenerationCancelled("cancelled while baking the texture")
        sl = slice(start, start + chunk)
        colours[sl] = color_fn(points[sl], -normal[sl])
    image = np.ones((size, size, 3), np.float32)
    image[covered] = colours.clamp(0, 1).numpy()
    image = fill_empty(image, covered)
    # Per-corner uvs in the order of the original faces (xatlas keeps face order and corner order).
    corner_uvs = uvs[atlas_faces]
    return corner_uvs.astype(np.float32), (image * 255).round().astype(np.uint8)


@torch.no_grad()
def vertex_colors(
    verts: np.ndarray, normals: np.ndarray, color_fn: ColorFn, chunk: int = 65536
) -> np.ndarray:
    points, dirs = torch.from_numpy(verts), -torch.from_numpy(normals)
    out = [color_fn(points[s : s + chunk], dirs[s : s + chunk]) for s in range(0, len(points), chunk)]
    return torch.cat(out).clamp(0, 1).numpy().astype(np.float32)
