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


def test_latent_steering_moves_the_code_towards_one_the_model_renders_as_the_view():
    guide, decoder, image, x0, cams, stats = setup(rays=SIZE * SIZE, latent_iterations=3, learning_rate=0.1)
    # A stand-in for "the UNet's clean estimate under code z": a fixed smooth map from z to tri-planes, with
    # the view rendered from one code z_true; the steering starts from another code and must move towards it.
    torch.manual_seed(5)
    z_dim = 16
    lift = torch.randn(x0.numel(), z_dim) * 0.3
    model = torch.nn.Linear(z_dim, x0.numel(), bias=False)
    model.weight.data.copy_(lift)

    def predict_x0(z):
        return model(z).reshape(x0.shape)

    z_true = torch.nn.functional.normalize(torch.randn(1, z_dim), dim=-1) * z_dim**0.5
    guide.target = render_image(
        resample(denormalize(roll_in(predict_x0(z_true).detach()), *stats), FINAL)[0], decoder, cams, 0
    )["rgb"].reshape(-1, 3)
    z0 = torch.nn.functional.normalize(torch.randn(1, z_dim), dim=-1) * z_dim**0.5
    z = z0
    for _ in range(10):  # one call per sampler step, each continuing from the code the last one returned
        z = guide.steer_latent(z, predict_x0)
    target = guide.target.reshape(SIZE, SIZE, 3)
    with torch.no_grad():
        assert frontal_error(predict_x0(z), decoder, target, cams, stats) < 0.7 * frontal_error(
            predict_x0(z0), decoder, target, cams, stats
        )
    assert torch.allclose(z.norm(), z0.norm())  # kept on the encoder's sphere
    assert not z.requires_grad
    assert all(p.grad is None for p in [*decoder.parameters(), *model.parameters()])
    for off in (setup(latent_iterations=0)[0], setup(strength=0.0)[0]):
        assert off.steer_latent(z0, predict_x0) is z0


def test_guidance_explains_bad_input():
    guide, decoder, image, x0, cams, stats = setup()
    with pytest.raises(ValueError, match="one sample at a time"):
        guide(torch.cat([x0, x0]), 10)
    with pytest.raises(ValueError, match="must be"):
        ViewGuidance(image[:8], cams, decoder, *stats, FINAL, torch.Generator())
    with pytest.raises(ValueError, match="between 0 and 10"):
        ViewGuidanceConfig(strength=-1.0).validate()
    with pytest.raises(ValueError, match="latent iterations"):
        ViewGuidanceConfig(latent_iterations=-1).validate()
    with pytest.raises(ValueError, match="one sample at a time"):
        guide.steer_latent(torch.zeros(2, 4), lambda z: x0)
