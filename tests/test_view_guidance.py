"""View guidance: pulling tri-plane samples towards the view they are conditioned on."""

import pytest
import torch

from rodin_core.cameras import Cameras
from rodin_core.decoder import DecoderConfig, TriplaneDecoder
from rodin_core.preview import render_image
from rodin_core.triplane import denormalize, normalize, resample, roll_in, roll_out
from rodin_core.view_guidance import ViewGuidance, ViewGuidanceConfig

SIZE, BASE, FINAL, C = 24, 8, 16, 8


def setup(seed=0, **config):
    torch.manual_seed(seed)
    decoder = TriplaneDecoder(DecoderConfig(channels=C, density_bias=0.0))
    mean, std = torch.zeros(C), torch.full((C,), 0.3)
    cams = Cameras.orbit([0.0], 0.0, SIZE)
    target_planes = resample(torch.randn(1, 3, C, BASE, BASE) * 0.3, FINAL)
    image = render_image(target_planes[0], decoder, cams, 0)["rgb"]
    guide = ViewGuidance(
        image, cams, decoder, mean, std, FINAL, torch.Generator().manual_seed(1), ViewGuidanceConfig(**config)
    )
    x0 = roll_out(normalize(torch.randn(1, 3, C, BASE, BASE) * 0.3, mean, std))
    return guide, decoder, image, x0, cams, (mean, std)


def frontal_error(x0, decoder, image, cams, stats):
    planes = resample(denormalize(roll_in(x0), *stats), FINAL)
    return (render_image(planes[0], decoder, cams, 0)["rgb"] - image).pow(2).mean().item()


def test_guidance_brings_the_render_closer_to_the_image_and_leaves_the_decoder_alone():
    guide, decoder, image, x0, cams, stats = setup(iterations=10, rays=SIZE * SIZE, learning_rate=0.1)
    before = {k: v.clone() for k, v in decoder.state_dict().items()}
    corrected = guide(x0, 500)
    assert corrected.shape == x0.shape and not corrected.requires_grad
    assert frontal_error(corrected, decoder, image, cams, stats) < 0.6 * frontal_error(
        x0, decoder, image, cams, stats
    )
    assert all(torch.equal(before[k], v) for k, v in decoder.state_dict().items())
    assert all(p.grad is None for p in decoder.parameters())


def test_guidance_is_deterministic_and_strength_zero_is_off():
    a = setup(rays=64)
    b = setup(rays=64)
    assert torch.equal(a[0](a[3], 100), b[0](b[3], 100))  # same generator seed, same pixels, same result
    off = setup(strength=0.0)
    assert torch.equal(off[0](off[3], 100), off[3])


def test_guidance_explains_bad_input():
    guide, decoder, image, x0, cams, stats = setup()
    with pytest.raises(ValueError, match="one sample at a time"):
        guide(torch.cat([x0, x0]), 10)
    with pytest.raises(ValueError, match="must be"):
        ViewGuidance(image[:8], cams, decoder, *stats, FINAL, torch.Generator())
    with pytest.raises(ValueError, match="between 0 and 10"):
        ViewGuidanceConfig(strength=-1.0).validate()
