"""Join fitted tri-plane folders made with one frozen decoder, to grow the base model's training set.

    python -m training.fit_triplanes --data NEW --out runs/tiny/fitnew --preset tiny \
        --frozen-decoder rodin_core/weights/rodin_tiny.json
    python -m training.merge_fitted --out runs/tiny/fit512 --data ALL runs/tiny/refit runs/tiny/fitnew

The first folder's last --holdout avatars stay last, so `train_base` (which holds out the last N fitted
avatars) keeps holding out the same ones: a model continued on the merged set is still evaluated on
avatars it never saw. Every folder must share the decoder bit for bit (fit the new avatars with
--frozen-decoder), or their planes would live in different feature spaces. --data is the data set folder
that holds every merged record (train_base reads their frontal views from it).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import torch

from rodin_core.data import DatasetError, list_records
from training.common import git_commit, same_tensors
from training.fit_report import load_fitted, save_fitted


def merge(folders: list[Path], data: Path, holdout: int) -> tuple[dict, torch.Tensor, dict]:
    """The merged fitted.json content, planes and decoder state; raises ValueError naming what does not fit."""
    first_meta, first_planes, first_decoder = load_fitted(folders[0])
    if not 0 <= holdout < len(first_meta["ids"]):
        raise ValueError(
            f"--holdout {holdout} must be under the {len(first_meta['ids'])} avatars of {folders[0]}"
        )
    reference = first_decoder.state_dict()
    split = len(first_meta["ids"]) - holdout
    ids, chunks = list(first_meta["ids"][:split]), [first_planes[:split]]
    for folder in folders[1:]:
        meta, planes, decoder = load_fitted(folder)
        if meta["decoder"] != first_meta["decoder"] or not same_tensors(reference, decoder.state_dict()):
            raise ValueError(
                f"{folder} was fitted with another decoder than {folders[0]}; fit it with "
                f"--frozen-decoder {folders[0]} (or the bundle that holds that decoder)"
            )
        if planes.shape[1:] != first_planes.shape[1:]:
            raise ValueError(
                f"{folder}: planes {tuple(planes.shape[1:])} against {tuple(first_planes.shape[1:])}"
            )
        ids += meta["ids"]
        chunks.append(planes)
    ids += first_meta["ids"][split:]
    chunks.append(first_planes[split:])
    repeated = sorted(name for name, n in Counter(ids).items() if n > 1)
    if repeated:
        raise ValueError(f"avatars fitted in more than one folder: {repeated[:3]}; merge each avatar once")
    present = {record.name for record in list_records(data)}
    absent = [name for name in ids if name not in present]
    if absent:
        raise ValueError(
            f"{data} lacks {len(absent)} of the merged records (first: {absent[0]}); give --data the folder with all"
        )
    meta = {
        **{
            k: first_meta[k]
            for k in ("format", "decoder", "resolution", "channels", "holdout_views", "frozen_decoder")
        },
        "ids": ids,
        "data": str(data.resolve()),
        "merged_from": [str(f) for f in folders],
        "commit": git_commit(),
    }
    return meta, torch.cat(chunks), reference


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.merge_fitted", description=__doc__.splitlines()[0])
    p.add_argument(
        "folders",
        nargs="+",
        help="fit run folders (or their fitted/ folders); the first one's held-out avatars stay last",
    )
    p.add_argument("--out", required=True, help="run folder to write OUT/fitted/ into")
    p.add_argument("--data", required=True, help="data set folder that holds every merged record")
    p.add_argument(
        "--holdout", type=int, default=16, help="the held-out count of train_base's preset (tiny: 16)"
    )
    args = p.parse_args(argv)
    if len(args.folders) < 2:
        raise SystemExit("give at least two fitted folders to merge")
    try:
        meta, planes, decoder = merge([Path(f) for f in args.folders], Path(args.data), args.holdout)
    except (ValueError, DatasetError) as exc:
        raise SystemExit(f"error: {exc}") from exc
    folder = Path(args.out) / "fitted"
    save_fitted(folder, planes, decoder, meta)
    print(f"{folder}: {len(meta['ids'])} avatars, the last {args.holdout} held out as in {args.folders[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
