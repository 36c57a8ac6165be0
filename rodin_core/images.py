"""Portrait images for latent conditioning: load, separate the subject from its background, frame it like the
generator's frontal renders, composite over white, resize.

The encoder and image guidance were trained on, and compare against, the generator's frontal renders: a head and
shoulders on a transparent (read: white) background, the whole silhouette in the frame, its base at the same
height. A user's portrait is brought as close to that as it can be without guessing:

- it is turned upright by its EXIF orientation, and brought to 8 bits a channel.
- its background is the alpha channel where there is one; else, where the image's top and sides are one flat
  colour (a render without transparent film: Blender's grey world, a coloured backdrop; JPEG too), the pixels of
  that colour reached from the border, with the outline's pixels unmixed from it. A photograph's busy background
  is left as it is (documented limit), and `portrait_note` says so.
- a silhouette that lies wholly inside the frame but is framed unlike the renders (zoomed out, off centre) is
  cropped to the renders' framing; one that the frame cuts, or one already framed like the renders, is centre-cropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

MIN_SIZE = 16

# The generator's frontal renders, as fractions of the image side (64 avatars of seed 4001, session 40): the
# silhouette's base (the shoulders, cut by nothing) at 0.945 of the height, centred, and 0.756 high (0.711 to
# 0.82: a tall hat). The base and the height are the steadiest measures: the width varies by 8 %.
RENDER_BASE = 0.9453
RENDER_HEIGHT = 0.7561
RENDER_HEIGHT_RANGE = 0.065
# Silhouettes framed this close to the renders' (base and centre within 2 % of the side, height within the
# renders' range and 2 % more) are left alone, so renders at any resolution pass through as they are.
FRAMING_SLACK = 0.02

# A border (top and sides) is "one flat colour" when this share of its pixels lies within BACKGROUND_TOLERANCE of
# their median (8-bit levels, per channel).
BACKGROUND_SHARE = 0.9
BACKGROUND_TOLERANCE = 14
# The background grows from the border through pixels within the border's own noise, at least 1 level (4 in a
# lossy file), in a lossy file also through the ringing along the outline (LOSSY_RINGING pixels wide, a JPEG
# block, up to RINGING_SHARE of the edge's contrast). The pixels along it, OUTLINE wide, are unmixed from it.
# Chosen on 64 avatars with training.portrait_inputs (session 40).
LOSSY_EXACT = 4
LOSSY_RINGING = 8
RINGING_SHARE = 0.07
OUTLINE = 2
LOSSY_FORMATS = ("JPEG", "MPO", "WEBP")
# Larger images are first brought down to this size on their long side: the encoder reads 64 pixels.
WORKING_SIDE = 1024


@dataclass(frozen=True)
class PortraitSteps:
    """What `prepare_portrait` did to an image, for messages and metadata."""

    background: str  # "alpha", "flat (R, G, B)" or "none"
    reframed: bool
    scale: float  # how much larger the subject appears than in the input (1.0: centre crop only)


def portrait_note(steps: PortraitSteps) -> str | None:
    """What a user should know about how their portrait was read, or None when it was a plain transparent one."""
    said = []
    if steps.background.startswith("flat") and steps.background != "flat (255, 255, 255)":
        said.append(f"its flat background {steps.background[5:]} was read as transparent")
    elif steps.background == "none":
        said.append(
            "it has no transparent or one-colour background, so what is behind the subject stays in the picture "
            "the model reads (portraits work best on a transparent or one-colour background)"
        )
    if steps.reframed:
        said.append(
            f"its subject was reframed like the generator's renders (shown {steps.scale:.2f} times as large)"
        )
    return f"portrait: {'; '.join(said)}" if said else None


def load_portrait(image: str | Path | Image.Image | np.ndarray, size: int) -> torch.Tensor:
    """Any PNG/JPG path, PIL image or (H, W[, 1|3|4]) array -> (3, size, size) RGB in [0, 1] on white."""
    return prepare_portrait(image, size)[0]


def prepare_portrait(
    image: str | Path | Image.Image | np.ndarray,
    size: int,
    find_background: bool = True,
    reframe: bool = True,
) -> tuple[torch.Tensor, PortraitSteps]:
    """`load_portrait`, and what it did: the background it found and whether it reframed the subject. Without
    `find_background` only an alpha channel separates the subject; without `reframe` the image is centre-cropped
    (both off: the loader before session 40)."""
    pil, lossy = _open(image)
    if min(pil.size) < MIN_SIZE:
        raise ValueError(
            f"the image is {pil.size[0]}x{pil.size[1]} pixels; at least {MIN_SIZE}x{MIN_SIZE} is needed"
        )
    pil, shrink = _working_copy(pil)
    rgb, mask, background = _on_white(pil, lossy, find_background, shrink)
    box, scale = _framing(mask) if reframe and mask is not None else (None, 1.0)
    out = _crop_resize(rgb, box or _centre_square(*rgb.size), size)
    pixels = torch.from_numpy(np.asarray(out, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
    # Plain Python numbers: the steps go into the avatar's JSON metadata.
    return pixels, PortraitSteps(background, bool(scale != 1.0), round(float(scale), 4))


def _open(image) -> tuple[Image.Image, bool]:
    """The image, upright and in 8 bits a channel, and whether it was stored lossily (JPEG: its background is
    not flat near the outline)."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"conditioning image {path} does not exist")
        try:
            pil = Image.open(path)
            pil.load()
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"{path} is not a readable image (PNG or JPG expected): {exc}") from exc
        lossy = pil.format in LOSSY_FORMATS
        # A phone's portrait photo is stored on its side with an orientation tag.
        pil = ImageOps.exif_transpose(pil)
    elif isinstance(image, np.ndarray):
        pil, lossy = Image.fromarray(_array_to_uint8(image)), False
    elif isinstance(image, Image.Image):
        pil, lossy = image, image.format in LOSSY_FORMATS
    else:
        raise TypeError(
            f"unsupported image type {type(image).__name__}; pass a path, a PIL image or an array"
        )
    if pil.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: Pillow's own conversion clips at 255 (a white image); scale instead.
        pil = Image.fromarray(_array_to_uint8(np.asarray(pil).clip(0, 65535).astype(np.uint16)))
    return pil, lossy


