"""A small attribute classifier trained on the synthetic renders: the yardstick of the evaluation.

    python -m training.attribute_classifier --data data/tiny --split runs/tiny/base/base/base.json \
        --fit runs/tiny/fit --out runs/tiny/classifier

It sees 64 px views composited over white (every view of the training avatars, with --fit renders of their
fitted tri-planes, with --extra-data every view of other data sets' avatars) and predicts each attribute
family of blender_scenes.attributes.FAMILIES. Its own accuracy on the held-out avatars' frontal views is
reported next to every agreement number that uses it, so a family it cannot see is not mistaken for a
family the generator gets wrong; --check-data measures it on the frontal views of a data set nothing trained on
(hundreds of avatars where the model's held-out set has 16).

--pair-data adds data sets rendered with variants (blender_scenes.generate_dataset --variants): each avatar also
seen with one attribute changed and nothing else. Besides learning from both images, the classifier is taught
that its other readings stay the same between them (pair_consistency). An edit is measured by what the
classifier reads before and after it, so a classifier that reads an eye colour or an age from the hair's colour
(as the generator's own dye showed: docs/results.md, "The edits' ceiling") counts an edit as changing what it
did not change. The last tenth of the pair avatars is held out and reported (pairs_held_out).
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
from rodin_core.cameras import Cameras
from rodin_core.data import DatasetError, load_record, read_image_over, rgba_to_target
from rodin_core.io_utils import load_tensors, read_json, save_tensors_atomic, write_json_atomic
from rodin_core.preview import render_image
from training.common import extra_record_names
from training.fit_report import load_fitted

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
    """Value index per family of a record's attributes.json; a DatasetError names a value this generator lacks."""
    path = folder / "attributes.json"
    attrs = read_json(path, "attributes")["attributes"]
    for family, values in FAMILIES.items():
        if attrs.get(family) not in values:
            raise DatasetError(
                f"{path}: {family} is {attrs.get(family)!r}, not one of {', '.join(values)}; the record was "
                f"made by another version of the generator: re-render it with this one"
            )
    return {name: FAMILIES[name].index(attrs[name]) for name in FAMILIES}


def labels_of(data: Path, ids: list[str]) -> dict[str, torch.Tensor]:
    """Value indices per family, one per avatar."""
    per_avatar = [labels(data / name) for name in ids]
    return {name: torch.tensor([lab[name] for lab in per_avatar]) for name in FAMILIES}


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


# A pixel of a pair counts as changed when one of its channels moves by more than this (images in [0, 1]).
PAIR_PIXEL_CHANGE = 0.1


def load_pairs(data: Path, ids: list[str], min_change: int = 0) -> dict[str, torch.Tensor]:
    """Every view of each record next to the same view of each of its variants (generate_dataset --variants):
    "before" / "after" (N, 3, SIZE, SIZE) over white, their labels "y_before" / "y_after" per family, and
    "changed", the index in FAMILIES of the family the variant changed. `min_change`: leave out the views where
    the variant changes fewer pixels than this (a camera behind the head sees no new age or glasses, and such a
    pair would label one image with two values); "dropped" counts them, and "moved" holds each kept pair's count of
    changed pixels (a channel moved by more than PAIR_PIXEL_CHANGE, at the data set's resolution)."""
    before, after, changed, moved, dropped = [], [], [], [], 0
    y_before, y_after = {name: [] for name in FAMILIES}, {name: [] for name in FAMILIES}
    families = list(FAMILIES)
    for name in ids:
        folder = data / name
        meta = read_json(folder / "attributes.json", "attributes")
        variants = meta.get("variants")
        if not variants:
            raise DatasetError(
                f"{folder}: no variants in attributes.json; render the data set with "
                "blender_scenes.generate_dataset --variants, or pass it as --extra-data"
            )
        rec = load_record(folder, use_depth=False)
        views = [rgba_to_target(rgba, torch.ones(3))[0].permute(2, 0, 1) for rgba in rec.rgba]
        lab = labels(folder)
        for family, value in variants.items():
            if family not in FAMILIES or value not in FAMILIES[family]:
                raise DatasetError(f"{folder}: variant {family} = {value!r} is not a value of this generator")
            images = sorted((folder / "variants" / family / "images").glob("*.png"))
            if len(images) != len(rec.rgba):
                raise DatasetError(
                    f"{folder}: variant {family} has {len(images)} views for the record's {len(rec.rgba)}; "
                    "re-render the record"
                )
            for view, path in zip(views, images):
                variant = read_image_over(path, torch.ones(3))[0].permute(2, 0, 1)
                pixels = int(((variant - view).abs().amax(0) > PAIR_PIXEL_CHANGE).sum())
                if pixels < min_change:
                    dropped += 1
                    continue
                moved.append(pixels)
                before.append(view)
                after.append(variant)
                changed.append(families.index(family))
                for f, idx in lab.items():
                    y_before[f].append(idx)
                    y_after[f].append(FAMILIES[f].index(value) if f == family else idx)
    if not before:
        raise DatasetError(f"{data}: no pair changes {min_change} pixels or more; lower --pair-min-change")
    pairs = {"before": torch.stack(before), "after": torch.stack(after), "changed": torch.tensor(changed)}
    pairs["moved"], pairs["dropped"] = torch.tensor(moved), dropped
    for key in ("before", "after"):
        if pairs[key].shape[-1] != SIZE:
            pairs[key] = F.interpolate(pairs[key], size=(SIZE, SIZE), mode="bilinear", antialias=True)
    pairs["y_before"] = {k: torch.tensor(v) for k, v in y_before.items()}
    pairs["y_after"] = {k: torch.tensor(v) for k, v in y_after.items()}
    return pairs


