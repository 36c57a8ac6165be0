"""Rendering whole images of tri-planes through the decoder, and tiling images into grids."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .cameras import Cameras
from .decoder import TriplaneDecoder
from .rendering import FieldFn, SamplingConfig, render_rays
from .triplane import sample_features

PREVIEW_SAMPLING = SamplingConfig(uniform=48, importance=48)


@torch.no_grad()
def render_image(
    planes: torch.Tensor,
    decoder: TriplaneDecoder,
    cameras: Cameras,
    view: int,
    sampling: SamplingConfig = PREVIEW_SAMPLING,
    background: Sequence[float] = (1.0, 1.0, 1.0),
    chunk: int = 4096,
) -> dict[str, torch.Tensor]:
    """One view of one tri-plane (3, C, R, R): {"rgb": (H, W, 3), "alpha": (H, W)}."""
    batch = planes[None].float()

    def field_fn(points, ray_dirs):
        return decoder(sample_features(batch, points), ray_dirs)

    return render_field(field_fn, cameras, view, sampling, background, chunk)


@torch.no_grad()
def render_field(
    field_fn: FieldFn,
    cameras: Cameras,
    view: int,
    sampling: SamplingConfig = PREVIEW_SAMPLING,
    background: Sequence[float] = (1.0, 1.0, 1.0),
    chunk: int = 4096,
    extra: int = 0,
) -> dict[str, torch.Tensor]:
    """One view of one scene's field_fn(points, dirs) -> (sigma, rgb), in chunks of rays: {"rgb", "alpha"}.
    With `extra` the field returns 3 + extra channels: the colour, then what else an edit reads where the colour
    is (a part's share, a height, a distance), composited over 0 into "extra" (H, W, extra) in the same pass."""
    h, w = cameras.height, cameras.width
    bg = torch.cat([torch.tensor(background, dtype=torch.float32), torch.zeros(extra)])
    channels, alphas = [], []
    for start in range(0, h * w, chunk):
        pixel = torch.arange(start, min(start + chunk, h * w))
        o, d, _ = cameras.rays(torch.full_like(pixel, view), pixel)
        out = render_rays(field_fn, o[None], d[None], sampling, bg, jitter=False)
        channels.append(out["rgb"][0])
        alphas.append(out["alpha"][0])
    image = torch.cat(channels).reshape(h, w, 3 + extra)
    out = {"rgb": image[..., :3], "alpha": torch.cat(alphas).reshape(h, w)}
    if extra:
        out["extra"] = image[..., 3:]
    return out


def to_uint8(image: torch.Tensor) -> np.ndarray:
    return image.detach().clamp(0, 1).mul(255).round().byte().cpu().numpy()


def grid(tiles: Sequence[torch.Tensor], columns: int, pad: int = 2) -> np.ndarray:
    """(H, W, 3) float images in [0, 1] -> one uint8 grid image, row-major, white padding. Tiles of another size
    than the first are scaled to it (bilinear)."""
    if not tiles:
        raise ValueError("no images to tile")
    h, w, _ = tiles[0].shape
    tiles = [
        t
        if t.shape[:2] == (h, w)
        else torch.nn.functional.interpolate(t.permute(2, 0, 1)[None], size=(h, w), mode="bilinear")[0]
        .permute(1, 2, 0)
        .clamp(0, 1)
        for t in tiles
    ]
    rows = (len(tiles) + columns - 1) // columns
    canvas = torch.ones(rows * (h + pad) + pad, columns * (w + pad) + pad, 3)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        canvas[
            pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w
        ] = tile
    return to_uint8(canvas)
