"""Meshes from density fields: a density grid over the scene box, marching cubes, clean-up, decimation.

Units: scene units ([-1, 1]^3, Blender axes) until `to_metres`; METRES_PER_UNIT is documented in
docs/CONVENTIONS.md. The iso-level is a density (sigma): DEFAULT_THRESHOLD is where a 0.04-unit step
(one rendering sample) becomes about 1/3 opaque, which matches the fitted surfaces best (docs/mesh.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mcubes
import numpy as np
import torch
import trimesh

METRES_PER_UNIT = 0.25
DEFAULT_THRESHOLD = 10.0


@dataclass(frozen=True)
class MeshConfig:
    resolution: int = 128  # grid samples per axis (64 .. 512)
    threshold: float = DEFAULT_THRESHOLD
    keep_ratio: float = 0.1  # keep connected components with at least this share of the largest one's faces
    max_faces: int | None = None  # decimate to this many faces (None: keep all)
    chunk: int = 2**17

    def validate(self) -> None:
        if not 16 <= self.resolution <= 512:
            raise ValueError(f"mesh resolution must be between 16 and 512; got {self.resolution}")
        if self.threshold <= 0:
            raise ValueError(f"the density threshold must be positive; got {self.threshold}")
        if self.max_faces is not None and self.max_faces < 100:
            raise ValueError(f"a face budget below 100 leaves no avatar; got {self.max_faces}")


def grid_points(resolution: int) -> torch.Tensor:
    """(R^3, 3) sample points over [-1, 1]^3, x slowest (matches an [ix, iy, iz] volume)."""
    axis = torch.linspace(-1.0, 1.0, resolution)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)


@torch.no_grad()
def density_grid(
    density_fn: Callable[[torch.Tensor], torch.Tensor], resolution: int, chunk: int = 2**17, cancel=None
) -> np.ndarray:
    """density_fn((N, 3) points) -> (N,) densities, evaluated in chunks into an (R, R, R) float32 volume."""
    points = grid_points(resolution)
    out = torch.empty(points.shape[0])
    for start in range(0, len(points), chunk):
        if cancel is not None and cancel.is_set():
            from .samplers import GenerationCancelled

            raise GenerationCancelled("cancelled while evaluating the density grid")
        out[start : start + chunk] = density_fn(points[start : start + chunk]).reshape(-1).float()
    return out.reshape(resolution, resolution, resolution).numpy()


class NoSurfaceError(ValueError):
    """The density field never reaches the iso-level: there is no mesh to extract."""


def marching_cubes(volume: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Iso-surface of an [ix, iy, iz] volume over [-1, 1]^3 -> vertices (scene units), faces (outward)."""
    r = volume.shape[0]
    # A zero border closes surfaces that touch the box, so every component is watertight.
    padded = np.pad(volume, 1, mode="constant", constant_values=0.0)
    verts, faces = mcubes.marching_cubes(padded, threshold)
    if len(faces) == 0:
        raise NoSurfaceError(
            f"no surface at density {threshold}: the field's maximum is {float(volume.max()):.3g}. "
            "Lower the threshold, or check that the tri-plane and decoder belong together."
        )
    verts = (verts - 1.0) * (2.0 / (r - 1)) - 1.0
    faces = faces.astype(np.int64)
    mesh = trimesh.Trimesh(verts, faces, process=False)
    if mesh.volume < 0:  # PyMCubes winds faces by the gradient's sign; make them counter-clockwise outside
        faces = faces[:, ::-1]
    return verts.astype(np.float32), np.ascontiguousarray(faces)


def keep_main_components(
    verts: np.ndarray, faces: np.ndarray, keep_ratio: float
) -> tuple[np.ndarray, np.ndarray]:
    """Drops floaters: connected components smaller than keep_ratio x the largest (by faces)."""
    mesh = trimesh.Trimesh(verts, faces, process=True)
    parts = mesh.split(only_watertight=False)
    if len(parts) <= 1:
        return np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int64)
    largest = max(len(p.faces) for p in parts)
    kept = trimesh.util.concatenate([p for p in parts if len(p.faces) >= keep_ratio * largest])
    return np.asarray(kept.vertices, np.float32), np.asarray(kept.faces, np.int64)


def decimate(verts: np.ndarray, faces: np.ndarray, max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation (fast-simplification) down to about max_faces."""
    if len(faces) <= max_faces:
        return verts, faces
    import fast_simplification

    reduction = 1.0 - max_faces / len(faces)
    v, f = fast_simplification.simplify(
        verts.astype(np.float32), faces.astype(np.int64), target_reduction=reduction
    )
    return np.asarray(v, np.float32), np.asarray(f, np.int64)


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    return np.asarray(trimesh.Trimesh(verts, faces, process=False).vertex_normals, np.float32)


def extract_mesh(
    density_fn: Callable[[torch.Tensor], torch.Tensor], config: MeshConfig = MeshConfig(), cancel=None
) -> tuple[np.ndarray, np.ndarray]:
    """The avatar's surface in scene units: grid -> marching cubes -> main components -> optional decimation."""
    config.validate()
    volume = density_grid(density_fn, config.resolution, config.chunk, cancel)
    verts, faces = marching_cubes(volume, config.threshold)
    verts, faces = keep_main_components(verts, faces, config.keep_ratio)
    if config.max_faces:
        verts, faces = decimate(verts, faces, config.max_faces)
    return verts, faces


def to_metres(verts: np.ndarray) -> np.ndarray:
    return (verts * METRES_PER_UNIT).astype(np.float32)
