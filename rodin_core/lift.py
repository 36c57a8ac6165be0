"""A 2D edit lifted into 3D: a part's tri-plane features fitted to edited pictures of the avatar.

The edits that know what the change should look like (a hair colour, a glasses frame) paint it into a few
rendered views of the avatar and fit the planes to those pictures, with the decoder frozen (as
Instruct-NeRF2NeRF's dataset update does with its image editor). The fit moves the planes only inside the part's
masks (rodin_core.regions) through an offset fitted at 1/coarse of the planes' resolution and upsampled, so
every point outside keeps its features bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import rig
from .cameras import Cameras
from .decoder import TriplaneDecoder
from .rendering import SamplingConfig, render_rays
from .samplers import GenerationCancelled
from .triplane import resample, sample_features


@dataclass(frozen=True)
class LiftConfig:
    steps: int = 100  # optimiser steps
    rays: int = 1024  # rays per step, half of them where the edit is
    learning_rate: float = 0.15
    coarse: int = 4  # the offset is fitted at 1/coarse of the planes' resolution: 4 gives smooth colour
    sampling: SamplingConfig = SamplingConfig(uniform=24, importance=24)

    def validate(self) -> None:
        if self.steps < 1 or self.rays < 2 or self.coarse < 1 or self.learning_rate <= 0:
            raise ValueError(f"impossible settings for fitting an edit into the tri-planes: {self}")


def cameras(views: tuple[tuple[float, float], ...], size: int) -> Cameras:
    """The standard rig's cameras at (azimuth, elevation) pairs in degrees, one view each."""
    cams = [Cameras.orbit((az,), el, size) for az, el in views]
    intr = rig.intrinsics(size)
    return Cameras(torch.cat([c.c2w for c in cams]), intr.fl_x, intr.fl_y, intr.cx, intr.cy, size, size)


def lift(
    decoder: TriplaneDecoder,
    planes: torch.Tensor,
    masks: torch.Tensor,
    cams: Cameras,
    target: torch.Tensor,
    alpha: torch.Tensor,
    focus: torch.Tensor,
    config: LiftConfig = LiftConfig(),
    progress: Callable[[int, int], None] | None = None,
    cancel=None,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Planes (1, 3, C, R, R) changed inside `masks` (3, R, R) so that their renders in `cams` look like
    `target` (V, H, W, 3, over white) with opacity `alpha` (V, H, W). Half of each step's rays are drawn where
    `focus` (V, H, W, bool) is set, the pixels the edit changes; the rest where `keep` (V, H, W, bool) is set,
    the pixels that must stay as they are, or anywhere without it: that holds the others.
    `progress(done, total)` hears of every step; a set `cancel` event stops the fit (GenerationCancelled)."""
    config.validate()
    device = planes.device
    planes = planes.detach().float()
    views, h, w = alpha.shape
    n = h * w
    target, alpha = target.reshape(views * n, 3), alpha.reshape(views * n)
    inside, held = (_indices(m, views * n) for m in (focus, keep))
    view_of = torch.arange(views).repeat_interleave(n)
    origins, dirs, _ = cams.rays(view_of, torch.arange(n).repeat(views))
    m = masks.to(planes)[None, :, None]
    res = planes.shape[-1]
    offset = torch.zeros(1, 3, planes.shape[2], res // config.coarse, res // config.coarse, device=device)
    offset.requires_grad_(True)
    optimiser = torch.optim.Adam([offset], lr=config.learning_rate)
    gen = torch.Generator().manual_seed(0)  # which rays each step fits: one avatar, one result
    white = torch.ones(3, device=device)
    with torch.enable_grad():
        for step in range(config.steps):
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled(f"cancelled at step {step} of {config.steps} of the edit's fit")
            pick = torch.cat(
                [
                    inside[torch.randint(len(inside), (config.rays // 2,), generator=gen)],
                    held[torch.randint(len(held), (config.rays - config.rays // 2,), generator=gen)],
                ]
            )
            edited = planes + m * resample(offset, res)
            out = render_rays(
                lambda p, d, e=edited: decoder(sample_features(e, p), d),
                origins[pick][None].to(device),
                dirs[pick][None].to(device),
                config.sampling,
                white,
                jitter=False,
            )
            loss = (out["rgb"][0] - target[pick].to(device)).pow(2).mean() + (
                out["alpha"][0] - alpha[pick].to(device)
            ).pow(2).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if progress is not None:
                progress(step + 1, config.steps)
    return (planes + m * resample(offset.detach(), res)).detach()


def _indices(pixels: torch.Tensor | None, total: int) -> torch.Tensor:
    """The flat indices of the set pixels; all `total` of them when no mask is given or none is set."""
    found = None if pixels is None else torch.nonzero(pixels.reshape(-1)).flatten()
    return found if found is not None and len(found) else torch.arange(total)
