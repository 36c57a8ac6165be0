"""Held-out evaluation of fitted tri-planes: PSNR/SSIM per avatar, robustness to rescaling, an image grid.

    python -m training.fit_report --fitted runs/tiny/fit/fitted --data data/tiny --out runs/tiny/fit

The held-out views are the ones fitting never saw (fitted.json `holdout_views`). "Rescaled" renders the
same planes after 2x down- and up-sampling: the decoder was trained to tolerate that, and the upsampler
stage relies on it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rodin_core.data import load_record, rgba_to_target
from rodin_core.decoder import DecoderConfig, TriplaneDecoder
from rodin_core.io_utils import load_tensors, read_json, save_tensors_atomic, write_json_atomic
from rodin_core.metrics import psnr, ssim
from rodin_core.preview import grid, render_image
from rodin_core.rendering import SamplingConfig
from rodin_core.triplane import resample


def load_fitted(folder: Path) -> tuple[dict, torch.Tensor, TriplaneDecoder]:
    """The fitted/ folder of a fit run (the run folder itself is accepted too)."""
    if not (folder / "fitted.json").is_file() and (folder / "fitted" / "fitted.json").is_file():
        folder = folder / "fitted"
    meta = read_json(folder / "fitted.json", "fitted tri-plane metadata")
    planes = load_tensors(folder / "planes.safetensors", "fitted tri-planes")["planes"]
    decoder = TriplaneDecoder(DecoderConfig(**meta["decoder"]))
    decoder.load_state_dict(load_tensors(folder / "decoder.safetensors", "decoder weights"))
    decoder.eval()
    if len(meta["ids"]) != planes.shape[0]:
        raise ValueError(
            f"{folder}: fitted.json lists {len(meta['ids'])} avatars but planes hold {planes.shape[0]}"
        )
    return meta, planes, decoder


def save_fitted(folder: Path, planes: torch.Tensor, decoder: dict[str, torch.Tensor], meta: dict) -> None:
    """Writes a fitted/ folder that `load_fitted` reads; fitted.json goes last, so an interrupted write never
    leaves a folder that reads as complete with planes of another run."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fitted.json").unlink(missing_ok=True)
    save_tensors_atomic(folder / "planes.safetensors", {"planes": planes.contiguous()})
    save_tensors_atomic(folder / "decoder.safetensors", {k: v.cpu() for k, v in decoder.items()})
    write_json_atomic(folder / "fitted.json", meta)


def evaluate_fit(
    fitted: Path, data: Path, sampling: SamplingConfig, limit: int | None, out: Path, grid_rows: int = 8
) -> dict:
    meta, planes, decoder = load_fitted(fitted)
    background = torch.ones(3)
    ids = meta["ids"][: limit or None]
    per_avatar, tiles = [], []
    for i, name in enumerate(ids):
        avatar = load_record(data / name, use_depth=False)
        lo = resample(resample(planes[i : i + 1], planes.shape[-1] // 2), planes.shape[-1])[0]
        row = {"id": name, "psnr": [], "ssim": [], "psnr_rescaled": []}
        for view in meta["holdout_views"]:
            target, _ = rgba_to_target(avatar.rgba[view].float(), background)
            pred = render_image(planes[i], decoder, avatar.cameras, view, sampling)["rgb"]
            pred_lo = render_image(lo, decoder, avatar.cameras, view, sampling)["rgb"]
            row["psnr"].append(psnr(pred, target))
            row["ssim"].append(ssim(pred, target))
            row["psnr_rescaled"].append(psnr(pred_lo, target))
            if len(tiles) < grid_rows and view == meta["holdout_views"][0]:
                tiles.append(torch.cat([target, pred, pred_lo], dim=1))
        per_avatar.append({k: (float(np.mean(v)) if isinstance(v, list) else v) for k, v in row.items()})
    report = {
        "evaluated": len(per_avatar),
        "holdout_views": meta["holdout_views"],
        "sampling": sampling.__dict__,
        "mean_psnr": float(np.mean([r["psnr"] for r in per_avatar])),
        "mean_ssim": float(np.mean([r["ssim"] for r in per_avatar])),
        "mean_psnr_rescaled": float(np.mean([r["psnr_rescaled"] for r in per_avatar])),
        "per_avatar": per_avatar,
    }
    write_json_atomic(out / "report.json", report)
    if tiles:
        Image.fromarray(grid(tiles, columns=1, pad=0)).save(out / "holdout.png")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.fit_report",
        description="Held-out PSNR/SSIM of fitted tri-planes; writes report.json and holdout.png "
        "(columns: ground truth, fitted render, render after 2x down/up-sampling).",
    )
    p.add_argument("--fitted", required=True, help="the fitted/ folder written by training.fit_triplanes")
    p.add_argument("--data", required=True, help="the data set it was fitted to")
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int)
    p.add_argument("--samples", type=int, default=48, help="uniform and importance samples per ray")
    args = p.parse_args(argv)
    sampling = SamplingConfig(uniform=args.samples, importance=args.samples)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = evaluate_fit(Path(args.fitted), Path(args.data), sampling, args.limit, out)
    print(
        f"held-out PSNR {report['mean_psnr']:.2f} dB, SSIM {report['mean_ssim']:.3f}, rescaled "
        f"{report['mean_psnr_rescaled']:.2f} dB over {report['evaluated']} avatars"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
