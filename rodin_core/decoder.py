"""The shared tri-plane decoder: aggregated plane features -> density and view-dependent colour."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from .triplane import sample_features


@dataclass(frozen=True)
class DecoderConfig:
    channels: int = 8  # C, the tri-plane's feature channels
    fourier: int = 2  # frequencies of the Fourier features of the aggregated feature
    hidden: int = 64
    color_hidden: int = 32
    geo_features: int = 15  # features passed from the density trunk to the colour head
    density_bias: float = -1.0  # initial log-density: starts the scene mostly empty

    def to_dict(self) -> dict:
        return asdict(self)


def sh_basis(dirs: torch.Tensor) -> torch.Tensor:
    """Real spherical harmonics up to degree 2 of unit vectors (..., 3) -> (..., 9)."""
    x, y, z = dirs.unbind(-1)
    return torch.stack(
        [
            torch.full_like(x, 0.2820948),
            -0.4886025 * y,
            0.4886025 * z,
            -0.4886025 * x,
            1.0925484 * x * y,
            -1.0925484 * y * z,
            0.3153916 * (3 * z * z - 1),
            -1.0925484 * x * z,
            0.5462742 * (x * x - y * y),
        ],
        dim=-1,
    )


class TriplaneDecoder(nn.Module):
    """EG3D-style MLP: one network shared by every avatar (its knowledge is what the tri-planes index)."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.register_buffer(
            "freqs", math.pi * 2.0 ** torch.arange(config.fourier, dtype=torch.float32), persistent=False
        )
        self.trunk = nn.Sequential(
            nn.Linear(c * (1 + 2 * config.fourier), config.hidden),
            nn.Softplus(),
            nn.Linear(config.hidden, config.hidden),
            nn.Softplus(),
            nn.Linear(config.hidden, 1 + config.geo_features),
        )
        self.color_head = nn.Sequential(
            nn.Linear(config.geo_features + 9, config.color_hidden),
            nn.Softplus(),
            nn.Linear(config.color_hidden, 3),
        )
        with torch.no_grad():
            self.trunk[-1].bias[0] = config.density_bias

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        angles = features[..., None] * self.freqs
        return torch.cat([features, angles.sin().flatten(-2), angles.cos().flatten(-2)], dim=-1)

    def density(self, features: torch.Tensor) -> torch.Tensor:
        return _density(self.trunk(self.encode(features))[..., 0])

    def forward(self, features: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (..., C), unit directions (..., 3) -> density (...), rgb in [0, 1] (..., 3)."""
        out = self.trunk(self.encode(features))
        rgb = torch.sigmoid(self.color_head(torch.cat([out[..., 1:], sh_basis(dirs)], dim=-1)))
        return _density(out[..., 0]), rgb


def _density(raw: torch.Tensor) -> torch.Tensor:
    # exp gives the dynamic range sharp surfaces need; the clamp keeps the gradient finite.
    return torch.exp(raw.clamp(max=12.0))


class TriplaneField:
    """A batch of tri-plane scenes decoded by the shared decoder: the field interface of CONVENTIONS.md."""

    def __init__(self, planes: torch.Tensor, decoder: TriplaneDecoder) -> None:
        self.planes = planes
        self.decoder = decoder

    def __call__(self, points: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder(sample_features(self.planes, points), dirs)

    def density(self, points: torch.Tensor) -> torch.Tensor:
        return self.decoder.density(sample_features(self.planes, points))

    def color(self, points: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
        return self(points, dirs)[1]


def decoder_from_state(config: dict, state: dict[str, torch.Tensor]) -> TriplaneDecoder:
    decoder = TriplaneDecoder(DecoderConfig(**config))
    decoder.load_state_dict(state)
    return decoder.eval()
