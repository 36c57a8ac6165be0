"""The image encoder that turns a frontal portrait into the latent code z the diffusion model follows.

Trained jointly with the base diffusion model (its only signal is the denoising loss), as in Rodin. z is
projected onto a sphere of radius sqrt(z_dim) so its scale is fixed: that keeps the latent prior and the text
encoder (which both model z) well-posed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class EncoderConfig:
    z_dim: int = 64
    image_size: int = 64
    widths: tuple[int, ...] = (32, 64, 128, 128)

    def to_dict(self) -> dict:
        return asdict(self)


class ImageEncoder(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        cin = 3
        for width in config.widths:
            layers += [nn.Conv2d(cin, width, 3, stride=2, padding=1), nn.GroupNorm(8, width), nn.SiLU()]
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.GroupNorm(8, width), nn.SiLU()]
            cin = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, config.z_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) RGB in [0, 1], composited over white -> (B, z_dim)."""
        s = self.config.image_size
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W) RGB; got {tuple(images.shape)}")
        if images.shape[-2:] != (s, s):
            images = F.interpolate(images, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        h = self.features(images * 2 - 1).mean(dim=(2, 3))
        return F.normalize(self.head(h), dim=-1) * math.sqrt(self.config.z_dim)
