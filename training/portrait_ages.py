"""Does a portrait model draw the ages its prompts ask for?

Looks 2 (`blender_scenes.generate_dataset --looks 2`) draws age on the face: rosy cheeks on a young face; lines
and eyebrows faded towards grey on an old one. At a portrait's 64 px each mark is a few pixels, so this check
measures the marks themselves, and can see a model begin to draw them before a classifier reads an age.

It finds them in the generator's own portraits (the data set's faces without glasses, beard or hat, which hide
them): the pixels where young faces are redder than adult ones, and where old faces are darker than adult ones.
Each age is set against adults because the generator draws a young avatar's hair as an adult's but an old one's
grey, so the young - old difference would find hair as well as cheeks. It chooses those pixels on half of the
faces and measures the gap on the other half, so the generator's gap is not inflated by the choice. Then it draws
"a young ...", "a ..." (an adult, as the captions say it) and "an old ..." with the same seeds and measures the
same pixels on each pair. A model that draws the ages shows gaps near the generator's.

    python -m training.portrait_ages --data runs/tiny/portraits35 [--weights BUNDLE] [--run RUN] [--out FILE]

`--run RUN` reads the portrait model a training run holds now (the EMA of RUN/latest.safetensors), in place of
the bundle's, so a run can be checked while it trains.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from rodin_core.bundle import BundleError, load_module
from rodin_core.data import DatasetError, list_records
from rodin_core.io_utils import load_tensors, read_json, write_json_atomic
from rodin_core.pipeline import AvatarPipeline
from training.train_base import frontal_images

# Each of them hides the face's marks.
HIDERS = ("glasses", "facial_hair", "headwear")
# Prompts that name nothing else about the face; each is asked young, adult and old.
PROMPTS = (
    "man with short brown hair",
    "man with long black hair wearing a blue t-shirt",
    "woman with short brown hair",
    "woman with long black hair wearing a blue t-shirt",
)


def redness(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, H, W): how much redder than grey each pixel is."""
    return images[:, 0] - (images[:, 1] + images[:, 2]) / 2


def darkness(images: torch.Tensor) -> torch.Tensor:
    return 1 - (0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2])


# A mark: what it is measured by, and the age that shows more of it than adults do.
MARKS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], str]] = {
    "young cheeks": (redness, "young"),
    "old lines": (darkness, "old"),
}
AGES = ("young", "adult", "old")
# How prompts name each age, as the captions do (blender_scenes.attributes.caption names no adult's age).
AGE_WORDS = {"young": "a young", "adult": "a", "old": "an old"}


def mark_pixels(aged: torch.Tensor, adult: torch.Tensor, mark: str, count: int) -> torch.Tensor:
    """(H, W) bool: the `count` pixels where the mean aged face shows the mark most over the mean adult one."""
    measure, _ = MARKS[mark]
    diff = measure(aged).mean(0) - measure(adult).mean(0)
    chosen = torch.zeros(diff.numel(), dtype=torch.bool)
    chosen[diff.flatten().topk(count).indices] = True
    return chosen.view_as(diff)


def mark_level(images: torch.Tensor, mark: str, pixels: torch.Tensor) -> torch.Tensor:
    """(N,): each image's mean of the mark's measure over `pixels`."""
    measure, _ = MARKS[mark]
    return measure(images)[:, pixels].mean(1)


def mark_gap(aged: torch.Tensor, adult: torch.Tensor, mark: str, pixels: torch.Tensor) -> torch.Tensor:
    """(N,): how much more of the mark each aged face shows than its pair, the adult drawn with the same seed."""
    return mark_level(aged, mark, pixels) - mark_level(adult, mark, pixels)


def plain_faces(data: Path, size: int, limit: int | None = None) -> dict[str, torch.Tensor]:
    """The frontal views (N, 3, size, size) of the data set's avatars that wear no glasses, beard or hat, by age.
    Refuses data drawn with looks 1, where every age looks alike."""
    names = {age: [] for age in AGES}
    for record in list_records(data)[:limit]:
        meta = read_json(record / "attributes.json", "attributes")
        if meta.get("looks", 1) < 2:
            raise DatasetError(
                f"{record} was rendered with looks 1, which draws every age alike; render the data set with "
                "blender_scenes.generate_dataset --looks 2"
            )
        attrs = meta["attributes"]
        if all(attrs[f] == "none" for f in HIDERS):
            names[attrs["age"]].append(record.name)
    fewest = min(len(ids) for ids in names.values())
    if fewest < 4:
        counts = ", ".join(f"{len(ids)} {age}" for age, ids in names.items())
        raise DatasetError(
            f"{data} has {counts} faces without glasses, beard or hat; the check needs at least 4 of each age "
            "(render more avatars, or raise --limit)"
        )
    return {age: frontal_images(data, ids, size) for age, ids in names.items()}


