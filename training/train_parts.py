"""The part segmenter (rodin_core.parts): which part of the avatar each pixel of a render shows.

    python -m training.train_parts --data runs/tiny/data --fit runs/tiny/refit24 --out runs/tiny/parts

Examples: every fitted training avatar rendered through the decoder (colour, opacity, surface point) from the
hair repaint's views (rodin_core.recolour) and a few seeded others, each labelled by casting the same cameras'
rays against the avatar rebuilt by the generator from its attributes.json (blender_scenes.part_labels). The
last `--holdout` avatars are kept out of training; the report gives their per-part IoU and how many of their
hats it finds (what the hair repaint leaves unpainted). Writes
OUT/examples.safetensors (built once, reused on --resume), checkpoints OUT/latest.*, and the finished model as
OUT/parts/parts.{json,safetensors}, which `python -m training.export --parts OUT` puts into a bundle.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

try:
    import bpy  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    sys.stderr.write("error: the part labels come from Blender's `bpy` module: pip install bpy==5.0.1\n")
    raise SystemExit(2) from None

import torch
import torch.nn.functional as F
from tqdm import tqdm

from blender_scenes.avatar_factory import build_avatar, clear_avatar
from blender_scenes.part_labels import part_label_maps
from rodin_core.io_utils import load_tensors, read_json, save_tensors_atomic, write_json_atomic
from rodin_core.lift import cameras
from rodin_core.parts import PART_CLASSES, PartsConfig, PartSegmenter
from rodin_core.recolour import RecolourConfig, segmenter_inputs
from rodin_core.rig import intrinsics
from training.common import Checkpointer, count_hats, git_commit, hats_line
from training.fit_report import load_fitted

EXTRA_ELEVATIONS = (-10.0, 55.0)  # the seeded extra views' elevation range, degrees
HAT_PIXELS = 12  # pixels of headwear in the repaint's views from which an avatar counts as wearing a hat


def example_views(index: int, extra: int) -> tuple[tuple[float, float], ...]:
    """The repaint's views, then `extra` seeded (azimuth, elevation) pairs for avatar `index`."""
    rng = random.Random(f"rodin-parts-{index}")
    others = tuple((rng.uniform(0.0, 360.0), rng.uniform(*EXTRA_ELEVATIONS)) for _ in range(extra))
    return RecolourConfig().views + others


def build_examples(data: Path, fit: Path, extra: int, size: int) -> dict[str, torch.Tensor]:
    """{"inputs": (N, V, 7, S, S), "labels": (N, V, S, S) uint8} over the fit's avatars."""
    meta, planes, decoder = load_fitted(fit)
    sampling = RecolourConfig().paint_sampling
    intr = intrinsics(size)
    inputs, labels = [], []
    for i, name in enumerate(tqdm(meta["ids"], desc="examples", mininterval=10)):
        record = data / name / "attributes.json"
        if not record.is_file():
            raise SystemExit(
                f"error: {fit} fitted {name}, but {record} is missing; pass the --data it fitted"
            )
        meta = read_json(record, "avatar attributes")
        views = example_views(i, extra)
        cams = cameras(views, size)
        with torch.no_grad():
            inputs.append(segmenter_inputs(decoder, planes[i : i + 1].float(), cams, sampling)[1])
        clear_avatar()
        objects = build_avatar(meta["attributes"], meta.get("looks", 1))
        labels.append(torch.from_numpy(part_label_maps(objects, list(cams.c2w.double().numpy()), intr)))
    clear_avatar()
    return {"inputs": torch.stack(inputs).half(), "labels": torch.stack(labels)}


def augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror half of the batch left-right (the generator's avatars are drawn symmetric; x flips sign) and jitter
    each image's colour a little (the model's samples are less clean than fitted avatars)."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x, y = x.clone(), y.clone()
    x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
    x[flip, 4] = -x[flip, 4]
    gain = 1 + 0.15 * (2 * torch.rand(x.shape[0], 3, 1, 1, generator=gen) - 1)
    x[:, :3] = (x[:, :3] + x[:, 3:4] * (gain - 1) * x[:, :3]).clamp(0, 1)  # the white background stays white
    return x, y


def iou(pred: torch.Tensor, labels: torch.Tensor) -> dict[str, float | None]:
    """Per part: intersection over union of the predicted and true pixels (None where neither has any)."""
    out = {}
    for k, name in enumerate(PART_CLASSES):
        union = int(((pred == k) | (labels == k)).sum())
        out[name] = round(int(((pred == k) & (labels == k)).sum()) / union, 4) if union else None
    return out


