"""Portrait images for latent conditioning: load, composite over white, centre-crop, resize.

The encoder was trained on the generator's frontal renders (a head and shoulders on a transparent or white
background, centred). Images close to that work best: a frontal portrait, the head in the middle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

MIN_SIZE = 16


def load_portrait(image: str | Path | Image.Image | np.ndarray, size: int) -> torch.Tensor:
    """Any PNG/JPG path, PIL image or (H, W, 3|4) uint8 array -> (3, size, size) RGB in [0, 1] on white."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"conditioning image {path} does not exist")
        try:
            pil = Image.open(path)
            pil.load()
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"{path} is not a readable image (PNG or JPG expected): {exc}") from exc
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ValueError(f"image arrays must be (H, W, 3) or (H, W, 4); got {image.shape}")
        pil = Image.fromarray(image.astype(np.uint8))
    elif isinstance(image, Image.Image):
        pil = image
    else:
        raise TypeError(
            f"unsupported image type {type(image).__name__}; pass a path, a PIL image or an array"
        )
    if min(pil.size) < MIN_SIZE:
        raise ValueError(
            f"the image is {pil.size[0]}x{pil.size[1]} pixels; at least {MIN_SIZE}x{MIN_SIZE} is needed"
        )
    rgba = pil.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    w, h = rgb.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    rgb = rgb.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
