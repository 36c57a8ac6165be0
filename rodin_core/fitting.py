"""Fitting tri-planes to multi-view images: per-avatar plane bank with lazy Adam, one fitting step, losses.

The shared decoder is trained jointly with every avatar's tri-plane; each step draws a few avatars at random
(frequent switching, so the decoder does not forget early avatars) and a batch of rays from each.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from .data import AvatarViews, rgba_to_target
from .decoder import TriplaneDecoder
from .rendering import SamplingConfig, render_rays
from .triplane import resample, sample_features


@dataclass(frozen=True)
class FitConfig:
    resolution: int = 64
    channels: int = 8
    avatars_per_step: int = 8
    rays_per_avatar: int = 1024
    foreground_fraction: float = 0.75  # share of rays drawn inside the alpha mask once warm-up is over
    warmup_steps: int = 200  # uniform ray draws first, so empty space is learnt everywhere
    plane_lr: float = 2e-2
    decoder_lr: float = 2e-3
    init_std: float = 0.1
    sampling: SamplingConfig = field(
        default_factory=lambda: SamplingConfig(uniform=12, importance=0, depth_band=16)
    )
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    # Loss weights. The regularisers follow RodinHD (values retuned to mean-reduced terms).
    w_mask: float = 0.5
    w_depth: float = 0.05
    w_sparse: float = 1e-4  # L1 on tri-plane values
    w_smooth: float = 5e-3  # total variation of the planes
    w_compact: float = 1e-2  # density consistency at jittered points
    compact_jitter: float = 0.01
    rescale_prob: float = 0.5  # random down/up-sampling so the decoder serves other resolutions
    noise_std: float = 0.02  # slight noise on the planes, for the same reason
    holdout_views: tuple[int, ...] = (7, 19)  # never trained on; used for held-out PSNR

    def to_dict(self) -> dict:
        return asdict(self)


class PlaneBank:
    """Every avatar's tri-plane with its own Adam moments, updated only when the avatar is in the batch."""

    def __init__(
        self,
        count: int,
        channels: int,
        resolution: int,
        init_std: float,
        lr: float,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ):
        # Drawn on the CPU so the same seed gives the same planes on every device.
        gen = torch.Generator().manual_seed(seed)
        planes = torch.randn(count, 3, channels, resolution, resolution, generator=gen) * init_std
        self.planes = planes.to(device)
        self.exp_avg = torch.zeros_like(self.planes)
        self.exp_avg_sq = torch.zeros_like(self.planes)
        self.steps = torch.zeros(count, dtype=torch.long, device=device)
        self.lr = lr

    def __len__(self) -> int:
        return self.planes.shape[0]

    def state(self) -> dict[str, torch.Tensor]:
        return {
            "planes": self.planes,
            "exp_avg": self.exp_avg,
            "exp_avg_sq": self.exp_avg_sq,
            "steps": self.steps,
        }

    def load(self, state: dict[str, torch.Tensor]) -> None:
        for key, value in state.items():
            if getattr(self, key).shape != value.shape:
                raise ValueError(
                    f"plane bank {key} has shape {tuple(value.shape)}, expected {tuple(getattr(self, key).shape)}"
                )
            getattr(self, key).copy_(value)

    def gather(self, index: torch.Tensor) -> torch.Tensor:
        return self.planes[index.to(self.planes.device)].clone().requires_grad_(True)

    @torch.no_grad()
    def step(self, index: torch.Tensor, grad: torch.Tensor, betas=(0.9, 0.99), eps: float = 1e-8) -> None:
        index = index.to(self.planes.device)
        self.steps[index] += 1
        t = self.steps[index].float().view(-1, 1, 1, 1, 1)
        m = self.exp_avg[index].mul_(betas[0]).add_(grad, alpha=1 - betas[0])
        v = self.exp_avg_sq[index].mul_(betas[1]).addcmul_(grad, grad, value=1 - betas[1])
        update = (m / (1 - betas[0] ** t)) / ((v / (1 - betas[1] ** t)).sqrt() + eps)
        self.exp_avg[index] = m
        self.exp_avg_sq[index] = v
        self.planes[index] = (self.planes[index] - self.lr * update).clamp_(-1.0, 1.0)


def holdout_views(num_views: int, wanted: tuple[int, ...]) -> tuple[int, ...]:
    """The held-out views that exist in a record of `num_views` (the last view when none of `wanted` does)."""
    kept = tuple(v for v in wanted if 0 < v < num_views)
    if not kept and num_views >= 3:
        kept = (num_views - 1,)
    return kept


def train_views(num_views: int, holdout: tuple[int, ...]) -> list[int]:
    views = [v for v in range(num_views) if v not in set(holdout)]
    if not views:
        raise ValueError(f"all {num_views} views are held out ({holdout}); fitting needs training views")
    return views


