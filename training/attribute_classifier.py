"""A small attribute classifier trained on the synthetic renders: the yardstick of the evaluation.

    python -m training.attribute_classifier --data data/tiny --train-ids runs/tiny/base/base/base.json \
        --out runs/tiny/classifier

It sees 64 px views composited over white (every view of the training avatars) and predicts each attribute
family of blender_scenes.attributes.FAMILIES. Its own accuracy on the held-out avatars' frontal views is
reported next to every agreement number that uses it, so a family it cannot see is not mistaken for a
family the generator gets wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from blender_scenes.attributes import FAMILIES
from rodin_core.data import load_record, rgba_to_target
from rodin_core.io_utils import load_tensors, read_json, save_tensors_atomic, write_json_atomic

SIZE = 64


class AttributeClassifier(nn.Module):
    def __init__(self, widths=(32, 64, 128, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for width in widths:
            layers += [nn.Conv2d(cin, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            layers += [
                nn.Conv2d(width, width, 3, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            cin = width
        self.features = nn.Sequential(*layers)
        self.heads = nn.ModuleDict(
            {name: nn.Linear(cin * 4, len(values)) for name, values in FAMILIES.items()}
        )

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, 64, 64) in [0, 1] on white -> logits per family."""
        if images.shape[-1] != SIZE:
            images = F.interpolate(
                images, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False
            )
        h = F.adaptive_avg_pool2d(self.features(images * 2 - 1), 2).flatten(1)
        return {name: head(h) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[dict[str, str]]:
        self.eval()
        logits = self(images)
        return [
            {name: FAMILIES[name][int(logits[name][i].argmax())] for name in FAMILIES}
            for i in range(len(images))
        ]


def labels(folder: Path) -> dict[str, int]:
    attrs = read_json(folder / "attributes.json", "attributes")["attributes"]
    return {name: FAMILIES[name].index(attrs[name]) for name in FAMILIES}


def load_views(
    data: Path, ids: list[str], frontal_only: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    images, targets = [], {name: [] for name in FAMILIES}
    for name in ids:
        rec = load_record(data / name, use_depth=False)
        views = [rec.frontal_index] if frontal_only else range(len(rec.rgba))
        lab = labels(data / name)
        for v in views:
            images.append(rgba_to_target(rec.rgba[v], torch.ones(3))[0].permute(2, 0, 1))
            for family, idx in lab.items():
                targets[family].append(idx)
    x = torch.stack(images)
    if x.shape[-1] != SIZE:
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
    return x, {k: torch.tensor(v) for k, v in targets.items()}


def accuracy(model: AttributeClassifier, x: torch.Tensor, y: dict[str, torch.Tensor]) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
    return {k: float((logits[k].argmax(1) == y[k]).float().mean()) for k in FAMILIES}


def load_classifier(folder: Path) -> AttributeClassifier:
    model = AttributeClassifier()
    model.load_state_dict(load_tensors(folder / "classifier.safetensors", "attribute classifier"))
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.attribute_classifier", description=__doc__.splitlines()[0]
    )
    p.add_argument("--data", required=True)
    p.add_argument(
        "--split", required=True, help="base.json (train_ids / holdout_ids) of the model to evaluate"
    )
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    split = read_json(Path(args.split), "train/held-out split")
    data, out = Path(args.data), Path(args.out)
    x, y = load_views(data, split["train_ids"], frontal_only=False)
    hx, hy = load_views(data, split["holdout_ids"], frontal_only=True)
    torch.manual_seed(0)
    model = AttributeClassifier()
    optim = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = args.epochs * (len(x) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, max_lr=2e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(0)
    bar = tqdm(total=steps, desc="classifier")
    for _ in range(args.epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x) - args.batch + 1, args.batch):
            idx = order[start : start + args.batch]
            flip = torch.rand(()) < 0.5  # attributes are mirror-symmetric
            batch = x[idx].flip(-1) if flip else x[idx]
            logits = model(batch)
            loss = sum(F.cross_entropy(logits[k], y[k][idx]) for k in FAMILIES)
            optim.zero_grad()
            loss.backward()
            optim.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    acc = accuracy(model, hx, hy)
    out.mkdir(parents=True, exist_ok=True)
    save_tensors_atomic(out / "classifier.safetensors", model.state_dict())
    write_json_atomic(
        out / "classifier.json",
        {
            "holdout_frontal_accuracy": acc,
            "families": FAMILIES,
            "train_images": len(x),
            "epochs": args.epochs,
        },
    )
    print(json.dumps({"holdout_frontal_accuracy": acc}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
