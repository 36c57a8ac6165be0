"""Pinhole cameras from a transforms.json and the rays through their pixels (OpenGL convention)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import rig


@dataclass
class Cameras:
    """V cameras of one image size: camera-to-world (V, 4, 4), focal lengths and principal point in pixels."""

    c2w: torch.Tensor
    fl_x: float
    fl_y: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_transforms(cls, transforms: dict) -> Cameras:
        try:
            c2w = torch.tensor(
                np.asarray([f["transform_matrix"] for f in transforms["frames"]], dtype=np.float32)
            )
            return cls(
                c2w,
                float(transforms["fl_x"]),
                float(transforms["fl_y"]),
                float(transforms["cx"]),
                float(transforms["cy"]),
                int(transforms["w"]),
                int(transforms["h"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"transforms.json is missing or has a malformed camera field ({exc}); expected frames[]."
                "transform_matrix and fl_x fl_y cx cy w h (docs/dataset.md)"
            ) from exc

    @classmethod
    def orbit(cls, azimuths_deg, elevation_deg: float, size: int, radius: float = rig.RADIUS) -> Cameras:
        """Cameras of the standard rig at the given azimuths (0 = front) and one elevation."""
        intr = rig.intrinsics(size)
        c2w = np.stack([rig.look_at(rig.spherical_eye(a, elevation_deg, radius)) for a in azimuths_deg])
        return cls(torch.tensor(c2w, dtype=torch.float32), intr.fl_x, intr.fl_y, intr.cx, intr.cy, size, size)

    def __len__(self) -> int:
        return self.c2w.shape[0]

    def rays(
        self, view: torch.Tensor, pixel: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rays through pixel centres. view, pixel: (N,) long (pixel = row * width + col).

        Returns origins (N, 3), unit directions (N, 3) and `depth_to_t` (N,): multiply a planar depth (along
        the camera's -Z) by it to get the distance along the unit direction.
        """
        col = (pixel % self.width).float() + 0.5
        row = torch.div(pixel, self.width, rounding_mode="floor").float() + 0.5
        d_cam = torch.stack(
            [(col - self.cx) / self.fl_x, -(row - self.cy) / self.fl_y, -torch.ones_like(col)], -1
        )
        c2w = self.c2w[view]
        d_world = torch.einsum("nij,nj->ni", c2w[:, :3, :3], d_cam)
        norm = d_world.norm(dim=-1)
        return c2w[:, :3, 3], d_world / norm[:, None], norm