def hats_found(pred: torch.Tensor, labels: torch.Tensor) -> dict[str, int]:
    """Over avatars with hair, (N, V, S, S) predicted and true parts whose first views are the repaint's: the
    hats (HAT_PIXELS or more true headwear pixels in those views), how many of them the prediction finds as
    surely, the bare heads, and how many of those it takes for a hat (`count_hats`). What the repaint leaves
    unpainted."""
    views = len(RecolourConfig().views)
    headwear, hair = PART_CLASSES.index("headwear"), PART_CLASSES.index("hair")
    heads = [
        (int((y == headwear).sum()) >= HAT_PIXELS, int((p == headwear).sum()) >= HAT_PIXELS)
        for p, y in zip(pred[:, :views], labels[:, :views])
        if int((y == hair).sum()) >= HAT_PIXELS  # bald heads have nothing to repaint either way
    ]
    return count_hats(heads)


def predict(model: PartSegmenter, inputs: torch.Tensor, batch: int = 256) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat(
            [model(inputs[i : i + batch].float()).argmax(1) for i in range(0, len(inputs), batch)]
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.train_parts", description=__doc__.splitlines()[0])
    p.add_argument(
        "--data", required=True, help="the data set the fit was made from (attributes.json per avatar)"
    )
    p.add_argument("--fit", required=True, help="a fit run (training.fit_triplanes) or its fitted/ folder")
    p.add_argument("--out", required=True)
    p.add_argument("--extra-views", type=int, default=3, help="seeded views per avatar besides the repaint's")
    p.add_argument(
        "--holdout", type=int, default=32, help="last avatars kept out of training, for the report"
    )
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--threads", type=int)
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch < 1 or args.holdout < 1 or args.extra_views < 0:
        raise SystemExit("error: --steps, --batch and --holdout must be >= 1, --extra-views >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = Checkpointer(out)
    if not args.resume:
        ckpt.refuse_overwrite()
    size = RecolourConfig().size
    examples_path = out / "examples.safetensors"
    if examples_path.is_file():
        examples = load_tensors(examples_path, "part examples")
    else:
        started = time.perf_counter()
        examples = build_examples(Path(args.data), Path(args.fit), args.extra_views, size)
        save_tensors_atomic(examples_path, examples)
        print(
            f"examples: {tuple(examples['inputs'].shape)} in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    n = examples["inputs"].shape[0]
    if args.holdout >= n:
        raise SystemExit(f"error: --holdout {args.holdout} leaves no avatar of {n} to train on")
    # one example per view, the held-out avatars' views last
    inputs, labels = examples["inputs"].flatten(0, 1), examples["labels"].flatten(0, 1)
    cut = (n - args.holdout) * examples["inputs"].shape[1]
    train_x, train_y, test_x, test_y = inputs[:cut], labels[:cut], inputs[cut:], labels[cut:]

    config = PartsConfig(width=args.width)
    model = PartSegmenter(config)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    step = 0
    if args.resume and ckpt.exists():
        step = ckpt.load({"parts": model}, {"opt": opt})["step"]
    gen = torch.Generator().manual_seed(step)
    bar = tqdm(range(step, args.steps), desc="parts", initial=step, total=args.steps, mininterval=10)
    for step in bar:
        for group in opt.param_groups:  # cosine decay to a tenth
            # a Python float: a NumPy one in the optimiser's state cannot be read back by a safe torch.load
            group["lr"] = args.lr * (0.55 + 0.45 * math.cos(math.pi * step / args.steps))
        pick = torch.randint(len(train_x), (args.batch,), generator=gen)
        x, y = augment(train_x[pick].float(), train_y[pick].long(), gen)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % 500 == 0 or step + 1 == args.steps:
            ckpt.save(step + 1, {"parts": model}, {"config": config.to_dict()}, {"opt": opt})
    model.eval()
    pred = predict(model, test_x)
    report = {
        "config": config.to_dict(),
        "classes": list(PART_CLASSES),
        "steps": args.steps,
        "avatars": n - args.holdout,
        "views_per_avatar": examples["inputs"].shape[1],
        "size": size,
        "holdout_avatars": args.holdout,
        "holdout_pixel_accuracy": round(float((pred == test_y.long()).float().mean()), 4),
        "holdout_iou": iou(pred, test_y.long()),
        "holdout_headwear": hats_found(
            pred.view(args.holdout, -1, size, size), test_y.view(args.holdout, -1, size, size)
        ),
        "fit": str(args.fit),
        "commit": git_commit(),
    }
    final = out / "parts"
    final.mkdir(exist_ok=True)
    save_tensors_atomic(final / "parts.safetensors", {f"parts.{k}": v for k, v in model.state_dict().items()})
    write_json_atomic(final / "parts.json", report)
    print(f"held-out pixel accuracy {report['holdout_pixel_accuracy']:.3f}; IoU {report['holdout_iou']}")
    print(f"held-out avatars with hair: {hats_line(report['holdout_headwear'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
