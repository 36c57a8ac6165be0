"""The forward diffusion process: noise schedule and conversions between what a model predicts.

x_t = alpha_t * x0 + sigma_t * eps, with alpha_t^2 + sigma_t^2 = 1 (variance preserving), t = 0 .. T-1.
A model predicts one of eps, x0 or v = alpha_t * eps - sigma_t * x0; samplers work with x0 and eps and ask
the schedule to convert, so they never need to know which one a model was trained on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

PREDICTIONS = ("eps", "x0", "v")


@dataclass(frozen=True)
class ScheduleConfig:
    steps: int = 1000
    kind: str = "cosine"  # "cosine" (Nichol & Dhariwal) or "linear" (DDPM's betas 1e-4 .. 2e-2)
    prediction: str = "v"

    def to_dict(self) -> dict:
        return asdict(self)


class NoiseSchedule:
    def __init__(self, config: ScheduleConfig = ScheduleConfig()) -> None:
        if config.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}; got {config.prediction!r}")
        if config.steps < 2:
            raise ValueError(f"a schedule needs at least 2 steps; got {config.steps}")
        self.config = config
        self.num_steps = config.steps
        self.prediction = config.prediction
        if config.kind == "cosine":
            s = 0.008
            t = torch.arange(config.steps + 1, dtype=torch.float64) / config.steps
            f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        elif config.kind == "linear":
            betas = torch.linspace(1e-4, 2e-2, config.steps, dtype=torch.float64)
        else:
            raise ValueError(f"schedule kind must be 'cosine' or 'linear'; got {config.kind!r}")
        self.alphas_cumprod = torch.cumprod(1 - betas, dim=0)

    def alpha_sigma(self, t: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
        """alpha_t and sigma_t as float64 tensors (t may be a tensor of indices)."""
        t = torch.as_tensor(t, dtype=torch.long)
        abar = self.alphas_cumprod.to(t.device)[t]  # t may live on the model's device (a GPU training step)
        return abar.sqrt(), (1 - abar).sqrt()

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, s = (_bcast(v, x0) for v in self.alpha_sigma(t))
        return a * x0 + s * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the model should output at (x_t, t) for its prediction type."""
        if self.prediction == "eps":
            return noise
        if self.prediction == "x0":
            return x0
        a, s = (_bcast(v, x0) for v in self.alpha_sigma(t))
        return a * noise - s * x0

    def to_x0_eps(
        self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a, s = (_bcast(v, x_t) for v in self.alpha_sigma(t))
        if self.prediction == "eps":
            eps = output
            x0 = (x_t - s * eps) / a
        elif self.prediction == "x0":
            x0 = output
            eps = (x_t - a * x0) / s
        else:
            x0 = a * x_t - s * output
            eps = s * x_t + a * output
        return x0, eps


def _bcast(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    values = values.to(like.dtype).to(like.device)
    return values.reshape(-1, *([1] * (like.dim() - 1))) if values.dim() else values
