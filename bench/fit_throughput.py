"""Fitting throughput: ray samples per second of our fitting step against a plain PyTorch reference step.

    python bench/fit_throughput.py --data data/tiny [--steps 20] [--to-psnr 26 --avatars 8]

Both are measured in this run on the same data and threads. The reference is the textbook step DESIGN.md
describes: one avatar at a time, 4096 random rays over its whole images, 32 stratified samples per ray,
C = 16, R = 64, a dense Adam over the tri-plane and decoder. Ours: many avatars per step, rays mostly in the
alpha mask, samples in a band around the rendered depth, a lazily updated plane bank.
With --to-psnr it also fits a few avatars from scratch and reports the seconds per avatar until the mean
held-out PSNR reaches the target.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rodin_core.data import list_records, load_record, rgba_to_target  # noqa: E402
from rodin_core.decoder import DecoderConfig, TriplaneDecoder  # noqa: E402
from rodin_core.fitting import FitConfig, PlaneBank, fit_loss, train_views  # noqa: E402
from rodin_core.metrics import psnr  # noqa: E402
from rodin_core.preview import render_image  # noqa: E402
from rodin_core.rendering import SamplingConfig, render_rays  # noqa: E402
from rodin_core.triplane import sample_features  # noqa: E402


def reference_step(planes, decoder, optim, record, gen, rays=4096, samples=32):
    """The plain step: one avatar, uniform random rays, stratified samples only."""
    v, h, w, _ = record.rgba.shape
    view = torch.randint(v, (rays,), generator=gen)
    pixel = torch.randint(h * w, (rays,), generator=gen)
    o, d, _ = record.cameras.rays(view, pixel)
    target, _ = rgba_to_target(record.rgba.reshape(v, -1, 4)[view, pixel], torch.ones(3))

    def field_fn(points, dirs):
        return decoder(sample_features(planes, points), dirs)

    out = render_rays(
        field_fn, o[None], d[None], SamplingConfig(uniform=samples, importance=0), torch.ones(3)
    )
    loss = F.mse_loss(out["rgb"][0], target)
    optim.zero_grad()
    loss.backward()
    optim.step()
    return rays * samples


def time_reference(records, steps):
    decoder = TriplaneDecoder(DecoderConfig(channels=16))
    planes = torch.nn.Parameter(torch.randn(1, 3, 16, 64, 64) * 0.1)
    optim = torch.optim.Adam([planes, *decoder.parameters()], lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    reference_step(planes, decoder, optim, records[0], gen)  # warm-up
    start, total = time.perf_counter(), 0
    for i in range(steps):
        total += reference_step(planes, decoder, optim, records[i % len(records)], gen)
    return total / (time.perf_counter() - start)


def ours_step(bank, decoder, optim, records, cfg, step, gen, views):
    idx = torch.tensor(gen.sample(range(len(records)), min(cfg.avatars_per_step, len(records))))
    planes = bank.gather(idx)
    loss, _ = fit_loss(planes, decoder, [records[i] for i in idx.tolist()], cfg, step, gen, views)
    optim.zero_grad()
    loss.backward()
    optim.step()
    bank.step(idx, planes.grad)
    samples = cfg.sampling.uniform + (cfg.sampling.depth_band if records[0].depth is not None else 0)
    return len(idx) * cfg.rays_per_avatar * samples


def time_ours(records, steps, cfg):
    decoder = TriplaneDecoder(DecoderConfig(channels=cfg.channels))
    bank = PlaneBank(len(records), cfg.channels, cfg.resolution, cfg.init_std, cfg.plane_lr)
    optim = torch.optim.Adam(decoder.parameters(), lr=cfg.decoder_lr)
    gen = random.Random(0)
    views = train_views(len(records[0].cameras), cfg.holdout_views)
    ours_step(bank, decoder, optim, records, cfg, cfg.warmup_steps, gen, views)
    start, total = time.perf_counter(), 0
    for i in range(steps):
        total += ours_step(bank, decoder, optim, records, cfg, cfg.warmup_steps + i, gen, views)
    return total / (time.perf_counter() - start)


def seconds_to_psnr(records, cfg, target, eval_every, max_seconds):
    decoder = TriplaneDecoder(DecoderConfig(channels=cfg.channels))
    bank = PlaneBank(len(records), cfg.channels, cfg.resolution, cfg.init_std, cfg.plane_lr)
    optim = torch.optim.Adam(decoder.parameters(), lr=cfg.decoder_lr)
    gen = random.Random(0)
    views = train_views(len(records[0].cameras), cfg.holdout_views)
    spent, step, history = 0.0, 0, []
    while spent < max_seconds:
        start = time.perf_counter()
        for _ in range(eval_every):
            ours_step(bank, decoder, optim, records, cfg, step, gen, views)
            step += 1
        spent += time.perf_counter() - start
        scores = [
            psnr(
                render_image(bank.planes[i], decoder, r.cameras, v, SamplingConfig(48, 48))["rgb"],
                rgba_to_target(r.rgba[v], torch.ones(3))[0],
            )
            for i, r in enumerate(records)
            for v in cfg.holdout_views
        ]
        mean = sum(scores) / len(scores)
        history.append((step, round(spent, 1), round(mean, 2)))
        print(f"  step {step}: {spent:.0f} s of fitting, held-out PSNR {mean:.2f} dB", flush=True)
        if mean >= target:
            return spent / len(records), history
    return None, history


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/tiny")
    p.add_argument("--avatars", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--to-psnr", type=float)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--max-seconds", type=float, default=1800)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    records = [load_record(r) for r in list_records(args.data)[: args.avatars]]
    cfg = FitConfig()
    ref = time_reference(records, args.steps)
    ours = time_ours(records, args.steps, cfg)
    print(f"reference step (1 avatar, 4096 rays x 32 samples, C=16): {ref / 1e6:.2f} M samples/s")
    print(
        f"our step ({cfg.avatars_per_step} avatars x {cfg.rays_per_avatar} rays, "
        f"{cfg.sampling.uniform}+{cfg.sampling.depth_band} samples, C={cfg.channels}): {ours / 1e6:.2f} M samples/s"
    )
    print(f"ratio ours / reference: {ours / ref:.2f}x  ({args.threads} threads, {args.steps} steps each)")
    if args.to_psnr:
        per_avatar, history = seconds_to_psnr(records, cfg, args.to_psnr, args.eval_every, args.max_seconds)
        if per_avatar is None:
            print(
                f"did not reach {args.to_psnr} dB within {args.max_seconds:.0f} s ({len(records)} avatars): {history}"
            )
        else:
            print(
                f"seconds per avatar to reach {args.to_psnr} dB held-out PSNR ({len(records)} avatars fitted "
                f"together): {per_avatar:.1f} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