def _working_copy(pil: Image.Image) -> tuple[Image.Image, float]:
    """The image at most WORKING_SIDE on its long side (Pillow resamples RGBA with premultiplied alpha), and how
    much smaller it is."""
    shrink = max(pil.size) / WORKING_SIDE
    if shrink <= 1:
        return pil, 1.0
    if pil.mode not in ("RGB", "RGBA"):
        pil = pil.convert("RGBA" if _has_alpha(pil) else "RGB")
    size = (max(1, round(pil.width / shrink)), max(1, round(pil.height / shrink)))
    return pil.resize(size, Image.Resampling.LANCZOS), shrink


def _array_to_uint8(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ValueError(f"image arrays must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {array.shape}")
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        if not (np.isfinite(array).all() and low >= 0.0 and high <= 1.0):
            raise ValueError(
                f"float image arrays must hold values in [0, 1]; this one holds {low:g} to {high:g} "
                "(scale it, or pass uint8)"
            )
        return np.round(array * 255.0).astype(np.uint8)
    if array.dtype == np.uint16:
        return np.round(array.astype(np.float64) / 257.0).clip(0, 255).astype(np.uint8)
    raise ValueError(f"image arrays must be uint8, uint16 or float in [0, 1]; got {array.dtype}")


def _has_alpha(pil: Image.Image) -> bool:
    return "A" in pil.getbands() or "transparency" in pil.info


def _on_white(
    pil: Image.Image, lossy: bool, find_background: bool, shrink: float
) -> tuple[Image.Image, np.ndarray | None, str]:
    """The image composited over white, the subject's mask (None where no background was found), and how it was
    found."""
    if _has_alpha(pil):
        rgba = pil.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"))
        if alpha.min() < 250:
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            rgb = Image.alpha_composite(white, rgba).convert("RGB")
            return rgb, alpha >= 128, "alpha"
    rgb = pil.convert("RGB")
    found = _flat_background(np.asarray(rgb), lossy, shrink) if find_background else None
    if found is None:
        return rgb, None, "none"
    pixels, mask, colour = found
    return Image.fromarray(pixels), mask, "flat ({}, {}, {})".format(*colour)


def _flat_background(
    rgb: np.ndarray, lossy: bool, shrink: float
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]] | None:
    """Where the border is one flat colour: the pixels on white, the subject's mask and that colour."""
    pixels = rgb.astype(np.float64)
    edge = _border(pixels.shape)
    # The top and the sides: a portrait's shoulders often leave the frame at the bottom.
    frame = edge.copy()
    frame[-1, 1:-1] = False
    colour = np.median(pixels[frame], axis=0)
    off = np.abs(pixels - colour).max(2)
    if (off[frame] <= BACKGROUND_TOLERANCE).mean() < BACKGROUND_SHARE:
        return None
    # A render's background is flat and its subject is not (shading, sampling noise), so the background grows only
    # through pixels as close to its colour as the border's own noise (Blender's dither, JPEG): a dark shirt on
    # Blender's grey world differs by a few levels.
    flat = off[frame][off[frame] <= BACKGROUND_TOLERANCE]  # without the subject where it reaches the frame
    noise = np.percentile(flat, 99)
    exact = off <= max(LOSSY_EXACT if lossy else 1, noise + 1)
    background = ndimage.binary_propagation(edge & exact, mask=exact)
    if lossy:
        # JPEG rings along the outline, up to a block's width out, by a share of the edge's contrast: beside a face
        # tens of levels, beside a dark shirt on grey a level or two, so the shirt itself is not taken.
        width = max(1, round(LOSSY_RINGING / shrink))
        contrast = ndimage.maximum_filter(off, size=2 * width + 1)
        ringing = off <= np.clip(RINGING_SHARE * contrast, LOSSY_EXACT, None)
        background |= ndimage.binary_dilation(background, iterations=width) & ringing
    outline = ndimage.binary_dilation(background, iterations=max(1, round(OUTLINE / shrink))) & ~background
    # Ringing that strays past the outline leaves specks of near-background colour: they are background too.
    inside = _main_parts(~(background | outline))
    if not inside.any():
        return None
    outline = ~(background | inside)
    # Each outline pixel is a mix of the background and the subject's colour nearest to it (anti-aliasing, JPEG
    # ringing): unmixed, and the subject's share put over white. A dark shirt's edge is the shirt's colour, all
    # subject; ringing beside a face is the background's, none.
    nearest = ndimage.distance_transform_edt(~inside, return_distances=False, return_indices=True)
    near = pixels[nearest[0][outline], nearest[1][outline]] - colour
    mixed = pixels[outline] - colour
    share = np.clip((mixed * near).sum(1) / np.maximum((near * near).sum(1), 1.0), 0.0, 1.0)
    out = pixels.copy()
    out[background] = 255.0
    out[outline] = pixels[outline] + (1.0 - share[:, None]) * (255.0 - colour)
    mask = inside.copy()
    mask[outline] = share >= 0.5
    # A flat image (or a speck on one) is no portrait on a background: leave it as it is.
    if mask.mean() < 0.02:
        return None
    return out.clip(0, 255).round().astype(np.uint8), mask, tuple(int(c) for c in colour)


