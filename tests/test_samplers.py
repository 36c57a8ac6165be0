"""Samplers against a problem with a known answer: a 1-D Gaussian mixture, whose exact denoiser is closed-form."""

import threading

import pytest
import torch

from rodin_core.samplers import (
    GenerationCancelled,
    classifier_free_guidance,
    make_sampler,
    timesteps,
)
from rodin_core.schedule import NoiseSchedule, ScheduleConfig

WEIGHTS = torch.tensor([0.3, 0.7], dtype=torch.float64)
MEANS = torch.tensor([-1.0, 0.8], dtype=torch.float64)
STDS = torch.tensor([0.15, 0.25], dtype=torch.float64)


def exact_model(schedule: NoiseSchedule, weights=WEIGHTS, means=MEANS, stds=STDS):
    """The Bayes-optimal model output E[x0 | x_t] (converted to the schedule's prediction type)."""

    def model_fn(x, t):
        a, s = schedule.alpha_sigma(t)
        a, s = a[:, None], s[:, None]
        xs = x.reshape(x.shape[0], 1).double()
        var = a**2 * stds**2 + s**2
        logp = torch.log(weights) - 0.5 * torch.log(var) - 0.5 * (xs - a * means) ** 2 / var
        post = torch.softmax(logp, dim=1)
        x0 = (post * (means + a * stds**2 * (xs - a * means) / var)).sum(1, keepdim=True)
        eps = (xs - a * x0) / s
        out = {"x0": x0, "eps": eps, "v": a * eps - s * x0}[schedule.prediction]
        return out.reshape(x.shape).to(x.dtype)

    return model_fn


def draw(sampler_name, steps, prediction="v", n=4000, seed=0):
    schedule = NoiseSchedule(ScheduleConfig(prediction=prediction))
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 1, generator=gen, dtype=torch.float64)
    return make_sampler(sampler_name, schedule, steps).sample(exact_model(schedule), noise, generator=gen)[
        :, 0
    ]


def mixture_stats(x):
    left = x < 0
    return left.double().mean().item(), x[left].mean().item(), x[~left].mean().item(), x[~left].std().item()


@pytest.mark.parametrize(
    "sampler,steps,prediction",
    [
        ("ddpm", 1000, "v"),
        ("ddpm", 100, "eps"),
        ("ddim", 50, "x0"),
        ("dpmpp_2m", 20, "eps"),
        ("dpmpp_2m", 20, "x0"),
        ("dpmpp_2m", 20, "v"),
    ],
)
def test_samplers_recover_the_mixture(sampler, steps, prediction):
    weight, left_mean, right_mean, right_std = mixture_stats(draw(sampler, steps, prediction, n=3000))
    assert weight == pytest.approx(0.3, abs=0.03)
    assert left_mean == pytest.approx(-1.0, abs=0.03)
    assert right_mean == pytest.approx(0.8, abs=0.03)
    assert right_std == pytest.approx(0.25, abs=0.03)


def test_deterministic_samplers_match_each_other():
    # The ODE solution is unique: DPM-Solver++ at 20 steps lands close to DDIM at 500 steps per sample.
    a = draw("ddim", 500, n=500)
    b = draw("dpmpp_2m", 20, n=500)
    c = draw("ddim", 20, n=500)
    err_dpm = (a - b).abs().mean().item()
    err_ddim = (a - c).abs().mean().item()
    assert err_dpm < 0.02
    assert err_dpm < err_ddim / 2  # second order really is better at the same step count


def test_one_step_ddim_gives_the_posterior_mean_of_pure_noise():
    x = draw("ddim", 1, n=200)
    expected = (WEIGHTS * MEANS).sum().item()  # E[x0 | x_T] ~ E[x0] when x_T carries no signal
    assert x.mean().item() == pytest.approx(expected, abs=0.01)


def test_cfg_with_scale_one_equals_conditional_sampling():
    schedule = NoiseSchedule(ScheduleConfig(prediction="eps"))
    cond_model = exact_model(schedule)
    uncond_model = exact_model(schedule, means=torch.tensor([2.0, 3.0], dtype=torch.float64))

    def model_fn(x, t, c):  # c = 1: the conditional model, c = 0: the unconditional one
        return torch.where(c[:, None] > 0, cond_model(x, t), uncond_model(x, t))

    noise = torch.randn(64, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    cond, uncond = torch.ones(64), torch.zeros(64)
    sampler = make_sampler("dpmpp_2m", schedule, 15)
    guided = sampler.sample(classifier_free_guidance(model_fn, cond, uncond, 1.0), noise)
    plain = sampler.sample(cond_model, noise)
    assert torch.allclose(guided, plain, atol=1e-9)
    pushed = sampler.sample(classifier_free_guidance(model_fn, cond, uncond, 3.0), noise)
    # Guidance pushes samples away from the unconditional mode (which lies to the right).
    assert pushed.mean() < plain.mean() - 0.1


@pytest.mark.parametrize("sampler,steps", [("ddpm", 100), ("ddim", 50), ("dpmpp_2m", 20)])
def test_a_correction_of_the_clean_estimate_steers_every_sampler(sampler, steps):
    schedule = NoiseSchedule(ScheduleConfig(prediction="eps"))
    noise = torch.randn(2000, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(5))

    def run(correct):
        gen = torch.Generator().manual_seed(6)
        return make_sampler(sampler, schedule, steps).sample(
            exact_model(schedule), noise, generator=gen, correct=correct
        )[:, 0]

    plain = run(None)
    # The identity changes nothing (the noise estimate recomputed from x0 differs only by rounding).
    assert torch.allclose(run(lambda x0, t: x0), plain, atol=1e-9)
    seen = []

    def towards_right(x0, t):
        # A measurement "x0 > 0.5": each clean estimate moves halfway to the right mode when it lies left of it.
        seen.append(t)
        return torch.where(x0 < 0.5, x0 + 0.5 * (0.8 - x0), x0)

    steered = run(towards_right)
    assert seen == make_sampler(sampler, schedule, steps).times  # called once per step, with its timestep
    assert (plain < 0).double().mean().item() == pytest.approx(0.3, abs=0.04)
    # The last correction alone would move a left-mode sample only to about -0.1: the left mode is gone
    # because the corrections carried every trajectory over to the right one, which keeps its shape.
    assert (steered < 0.3).double().mean().item() < 0.02
    assert steered.mean().item() == pytest.approx(0.8, abs=0.05)
    assert steered.std().item() < 0.35


def test_cancel_stops_sampling():
    schedule = NoiseSchedule()
    event = threading.Event()
    calls = []

    def model_fn(x, t):
        calls.append(int(t[0]))
        if len(calls) == 3:
            event.set()
        return torch.zeros_like(x)

    with pytest.raises(GenerationCancelled):
        make_sampler("ddim", schedule, 50).sample(model_fn, torch.randn(2, 1), cancel=event)
    assert len(calls) == 3


def test_bad_parameters_are_explained():
    schedule = NoiseSchedule()
    with pytest.raises(ValueError, match="steps must be between"):
        timesteps(schedule, 0)
    with pytest.raises(ValueError, match="unknown sampler"):
        make_sampler("euler", schedule, 10)
    with pytest.raises(ValueError, match="prediction"):
        NoiseSchedule(ScheduleConfig(prediction="score"))
