"""The standard camera rig's geometry, shared by the data generator and every renderer of the model.

OpenGL/Blender convention (a camera looks down its local -Z, +Y up); matrices are camera-to-world. Cameras
look at TARGET from RADIUS away with a field of view that keeps the avatar box [-1, 1]^3 in frame.
Azimuth 0 is the front: the face looks towards -Y, Z is up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RADIUS = 3.2
TARGET = (0.0, 0.0, 0.0)
# Half of the frame at the target's distance covers 1.18 scene units: the box's height plus a margin.
FOV = 2.0 * math.atan(1.18 / RADIUS)
ELEVATION_RANGE_DEG = (-15.0, 55.0)


@dataclass(frozen=True)
class Intrinsics:
    fl_x: float
    fl_y: float
    cx: float
    cy: float
    w: int
    h: int

    def as_dict(self) -> dict[str, float | int]:
        return {"fl_x": self.fl_x, "fl_y": self.fl_y, "cx": self.cx, "cy": self.cy, "w": self.w, "h": self.h}


def intrinsics(resolution: int, fov: float = FOV) -> Intrinsics:
    focal = 0.5 * resolution / math.tan(0.5 * fov)
    return Intrinsics(focal, focal, resolution / 2.0, resolution / 2.0, resolution, resolution)


def look_at(
    eye: np.ndarray, target: np.ndarray = np.asarray(TARGET), up: np.ndarray = np.asarray((0.0, 0.0, 1.0))
) -> np.ndarray:
    """Camera-to-world matrix of a camera at `eye` looking at `target` (OpenGL: -Z forward, +Y up)."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-8:  # looking straight up/down: any horizontal right vector works
        right = np.array([1.0, 0.0, 0.0])
    right = right / np.linalg.norm(right)
    true_up = np.cross(right, forward)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, true_up, -forward, eye
    return c2w


def spherical_eye(azimuth_deg: float, elevation_deg: float, radius: float = RADIUS) -> np.ndarray:
    """Azimuth 0 is the front (-Y, where the face looks), growing counter-clockwise seen from above."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array(
        [math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)]
    ) * radius + np.asarray(TARGET)