def draw_rays(
    avatar: AvatarViews, views: list[int], count: int, fg_fraction: float, gen: random.Random
) -> tuple[torch.Tensor, torch.Tensor]:
    """(view, pixel) indices: a `fg_fraction` share inside the alpha mask, the rest anywhere."""
    v, h, w, _ = avatar.rgba.shape
    view_idx = torch.tensor(views)[torch.randint(len(views), (count,), generator=_torch_gen(gen))]
    pixel = torch.randint(h * w, (count,), generator=_torch_gen(gen))
    n_fg = int(count * fg_fraction)
    if n_fg:
        alpha = avatar.rgba[views, ..., 3].reshape(-1)
        fg = torch.nonzero(alpha > 127).squeeze(1)
        if len(fg):
            pick = fg[torch.randint(len(fg), (n_fg,), generator=_torch_gen(gen))]
            view_idx[:n_fg] = torch.tensor(views)[pick // (h * w)]
            pixel[:n_fg] = pick % (h * w)
    return view_idx, pixel


def _torch_gen(gen: random.Random) -> torch.Generator:
    return torch.Generator().manual_seed(gen.getrandbits(62))


def augment_planes(planes: torch.Tensor, config: FitConfig, gen: random.Random) -> torch.Tensor:
    """Random down-and-up-sampling and slight noise, so the decoder tolerates other resolutions and samples."""
    r = planes.shape[-1]
    if gen.random() < config.rescale_prob:
        planes = resample(resample(planes, gen.choice((r // 2, (3 * r) // 4))), r)
    if config.noise_std > 0:
        planes = planes + config.noise_std * torch.randn_like(planes)
    return planes.clamp(-1.0, 1.0)


def fit_loss(
    planes: torch.Tensor,
    decoder: TriplaneDecoder,
    batch: list[AvatarViews],
    config: FitConfig,
    step: int,
    gen: random.Random,
    views: list[int],
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one fitting step on `planes` (K, 3, C, R, R), one per avatar in `batch`."""
    device = planes.device
    background = torch.tensor(config.background)
    origins, dirs, targets, alphas, surface = [], [], [], [], []
    fg = config.foreground_fraction if step >= config.warmup_steps else 0.0
    for avatar in batch:
        view_idx, pixel = draw_rays(avatar, views, config.rays_per_avatar, fg, gen)
        o, d, depth_to_t = avatar.cameras.rays(view_idx, pixel)
        rgba = avatar.rgba.reshape(avatar.rgba.shape[0], -1, 4)[view_idx, pixel]
        rgb, alpha = rgba_to_target(rgba, background)
        origins.append(o)
        dirs.append(d)
        targets.append(rgb)
        alphas.append(alpha)
        if avatar.depth is not None:
            surface.append(avatar.depth.reshape(avatar.depth.shape[0], -1)[view_idx, pixel] * depth_to_t)
    # Rays are drawn on the CPU, where the images live; only the batch moves to the planes' device.
    origins, dirs, targets, alphas = (torch.stack(x).to(device) for x in (origins, dirs, targets, alphas))
    surface_t = torch.stack(surface).to(device) if len(surface) == len(batch) else None
    background = background.to(device)

    used = augment_planes(planes, config, gen)

    def field_fn(points, ray_dirs):
        return decoder(sample_features(used, points), ray_dirs)

    out = render_rays(field_fn, origins, dirs, config.sampling, background, surface_t=surface_t, jitter=True)
    loss_rgb = F.mse_loss(out["rgb"], targets)
    loss_mask = F.mse_loss(out["alpha"], alphas)
    terms = {"rgb": loss_rgb, "mask": loss_mask}
    if surface_t is not None and config.w_depth > 0:
        hit = surface_t > 0
        terms["depth"] = (out["depth"] - surface_t).abs()[hit].mean() if hit.any() else loss_rgb * 0
    terms["sparse"] = planes.abs().mean()
    terms["smooth"] = (planes[..., 1:, :] - planes[..., :-1, :]).pow(2).mean() + (
        planes[..., :, 1:] - planes[..., :, :-1]
    ).pow(2).mean()
    # Density consistency: opacity over a short step should not change under a small jitter of the point.
    points = out["points"].reshape(len(batch), -1, 3)
    pick = torch.randint(points.shape[1], (min(2048, points.shape[1]),), device=device)
    p = points[:, pick].detach()
    jittered = p + config.compact_jitter * torch.randn_like(p)
    occ = 1 - torch.exp(-0.01 * decoder.density(sample_features(used, torch.cat([p, jittered], dim=1))))
    terms["compact"] = (occ[:, : p.shape[1]] - occ[:, p.shape[1] :]).abs().mean()
    loss = (
        loss_rgb
        + config.w_mask * loss_mask
        + config.w_depth * terms.get("depth", 0.0)
        + config.w_sparse * terms["sparse"]
        + config.w_smooth * terms["smooth"]
        + config.w_compact * terms["compact"]
    )
    stats = {k: float(v.detach()) for k, v in terms.items()}
    stats["psnr"] = -10.0 * torch.log10(loss_rgb.detach().clamp(min=1e-10)).item()
    return loss, stats
