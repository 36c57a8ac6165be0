"""The upsampler's condition: the low-resolution tri-plane brought to the target size, and its augmentation.

At training time the condition is degraded (random down/up-sampling, Gaussian blur, Gaussian noise) so the
upsampler learns to tolerate the base model's imperfect samples instead of trusting every texel.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .triplane import resample


@dataclass(frozen=True)
class ConditionAugment:
    rescale_prob: float = 0.5
    min_scale: float = 0.5  # down-sampling down to this fraction of the low resolution, then back up
    blur_prob: float = 0.5
    max_blur_sigma: float = 1.0  # in texels of the target resolution
    noise_prob: float = 0.5
    max_noise_std: float = 0.2  # in units of the standardised tri-plane

    def to_dict(self) -> dict:
        return asdict(self)


def make_condition(low: torch.Tensor, resolution: int) -> torch.Tensor:
    """(B, 3, C, r, r) low-resolution planes -> (B, 3, C, R, R) bilinear upsampling (the condition)."""
    return resample(low, resolution)


def gaussian_blur(planes: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable blur of (B, 3, C, R, R) with a per-sample sigma (B,) in texels (0 = unchanged)."""
    b, _, c, r, _ = planes.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    x = torch.arange(-radius, radius + 1, dtype=planes.dtype)
    kernels = torch.exp(-(x[None] ** 2) / (2 * sigma.clamp(min=1e-3)[:, None] ** 2))
    kernels = kernels / kernels.sum(1, keepdim=True)  # (B, K)
    flat = planes.reshape(1, b * 3 * c, r, r)
    k = kernels.repeat_interleave(3 * c, dim=0)  # one kernel per (sample, plane, channel)
    flat = F.conv2d(
        F.pad(flat, (radius, radius, 0, 0), mode="replicate"), k[:, None, None, :], groups=b * 3 * c
    )
    flat = F.conv2d(
        F.pad(flat, (0, 0, radius, radius), mode="replicate"), k[:, None, :, None], groups=b * 3 * c
    )
    return flat.reshape(b, 3, c, r, r)


def augment_condition(cond: torch.Tensor, config: ConditionAugment, gen: torch.Generator) -> torch.Tensor:
    """Randomly degrades each sample of a (B, 3, C, R, R) condition independently."""
    b, _, _, r, _ = cond.shape
    out = cond.clone()
    for i in range(b):
        if torch.rand((), generator=gen) < config.rescale_prob:
            scale = config.min_scale + (1 - config.min_scale) * float(torch.rand((), generator=gen))
            size = max(4, int(r // 2 * scale))
            out[i : i + 1] = resample(resample(out[i : i + 1], size), r)
    blur = torch.rand(b, generator=gen) < config.blur_prob
    if blur.any():
        sigma = torch.rand(b, generator=gen) * config.max_blur_sigma * blur
        out = torch.where(blur[:, None, None, None, None], gaussian_blur(out, sigma), out)
    noisy = (torch.rand(b, generator=gen) < config.noise_prob).float()
    std = torch.rand(b, generator=gen) * config.max_noise_std * noisy
    return out + std[:, None, None, None, None] * torch.randn(out.shape, generator=gen)
