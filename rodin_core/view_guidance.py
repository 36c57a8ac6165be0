"""Guiding a tri-plane sample towards the view it is conditioned on.

The image encoder's latent code z keeps only part of what a portrait shows (a linear read-out finds about
60 % of the attribute families in it, docs/results.md), and for a z unlike any training avatar's the base
model draws something like a training avatar near it. The portrait itself holds everything its camera sees,
so at every sampler step the clean estimate x0 is pulled a few optimiser steps towards rendering that
portrait from the frontal camera (data consistency on x0, as in decomposed diffusion sampling), and the
diffusion model then carries the change into the rest of the avatar on the following steps.

That correction is made where the frontal camera sees, so on its own it mostly paints the front. The latent
code is steered too (`steer_latent`): before each step's prediction z takes a few optimiser steps so that the
model's own clean estimate under it renders the portrait. A change of z is drawn by the model as a whole
head, so the sides and back follow the portrait as well (held-out avatars, docs/results.md "Image guidance").

Only the sample and its latent code are changed, through the same decoder and normalisation the pipeline
uses; no network is trained or changed. Costs one forward and backward render of `rays` pixels per iteration,
and per latent iteration one more, through the UNet as well.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .cameras import Cameras
from .decoder import TriplaneDecoder
from .rendering import SamplingConfig, render_rays
from .triplane import denormalize, resample, roll_in, sample_features

MAX_STRENGTH = 10.0  # the strongest pull a guidance may be given


@dataclass(frozen=True)
class ViewGuidanceConfig:
    strength: float = 1.0  # scales the optimiser's step; 0 turns the guidance off
    iterations: int = 3  # optimiser steps on x0 per sampler step
    # Adam's first steps move every value by about the learning rate, in the base model's normalised units.
    learning_rate: float = 0.05
    rays: int = 1024  # random pixels of the view rendered per iteration
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(uniform=32, importance=32))
    # Optimiser steps on the latent code per sampler step (0: z stays the encoder's). Its Adam state carries
    # over the steps: over 20 steps z turns to a cosine of about 0.8 with the encoder's code. One step at 0.1
    # did as well as two at 0.05 on held-out avatars (bench/image_guidance.py) for half the cost.
    latent_iterations: int = 1
    latent_learning_rate: float = 0.1

    def validate(self) -> None:
        if not 0.0 <= self.strength <= MAX_STRENGTH:
            raise ValueError(
                f"image guidance strength must be between 0 and {MAX_STRENGTH:g}; got {self.strength}"
            )
        if self.iterations < 1 or self.rays < 1:
            raise ValueError("image guidance needs at least one iteration and one ray")
        if self.latent_iterations < 0:
            raise ValueError(f"latent iterations must be 0 or more; got {self.latent_iterations}")


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
        self._latent: torch.Tensor | None = None  # the steered code and its optimiser, from the first step on
        self._latent_optimiser: torch.optim.Optimizer | None = None

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

    def pixels(self) -> torch.Tensor:
        return torch.randperm(len(self.target), generator=self.generator)[: self.config.rays]

    def steer_latent(
        self, z: torch.Tensor, predict_x0: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """The latent code (1, z_dim) moved so that `predict_x0(code)`, the model's clean estimate of the current
        sample under that code, renders the view closer; z's length is kept (the encoder's sphere).

        Called once per sampler step with the code the previous call returned (the first with the encoder's)."""
        cfg = self.config
        if cfg.strength == 0.0 or cfg.latent_iterations == 0:
            return z
        if z.shape[0] != 1:
            raise ValueError(f"view guidance steers one sample at a time; got a batch of {z.shape[0]}")
        if self._latent is None:
            self._latent = z.detach().clone().requires_grad_(True)
            self._latent_optimiser = torch.optim.Adam(
                [self._latent], lr=cfg.latent_learning_rate * cfg.strength
            )
        radius = z.norm(dim=-1, keepdim=True)
        with torch.enable_grad():
            for _ in range(cfg.latent_iterations):
                # Gradients for the code alone: the UNet and decoder gather no .grad.
                loss = self.loss(predict_x0(self._latent), self.pixels())
                (self._latent.grad,) = torch.autograd.grad(loss, [self._latent])
                self._latent_optimiser.step()
                with torch.no_grad():
                    self._latent.mul_(radius / self._latent.norm(dim=-1, keepdim=True))
        return self._latent.detach().clone()

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
                # Gradients for x alone: the decoder's weights stay untouched and gather no .grad.
                (x.grad,) = torch.autograd.grad(self.loss(x, self.pixels()), [x])
                optimiser.step()
        return x.detach()
