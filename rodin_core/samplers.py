"""Samplers for the reverse process: DDPM (ancestral), DDIM and DPM-Solver++(2M).

A sampler knows the noise schedule but not the model: it calls `model_fn(x_t, t) -> output`, where output is
whatever the schedule's prediction type says (eps, x0 or v), and converts it through the schedule.
Every sampler spends exactly `steps` model calls and returns the x0 estimate of the last one.
An optional `correct(x0, t) -> x0` replaces each step's clean estimate before the step is taken (the noise
estimate follows it), so a measurement the sample must agree with can steer any sampler (e.g. the render of
the conditioning view, rodin_core.view_guidance).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .schedule import NoiseSchedule

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
CorrectFn = Callable[[torch.Tensor, int], torch.Tensor]
SAMPLERS = ("ddpm", "ddim", "dpmpp_2m")


class GenerationCancelled(Exception):
    """Raised inside a sampling loop when the caller's cancel event is set."""


def timesteps(
    schedule: NoiseSchedule, steps: int, spacing: str = "linear", start: int | None = None
) -> list[int]:
    """`steps` strictly decreasing timesteps from `start` (default T-1) to 0.

    "linear" spaces them evenly in t; "quadratic" (DDIM's and DPM-Solver's "time_quadratic") puts more of
    them at low noise, where few-step samplers make their largest errors.
    """
    start = schedule.num_steps - 1 if start is None else start
    if not 1 <= steps <= start + 1:
        raise ValueError(f"steps must be between 1 and {start + 1}; got {steps}")
    if steps == 1:
        return [start]
    ramp = torch.linspace(1, 0, steps, dtype=torch.float64)
    if spacing == "quadratic":
        ramp = ramp**2
    elif spacing != "linear":
        raise ValueError(f"spacing must be 'linear' or 'quadratic'; got {spacing!r}")
    out: list[int] = []
    for i, value in enumerate((ramp * start).tolist()):
        t = round(value)
        t = min(t, out[-1] - 1) if out else t
        out.append(max(t, steps - 1 - i))  # keep room for the remaining steps
    return out


def classifier_free_guidance(model_fn: Callable, cond, uncond, scale: float) -> ModelFn:
    """model_fn(x, t, cond) -> output, turned into a guided ModelFn: uncond + scale * (cond - uncond).

    Both branches run as one batch. `cond`/`uncond` are batched like x (e.g. latent codes and zeros).
    """

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = model_fn(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, uncond]))
        out_cond, out_uncond = out.chunk(2)
        return out_uncond + scale * (out_cond - out_uncond)

    return guided


class Sampler:
    name = "base"
    spacing = "linear"

    def __init__(
        self, schedule: NoiseSchedule, steps: int, clip: float | None = None, start: int | None = None
    ) -> None:
        self.schedule = schedule
        self.steps = steps
        self.clip = clip
        self.times = timesteps(schedule, steps, self.spacing, start)

    def predict(self, model_fn: ModelFn, x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        x0, eps = self.schedule.to_x0_eps(model_fn(x, t_batch), x, t)
        if self.clip is not None:
            x0 = x0.clamp(-self.clip, self.clip)
            a, s = self.schedule.alpha_sigma(t)
            eps = (x - float(a) * x0) / float(s)
        return x0, eps

    @torch.no_grad()
    def sample(
        self,
        model_fn: ModelFn,
        noise: torch.Tensor,
        generator: torch.Generator | None = None,
        progress: Callable[[int, int], None] | None = None,
        cancel=None,
        correct: CorrectFn | None = None,
    ) -> torch.Tensor:
        x = noise
        x0 = noise
        for i, t in enumerate(self.times):
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled(f"cancelled at step {i} of {self.steps}")
            x0, eps = self.predict(model_fn, x, t)
            if correct is not None:
                x0 = correct(x0, t)
                a, s_t = (float(v) for v in self.schedule.alpha_sigma(t))
                eps = (x - a * x0) / s_t
            s = self.times[i + 1] if i + 1 < len(self.times) else None
            if s is not None:
                x = self.step(x, x0, eps, t, s, generator, i)
            if progress is not None:
                progress(i + 1, self.steps)
        return x0

    def step(self, x, x0, eps, t, s, generator, i) -> torch.Tensor:
        raise NotImplementedError


class DDPMSampler(Sampler):
    """Ancestral sampling from the posterior q(x_s | x_t, x0) (respaced when steps < T)."""

    name = "ddpm"

    def step(self, x, x0, eps, t, s, generator, i):
        a_t, s_t = (float(v) for v in self.schedule.alpha_sigma(t))
        a_s, s_s = (float(v) for v in self.schedule.alpha_sigma(s))
        a_ts = a_t / a_s
        var_ts = s_t**2 - a_ts**2 * s_s**2
        mean = (a_ts * s_s**2 / s_t**2) * x + (a_s * var_ts / s_t**2) * x0
        std = math.sqrt(max(var_ts * s_s**2 / s_t**2, 0.0))
        # Drawn where the generator lives (the CPU one of the callers), so a seed gives the same noise on any device.
        home = generator.device if generator is not None else x.device
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=home).to(x.device)
        return mean + std * noise


class DDIMSampler(Sampler):
    """Deterministic DDIM (eta = 0): the probability-flow ODE, first order."""

    name = "ddim"
    spacing = "quadratic"

    def step(self, x, x0, eps, t, s, generator, i):
        a_s, s_s = (float(v) for v in self.schedule.alpha_sigma(s))
        return a_s * x0 + s_s * eps


class DPMSolverPP2M(Sampler):
    """DPM-Solver++(2M) (Lu et al. 2022): second-order multistep in log-SNR, data prediction."""

    name = "dpmpp_2m"
    spacing = "quadratic"

    def __init__(
        self, schedule: NoiseSchedule, steps: int, clip: float | None = None, start: int | None = None
    ) -> None:
        super().__init__(schedule, steps, clip, start)
        self._prev: tuple[torch.Tensor, float] | None = None

    def _lambda(self, t: int) -> float:
        a, s = self.schedule.alpha_sigma(t)
        return float(torch.log(a) - torch.log(s))

    def sample(self, model_fn, noise, generator=None, progress=None, cancel=None, correct=None):
        self._prev = None
        return super().sample(model_fn, noise, generator, progress, cancel, correct)

    def step(self, x, x0, eps, t, s, generator, i):
        a_s, s_s = (float(v) for v in self.schedule.alpha_sigma(s))
        s_t = float(self.schedule.alpha_sigma(t)[1])
        lam_t, lam_s = self._lambda(t), self._lambda(s)
        h = lam_s - lam_t
        d = x0
        if self._prev is not None:
            prev_x0, prev_h = self._prev
            r = prev_h / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * prev_x0
        self._prev = (x0, h)
        return (s_s / s_t) * x - a_s * math.expm1(-h) * d


def make_sampler(
    name: str, schedule: NoiseSchedule, steps: int, clip: float | None = None, start: int | None = None
) -> Sampler:
    """A sampler that starts from noise at timestep `start` (default T-1: pure noise; lower: SDEdit-style)."""
    classes = {"ddpm": DDPMSampler, "ddim": DDIMSampler, "dpmpp_2m": DPMSolverPP2M}
    if name not in classes:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return classes[name](schedule, steps, clip, start)
