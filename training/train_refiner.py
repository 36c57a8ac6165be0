"""Optional stage: the convolutional refiner that sharpens rendered previews (Rodin's image-space refiner).

    python -m training.train_refiner --fit runs/tiny/refit --out runs/tiny/refiner

Training pairs are renders of fitted training tri-planes at their training views against the real images;
the last `holdout` fitted avatars, seen at the fit's held-out views, give the report: PSNR of the plain render
and of the refined one against the real view (report.json, comparison.png: plain | refined | real).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from rodin_core.data import load_record, rgba_to_target
from rodin_core.fitting import train_views
from rodin_core.io_utils import load_tensors, save_tensors_atomic, write_json_atomic
from rodin_core.metrics import psnr
from rodin_core.preview import grid, render_image
from rodin_core.refiner import ImageRefiner, RefinerConfig
from training.common import Checkpointer, check_finite, git_commit, resolve_preset
from training.fit_report import load_fitted


@dataclasses.dataclass
class TrainRefinerConfig:
    refiner: RefinerConfig = dataclasses.field(default_factory=RefinerConfig)
    avatars: int = 64  # training avatars rendered for pairs
    views_per_avatar: int = 4
    holdout: int = 16  # the last N fitted avatars: the base model's held-out split
    batch: int = 16
    lr: float = 1e-3
    steps: int = 1000
    checkpoint_every: int = 200
    seed: int = 0


PRESETS = {
    "tiny": TrainRefinerConfig(),
    "smoke": TrainRefinerConfig(
        refiner=RefinerConfig(width=8, depth=2),
        avatars=3,
        views_per_avatar=2,
        holdout=1,
        batch=2,
        steps=10,
        checkpoint_every=5,
    ),
}


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m training.train_refiner", description=__doc__.splitlines()[0])
    p.add_argument("--fit", required=True, help="run folder of training.fit_triplanes")
    p.add_argument("--data", help="data set (default: the one recorded in fitted.json)")
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--steps", type=int)
    p.add_argument("--threads", type=int)
    return p.parse_args(argv)


def render_pairs(planes, decoder, data: Path, ids, views_of) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) renders of the fitted planes and the real views over white, one per (avatar, view)."""
    renders, reals = [], []
    for i in tqdm(range(len(ids)), desc="rendering pairs", dynamic_ncols=True, disable=None):
        rec = load_record(data / ids[i], use_depth=False)
        for v in views_of(i, len(rec.cameras)):
            renders.append(render_image(planes[i], decoder, rec.cameras, v)["rgb"].permute(2, 0, 1))
            reals.append(rgba_to_target(rec.rgba[v], torch.ones(3))[0].permute(2, 0, 1))
    return torch.stack(renders), torch.stack(reals)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = resolve_preset(PRESETS, args.preset, {"steps": args.steps} if args.steps else {})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta, planes, decoder = load_fitted(Path(args.fit) / "fitted")
    data = Path(args.data or meta["data"])
    ids = meta["ids"]
    n_train = len(ids) - cfg.holdout
    if n_train < 1:
        raise SystemExit(f"{len(ids)} fitted avatars are too few to hold out {cfg.holdout}")
    held_views = list(meta["holdout_views"])

    def views_of(i: int, count: int) -> list[int]:
        """`views_per_avatar` of the fit's training views, spread around the orbit, offset per avatar."""
        usable = train_views(count, tuple(held_views))
        step = max(1, len(usable) // cfg.views_per_avatar)
        return [usable[(i + k * step) % len(usable)] for k in range(cfg.views_per_avatar)]

    ckpt = Checkpointer(out, "latest")
    if not args.resume:
        ckpt.refuse_overwrite()
    pairs_path = out / "pairs.safetensors"
    if pairs_path.is_file():  # rendering is most of a tiny run: a resumed run reuses it
        cached = load_tensors(pairs_path, "rendered training pairs")
        x, y = cached["renders"], cached["reals"]
    else:
        n = min(cfg.avatars, n_train)
        x, y = render_pairs(planes[:n], decoder, data, ids[:n], views_of)
        save_tensors_atomic(pairs_path, {"renders": x.contiguous(), "reals": y.contiguous()})

    torch.manual_seed(cfg.seed)
    model = ImageRefiner(cfg.refiner)
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start = 0
    if args.resume and ckpt.exists():
        start = int(ckpt.load({"refiner": model}, {"optim": optim})["step"])
        print(f"resumed from {ckpt.json_path} at step {start}", flush=True)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + start)
    started = time.time()
    running = None
    for step in tqdm(range(start, cfg.steps), desc="refiner", dynamic_ncols=True, disable=None):
        idx = torch.randint(len(x), (cfg.batch,), generator=gen)
        loss = F.l1_loss(model(x[idx]), y[idx])
        check_finite(loss, step, ckpt)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            ckpt.save(
                step + 1, {"refiner": model}, {"preset": args.preset, "loss": running}, {"optim": optim}
            )
    if running is not None:
        print(
            f"refiner trained to step {cfg.steps}: L1 {running:.4f}, {time.time() - started:.0f} s",
            flush=True,
        )

    model.eval()
    report = evaluate(model, planes[n_train:], decoder, data, ids[n_train:], held_views, out)
    print(
        f"held-out PSNR: refined {report['mean']['refined']:.2f} dB vs plain render {report['mean']['plain']:.2f} dB "
        f"({report['refined_better']} of {report['evaluated']} views better)",
        flush=True,
    )
    folder = out / "refiner"
    folder.mkdir(exist_ok=True)
    save_tensors_atomic(folder / "refiner.safetensors", model.state_dict())
    write_json_atomic(
        folder / "refiner.json",
        {
            "format": "rodin-refiner/1",
            "preset": args.preset,
            "refiner": cfg.refiner.to_dict(),
            "steps": cfg.steps,
            "pairs": len(x),
            "held_out_psnr": report["mean"],
            "commit": git_commit(),
        },
    )
    return 0


@torch.no_grad()
def evaluate(model, planes, decoder, data: Path, ids, views, out: Path) -> dict:
    x, y = render_pairs(planes, decoder, data, ids, lambda i, count: views)
    refined = model(x)
    rows = [{"plain": psnr(x[k], y[k]), "refined": psnr(refined[k], y[k])} for k in range(len(x))]
    report = {
        "evaluated": len(rows),
        "views": views,
        "mean": {key: sum(r[key] for r in rows) / len(rows) for key in ("plain", "refined")},
        "refined_better": sum(r["refined"] > r["plain"] for r in rows),
        "per_view": rows,
        "columns_of_comparison_png": ["plain render", "refined", "real view"],
    }
    write_json_atomic(out / "report.json", report)
    tiles = []
    for k in range(min(8, len(x))):
        tiles += [t.permute(1, 2, 0) for t in (x[k], refined[k], y[k])]
    Image.fromarray(grid(tiles, columns=6)).save(out / "comparison.png")
    return report


if __name__ == "__main__":
    sys.exit(main())
