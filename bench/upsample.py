"""Upsampler cost on the CPU: seconds per upsampled tri-plane for each sampler and step count.

    python bench/upsample.py [--weights BUNDLE.json]

Baseline in the same run: bilinear upsampling of the same low-resolution tri-plane (what the pipeline does
without an upsampler).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rodin_core.pipeline import AvatarPipeline  # noqa: E402
from rodin_core.sampling import sample_upsampled  # noqa: E402
from rodin_core.triplane import normalize, roll_out  # noqa: E402
from rodin_core.upsampler import make_condition  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = AvatarPipeline.from_bundle(args.weights)
    if pipe.upsampler is None:
        raise SystemExit("this bundle has no upsampler")
    low = torch.rand(1, 3, pipe.unet.config.channels, pipe.resolution, pipe.resolution) * 0.2
    start = time.perf_counter()
    for _ in range(args.repeat):
        cond = roll_out(normalize(make_condition(low, pipe.up_resolution), pipe.up_mean, pipe.up_std))
    bilinear = (time.perf_counter() - start) / args.repeat
    print(f"bilinear {pipe.resolution}->{pipe.up_resolution}: {bilinear * 1000:.1f} ms")
    residual = bool(pipe.config["upsampler"].get("residual", False))
    for sampler, steps in (("dpmpp_2m", 5), ("dpmpp_2m", 10), ("dpmpp_2m", 20), ("ddim", 20), ("ddpm", 100)):
        start = time.perf_counter()
        for i in range(args.repeat):
            sample_upsampled(
                pipe.upsampler,
                pipe.up_schedule,
                cond,
                torch.Generator().manual_seed(i),
                sampler,
                steps,
                residual=residual,
            )
        sec = (time.perf_counter() - start) / args.repeat
        print(
            f"{sampler:9s} {steps:3d} steps: {sec:6.2f} s per tri-plane ({sec / bilinear:,.0f}x bilinear)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
