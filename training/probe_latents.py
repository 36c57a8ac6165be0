"""How much of each attribute family a bundle's image latent z holds: a linear probe with cross-validation.

    python -m training.probe_latents --data runs/tiny/probe --out runs/tiny/probe_shipped

The image encoder maps an avatar's frontal view to z, the only thing the base model is told about the input.
Whatever z does not hold, no conditioned sample can follow. For every family of blender_scenes.attributes a
softmax regression is fitted on z of all avatars but one fold and tested on that fold (k-fold), next to the
majority-value baseline. Use avatars the encoder never saw (a data set rendered with another --seed); only the
frontal view of each record is read. Writes OUT/probe.json.

With --pool DIR (another labelled data set, e.g. runs/tiny/clsdata) it also reports what a generator that
copied the nearest avatar in z would score: for each probed avatar the pool avatar with the nearest latent,
its true attributes against the probed avatar's, for the first N pool avatars at each --pool-sizes N. That is
the attribute agreement of pure retrieval from a training set of N avatars: the bar a base model trained on
N avatars must pass to show it composes attributes rather than recalls avatars.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from blender_scenes.attributes import FAMILIES
from rodin_core.data import DatasetError
from rodin_core.io_utils import write_json_atomic
from rodin_core.pipeline import AvatarPipeline
from training.common import extra_record_names
from training.train_base import attribute_labels, frontal_images


def encode(pipe: AvatarPipeline, data: Path, names: list[str]) -> torch.Tensor:
    size = pipe.encoder.config.image_size
    with torch.no_grad():
        return torch.cat(
            [pipe.encoder(frontal_images(data, names[i : i + 128], size)) for i in range(0, len(names), 128)]
        )


def linear_probe(z: torch.Tensor, y: torch.Tensor, classes: int, folds: int, steps: int = 400) -> float:
    """Held-out accuracy of a softmax regression on the unit-normalised codes, averaged over k folds."""
    x = F.normalize(z, dim=-1) * 8.0  # a scale at which a few hundred Adam steps converge
    fold = torch.arange(len(z)) % folds
    correct = 0
    for k in range(folds):
        train, test = fold != k, fold == k
        w = torch.zeros(z.shape[1], classes, requires_grad=True)
        b = torch.zeros(classes, requires_grad=True)
        optim = torch.optim.Adam([w, b], lr=0.05)
        for _ in range(steps):
            loss = F.cross_entropy(x[train] @ w + b, y[train]) + 1e-3 * (w**2).sum()
            optim.zero_grad()
            loss.backward()
            optim.step()
        correct += ((x[test] @ w + b).argmax(1) == y[test]).sum().item()
    return correct / len(z)


def nearest_agreement(
    z: torch.Tensor, y: torch.Tensor, z_pool: torch.Tensor, y_pool: torch.Tensor
) -> torch.Tensor:
    """Per family, the fraction of avatars whose nearest pool latent belongs to an avatar with the same value."""
    nearest = torch.cdist(z, z_pool).argmin(dim=1)
    return (y_pool[nearest] == y).float().mean(dim=0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.probe_latents", description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="bundle .json (default: the embedded model)")
    p.add_argument("--data", required=True, help="a data set of avatars the encoder was not trained on")
    p.add_argument("--out", required=True)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--pool", help="another labelled data set: nearest-latent retrieval agreement from it")
    p.add_argument(
        "--pool-sizes", default="240,500,1500", help="comma-separated pool sizes (first N records)"
    )
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = Path(args.data)
    names = extra_record_names(data)
    if len(names) < 2 * args.folds:
        raise SystemExit(
            f"{data} has {len(names)} avatars; a {args.folds}-fold probe needs at least {2 * args.folds}"
        )
    if args.pool:
        pool = Path(args.pool)
        pool_names = extra_record_names(pool)
        sizes = pool_sizes(args.pool_sizes, len(pool_names), pool)
    pipe = AvatarPipeline.from_bundle(args.weights)
    z = encode(pipe, data, names)
    labels = attribute_labels(data, names)
    torch.manual_seed(0)
    per_family = {}
    for i, (family, values) in enumerate(FAMILIES.items()):
        y = labels[:, i]
        majority = torch.bincount(y, minlength=len(values)).max().item() / len(y)
        per_family[family] = {"probe": linear_probe(z, y, len(values), args.folds), "majority": majority}
        print(f"{family:12s} probe {per_family[family]['probe']:.2f}  majority {majority:.2f}", flush=True)
    report = {
        "weights": args.weights or "embedded",
        "data": str(data),
        "avatars": len(names),
        "folds": args.folds,
        "per_family": per_family,
        "probe_mean": float(np.mean([v["probe"] for v in per_family.values()])),
        "majority_mean": float(np.mean([v["majority"] for v in per_family.values()])),
    }
    if args.pool:
        report["retrieval"] = retrieval(pipe, pool, pool_names, sizes, z, labels)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "probe.json", report)
    print(f"mean: probe {report['probe_mean']:.3f}, majority {report['majority_mean']:.3f}")
    return 0


def pool_sizes(text: str, available: int, pool: Path) -> list[int]:
    try:
        sizes = sorted({int(n) for n in text.split(",")})
    except ValueError:
        raise SystemExit(f"--pool-sizes takes comma-separated whole numbers; got {text!r}") from None
    if sizes[0] < 1 or sizes[-1] > available:
        raise SystemExit(f"--pool-sizes must lie between 1 and the {available} avatars of {pool}; got {text}")
    return sizes


def retrieval(
    pipe, pool: Path, names: list[str], sizes: list[int], z: torch.Tensor, labels: torch.Tensor
) -> dict:
    z_pool, y_pool = encode(pipe, pool, names[: sizes[-1]]), attribute_labels(pool, names[: sizes[-1]])
    result = {}
    for n in sizes:
        per_family = nearest_agreement(z, labels, z_pool[:n], y_pool[:n])
        result[str(n)] = {
            "per_family": dict(zip(FAMILIES, per_family.tolist())),
            "mean": per_family.mean().item(),
        }
        print(f"nearest latent among {n:5d} pool avatars: attribute agreement {result[str(n)]['mean']:.3f}")
    return {"pool": str(pool), "sizes": result}


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DatasetError as exc:
        sys.exit(f"error: {exc}")