def _main_parts(mask: np.ndarray) -> np.ndarray:
    """The mask without its specks: parts of less than 2 % of the largest part's area."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    areas = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    return np.isin(labels, 1 + np.flatnonzero(areas >= 0.02 * areas.max()))


def _border(shape: tuple[int, ...]) -> np.ndarray:
    edge = np.zeros(shape[:2], bool)
    edge[[0, -1], :] = True
    edge[:, [0, -1]] = True
    return edge


def _centre_square(w: int, h: int) -> tuple[float, float, float, float]:
    """The largest centred square of a w x h image (left, top, right, bottom)."""
    side = min(w, h)
    return ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)


def _framing(mask: np.ndarray) -> tuple[tuple[float, ...] | None, float]:
    """The square crop (left, top, right, bottom) that frames the silhouette like the renders, and the scale it
    applies; (None, 1.0) where the frame cuts the silhouette or it is framed like the renders already."""
    h, w = mask.shape
    keep = _main_parts(mask)
    if not keep.any():
        return None, 1.0
    ys, xs = np.nonzero(keep)
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    if top == 0 or left == 0 or bottom == h or right == w:
        return None, 1.0
    x0, y0, x1, _ = _centre_square(w, h)
    centre_side = x1 - x0
    like_renders = (
        abs((left + right) / 2 - x0 - centre_side / 2) <= FRAMING_SLACK * centre_side
        and abs(bottom - y0 - RENDER_BASE * centre_side) <= FRAMING_SLACK * centre_side
        and abs((bottom - top) / centre_side - RENDER_HEIGHT) <= RENDER_HEIGHT_RANGE + FRAMING_SLACK
    )
    if like_renders:
        return None, 1.0
    side = (bottom - top) / RENDER_HEIGHT
    cx, y = (left + right) / 2, bottom - RENDER_BASE * side
    return (cx - side / 2, y, cx + side / 2, y + side), centre_side / side


def _crop_resize(rgb: Image.Image, box: tuple[float, ...], size: int) -> Image.Image:
    """The box of `rgb` (it may reach past the image: white there) resized to size x size."""
    w, h = rgb.size
    pad = int(np.ceil(max(0.0, -box[0], -box[1], box[2] - w, box[3] - h)))
    if pad:
        rgb = ImageOps.expand(rgb, border=pad, fill=(255, 255, 255))
        box = tuple(v + pad for v in box)
    return rgb.resize((size, size), Image.Resampling.LANCZOS, box=box)
