"""Writing avatars to files: GLB (texture embedded), OBJ + MTL + PNG, and a JSON sidecar.

Avatars live in Blender's axes (Z up, face towards -Y). glTF and OBJ are Y-up by convention (Blender's own
importers convert them back), so files get (x, y, z) -> (x, z, -y).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from .avatar import Avatar
from .io_utils import write_bytes_atomic, write_json_atomic

FORMATS = ("glb", "obj")


def z_up_to_y_up(verts: np.ndarray) -> np.ndarray:
    return np.stack([verts[:, 0], verts[:, 2], -verts[:, 1]], axis=1)


def split_by_uv(avatar: Avatar) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vertices duplicated where a vertex has several uvs (at seams): positions, faces, uvs, source index."""
    corners = avatar.faces.reshape(-1)
    uv = avatar.uvs.reshape(-1, 2)
    keys = np.concatenate([corners[:, None].astype(np.float64), np.round(uv.astype(np.float64), 6)], axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    source = unique[:, 0].astype(np.int64)
    return avatar.vertices[source], inverse.reshape(-1, 3), unique[:, 1:].astype(np.float32), source


def to_trimesh(avatar: Avatar) -> trimesh.Trimesh:
    if avatar.uvs is not None and avatar.texture is not None:
        verts, faces, uvs, _ = split_by_uv(avatar)
        material = trimesh.visual.material.PBRMaterial(
            baseColorTexture=Image.fromarray(avatar.texture), metallicFactor=0.0, roughnessFactor=0.6
        )
        visual = trimesh.visual.TextureVisuals(uv=uvs, material=material)
        return trimesh.Trimesh(z_up_to_y_up(verts), faces, visual=visual, process=False)
    colors = None
    if avatar.vertex_colors is not None:
        colors = np.concatenate(
            [(avatar.vertex_colors * 255).round(), np.full((len(avatar.vertices), 1), 255)], axis=1
        ).astype(np.uint8)
    return trimesh.Trimesh(z_up_to_y_up(avatar.vertices), avatar.faces, vertex_colors=colors, process=False)


def write_avatar(avatar: Avatar, out_dir: str | Path, name: str, fmt: str = "glb") -> list[Path]:
    """Writes NAME.glb (or NAME.obj + .mtl + .png) and NAME.json into out_dir; returns the paths written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mesh = to_trimesh(avatar)
    written = []
    if fmt == "glb":
        path = out / f"{name}.glb"
        write_bytes_atomic(path, mesh.export(file_type="glb"))
        written.append(path)
    else:
        files = trimesh.exchange.obj.export_obj(
            mesh, include_texture=True, return_texture=True, mtl_name=f"{name}.mtl"
        )
        text, textures = files
        write_bytes_atomic(out / f"{name}.obj", text.encode())
        written.append(out / f"{name}.obj")
        for fname, data in textures.items():
            write_bytes_atomic(out / fname, data)
            written.append(out / fname)
    sidecar = out / f"{name}.json"
    write_json_atomic(sidecar, avatar.metadata)
    written.append(sidecar)
    return written


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()