def generator_marks(faces: dict[str, torch.Tensor], count: int) -> dict[str, dict]:
    """Per mark: its pixels (chosen on the even-numbered faces of each age) and the generator's gap over them
    (measured on the odd-numbered ones)."""
    out = {}
    for mark, (_, age) in MARKS.items():
        pixels = mark_pixels(faces[age][0::2], faces["adult"][0::2], mark, count)
        # The data set's faces do not pair up: the gap between the mean faces.
        gap = (
            mark_level(faces[age][1::2], mark, pixels).mean()
            - mark_level(faces["adult"][1::2], mark, pixels).mean()
        )
        out[mark] = {"pixels": pixels, "generator": float(gap)}
    return out


def drawn_portraits(pipe: AvatarPipeline, seeds: int) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Per age, the portraits drawn for each prompt at that age with seeds 0 .. seeds - 1, (P * seeds, 3, S, S)
    in the same order for every age; and the prompts' words the bundle does not know."""
    drawn, unknown = {}, set()
    for age in AGES:
        images = []
        for rest in PROMPTS:
            text = f"{AGE_WORDS[age]} {rest}"
            z, missing = pipe.encode_text(text)
            unknown.update(missing)
            images += [pipe.draw_portrait(seed, z, text=text) for seed in range(seeds)]
        drawn[age] = torch.stack(images)
    return drawn, sorted(unknown)


def age_report(marks: dict[str, dict], drawn: dict[str, torch.Tensor]) -> dict[str, dict]:
    """Per mark: the generator's gap, the drawn pairs' mean gap, its share of the generator's, and how many of
    the pairs show the mark the right way."""
    report = {}
    for mark, found in marks.items():
        age = MARKS[mark][1]
        gaps = mark_gap(drawn[age], drawn["adult"], mark, found["pixels"])
        report[mark] = {
            "pixels": found["pixels"].nonzero().tolist(),
            "generator_gap": found["generator"],
            "drawn_gap": float(gaps.mean()),
            "share_of_generator": float(gaps.mean()) / found["generator"] if found["generator"] > 0 else None,
            "pairs_right_way": int((gaps > 0).sum()),
            "pairs": len(gaps),
        }
    return report


def load_run_portrait(pipe: AvatarPipeline, run: Path) -> None:
    """Puts the EMA weights a portrait training run holds now (RUN/latest.safetensors) into the pipeline."""
    path = run / "latest.safetensors"
    if not path.is_file():
        raise SystemExit(
            f"--run {run}: no latest.safetensors there; give a training.train_portrait --out folder"
        )
    try:
        load_module(pipe.portrait_model, load_tensors(path, "portrait training checkpoint"), "ema", path)
    except BundleError as exc:
        raise SystemExit(f"--run {run}: its portrait model is not the bundle's shape ({exc})") from exc


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a data set rendered with --looks 2 (the portraits' data)")
    p.add_argument("--weights", default=None, help="weights bundle (.json); default: the embedded one")
    p.add_argument("--run", default=None, help="a train_portrait --out folder: check the model it holds now")
    p.add_argument("--seeds", type=int, default=8, help="seeds drawn for each prompt and age")
    p.add_argument("--pixels", type=int, default=16, help="pixels measured for each mark")
    p.add_argument("--limit", type=int, default=None, help="read only the data set's first N records")
    p.add_argument("--out", default=None, help="also write the report here (JSON)")
    p.add_argument("--threads", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in ("seeds", "pixels", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SystemExit(f"--{name} must be at least 1; got {value}")
    try:
        pipe = AvatarPipeline.from_bundle(args.weights)
    except BundleError as exc:
        raise SystemExit(f"--weights: {exc}") from exc
    if pipe.portrait_model is None:
        raise SystemExit(f"{pipe.source} holds no portrait model; give --weights a bundle with one")
    if args.run:
        load_run_portrait(pipe, Path(args.run))
    size = pipe.portrait_model.config.size
    if args.pixels > size * size:
        raise SystemExit(f"--pixels {args.pixels} is more than the {size}x{size} portrait holds")
    try:
        faces = plain_faces(Path(args.data), size, args.limit)
    except (ValueError, FileNotFoundError) as exc:  # DatasetError, or a record's attributes.json
        raise SystemExit(f"--data: {exc}") from exc
    marks = generator_marks(faces, args.pixels)
    drawn, unknown = drawn_portraits(pipe, args.seeds)
    report = {
        "data": args.data,
        "faces": {age: len(f) for age, f in faces.items()},
        "portrait_model": args.run or pipe.source,
        "unknown_words": unknown,
        "marks": age_report(marks, drawn),
    }
    faces_line = ", ".join(f"{n} {age}" for age, n in report["faces"].items())
    print(
        f"{report['portrait_model']} on {args.data} ({faces_line} faces without glasses, beard or hat; "
        f"{args.seeds} seeds x {len(PROMPTS)} prompts at each age)"
    )
    if unknown:
        print(f"words the bundle does not know, left out of the prompts: {', '.join(unknown)}")
    for mark, row in report["marks"].items():
        share = "" if row["share_of_generator"] is None else f", {row['share_of_generator']:.0%} of it"
        print(
            f"{mark:13} generator {row['generator_gap']:+.3f}  drawn {row['drawn_gap']:+.3f}{share}  "
            f"({row['pairs_right_way']} of {row['pairs']} pairs the right way)"
        )
    if args.out:
        write_json_atomic(Path(args.out), report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
