"""Guiding a tri-plane sample towards the view it is conditioned on.

The image encoder's latent code z keeps only part of what a portrait shows (a linear read-out finds about
60 % of the attribute families in it, docs/results.md), and for a z unlike any training avatar's the base
model draws something like a training avatar near it. The portrait itself holds everything its camera sees,
so at every sampler step the clean estimate x0 is pulled a few optimiser steps towards rendering that
portrait from the frontal camera (data consistency on x0, as in decomposed diffusion sampling), and the
diffusion model then carries the change into the rest of the avatar on the following steps.

Only the base model's planes are changed, through the same decoder and normalisation the pipeline uses;
no network is trained or changed. Costs one forward and backward render of `rays` pixels per iteration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .cameras import Cameras
from .decoder import TriplaneDecoder
from .rendering import SamplingConfig, render_rays
from .triplane import denormalize, resample, roll_in, sample_features


@dataclass(frozen=True)
class ViewGuidanceConfig:
    strength: float = 1.0  # scales the optimiser's step; 0 turns the guidance off
    iterations: int = 3  # optimiser steps on x0 per sampler step
    # Adam's first steps move every value by about the learning rate, in the base model's normalised units.
    learning_rate: float = 0.05
    rays: int = 1024  # random pixels of the view rendered per iteration
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(uniform=32, importance=32))

    def validate(self) -> None:
        if not 0.0 <= self.strength <= 10.0:
            raise ValueError(f"image guidance strength must be between 0 and 10; got {self.strength}")
        if self.iterations < 1 or self.rays < 1:
            raise ValueError("image guidance needs at least one iteration and one ray")


class ViewGuidance:
    """A sampler's `correct(x0, t)` pulling the rendered view of rolled-out normalised tri-planes x0 (1, C, R, 3R)
    towards `image` (H, W, 3) in [0, 1] seen by camera `view` of `cameras` (composited over white)."""

    def __init__(
        self,
        image: torch.Tensor,
        cameras: Cameras,
        decoder: TriplaneDecoder,
        mean: torch.Tensor,
        std: torch.Tensor,
        resolution: int,
        generator: torch.Generator,
        config: ViewGuidanceConfig = ViewGuidanceConfig(),
        view: int = 0,
    ) -> None:
        config.validate()
        h, w = cameras.height, cameras.width
        if tuple(image.shape) != (h, w, 3):
            raise ValueError(
                f"the guiding image must be ({h}, {w}, 3) like its camera; got {tuple(image.shape)}"
            )
        pixel = torch.arange(h * w)
        self.origins, self.dirs, _ = cameras.rays(torch.full_like(pixel, view), pixel)
        self.target = image.reshape(-1, 3).float()
        self.decoder = decoder
        self.mean, self.std = mean, std
        self.resolution = resolution
        self.generator = generator
        self.config = config

    def loss(self, x0: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the rendered `pixels` of x0 against the image."""
        device = x0.device
        planes = resample(
            denormalize(roll_in(x0), self.mean.to(device), self.std.to(device)), self.resolution
        )

        def field_fn(points, dirs):
            return self.decoder(sample_features(planes, points), dirs)

        out = render_rays(
            field_fn,
            self.origins[pixels][None].to(device),
            self.dirs[pixels][None].to(device),
            self.config.sampling,
            torch.ones(3, device=device),
            jitter=False,  # the random pixels are the only randomness: one seed, one avatar
        )
        return (out["rgb"][0] - self.target[pixels].to(device)).pow(2).mean()

    def __call__(self, x0: torch.Tensor, t: int) -> torch.Tensor:
        cfg = self.config
        if cfg.strength == 0.0:
            return x0
        if x0.shape[0] != 1:
            raise ValueError(f"view guidance steers one sample at a time; got a batch of {x0.shape[0]}")
        with torch.enable_grad():
            x = x0.detach().clone().requires_grad_(True)
            optimiser = torch.optim.Adam([x], lr=cfg.learning_rate * cfg.strength)
            for _ in range(cfg.iterations):
                pixels = torch.randperm(len(self.target), generator=self.generator)[: cfg.rays]
                # Gradients for x alone: the decoder's weights stay untouched and gather no .grad.
                (x.grad,) = torch.autograd.grad(self.loss(x, pixels), [x])
                optimiser.step()
        return x.detach()
