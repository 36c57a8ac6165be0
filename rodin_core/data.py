"""Multi-view avatar records in memory: images, masks, optional depth and cameras (the fitting input).

Reads the generator's format (docs/dataset.md) and any nerfstudio-style folder with RGBA images, so users can
fit their own captures. Every problem names the file and what to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .cameras import Cameras


class DatasetError(ValueError):
    """A data set folder or record that cannot be used, with the reason in the message."""


@dataclass
class AvatarViews:
    """One avatar: RGBA images (V, H, W, 4) uint8, depth (V, H, W) float32 or None, cameras, its id."""

    name: str
    rgba: torch.Tensor
    depth: torch.Tensor | None
    cameras: Cameras
    frontal_index: int = 0


def load_record(folder: str | Path, use_depth: bool = True) -> AvatarViews:
    folder = Path(folder)
    path = folder / "transforms.json"
    if not path.is_file():
        raise DatasetError(
            f"{folder} has no transforms.json: it is not a multi-view record (docs/dataset.md)"
        )
    try:
        transforms = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON ({exc}); re-render or re-export this record") from exc
    try:
        cameras = Cameras.from_transforms(transforms)
    except ValueError as exc:
        raise DatasetError(f"{path}: {exc}") from exc
    images, depths = [], []
    for frame in transforms["frames"]:
        image_path = folder / frame["file_path"]
        try:
            with Image.open(image_path) as im:
                if im.mode != "RGBA":
                    raise DatasetError(
                        f"{image_path} is {im.mode}, not RGBA: fitting needs the alpha channel as the object's "
                        "mask (render with a transparent background)"
                    )
                array = np.asarray(im)
        except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
            if isinstance(exc, DatasetError):
                raise
            raise DatasetError(f"cannot read image {image_path} ({exc}); re-render this record") from exc
        if array.shape[:2] != (cameras.height, cameras.width):
            raise DatasetError(
                f"{image_path} is {array.shape[1]}x{array.shape[0]} but transforms.json says "
                f"{cameras.width}x{cameras.height}"
            )
        images.append(array)
        if use_depth and "depth_file_path" in frame:
            depths.append(np.load(folder / frame["depth_file_path"]).astype(np.float32))
    depth = None
    if use_depth and depths:
        if len(depths) != len(images):
            raise DatasetError(f"{path}: some frames have depth and some do not")
        depth = torch.from_numpy(np.stack(depths))
    return AvatarViews(
        folder.name,
        torch.from_numpy(np.stack(images)),
        depth,
        cameras,
        int(transforms.get("frontal_index", 0)),
    )


def list_records(root: str | Path) -> list[Path]:
    """The complete record folders of a data set (generator format: dataset.json lists them)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data set folder {root} does not exist")
    # Folders are the truth (a record folder only appears once complete); the index must not list missing ones.
    records = sorted(p.parent for p in root.glob("*/transforms.json") if not p.parent.name.startswith("."))
    index_path = root / "dataset.json"
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{index_path} is corrupt ({exc}); re-run the generator to rewrite it"
            ) from exc
        present = {p.name for p in records}
        missing = [r["id"] for r in index.get("records", []) if r["id"] not in present]
        if missing:
            raise DatasetError(
                f"{index_path} lists {len(missing)} records that are missing or incomplete (first: {missing[0]}); "
                "re-run the generator on this folder to finish and re-index it"
            )
    if not records:
        raise DatasetError(f"{root} holds no records (no */transforms.json); render a data set first")
    return records


def rgba_to_target(rgba: torch.Tensor, background: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 straight-alpha RGBA (..., 4) -> colour composited over `background` (..., 3) and alpha (...)."""
    x = rgba.float() / 255.0
    alpha = x[..., 3]
    return x[..., :3] * alpha[..., None] + background * (1.0 - alpha[..., None]), alpha


def read_image_over(path: str | Path, background: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """An image file (a render, a data set's view) as rgba_to_target gives it: (H, W, 3) colour over `background`
    and (H, W) alpha; an image without alpha is opaque."""
    with Image.open(path) as im:
        rgba = torch.from_numpy(np.asarray(im.convert("RGBA")).copy())
    return rgba_to_target(rgba, background)
