"""A small diffusion model over latent codes z, so avatars can be sampled without an input image."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .unet import timestep_embedding


@dataclass(frozen=True)
class PriorConfig:
    z_dim: int = 64
    hidden: int = 256
    layers: int = 4

    def to_dict(self) -> dict:
        return asdict(self)


class LatentPrior(nn.Module):
    """Residual MLP denoiser of z: output(z_t, t) in the schedule's prediction type."""

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.config = config
        self.input = nn.Linear(config.z_dim, config.hidden)
        self.time = nn.Sequential(
            nn.Linear(128, config.hidden), nn.SiLU(), nn.Linear(config.hidden, config.hidden)
        )
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(config.hidden),
                nn.Linear(config.hidden, config.hidden * 2),
                nn.SiLU(),
                nn.Linear(config.hidden * 2, config.hidden),
            )
            for _ in range(config.layers)
        )
        self.output = nn.Linear(config.hidden, config.z_dim)

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.input(z) + self.time(timestep_embedding(t, 128))
        for block in self.blocks:
            h = h + block(h)
        return self.output(F.silu(h))
