"""Image guidance on the CPU: seconds per image-conditioned base sample, and how closely it follows the input.

    python bench/image_guidance.py --data runs/tiny/data [--strengths 0,0.5,1,2] [--count 16] [--grid out.png]

Conditions on the frontal views of the bundle's held-out avatars (never trained on) at each guidance strength,
same seeds for each. Per strength: seconds per sample (`sample_planes`; the ratio is against strength 0, the
latent code alone, measured in the same run), PSNR of the sample's frontal render against the input view, and
PSNR of its renders from the data set's other cameras (views 3, 6, ..., 21, which the guidance never sees)
against those real views: a front that copied the input while the rest of the head went wrong would show here.
--grid saves one row per avatar: the input view, then per strength the sample from the front and from 40 degrees.
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

OTHER_VIEWS = (3, 6, 9, 12, 15, 18, 21)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights")
    p.add_argument("--data", required=True, help="the data set the bundle's held-out avatars come from")
    p.add_argument("--strengths", default="0,0.5,1,2")
    p.add_argument("--count", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--grid", help="PNG of the input views and the samples (front and 40 degrees)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = AvatarPipeline.from_bundle(args.weights)
    strengths = [float(s) for s in args.strengths.split(",")]
    holdout = pipe.config["holdout_ids"][: args.count]
    rows = {s: {"seconds": [], "front": [], "other": []} for s in strengths}
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
        pixels = front.permute(2, 0, 1)
        z = pipe.encode_image((front * 255).round().byte().numpy())  # as a user's 8-bit portrait
        tiles.append(front)
        for strength in strengths:
            t = time.perf_counter()
            planes = pipe.sample_planes(
                20_000 + i, z, GenerationSettings(image_guidance=strength), image=pixels
            )
            rows[strength]["seconds"].append(time.perf_counter() - t)
            front_render, side_render = pipe.render(planes, (0.0, 40.0), size=front.shape[0], refine=False)
            rows[strength]["front"].append(psnr(front_render, front))
            tiles += [front_render, side_render]
            rows[strength]["other"].append(
                np.mean(
                    [
                        psnr(
                            render_image(planes[0], pipe.decoder, record.cameras, v)["rgb"],
                            rgba_to_target(record.rgba[v], white)[0],
                        )
                        for v in others
                    ]
                )
            )
        print(f"{i + 1}/{len(holdout)} {name}", flush=True)
    if args.grid:
        Image.fromarray(grid(tiles, columns=1 + 2 * len(strengths))).save(args.grid)
    base = np.mean(rows[strengths[0]]["seconds"])
    print(f"\n{len(holdout)} held-out avatars, {args.threads} threads")
    print(f"{'strength':>8} {'s/sample':>9} {'ratio':>6} {'front PSNR':>11} {'other views PSNR':>17}")
    for s in strengths:
        r = rows[s]
        print(
            f"{s:8.2f} {np.mean(r['seconds']):9.2f} {np.mean(r['seconds']) / base:6.2f} "
            f"{np.mean(r['front']):9.2f} dB {np.mean(r['other']):14.2f} dB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
