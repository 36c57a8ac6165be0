"""Upsampler condition augmentation and the perceptual-loss loader."""

import pytest
import torch
from helpers import SMALL_ENCODER

from rodin_core.encoder import ImageEncoder
from rodin_core.perceptual import PerceptualLoss, VGG16Features, load_vgg16
from rodin_core.upsampler import ConditionAugment, augment_condition, gaussian_blur, make_condition


def smooth_planes(b=4, c=3, r=32):
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, r), torch.linspace(-1, 1, r), indexing="ij")
    base = torch.sin(3 * xx) * torch.cos(2 * yy)
    return base.expand(b, 3, c, r, r).clone()


def test_condition_is_bilinear_upsampling():
    low = torch.randn(2, 3, 4, 16, 16)
    assert make_condition(low, 32).shape == (2, 3, 4, 32, 32)


def test_augmentation_keeps_shape_and_mean_and_only_degrades():
    cond = smooth_planes()
    gen = torch.Generator().manual_seed(0)
    out = augment_condition(cond, ConditionAugment(), gen)
    assert out.shape == cond.shape
    assert abs(out.mean() - cond.mean()) < 0.02  # no bias: blur, rescale and zero-mean noise
    off = ConditionAugment(rescale_prob=0, blur_prob=0, noise_prob=0)
    assert torch.equal(augment_condition(cond, off, gen), cond)
    noisy = augment_condition(
        cond, ConditionAugment(rescale_prob=0, blur_prob=0, noise_prob=1, max_noise_std=0.2), gen
    )
    residual_std = (noisy - cond).std(dim=(1, 2, 3, 4))
    assert torch.all(residual_std <= 0.2 * 1.05) and residual_std.max() > 0.02


def test_blur_preserves_constants_and_lowers_high_frequencies():
    const = torch.full((2, 3, 2, 16, 16), 0.7)
    assert torch.allclose(gaussian_blur(const, torch.tensor([1.0, 2.0])), const, atol=1e-6)
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None]) % 2 * 2.0 - 1.0
    planes = checker.expand(2, 3, 2, 16, 16).clone()
    blurred = gaussian_blur(planes, torch.tensor([0.0, 1.5]))
    assert torch.allclose(blurred[0], planes[0], atol=1e-3)  # sigma 0: unchanged
    assert blurred[1][..., 5:-5, 5:-5].abs().max() < 0.05  # away from the replicated border


def test_perceptual_loader_explains_wrong_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_vgg16(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        load_vgg16(tmp_path / "junk.pth")
    torch.save({"classifier.0.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not torchvision's VGG16"):
        load_vgg16(tmp_path / "other.pth")
    state = {f"features.{k}": v for k, v in VGG16Features().features.state_dict().items()}
    state["features.0.weight"] = torch.zeros(8, 3, 3, 3)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match="shape"):
        load_vgg16(tmp_path / "shape.pth")


def test_vgg_file_with_the_right_layout_loads_and_says_so(tmp_path):
    # Random weights in torchvision's layout: this checks the loader, not any pretrained quality.
    state = {f"features.{k}": v for k, v in VGG16Features().features.state_dict().items()}
    torch.save(state, tmp_path / "vgg16.pth")
    loss = PerceptualLoss(tmp_path / "vgg16.pth")
    assert "VGG16 from" in loss.describe()
    x = torch.rand(1, 3, 32, 32)
    assert loss(x, x).item() == 0.0


def test_fallback_is_the_project_encoder_and_is_named_as_such():
    loss = PerceptualLoss(None, ImageEncoder(SMALL_ENCODER))
    assert "project's image encoder" in loss.describe() and "not an ImageNet network" in loss.describe()
    a, b = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    assert loss(a, b).item() > 0 and loss(a, a).item() == 0.0
    with pytest.raises(ValueError, match="needs VGG16 weights"):
        PerceptualLoss(None, None)
