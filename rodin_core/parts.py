"""Which part of the avatar each pixel of a render shows: a small segmenter learned from the generator's labels.

Edits that paint a part (a hair colour) must know which pixels are the part: colour rules cannot tell a cap of
the hair's hue from hair, or side hair from the blurred face beside it. The data generator knows each pixel's
object (blender_scenes.part_labels casts the camera's rays against the avatar's parts), so a segmenter is
trained on renders of the fitted training avatars at those views against those labels
(`python -m training.train_parts`). It reads what a render gives besides the colour: the opacity and the scene
point each pixel shows (the depth-composited position), which tells a crown from a forehead better than colour.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

# The generator's parts, as labelled by blender_scenes.part_labels; index = class.
PART_CLASSES = (
    "background",
    "skin",
    "eyes",
    "hair",
    "brows",
    "facial_hair",
    "glasses",
    "headwear",
    "shirt",
    "earrings",
)
INPUT_CHANNELS = 7  # rgb, alpha, the surface point (x, y, z)


@dataclass(frozen=True)
class PartsConfig:
    width: int = 32  # channels of the first level; the second has twice as many

    def to_dict(self) -> dict:
        return asdict(self)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
        nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
    )  # fmt: skip


class PartSegmenter(nn.Module):
    """A two-level U-Net: (B, 7, H, W) render channels -> (B, len(PART_CLASSES), H, W) logits. H and W even."""

    def __init__(self, config: PartsConfig = PartsConfig()) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.enc1 = _block(INPUT_CHANNELS, w)
        self.enc2 = _block(w, 2 * w)
        self.mid = _block(2 * w, 2 * w)
        self.dec2 = _block(4 * w, w)
        self.dec1 = _block(2 * w, w)
        self.out = nn.Conv2d(w, len(PART_CLASSES), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != INPUT_CHANNELS or x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(
                f"the part segmenter reads (B, {INPUT_CHANNELS}, H, W) with H and W multiples of 4; got "
                f"{tuple(x.shape)}"
            )
        e1 = self.enc1(x)
        e2 = self.enc2(F.avg_pool2d(e1, 2))
        m = self.mid(F.avg_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(m, scale_factor=2.0), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0), e1], 1))
        return self.out(d1)


def render_channels(rgb: torch.Tensor, alpha: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    """The segmenter's input (7, H, W) from one view's (H, W, 3) colour over white, (H, W) opacity and (H, W, 3)
    surface point (meaningless where nothing shows, so zeroed there)."""
    point = point * (alpha[..., None] > 0.05)
    return torch.cat([rgb, alpha[..., None], point], -1).permute(2, 0, 1)


@torch.no_grad()
def part_probabilities(model: PartSegmenter, channels: torch.Tensor) -> torch.Tensor:
    """(V, len(PART_CLASSES), H, W) probabilities for (V, 7, H, W) render channels."""
    return model(channels).softmax(1)


def share_of(probabilities: torch.Tensor, parts: tuple[str, ...]) -> torch.Tensor:
    """(V, H, W): the probability that each pixel shows one of `parts` (names of PART_CLASSES)."""
    unknown = [p for p in parts if p not in PART_CLASSES]
    if unknown:
        raise ValueError(f"unknown part(s) {unknown}; the segmenter knows {', '.join(PART_CLASSES)}")
    return probabilities[:, [PART_CLASSES.index(p) for p in parts]].sum(1)