def pair_consistency(
    before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], changed: torch.Tensor
) -> torch.Tensor:
    """Mean symmetric KL divergence between the readings of each pair's two images, over the families its variant
    did not change: zero when the classifier reads them the same."""
    total = before[next(iter(FAMILIES))].new_zeros(())
    for k, family in enumerate(FAMILIES):
        keep = changed != k
        if not keep.any():
            continue
        p, q = F.log_softmax(before[family][keep], 1), F.log_softmax(after[family][keep], 1)
        total = total + ((p.exp() - q.exp()) * (p - q)).sum(1).sum()
    return total / len(changed)


def pair_agreement(model: AttributeClassifier, pairs: dict) -> dict[str, float]:
    """How the classifier reads held-out pairs, as the edit report counts edits (training.evaluate_text): the
    changed family read as its new value ("shows"), the share of other families read the same ("kept"), and
    the pairs that show it with at most one other family read differently ("success"); over all pairs and per
    changed family ("by_family")."""
    model.eval()
    with torch.no_grad():
        lb, la = model(pairs["before"]), model(pairs["after"])
    families = list(FAMILIES)
    shows = torch.zeros(len(pairs["changed"]), dtype=torch.bool)
    others = torch.zeros(len(pairs["changed"]))
    for k, family in enumerate(families):
        edited = pairs["changed"] == k
        read_after = la[family].argmax(1)
        shows |= edited & (read_after == pairs["y_after"][family])
        others += (~edited & (read_after != lb[family].argmax(1))).float()

    def summary(rows: torch.Tensor) -> dict[str, float]:
        return {
            "pairs": int(rows.sum()),
            "shows": float(shows[rows].float().mean()),
            "kept": float(1 - (others[rows] / (len(families) - 1)).mean()),
            "success": float(((others[rows] <= 1) & shows[rows]).float().mean()),
        }

    everything = torch.ones(len(shows), dtype=torch.bool)
    by_family = {
        f: summary(pairs["changed"] == k) for k, f in enumerate(families) if (pairs["changed"] == k).any()
    }
    return {**summary(everything), "by_family": by_family}


def cat_pairs(groups: list[dict]) -> dict:
    """load_pairs' results of several data sets as one."""
    out = {key: torch.cat([g[key] for g in groups]) for key in ("before", "after", "changed")}
    for key in ("y_before", "y_after"):
        out[key] = {k: torch.cat([g[key][k] for g in groups]) for k in FAMILIES}
    return out


def fitted_views(fitted: tuple, ids: list[str], azimuths: tuple[float, ...]) -> torch.Tensor:
    """Renders of the avatars' fitted tri-planes (`load_fitted`'s result) through the fit's decoder at SIZE
    px, over white.

    Generated avatars are classified from such renders; training on them too keeps the classifier from
    reading the decoder's softness as an attribute (a smooth face as "no eyebrows", say).
    """
    meta, planes, decoder = fitted
    index = {name: i for i, name in enumerate(meta["ids"])}
    missing = [name for name in ids if name not in index]
    if missing:
        raise SystemExit(f"the fit has no tri-planes for {len(missing)} avatars, e.g. {missing[0]}")
    cameras = Cameras.orbit(list(azimuths), 0.0, SIZE)
    renders = []
    for name in tqdm(ids, desc="fitted renders"):
        for v in range(len(azimuths)):
            rgb = render_image(planes[index[name]], decoder, cameras, v)["rgb"]
            renders.append(rgb.permute(2, 0, 1))
    return torch.stack(renders)


