"""The convolutional refiner: sharpens a rendered view of a tri-plane NeRF (Rodin's image-space refiner).

A residual CNN on (B, 3, H, W) images in [0, 1]. Its last layer starts at zero, so an untrained refiner
returns its input unchanged and training can only move it away from the plain render where that helps.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn


@dataclasses.dataclass
class RefinerConfig:
    width: int = 32
    depth: int = 4  # 3x3 convolutions between the input and the output layer

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class ImageRefiner(nn.Module):
    def __init__(self, config: RefinerConfig) -> None:
        super().__init__()
        if config.width < 1 or config.depth < 1:
            raise ValueError(f"refiner width and depth must be at least 1, got {config}")
        self.config = config
        layers: list[nn.Module] = [nn.Conv2d(3, config.width, 3, padding=1), nn.SiLU()]
        for _ in range(config.depth - 1):
            layers += [nn.Conv2d(config.width, config.width, 3, padding=1), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(config.width, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"refiner expects (B, 3, H, W) images, got {tuple(images.shape)}")
        return (images + self.out(self.body(images))).clamp(0.0, 1.0)

    @torch.no_grad()
    def refine(self, image: torch.Tensor) -> torch.Tensor:
        """One (H, W, 3) image, as `render_image` returns it."""
        return self(image.permute(2, 0, 1)[None])[0].permute(1, 2, 0)
