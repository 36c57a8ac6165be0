"""The edits' ceiling: what the edit measure gives a perfect edit, read by the same classifier.

    python -m training.edit_ceiling --classifier runs/tiny/classifier33p --out docs/evaluation --count 48

training.evaluate_text counts an edit a success when the classifier reads the asked value after it and at most
one other family reads differently than before. How often can any edit pass that test? Here the generator makes
the edit itself: each avatar is built and rendered from the front (Cycles, as the data sets are), then built again
with only the edited attribute changed (glasses put on, the hair dyed) and rendered again. Nothing else about the
avatar moves, so every other family the classifier reads differently is the classifier's doing, and the success
of these edits is the most any edit of the model's avatars can expect from this yardstick (their renders are
blurrier than the generator's, which makes the classifier's readings less stable, not more).

The edits and their success counting are training.evaluate_text's (EDITS, edit_summary); an avatar qualifies for
an edit by the same test, on the classifier's reading of its unedited render. Results go to
OUT/edit_ceiling.json and .md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

try:
    import bpy  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    sys.stderr.write("error: the edit ceiling renders with Blender's `bpy` module: pip install bpy==5.0.1\n")
    raise SystemExit(2) from None

import torch
from PIL import Image

from blender_scenes.attributes import draw_attributes
from blender_scenes.avatar_factory import build_avatar, clear_avatar
from blender_scenes.camera_rig import camera_poses
from blender_scenes.renderer import ViewRenderer, setup_scene
from rodin_core.data import read_image_over
from rodin_core.io_utils import read_json, write_json_atomic
from rodin_core.preview import grid
from training.attribute_classifier import load_classifier
from training.evaluate import readings
from training.evaluate_text import EDITS, changed_families, edit_summary, readable_families

# What each edit of training.evaluate_text.EDITS changes in the generator's attributes (the drawn "add glasses"
# draws round glasses: rodin_core.glasses.glasses_named).
EDITED = {
    "add glasses": ("glasses", "round"),
    "make the hair blond": ("hair_color", "blond"),
    "make the hair red": ("hair_color", "red"),
}
# Avatars no data set of docs/training.md holds: a record's seed is its data set's seed x 1 000 003 + its index
# (blender_scenes.dataset_writer.record_seed), so 0-255 for runs/tiny/data and millions for the others.
FIRST_SEED = 70_000


def frontal_render(attrs: dict, renderer: ViewRenderer, folder: Path) -> torch.Tensor:
    """(H, W, 3) in [0, 1]: the avatar built from `attrs`, rendered from the front and composited over white."""
    clear_avatar()
    build_avatar(attrs)
    path = folder / "view.png"
    renderer.render(camera_poses(0, 1)[0], path)
    return read_image_over(path, torch.ones(3))[0]


def ceiling(classifier, count: int, readable: list[str], res: int, samples: int) -> tuple[dict, list]:
    """Per edit: its row (edit_summary) over `count` avatars edited by the generator, and the first two
    avatars' before / after renders."""
    renderer = ViewRenderer(setup_scene(res, samples=samples))
    rows, pairs = {}, []
    with tempfile.TemporaryDirectory(prefix="rodin-ceiling-") as tmp:
        for prompt, family, shows, applies in EDITS:
            attribute, value = EDITED[prompt]
            cases, seed = [], FIRST_SEED
            while len(cases) < count and seed < FIRST_SEED + 20 * count:
                seed += 1
                attrs = draw_attributes(seed)
                if attrs[attribute] == value:  # the generator would draw nothing new
                    continue
                before_img = frontal_render(attrs, renderer, Path(tmp))
                before = readings(classifier, [before_img])[0]
                if not applies(before):
                    continue
                after_img = frontal_render({**attrs, attribute: value}, renderer, Path(tmp))
                after = readings(classifier, [after_img])[0]
                changed = changed_families(before, after, family)
                cases.append({"seed": seed, "shows": bool(shows(after[family])), "changed": changed})
                if len(cases) <= 2:
                    pairs += [before_img, after_img]
            if not cases:
                rows[prompt] = {"cases": 0, "note": "no avatar qualified for this edit"}
                continue
            rows[prompt] = {"edited": {attribute: value}, **edit_summary(cases, readable)}
            print(f"  ceiling {prompt!r}: {rows[prompt]}", flush=True)
    clear_avatar()
    return rows, pairs


def markdown(report: dict) -> str:
    lines = [
        "# The edits' ceiling: the generator's own edits, read by the classifier",
        "",
        f"Classifier: `{report['classifier']}`. Each avatar (seeds from {FIRST_SEED + 1}) is rendered from the front "
        f"({report['resolution']} px, {report['samples']} Cycles samples), then built again with only the edited "
        "attribute changed and rendered again. Success as in text_evaluation.md: the asked value is read after "
        "the edit and at most one other family reads differently than before; every other family that reads "
        "differently is the classifier's doing, since nothing else about the avatar changed. Success, readable: "
        f"counting only the families the classifier can read ({', '.join(report['readable_families'])}).",
        "",
        "| edit | generator's change | avatars | shows new value | other families kept (mean) | success | "
        "success, readable | families that changed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for prompt, e in report["edits"].items():
        if not e["cases"]:
            lines.append(f"| {prompt} | - | 0 | - | - | - | - | {e['note']} |")
            continue
        change = ", ".join(f"{k} = {v}" for k, v in e["edited"].items())
        lines.append(
            f"| {prompt} | {change} | {e['cases']} | {e['shows_new_value']:.0%} | {e['others_kept_mean']:.0%} | "
            f"{e['success']:.0%} | {e['success_readable']:.0%} | {', '.join(e['changed_families']) or '-'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classifier", required=True, help="folder of training.attribute_classifier")
    p.add_argument("--out", required=True, help="folder for edit_ceiling.json, .md and .png")
    p.add_argument("--count", type=int, default=24, help="avatars per edit (default 24)")
    p.add_argument("--res", type=int, default=64, help="render size in pixels (default 64, the data sets')")
    p.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel (default 16)")
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    if args.count < 1 or args.res < 16 or args.samples < 1:
        p.error("--count and --samples must be at least 1 and --res at least 16")
    if args.threads:
        torch.set_num_threads(args.threads)
    classifier = load_classifier(Path(args.classifier))
    cls_meta = read_json(Path(args.classifier) / "classifier.json", "attribute classifier")
    readable = readable_families(cls_meta)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, pairs = ceiling(classifier, args.count, readable, args.res, args.samples)
    report = {
        "classifier": str(args.classifier),
        "resolution": args.res,
        "samples": args.samples,
        "readable_families": readable,
        "edits": rows,
    }
    write_json_atomic(out / "edit_ceiling.json", report)
    (out / "edit_ceiling.md").write_text(markdown(report))
    if pairs:
        Image.fromarray(grid(pairs, columns=4)).save(out / "edit_ceiling.png")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