def augment(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror (attributes are mirror-symmetric), shift by up to 3 px and blur half of the images a little."""
    if torch.rand((), generator=gen) < 0.5:
        batch = batch.flip(-1)
    dy, dx = (int(v) for v in torch.randint(-3, 4, (2,), generator=gen))
    batch = F.pad(batch, (3, 3, 3, 3), value=1.0)[..., 3 + dy : 3 + dy + SIZE, 3 + dx : 3 + dx + SIZE]
    blur = torch.rand(len(batch), generator=gen) < 0.5
    if blur.any():
        kernel = torch.tensor([0.25, 0.5, 0.25])
        kernel = (kernel[:, None] * kernel[None, :]).expand(3, 1, 3, 3)
        soft = F.conv2d(F.pad(batch[blur], (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
        batch = batch.clone()
        batch[blur] = soft
    return batch


def accuracy(model: AttributeClassifier, x: torch.Tensor, y: dict[str, torch.Tensor]) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
    return {k: float((logits[k].argmax(1) == y[k]).float().mean()) for k in FAMILIES}


def load_classifier(folder: Path) -> AttributeClassifier:
    model = AttributeClassifier()
    model.load_state_dict(load_tensors(folder / "classifier.safetensors", "attribute classifier"))
    return model.eval()


def real_view_accuracy(meta: dict) -> tuple[dict[str, float], str]:
    """The classifier's accuracy on real frontal views, and which views: the check set when it has one.

    The check set (--check-data) has hundreds of avatars nothing trained on; the held-out set has a few dozen
    at most, whose per-family accuracy moves in steps of several percent.
    """
    if "check_frontal_accuracy" in meta:
        count = meta.get("check_avatars") or "the"
        return meta["check_frontal_accuracy"], (
            f"the frontal views of {count} avatars of {meta['check_data']} (which nothing trained on)"
        )
    return meta["holdout_frontal_accuracy"], "the frontal views of the model's held-out avatars"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.attribute_classifier", description=__doc__.splitlines()[0]
    )
    p.add_argument("--data", required=True)
    p.add_argument(
        "--split", required=True, help="base.json (train_ids / holdout_ids) of the model to evaluate"
    )
    p.add_argument("--out", required=True)
    p.add_argument(
        "--fit",
        help="fit folder (training.fit_triplanes): also train on renders of the training avatars' fitted "
        "tri-planes, and report the accuracy on the held-out avatars' ones",
    )
    p.add_argument(
        "--extra-data",
        nargs="+",
        default=[],
        help="other data sets of the generator (other --seed, any --views) whose avatars are all added to the "
        "training images: the classifier learns from more avatars than the model's data set has",
    )
    p.add_argument(
        "--check-data",
        help="a data set of the generator that nothing trains on (another --seed; frontal views suffice): the "
        "accuracy on its frontal views is recorded as check_frontal_accuracy",
    )
    p.add_argument(
        "--pair-data",
        nargs="+",
        default=[],
        help="data sets rendered with --variants: also learn from each avatar's variants, reading every family the "
        "variant did not change the same in both (the last tenth of their avatars is held out and reported)",
    )
    p.add_argument(
        "--pair-batch",
        type=int,
        default=16,
        help="pairs added to each batch when --pair-data is given (default 16)",
    )
    p.add_argument(
        "--pair-weight", type=float, default=1.0, help="weight of the pair consistency loss (default 1)"
    )
    p.add_argument(
        "--pair-min-change",
        type=int,
        default=0,
        help="learn only from pair views where the variant changes at least this many pixels (default 0: all); "
        "the held-out pairs are all counted, as without it",
    )
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    split = read_json(Path(args.split), "train/held-out split")
    data, out = Path(args.data), Path(args.out)
    # Pairs first: a data set without variants is refused before minutes of loading.
    pairs, held_pairs = None, None
    if args.pair_data and args.pair_batch < 1:
        raise SystemExit(f"--pair-batch must be at least 1; got {args.pair_batch}")
    if args.pair_min_change < 0:
        raise SystemExit(f"--pair-min-change must be 0 or more pixels; got {args.pair_min_change}")
    if args.pair_data:
        parts, held = [], []
        for folder in map(Path, args.pair_data):
            names = extra_record_names(folder, "--pair-data")
            if len(names) < 2:
                raise SystemExit(
                    f"--pair-data {folder}: {len(names)} avatar; at least 2 are needed (one held out)"
                )
            cut = len(names) - max(1, len(names) // 10)
            try:
                parts.append(load_pairs(folder, names[:cut], args.pair_min_change))
                held.append(load_pairs(folder, names[cut:]))  # all of them: reports compare across settings
            except DatasetError as exc:
                raise SystemExit(f"--pair-data: {exc}") from exc
            print(f"{folder}: {cut} avatars' pairs to learn from, {len(names) - cut} held out", flush=True)
            if args.pair_min_change:
                print(
                    f"  {parts[-1]['dropped']} views changing fewer than {args.pair_min_change} pixels left out",
                    flush=True,
                )
        pairs, held_pairs = (cat_pairs(group) for group in (parts, held))
    x, y = load_views(data, split["train_ids"], frontal_only=False)
    hx, hy = load_views(data, split["holdout_ids"], frontal_only=True)
    ax, ay = load_views(data, split["holdout_ids"], frontal_only=False)
    reports = {"holdout_frontal_accuracy": (hx, hy), "holdout_all_views_accuracy": (ax, ay)}
    for extra in map(Path, args.extra_data):
        names = extra_record_names(extra)
        ex, ey = load_views(extra, names, frontal_only=False)
        x, y = torch.cat([x, ex]), {k: torch.cat([y[k], ey[k]]) for k in FAMILIES}
        print(f"{extra}: {len(names)} extra avatars, {len(ex)} views", flush=True)
    check_names = []
    if args.check_data:
        check = Path(args.check_data)
        check_names = extra_record_names(check, "--check-data")
        reports["check_frontal_accuracy"] = load_views(check, check_names, frontal_only=True)
    if args.fit:
        fitted = load_fitted(Path(args.fit) / "fitted")
        azimuths = (0.0, -25.0, 25.0)
        fx = fitted_views(fitted, split["train_ids"], azimuths)
        fy = {k: v.repeat_interleave(len(azimuths)) for k, v in labels_of(data, split["train_ids"]).items()}
        x, y = torch.cat([x, fx]), {k: torch.cat([y[k], fy[k]]) for k in FAMILIES}
        reports["holdout_fitted_frontal_accuracy"] = (
            fitted_views(fitted, split["holdout_ids"], (0.0,)),
            labels_of(data, split["holdout_ids"]),
        )
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
            if pairs is None:
                logits = model(augment(x[idx], gen))
                loss = sum(F.cross_entropy(logits[k], y[k][idx]) for k in FAMILIES)
            else:
                pick = torch.randint(len(pairs["changed"]), (args.pair_batch,), generator=gen)
                images = torch.cat([x[idx], pairs["before"][pick], pairs["after"][pick]])
                targets = {
                    k: torch.cat([y[k][idx], pairs["y_before"][k][pick], pairs["y_after"][k][pick]])
                    for k in FAMILIES
                }
                logits = model(augment(images, gen))
                loss = sum(F.cross_entropy(logits[k], targets[k]) for k in FAMILIES)
                n, m = len(idx), args.pair_batch
                loss = loss + args.pair_weight * pair_consistency(
                    {k: v[n : n + m] for k, v in logits.items()},
                    {k: v[n + m :] for k, v in logits.items()},
                    pairs["changed"][pick],
                )
            optim.zero_grad()
            loss.backward()
            optim.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    accs = {name: accuracy(model, vx, vy) for name, (vx, vy) in reports.items()}
    pair_report = {"pairs_held_out": pair_agreement(model, held_pairs)} if held_pairs else {}
    out.mkdir(parents=True, exist_ok=True)
    save_tensors_atomic(out / "classifier.safetensors", model.state_dict())
    write_json_atomic(
        out / "classifier.json",
        {
            **accs,
            **pair_report,
            "families": FAMILIES,
            "train_images": len(x),
            "epochs": args.epochs,
            "fit": args.fit,
            "extra_data": args.extra_data,
            "check_data": args.check_data,
            "check_avatars": len(check_names),
            "pair_data": args.pair_data,
            "pair_batch": args.pair_batch if args.pair_data else 0,
            "pair_weight": args.pair_weight if args.pair_data else 0.0,
            "pair_min_change": args.pair_min_change if args.pair_data else 0,
        },
    )
    if pair_report:
        print("held-out pairs:", json.dumps(pair_report["pairs_held_out"]))
    print(json.dumps({name: sum(a.values()) / len(a) for name, a in accs.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
