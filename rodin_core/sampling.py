"""Sampling tri-planes and latent codes with the trained networks (the glue between models and samplers)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .portrait import PortraitModel
from .prior import LatentPrior
from .samplers import CorrectFn, classifier_free_guidance, make_sampler
from .schedule import NoiseSchedule
from .unet import TriplaneUNet

# steer(z, predict_x0) -> z: moves the latent code given the model's clean estimate of the current sample as a
# function of the code (e.g. ViewGuidance.steer_latent).
SteerFn = Callable[[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]], torch.Tensor]


def sample_latents(
    prior: LatentPrior,
    schedule: NoiseSchedule,
    count: int,
    generator: torch.Generator,
    sampler: str = "dpmpp_2m",
    steps: int = 25,
) -> torch.Tensor:
    """Latent codes z from the prior, on the sphere the image encoder maps to."""
    z_dim = prior.config.z_dim
    device = next(prior.parameters()).device
    noise = torch.randn(count, z_dim, generator=generator).to(device)
    z = make_sampler(sampler, schedule, steps).sample(prior, noise, generator=generator)
    return torch.nn.functional.normalize(z, dim=-1) * z_dim**0.5


def sample_base(
    unet: TriplaneUNet,
    schedule: NoiseSchedule,
    z: torch.Tensor,
    resolution: int,
    generator: torch.Generator,
    guidance: float = 2.0,
    sampler: str = "dpmpp_2m",
    steps: int = 20,
    progress: Callable[[int, int], None] | None = None,
    cancel=None,
    start: int | None = None,
    x_start: torch.Tensor | None = None,
    correct: CorrectFn | None = None,
    steer: SteerFn | None = None,
) -> torch.Tensor:
    """Normalised rolled-out tri-planes (B, C, R, 3R) following latent codes z (B, z_dim), with guidance.

    `x_start` replaces the initial noise: pure noise for a full sample, or a noised tri-plane together with
    `start` < T-1 to re-noise and re-denoise an existing avatar (SDEdit). `correct` steers each step's clean
    estimate, `steer` the latent code before each step's prediction (both: rodin_core.view_guidance).
    """
    b = z.shape[0]
    noise = x_start
    if noise is None:
        noise = torch.randn(unet.sample_shape(b, resolution), generator=generator).to(z.device)

    def model_fn(x, t, cond):
        return unet(x, t, cond)

    code = z

    def guided(x, t):
        nonlocal code
        if steer is not None:
            code = steer(code, lambda c: schedule.to_x0_eps(unet(x, t, c), x, t)[0])
        return classifier_free_guidance(model_fn, code, torch.zeros_like(code), guidance)(x, t)

    return make_sampler(
        sampler, schedule, min(steps, (start or schedule.num_steps - 1) + 1), start=start
    ).sample(guided, noise, generator, progress, cancel, correct)


def sample_portraits(
    model: PortraitModel,
    schedule: NoiseSchedule,
    z: torch.Tensor,
    generator: torch.Generator,
    guidance: float | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel=None,
    ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Frontal portraits (B, 3, S, S) in [0, 1] of the avatars latent codes z (B, z_dim) describe, and token ids
    (B, L) of the prompts where the model has a word path (PortraitModel.condition); `guidance`, `sampler` and
    `steps` default to the model's own (PortraitConfig)."""
    cfg = model.config
    x = sample_base(
        model.unet,
        schedule,
        # The words do not depend on the sample: read once, the whole code is guided like a latent code.
        model.condition(z, ids),
        cfg.resolution,
        generator,
        cfg.guidance if guidance is None else guidance,
        cfg.sampler if sampler is None else sampler,
        cfg.steps if steps is None else steps,
        progress,
        cancel,
    )
    return model.unfold(x)


def sample_upsampled(
    unet: TriplaneUNet,
    schedule: NoiseSchedule,
    cond: torch.Tensor,
    generator: torch.Generator,
    sampler: str = "dpmpp_2m",
    steps: int = 10,
    progress: Callable[[int, int], None] | None = None,
    cancel=None,
    residual: bool = True,
) -> torch.Tensor:
    """Normalised high-resolution rolled-out tri-planes given the upsampled low-resolution ones (same shape).

    With `residual` the x0-predicting UNet outputs the correction to the condition (x0 = cond + output), so
    an untrained upsampler starts out as exactly bilinear upsampling and training only has to add detail.
    """
    noise = torch.randn(cond.shape, generator=generator).to(cond.device)

    def model_fn(x, t):
        out = unet(x, t, cond=cond)
        return cond + out if residual else out

    return make_sampler(sampler, schedule, steps).sample(model_fn, noise, generator, progress, cancel)
