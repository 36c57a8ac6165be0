"""Image guidance on the CPU: seconds per image-conditioned base sample, and how closely it follows the input.

    python bench/image_guidance.py --data runs/tiny/data [--strengths 0,0.5,1,2] [--latent-iterations 0,2]
        [--count 16] [--grid out.png]

Conditions on the frontal views of the bundle's held-out avatars (never trained on) at each guidance strength,
same seeds for each; every strength above 0 is run once per --latent-iterations value (0: the x0 correction
alone; the default steers the latent code too, rodin_core.view_guidance). Per row: seconds per sample
(`sample_planes`; the ratio is against strength 0, the latent code alone, measured in the same run), PSNR of
the sample's frontal render against the input view, PSNR of its renders from the data set's cameras within 60
degrees of the front ("near") and from views 3, 6, ..., 21 ("other"; a third of them behind the head), none of
which the guidance sees, against those real views: a front that copied the input while the rest of the head
went wrong would show there. --grid saves one row per avatar: the input view, then per row the sample from the
front and from 40 degrees.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rodin_core.data import load_record, rgba_to_target  # noqa: E402
from rodin_core.metrics import psnr  # noqa: E402
from rodin_core.pipeline import AvatarPipeline, GenerationSettings  # noqa: E402
from rodin_core.preview import grid, render_image  # noqa: E402
from rodin_core.view_guidance import ViewGuidanceConfig  # noqa: E402

OTHER_VIEWS = (3, 6, 9, 12, 15, 18, 21)
NEAR_DEGREES = 60.0


def near_views(cameras, frontal: int) -> list[int]:
    """Views whose camera lies within NEAR_DEGREES of the frontal camera, seen from the avatar's centre."""
    centres = torch.nn.functional.normalize(cameras.c2w[:, :3, 3], dim=-1)
    angles = torch.rad2deg(torch.arccos((centres @ centres[frontal]).clamp(-1, 1)))
    return [v for v in range(len(centres)) if v != frontal and angles[v] < NEAR_DEGREES]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights")
    p.add_argument("--data", required=True, help="the data set the bundle's held-out avatars come from")
    p.add_argument("--strengths", default="0,0.5,1,2")
    p.add_argument(
        "--latent-iterations",
        default=str(ViewGuidanceConfig().latent_iterations),
        help="comma-separated; each strength above 0 is run with each (0: the latent code is not steered)",
    )
    p.add_argument("--count", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--grid", help="PNG of the input views and the samples (front and 40 degrees)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = AvatarPipeline.from_bundle(args.weights)
    strengths = [float(s) for s in args.strengths.split(",")]
    latent_iterations = [int(n) for n in args.latent_iterations.split(",")]
    configs = [(s, n) for s in strengths for n in (latent_iterations if s > 0 else [0])]
    holdout = pipe.config["holdout_ids"][: args.count]
    rows = {c: {"seconds": [], "front": [], "near": [], "other": []} for c in configs}
    white = torch.ones(3)
    tiles = []
    for i, name in enumerate(holdout):
        record = load_record(Path(args.data) / name, use_depth=False)
        front = rgba_to_target(record.rgba[record.frontal_index], white)[0]
        if front.shape[0] != pipe.encoder.config.image_size:
            raise SystemExit(
                f"{name}: views are {front.shape[0]} px, the encoder reads {pipe.encoder.config.image_size}"
            )
        others = [v for v in OTHER_VIEWS if v < len(record.rgba) and v != record.frontal_index]
        near = near_views(record.cameras, record.frontal_index)
        pixels = front.permute(2, 0, 1)
        z = pipe.encode_image((front * 255).round().byte().numpy())  # as a user's 8-bit portrait
        tiles.append(front)
        for config in configs:
            strength, iterations = config
            pipe.view_guidance = ViewGuidanceConfig(latent_iterations=iterations)
            t = time.perf_counter()
            planes = pipe.sample_planes(
                20_000 + i, z, GenerationSettings(image_guidance=strength), image=pixels
            )
            rows[config]["seconds"].append(time.perf_counter() - t)
            front_render, side_render = pipe.render(planes, (0.0, 40.0), size=front.shape[0], refine=False)
            rows[config]["front"].append(psnr(front_render, front))
            tiles += [front_render, side_render]
            views = {
                v: psnr(
                    render_image(planes[0], pipe.decoder, record.cameras, v)["rgb"],
                    rgba_to_target(record.rgba[v], white)[0],
                )
                for v in sorted(set(others) | set(near))
            }
            rows[config]["near"].append(np.mean([views[v] for v in near]))
            rows[config]["other"].append(np.mean([views[v] for v in others]))
        print(f"{i + 1}/{len(holdout)} {name}", flush=True)
    if args.grid:
        Image.fromarray(grid(tiles, columns=1 + 2 * len(configs))).save(args.grid)
    base = np.mean(rows[configs[0]]["seconds"])
    print(f"\n{len(holdout)} held-out avatars, {args.threads} threads")
    print(
        f"{'strength':>8} {'latent it.':>10} {'s/sample':>9} {'ratio':>6} {'front PSNR':>11} "
        f"{'near PSNR':>10} {'other PSNR':>11}"
    )
    for config in configs:
        r = rows[config]
        print(
            f"{config[0]:8.2f} {config[1]:10d} {np.mean(r['seconds']):9.2f} {np.mean(r['seconds']) / base:6.2f} "
            f"{np.mean(r['front']):8.2f} dB {np.mean(r['near']):7.2f} dB {np.mean(r['other']):8.2f} dB"
        )
    for strength, iterations in configs:  # per avatar, so that a gain is not one avatar's
        if iterations and (strength, 0) in rows:
            wins = sum(a > b for a, b in zip(rows[strength, iterations]["near"], rows[strength, 0]["near"]))
            print(
                f"strength {strength}: near PSNR with {iterations} latent iterations above none "
                f"on {wins} of {len(holdout)} avatars"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
