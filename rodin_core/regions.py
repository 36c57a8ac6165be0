"""The part of an avatar a local edit may change ("add glasses" touches the eyes, not the shirt), as tri-plane masks.

A point's features are the mean of its samples on the three planes, so a point keeps its original features
exactly only where every plane's mask is 0 at its projections. A plane is therefore edited at (u, v) only where
the whole line through (u, v) along the plane's missing axis lies in the part: a band of heights (eyes, mouth,
torso) is a mask on the XZ and YZ planes, never on the top-down XY plane, whose lines cross every height.
What this costs: a point inside the part still carries its original XY feature, so the change inside is a
little weaker than an unrestricted edit; outside the part nothing changes at all. A part is what its masks
cover: "hair" also covers the back of the bust behind the ears at every height (XY), where long hair falls.

Boxes are in scene-box units (docs/CONVENTIONS.md: Z up, face towards -Y, head centre near (0, 0, 0.15),
eyes near z = 0.2, brows near z = 0.29, shoulders below z = -0.3).
"""

from __future__ import annotations

import torch

from .text import words
from .triplane import PLANE_NAMES

# (u_lo, u_hi, v_lo, v_hi) boxes per plane, None = open; a plane's mask is the union of its boxes.
Box = tuple[float | None, float | None, float | None, float | None]
REGIONS: dict[str, dict[str, list[Box]]] = {
    # glasses: rims around the eyes, temples back to the ears
    "eyes": {"xz": [(None, None, 0.04, 0.37)], "yz": [(None, None, 0.04, 0.37)]},
    # the scalp, hair falling at the back, and headwear; XY only behind the ears, where no face is
    "hair": {
        "xy": [(None, None, 0.10, None)],
        "xz": [(None, None, 0.24, None)],
        "yz": [(None, None, 0.24, None), (0.10, None, -0.5, None)],
    },
    # moustache and beard: the front of the lower face
    "mouth": {"xz": [(None, None, -0.32, 0.12)], "yz": [(None, 0.05, -0.32, 0.12)]},
    # earrings: the sides of the head at ear height
    "ears": {
        "xz": [(None, -0.28, -0.2, 0.2), (0.28, None, -0.2, 0.2)],
        "yz": [(None, None, -0.2, 0.2)],
    },
    # clothing: everything below the neck
    "torso": {"xz": [(None, None, None, -0.3)], "yz": [(None, None, None, -0.3)]},
    # where hair falls beside the face below the "hair" region (a bob, long hair, short hair over the ears).
    # No word names it: it holds the ears too, so only an edit that knows which pixels are hair (the part
    # segmenter's hair-colour repaint, rodin_core.recolour) fits inside it. No XY box: its lines would cross
    # the shoulders, and the shirt changed with the hair (docs/results.md, session 32).
    "hair_sides": {"xz": [(None, -0.28, -0.35, 0.3), (0.28, None, -0.35, 0.3)]},
}

# Words naming a part. Colours and ages name none: "make it red" may mean hair or shirt, so it stays global.
PART_WORDS: dict[str, str] = {
    "glasses": "eyes",
    "hair": "hair",
    "bald": "hair",
    "buzzed": "hair",
    "bob": "hair",
    "bun": "hair",
    "mohawk": "hair",
    "hat": "hair",
    "cap": "hair",
    "beanie": "hair",
    "top": "hair",
    "moustache": "mouth",
    "beard": "mouth",
    "earrings": "ears",
    "stud": "ears",
    "hoop": "ears",
    "shirt": "torso",
    "t-shirt": "torso",
    "collared": "torso",
    "turtleneck": "torso",
}

EDGE = 0.05  # width of the soft border, in scene units (about 1.5 texels at 64), so no seam line is baked in


def parts_named(text: str) -> list[str]:
    """The parts a prompt names, in REGIONS order; empty when it names none (a global edit)."""
    found = {PART_WORDS[w] for w in words(text) if w in PART_WORDS}
    return [name for name in REGIONS if name in found]


def region_masks(parts: list[str], resolution: int) -> torch.Tensor:
    """(3, R, R) masks in [0, 1] (1 = take the edited plane) for the union of the named parts."""
    unknown = [p for p in parts if p not in REGIONS]
    if unknown:
        raise ValueError(f"unknown avatar part(s) {unknown}; known parts: {sorted(REGIONS)}")
    centres = (torch.arange(resolution, dtype=torch.float32) + 0.5) / resolution * 2 - 1
    v, u = torch.meshgrid(centres, centres, indexing="ij")  # rows follow v, columns follow u
    masks = torch.zeros(3, resolution, resolution)
    for part in parts:
        for k, name in enumerate(PLANE_NAMES):
            for box in REGIONS[part].get(name, []):
                masks[k] = torch.maximum(masks[k], _box(u, v, box))
    return masks


def blend_region(original: torch.Tensor, edited: torch.Tensor, parts: list[str]) -> torch.Tensor:
    """`edited` inside the named parts, `original` elsewhere; (B, 3, C, R, R) planes of one resolution."""
    if original.shape != edited.shape:
        raise ValueError(f"tri-planes differ in shape: {tuple(original.shape)} vs {tuple(edited.shape)}")
    if not parts:
        return edited
    m = region_masks(parts, original.shape[-1])[None, :, None].to(original)
    return m * edited + (1 - m) * original


def _box(u: torch.Tensor, v: torch.Tensor, box: Box) -> torch.Tensor:
    out = torch.ones_like(u)
    for coord, lo, hi in ((u, box[0], box[1]), (v, box[2], box[3])):
        if lo is not None:
            out = out * ((coord - lo) / EDGE + 0.5).clamp(0, 1)
        if hi is not None:
            out = out * ((hi - coord) / EDGE + 0.5).clamp(0, 1)
    return out
