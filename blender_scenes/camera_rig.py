"""The seeded camera rig, in plain Python/NumPy: frame 0 is the exact frontal view, the rest lie on a sphere.

Cameras use the OpenGL/Blender convention (the camera looks down its local -Z, +Y up); matrices are
camera-to-world. All cameras look at TARGET from RADIUS away, with a field of view that keeps the whole
avatar (which lives inside [-1, 1]^3) in frame.
"""

from __future__ import annotations

import random

import numpy as np

from rodin_core.rig import (  # noqa: F401  (re-exported: the rig's geometry lives in rodin_core)
    ELEVATION_RANGE_DEG,
    FOV,
    RADIUS,
    TARGET,
    Intrinsics,
    intrinsics,
    look_at,
    spherical_eye,
)


def camera_poses(seed: int, views: int) -> list[np.ndarray]:
    """`views` camera-to-world matrices: the frontal view, then seeded views spread over azimuth."""
    if views < 1:
        raise ValueError(f"views must be >= 1; got {views}")
    rng = random.Random(f"rodin-cameras-{seed}")
    poses = [look_at(spherical_eye(0.0, 0.0))]
    others = views - 1
    for k in range(others):
        # Stratified azimuth so every side of the head is seen; jitter keeps records different.
        azimuth = (k + rng.random()) * 360.0 / max(others, 1)
        elevation = rng.uniform(*ELEVATION_RANGE_DEG)
        poses.append(look_at(spherical_eye(azimuth, elevation)))
    return poses


def project(point: np.ndarray, c2w: np.ndarray, intr: Intrinsics) -> tuple[float, float]:
    """Pixel coordinates (col, row) of a world point, with row 0 at the top (CONVENTIONS.md)."""
    w2c = np.linalg.inv(c2w)
    x, y, z = (w2c @ np.append(np.asarray(point, dtype=float), 1.0))[:3]
    if z >= 0:
        raise ValueError("point is behind the camera")
    return intr.cx + intr.fl_x * x / -z, intr.cy - intr.fl_y * y / -z
