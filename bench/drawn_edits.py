"""Drawn edits' cost: the glasses frame and the hair repaint on the shipped model, and what reading an edit's
extra channels in the colour pass saves.

    python bench/drawn_edits.py [--weights BUNDLE.json] [--threads 2] [--seed 7] [--repeat 2]

Baseline, measured in the same run: the glasses edit's views rendered as before session 28, each view twice
(its colour, then the distance to its surface in a second ray march); against it the one pass that reads both
(`render_field(extra=1)`, rodin_core.glasses._surface). Then each whole edit, from sampled tri-planes to edited
ones: "add glasses" (rodin_core.glasses.add_glasses) and "make the hair blond" (rodin_core.recolour.recolour),
the latter with the bundle's part segmenter (the pipeline's way) against the colour rules it replaced as the
baseline. Times are the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="bundle (default: the embedded one)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args(argv)

    import torch

    from rodin_core.glasses import GlassesConfig, _surface, add_glasses
    from rodin_core.lift import cameras
    from rodin_core.pipeline import AvatarPipeline
    from rodin_core.preview import render_field
    from rodin_core.recolour import recolour
    from rodin_core.triplane import sample_features

    torch.set_num_threads(args.threads)
    pipe = AvatarPipeline.from_bundle(args.weights)
    planes = pipe.sample_planes(args.seed, pipe.latent(args.seed)).float()
    decoder, config = pipe.decoder, GlassesConfig()
    cams = cameras(config.views, config.size)

    def two_passes():
        for v in range(len(config.views)):
            render_field(lambda q, d: decoder(sample_features(planes, q), d), cams, v, config.paint_sampling)
            origin = cams.c2w[v, :3, 3]

            def distance(points, dirs, origin=origin):
                sigma = decoder(sample_features(planes, points), dirs)[0]
                return sigma, (points - origin).norm(dim=-1, keepdim=True).expand(*points.shape[:-1], 3)

            render_field(distance, cams, v, config.paint_sampling, background=(0.0, 0.0, 0.0))

    def one_pass():
        for v in range(len(config.views)):
            _surface(decoder, planes, cams, v, config.paint_sampling)

    with torch.no_grad():
        baseline = best(two_passes, args.repeat)
        single = best(one_pass, args.repeat)
    glasses = best(lambda: add_glasses(decoder, planes, "round"), args.repeat)
    rules = best(lambda: recolour(decoder, planes, "blond"), args.repeat)
    segmenter = pipe.part_segmenter
    blond = (
        best(lambda: recolour(decoder, planes, "blond", segmenter=segmenter), args.repeat)
        if segmenter
        else None
    )
    views = f"{len(config.views)} views at {config.size} px"
    print(f"drawn edits, seed {args.seed}, {args.threads} threads, best of {args.repeat}")
    print(f"  glasses views, colour then distance (baseline)  {baseline:7.2f} s  ({views})")
    print(f"  glasses views, one pass                         {single:7.2f} s  x{single / baseline:.2f}")
    print(
        f"  add glasses, whole edit                         {glasses:7.2f} s  (views {single / glasses:.0%})"
    )
    print(f"  make the hair blond, colour rules (baseline)    {rules:7.2f} s")
    if blond is not None:
        print(f"  make the hair blond, part segmenter             {blond:7.2f} s  x{blond / rules:.2f}")
    else:
        print("  make the hair blond, part segmenter             -  (the bundle has none)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
