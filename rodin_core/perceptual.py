"""Perceptual features for the upsampler's rendering loss.

VGG16 cannot be downloaded here. When the user has torchvision's VGG16 weights on disk
(`vgg16-397923af.pth`, the file torchvision downloads into ~/.cache/torch/hub/checkpoints/), pass its path:
the first four blocks of `features` are loaded into the same architecture defined below. Otherwise the
project's own image encoder (trained with the base model) provides the features. Whichever is used is
reported by `describe()` and logged by the training script; nothing pretends to be a pretrained VGG.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .encoder import ImageEncoder

# torchvision's vgg16 `features` up to relu4_3: (out channels, or "M" for max-pool)
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512)
VGG_TAPS = (3, 8, 15, 22)  # indices of relu1_2, relu2_2, relu3_3, relu4_3 in the sequence


class VGG16Features(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for spec in VGG16_LAYERS:
            if spec == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, spec, 3, padding=1), nn.ReLU(inplace=False)]
                cin = spec
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        h = (images - self.mean) / self.std
        taps = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in VGG_TAPS:
                taps.append(h)
        return taps


def load_vgg16(path: str | Path) -> VGG16Features:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VGG16 weights {path} not found (expected torchvision's vgg16-397923af.pth)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same explanation
        raise ValueError(f"{path} is not a readable PyTorch weights file: {exc}") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    model = VGG16Features()
    wanted = model.features.state_dict()
    picked = {k: state.get(f"features.{k}") for k in wanted}
    missing = [k for k, v in picked.items() if v is None]
    if missing:
        raise ValueError(
            f"{path} is not torchvision's VGG16: it lacks features.{missing[0]} (and {len(missing) - 1} more). "
            "Pass vgg16-397923af.pth, or leave the option out to use the project's own image encoder."
        )
    bad = [k for k, v in picked.items() if tuple(v.shape) != tuple(wanted[k].shape)]
    if bad:
        raise ValueError(f"{path}: features.{bad[0]} has shape {tuple(picked[bad[0]].shape)}, not VGG16's")
    model.features.load_state_dict(picked)
    return model.eval().requires_grad_(False)


class PerceptualLoss(nn.Module):
    """Mean L1 distance between feature maps of two image batches (B, 3, H, W) in [0, 1]."""

    def __init__(self, vgg_path: str | Path | None = None, encoder: ImageEncoder | None = None) -> None:
        super().__init__()
        if vgg_path:
            self.net = load_vgg16(vgg_path)
            self.kind = f"VGG16 from {vgg_path}"
        elif encoder is not None:
            self.net = encoder.eval().requires_grad_(False)
            self.kind = "the project's image encoder (no VGG16 weights given; not an ImageNet network)"
        else:
            raise ValueError("a perceptual loss needs VGG16 weights or the project's trained image encoder")

    def describe(self) -> str:
        return self.kind

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        if isinstance(self.net, VGG16Features):
            return self.net(images)
        taps, h = [], images * 2 - 1
        for layer in self.net.features:
            h = layer(h)
            if isinstance(layer, nn.SiLU):
                taps.append(h)
        return taps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if isinstance(self.net, ImageEncoder) and pred.shape[-1] < 32:
            pred, target = (
                F.interpolate(x, size=32, mode="bilinear", align_corners=False) for x in (pred, target)
            )
        return sum(F.l1_loss(a, b) for a, b in zip(self.features(pred), self.features(target)))
