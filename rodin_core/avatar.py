"""The product of generation: a textured avatar mesh in Blender's axes (Z up, face towards -Y)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Avatar:
    """A generated avatar.

    vertices: (V, 3) float32 in metres, Blender axes (Z up, the face looks along -Y).
    faces: (F, 3) int32 triangles, counter-clockwise seen from outside.
    uvs: (F, 3, 2) float32 per-corner UV coordinates in [0, 1] (corner layout, as Blender's loops),
         or None when no atlas was made.
    texture: (H, W, 3) uint8 sRGB albedo image, row 0 = top (v = 1), or None.
    vertex_colors: (V, 3) float32 linear-free sRGB colours in [0, 1] (the fallback without texture).
    metadata: seed, sampler settings, conditioning, attributes/caption, model version.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray | None = None
    texture: np.ndarray | None = None
    vertex_colors: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    planes: Any = None  # the (1, 3, C, R, R) tri-plane it was extracted from, when known (for editing)
    portrait: Any = None  # the (3, S, S) portrait that steered it (given, or drawn for a text prompt), if any

    def __post_init__(self) -> None:
        self.vertices = np.asarray(self.vertices, dtype=np.float32)
        self.faces = np.asarray(self.faces, dtype=np.int32)
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise ValueError(f"vertices must be (V, 3); got {self.vertices.shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"faces must be (F, 3); got {self.faces.shape}")
        if self.uvs is not None and tuple(self.uvs.shape) != (len(self.faces), 3, 2):
            raise ValueError(f"uvs must be (F, 3, 2) per corner; got {tuple(self.uvs.shape)}")
