"""Base-model sampling on the CPU: seconds per sample and a quality figure for DDPM-1000, DDIM-50, DPM-Solver++-20.

    python bench/sampling.py [--weights BUNDLE.json] [--count 8] [--data data/tiny]

Same latent codes and seeds for every sampler. Quality: each sample's frontal render through the shared
decoder is compared with every training avatar's frontal view; the figure is the mean RMSE to the nearest one
(lower = closer to the data). "vs DDPM-1000" is the mean RMSE between a sampler's renders and the long
sampler's renders of the same seeds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rodin_core.cameras import Cameras  # noqa: E402
from rodin_core.data import load_record, rgba_to_target  # noqa: E402
from rodin_core.pipeline import AvatarPipeline  # noqa: E402
from rodin_core.preview import render_image  # noqa: E402
from rodin_core.sampling import sample_base, sample_latents  # noqa: E402
from rodin_core.triplane import denormalize, roll_in  # noqa: E402

RUNS = (("ddpm", 1000), ("ddim", 50), ("dpmpp_2m", 20))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights")
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--data", default="data/tiny")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = AvatarPipeline.from_bundle(args.weights)
    train_ids = _train_ids(pipe)
    refs = []
    for name in train_ids:
        rec = load_record(Path(args.data) / name, use_depth=False)
        refs.append(rgba_to_target(rec.rgba[rec.frontal_index], torch.ones(3))[0])
    refs = torch.stack(refs)
    cams = Cameras.orbit([0.0], 0.0, refs.shape[1])
    z = sample_latents(pipe.prior, pipe.schedule, args.count, torch.Generator().manual_seed(0))
    renders = {}
    for name, steps in RUNS:
        start = time.perf_counter()
        rolled = sample_base(
            pipe.unet,
            pipe.schedule,
            z,
            pipe.resolution,
            torch.Generator().manual_seed(1),
            guidance=2.0,
            sampler=name,
            steps=steps,
        )
        seconds = (time.perf_counter() - start) / args.count
        planes = denormalize(roll_in(rolled), pipe.mean, pipe.std)
        imgs = torch.stack([render_image(pl, pipe.decoder, cams, 0)["rgb"] for pl in planes])
        renders[name] = imgs
        nearest = torch.cdist(imgs.reshape(len(imgs), -1), refs.reshape(len(refs), -1)).min(dim=1).values
        rmse = (nearest / imgs[0].numel() ** 0.5).mean().item()
        line = f"{name:9s} {steps:4d} steps: {seconds:6.2f} s/sample, nearest-training RMSE {rmse:.4f}"
        if "ddpm" in renders and name != "ddpm":
            diff = (imgs - renders["ddpm"]).pow(2).mean(dim=(1, 2, 3)).sqrt().mean().item()
            line += f", vs DDPM-1000 RMSE {diff:.4f}"
        print(line, flush=True)
    return 0


def _train_ids(pipe):
    ids = pipe.config.get("train_ids")
    if not ids:
        raise SystemExit("this bundle does not list its training avatars (train_ids); export it again")
    return ids


if __name__ == "__main__":
    sys.exit(main())
