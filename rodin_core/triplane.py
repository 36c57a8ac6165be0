"""The tri-plane container: three axis-aligned feature planes over the scene box [-1, 1]^3.

Conventions (every stage relies on them; see docs/CONVENTIONS.md):
- planes tensor: (B, 3, C, R, R); plane 0 = XY, plane 1 = XZ, plane 2 = YZ.
- plane k is indexed [c, row, col] with col <-> first axis (u), row <-> second axis (v):
  XY: u = x, v = y;  XZ: u = x, v = z;  YZ: u = y, v = z.
  Texel centres follow grid_sample(align_corners=False): col j covers u in [-1 + 2j/R, -1 + 2(j+1)/R].
- aggregation of the three sampled features: mean (as EG3D), so the decoder's input scale does not
  depend on how many planes there are.
- roll-out: (B, C, R, 3R) = planes XY | XZ | YZ side by side along the width (Rodin's H x 3W x C).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Which coordinate axes (0 = x, 1 = y, 2 = z) give (u, v) on each plane.
PLANE_AXES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2))
PLANE_NAMES: tuple[str, ...] = ("xy", "xz", "yz")


def check_planes(planes: torch.Tensor) -> None:
    if planes.dim() != 5 or planes.shape[1] != 3 or planes.shape[-1] != planes.shape[-2]:
        raise ValueError(f"tri-planes must have shape (B, 3, C, R, R); got {tuple(planes.shape)}")


def roll_out(planes: torch.Tensor) -> torch.Tensor:
    """(B, 3, C, R, R) -> (B, C, R, 3R)."""
    check_planes(planes)
    return torch.cat(planes.unbind(dim=1), dim=-1)


def roll_in(rolled: torch.Tensor) -> torch.Tensor:
    """(B, C, R, 3R) -> (B, 3, C, R, R); the inverse of roll_out."""
    if rolled.dim() != 4 or rolled.shape[-1] != 3 * rolled.shape[-2]:
        raise ValueError(f"rolled-out tri-planes must have shape (B, C, R, 3R); got {tuple(rolled.shape)}")
    return torch.stack(rolled.chunk(3, dim=-1), dim=1)


def project(points: torch.Tensor) -> torch.Tensor:
    """(B, N, 3) points -> (B, 3, N, 2) plane coordinates (u, v) for grid_sample."""
    return torch.stack([points[..., list(axes)] for axes in PLANE_AXES], dim=1)


def sample_features(planes: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear features at 3D points, averaged over the three planes.

    planes: (B, 3, C, R, R); points: (B, N, 3) in [-1, 1]^3 (outside the box sampling reads zeros).
    Returns (B, N, C).
    """
    check_planes(planes)
    b, _, c, r, _ = planes.shape
    coords = project(points).reshape(b * 3, 1, -1, 2)
    feats = F.grid_sample(
        planes.reshape(b * 3, c, r, r), coords, mode="bilinear", padding_mode="zeros", align_corners=False
    )  # (B*3, C, 1, N)
    return feats.reshape(b, 3, c, -1).mean(dim=1).transpose(1, 2)


def resample(planes: torch.Tensor, resolution: int, mode: str = "bilinear") -> torch.Tensor:
    """Changes the plane resolution (antialiased when shrinking)."""
    check_planes(planes)
    b, _, c, r, _ = planes.shape
    if resolution == r:
        return planes
    flat = planes.reshape(b * 3, c, r, r)
    kwargs = {"antialias": True} if resolution < r and mode in ("bilinear", "bicubic") else {}
    out = F.interpolate(flat, size=(resolution, resolution), mode=mode, align_corners=False, **kwargs)
    return out.reshape(b, 3, c, resolution, resolution)


def normalize(planes: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Per-channel standardisation (mean/std of shape (C,)) of (B, 3, C, R, R) planes, as diffusion sees them."""
    return (planes - mean.view(1, 1, -1, 1, 1)) / std.view(1, 1, -1, 1, 1)


def denormalize(planes: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (planes * std.view(1, 1, -1, 1, 1) + mean.view(1, 1, -1, 1, 1)).clamp(-1.0, 1.0)


def mirror_x(planes: torch.Tensor) -> torch.Tensor:
    """The tri-plane of the avatar mirrored through x = 0 (x runs along the columns of XY and XZ)."""
    return torch.stack([planes[:, 0].flip(-1), planes[:, 1].flip(-1), planes[:, 2]], dim=1)
