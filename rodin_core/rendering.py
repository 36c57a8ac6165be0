"""Volume rendering of rays through the scene box: sample placement and alpha compositing.

The renderer does not know what a tri-plane is: `render_rays` takes a `field_fn(points, dirs) -> (sigma, rgb)`
for a batch of B scenes, so it serves fitting (many avatars per step), previews and evaluation alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

FieldFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
BOX = 1.0  # the scene box is [-BOX, BOX]^3 (docs/CONVENTIONS.md)


@dataclass(frozen=True)
class SamplingConfig:
    uniform: int = 48  # stratified samples over the ray's segment inside the box
    importance: int = 48  # extra samples drawn from the uniform pass's weights (when no depth is given)
    depth_band: int = 16  # samples around a known surface depth (fitting with the generator's depth pass)
    band_width: float = 0.08  # half-width of that band, in scene units


def ray_box(origins: torch.Tensor, dirs: torch.Tensor, box: float = BOX) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances of rays through [-box, box]^3; rays that miss get near == far."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0 = (-box - origins) * inv
    t1 = (box - origins) * inv
    near = torch.minimum(t0, t1).amax(dim=-1).clamp(min=0.0)
    far = torch.maximum(t0, t1).amin(dim=-1)
    far = torch.maximum(far, near)
    return near, far


def stratified(near: torch.Tensor, far: torch.Tensor, count: int, jitter: bool) -> torch.Tensor:
    """`count` distances per ray, one per equal bin of [near, far] (random inside the bin when jittering)."""
    steps = torch.arange(count, device=near.device, dtype=near.dtype)
    offset = (
        torch.rand(*near.shape, count, device=near.device)
        if jitter
        else torch.full((count,), 0.5, device=near.device)
    )
    u = (steps + offset) / count
    return near[..., None] + (far - near)[..., None] * u


def importance(bins: torch.Tensor, weights: torch.Tensor, count: int, jitter: bool) -> torch.Tensor:
    """Inverse-CDF samples from piecewise-constant weights between the midpoints `bins` (..., S+1)."""
    pdf = weights + 1e-5
    pdf = pdf / pdf.sum(dim=-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[..., :1]), pdf.cumsum(dim=-1)], dim=-1)
    if jitter:
        u = torch.rand(*cdf.shape[:-1], count, device=cdf.device)
    else:
        u = torch.linspace(0.0, 1.0, count + 2, device=cdf.device)[1:-1].expand(*cdf.shape[:-1], count)
    u = u.contiguous()
    idx = torch.searchsorted(cdf, u, right=True).clamp(1, cdf.shape[-1] - 1)
    c0, c1 = cdf.gather(-1, idx - 1), cdf.gather(-1, idx)
    b0, b1 = bins.gather(-1, idx - 1), bins.gather(-1, idx)
    frac = ((u - c0) / (c1 - c0).clamp(min=1e-8)).clamp(0, 1)
    return b0 + frac * (b1 - b0)


def composite(
    sigma: torch.Tensor, rgb: torch.Tensor, t: torch.Tensor, far: torch.Tensor, background: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Alpha compositing of sorted samples. sigma (..., S), rgb (..., S, C), t (..., S), far (...), background
    (C,): C is 3 for a colour, more where a field returns other channels alongside it."""
    delta = torch.cat([t[..., 1:] - t[..., :-1], (far[..., None] - t[..., -1:]).clamp(min=1e-4)], dim=-1)
    alpha = 1.0 - torch.exp(-sigma * delta)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1.0 - alpha + 1e-10], dim=-1), dim=-1)
    weights = alpha * trans[..., :-1]
    acc = weights.sum(dim=-1)
    color = (weights[..., None] * rgb).sum(dim=-2) + (1.0 - acc[..., None]) * background
    depth = (weights * t).sum(dim=-1) / acc.clamp(min=1e-6)
    return {"rgb": color, "alpha": acc, "depth": depth, "weights": weights}


def render_rays(
    field_fn: FieldFn,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    config: SamplingConfig,
    background: torch.Tensor,
    surface_t: torch.Tensor | None = None,
    jitter: bool = True,
) -> dict[str, torch.Tensor]:
    """Renders rays (B, N, 3) of B scenes. With `surface_t` (B, N; 0 = no surface) samples concentrate in a
    band around the known surface (plus the stratified ones, which keep empty space empty); without it a
    no-grad stratified pass places importance samples (the classic hierarchical scheme)."""
    near, far = ray_box(origins, dirs)
    t = stratified(near, far, config.uniform, jitter)
    if surface_t is not None:
        hit = surface_t > 0
        centre = torch.where(hit, surface_t, 0.5 * (near + far))
        half = torch.where(hit, torch.full_like(near, config.band_width), 0.5 * (far - near))
        lo = torch.maximum(centre - half, near)
        hi = torch.minimum(centre + half, far)
        t = torch.cat([t, stratified(lo, torch.maximum(hi, lo), config.depth_band, jitter)], dim=-1)
    elif config.importance > 0:
        with torch.no_grad():
            coarse = _evaluate(field_fn, origins, dirs, t, far, background)
            mids = torch.cat([near[..., None], 0.5 * (t[..., 1:] + t[..., :-1]), far[..., None]], dim=-1)
            fine = importance(mids, coarse["weights"], config.importance, jitter)
        t = torch.cat([t, fine], dim=-1)
    t, _ = torch.sort(t, dim=-1)
    out = _evaluate(field_fn, origins, dirs, t, far, background)
    out["t"] = t
    return out


def _evaluate(field_fn, origins, dirs, t, far, background) -> dict[str, torch.Tensor]:
    b, n, s = t.shape
    points = origins[..., None, :] + dirs[..., None, :] * t[..., None]
    sigma, rgb = field_fn(
        points.reshape(b, n * s, 3), dirs[..., None, :].expand(b, n, s, 3).reshape(b, n * s, 3)
    )
    out = composite(sigma.reshape(b, n, s), rgb.reshape(b, n, s, -1), t, far, background)
    out["points"] = points
    out["sigma"] = sigma.reshape(b, n, s)
    return out
