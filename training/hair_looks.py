"""How each hair colour looks in the decoder's renders: the table colour edits paint with (rodin_core.recolour).

For every fitted avatar with hair and no headwear, the mean colour of the crown of its frontal render (the
hair above the forehead, `rodin_core.recolour.crown`), averaged per hair colour. A decoder trained anew renders
colours its own way; measure its fit with this and put the table in `HAIR_LOOKS`.

It also measures how the recolour tells a hat from hair (`rodin_core.recolour.find_headwear`, threshold
`HEADWEAR_APART`) on every fitted avatar with hair: the hats it finds and the bare heads it takes for hats.

    python -m training.hair_looks --fit runs/tiny/refit --data runs/tiny/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from rodin_core.cameras import Cameras
from rodin_core.io_utils import read_json
from rodin_core.preview import render_image
from rodin_core.recolour import HAIR_LOOKS, HEADWEAR_APART, crown, find_headwear, part_share
from training.common import count_hats, hats_line
from training.fit_report import load_fitted

SIZE = 64


def hair_looks(fitted: tuple, data: Path) -> dict[str, dict]:
    """{colour: {"rgb": mean crown colour, "spread": its std over avatars, "avatars": count}} over a fit
    (`load_fitted`'s result)."""
    meta, planes, decoder = fitted
    cams = Cameras.orbit((0.0,), 0.0, SIZE)
    means: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for i, name in enumerate(meta["ids"]):
            a = read_json(data / name / "attributes.json", "avatar attributes")["attributes"]
            if a["headwear"] != "none" or a["hair_style"] == "bald":
                continue
            p = planes[i : i + 1].float()
            hair = crown(part_share(decoder, p, ["hair"], cams, 0))
            if hair.sum() == 0:
                continue
            means.setdefault(a["hair_color"], []).append(
                render_image(p[0], decoder, cams, 0)["rgb"][hair].mean(0)
            )
    return {
        colour: {
            "rgb": [round(float(x), 3) for x in torch.stack(m).mean(0)],
            "spread": [round(float(x), 3) for x in torch.stack(m).std(0)] if len(m) > 1 else None,
            "avatars": len(m),
        }
        for colour, m in sorted(means.items())
    }


def headwear_found(fitted: tuple, data: Path, limit: int | None = None) -> dict:
    """How find_headwear tells hats from hair on the fit's (`load_fitted`'s result) avatars with hair, in
    `count_hats`' format, with `by_kind`: per headwear kind ("none" included), the avatars and how many were
    taken for wearing headwear. `limit`: the first so many avatars."""
    meta, planes, decoder = fitted
    heads, by_kind = [], {}
    for i, name in enumerate(meta["ids"][:limit]):
        a = read_json(data / name / "attributes.json", "avatar attributes")["attributes"]
        if a["hair_style"] == "bald":
            continue
        found = find_headwear(decoder, planes[i : i + 1])[1] is not None
        heads.append((a["headwear"] != "none", found))
        row = by_kind.setdefault(a["headwear"], {"avatars": 0, "found": 0})
        row["avatars"] += 1
        row["found"] += found
    return {**count_hats(heads), "by_kind": by_kind}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.hair_looks", description=__doc__.splitlines()[0])
    p.add_argument("--fit", required=True, help="a fit run (training.fit_triplanes) or its fitted/ folder")
    p.add_argument("--data", required=True, help="the data set it fitted (each avatar's attributes.json)")
    p.add_argument("--threads", type=int)
    p.add_argument(
        "--headwear", action="store_true", help="also measure how the recolour tells hats from hair"
    )
    p.add_argument("--limit", type=int, help="--headwear on the first so many avatars only")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    fitted = load_fitted(Path(args.fit))
    looks = hair_looks(fitted, Path(args.data))
    if not looks:
        raise SystemExit(f"error: no avatar of {args.fit} has hair and no headwear; nothing to measure")
    for colour, look in looks.items():
        shipped = HAIR_LOOKS.get(colour)
        print(
            f"{colour:6} {look['avatars']:3} avatars  rgb {look['rgb']}  spread {look['spread']}  shipped {shipped}"
        )
    missing = sorted(set(HAIR_LOOKS) - set(looks))
    if missing:
        print(f"not measured (no such avatar): {', '.join(missing)}")
    if args.headwear:
        found = headwear_found(fitted, Path(args.data), args.limit)
        print(f"headwear told from hair at HEADWEAR_APART = {HEADWEAR_APART}: {hats_line(found)}")
        for kind, row in sorted(found["by_kind"].items()):
            what = "taken for a hat" if kind == "none" else "found"
            print(
                f"  {kind:8} {row['avatars']:3} avatars  {what}: {row['found']} ({row['found'] / row['avatars']:.0%})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
