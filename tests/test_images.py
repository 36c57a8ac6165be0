"""Portraits read like the generator's renders (rodin_core.images): backgrounds, framing, files and arrays."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from rodin_core.images import (
    RENDER_BASE,
    RENDER_HEIGHT,
    load_portrait,
    portrait_note,
    prepare_portrait,
)

SIDE = 128
GREY_WORLD = (63, 63, 63)


def bust(side: int = SIDE, shirt=(70, 70, 70)) -> Image.Image:
    """A render-like RGBA bust: a shaded head over a dome of shoulders, framed as the generator frames its
    renders (base at RENDER_BASE, RENDER_HEIGHT high), on a transparent background. The shirt is a dark grey a
    few levels off Blender's grey world, with the sampling noise a render has."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:side, 0:side] / side
    base, top = RENDER_BASE, RENDER_BASE - RENDER_HEIGHT
    shoulders = ((x - 0.5) / 0.34) ** 2 + ((y - base) / 0.25) ** 2 <= 1
    shoulders &= y < base
    head_r = 0.17
    head = (x - 0.5) ** 2 + (y - top - head_r) ** 2 <= head_r**2
    rgba = np.zeros((side, side, 4), np.float64)
    rgba[shoulders, :3] = shirt
    rgba[head, :3] = (225, 180, 150)
    rgba[head, :3] *= 1.1 - 0.4 * (x[head, None] - 0.33)  # shading across the face
    rgba[head & (np.abs(x - 0.44) < 0.02) & (np.abs(y - top - 0.15) < 0.02), :3] = (30, 60, 160)  # an eye
    subject = shoulders | head
    rgba[subject, :3] += rng.normal(0, 3, (subject.sum(), 3))
    rgba[subject, 3] = 255
    return Image.fromarray(rgba.clip(0, 255).round().astype(np.uint8), "RGBA")


def on(rgba: Image.Image, colour) -> Image.Image:
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (*colour, 255)), rgba).convert("RGB")


def jpeg(rgb: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=90)
    return Image.open(io.BytesIO(buffer.getvalue()))


def zoomed_out(rgba: Image.Image, k: float = 0.6) -> Image.Image:
    small = rgba.resize((round(rgba.width * k), round(rgba.height * k)), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (round(rgba.width * 1.5), rgba.height), (0, 0, 0, 0))
    canvas.paste(small, (round(rgba.width * 0.25), round(rgba.height * 0.1)))
    return canvas


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10((a - b).pow(2).mean()))


def test_a_render_passes_through_as_the_centre_crop():
    render = bust()
    pixels, steps = prepare_portrait(render, 64)
    plain, _ = prepare_portrait(render, 64, find_background=False, reframe=False)
    assert steps.background == "alpha" and not steps.reframed
    assert torch.equal(pixels, plain)
    assert portrait_note(steps) is None


@pytest.mark.parametrize(
    "make, colour",
    [
        (lambda im: on(im, GREY_WORLD), (63, 63, 63)),
        (lambda im: jpeg(on(im, GREY_WORLD)), (63, 63, 63)),
        (lambda im: jpeg(on(im, (90, 140, 200))), (90, 140, 200)),
    ],
    ids=["grey world", "grey world JPEG", "blue backdrop JPEG"],
)
def test_a_flat_background_reads_as_transparent(make, colour):
    render = bust()
    reference = load_portrait(render, 64)
    pixels, steps = prepare_portrait(make(render), 64)
    found = tuple(int(v) for v in steps.background[6:-1].split(", "))
    assert np.abs(np.subtract(found, colour)).max() <= 2, steps.background
    assert not steps.reframed
    assert psnr(pixels, reference) > 25
    # The loader before: the backdrop stays in the picture.
    before, _ = prepare_portrait(make(render), 64, find_background=False, reframe=False)
    assert psnr(before, reference) < 15
    # The dark shirt, a few levels off the grey world, is kept: its middle is not turned white.
    assert pixels[:, 56, 32].max() < 0.4
    assert "read as transparent" in portrait_note(steps)


def test_a_dithered_background_is_still_flat():
    rgb = np.asarray(on(bust(), GREY_WORLD)).astype(np.int16)
    noise = np.random.default_rng(1).integers(-1, 2, rgb.shape)
    pixels, steps = prepare_portrait((rgb + noise).clip(0, 255).astype(np.uint8), 64)
    assert steps.background.startswith("flat")
    assert psnr(pixels, load_portrait(bust(), 64)) > 25


def test_a_zoomed_out_subject_is_reframed_like_the_renders():
    render = bust()
    reference = load_portrait(render, 64)
    for image in (zoomed_out(render), jpeg(on(zoomed_out(render), GREY_WORLD))):
        pixels, steps = prepare_portrait(image, 64)
        assert steps.reframed and abs(steps.scale - 1 / 0.6) < 0.1, steps
        assert psnr(pixels, reference) > 22
        before, _ = prepare_portrait(image, 64, find_background=False, reframe=False)
        assert psnr(pixels, reference) > psnr(before, reference) + 5
    steps = prepare_portrait(zoomed_out(render), 64)[1]
    assert "reframed" in portrait_note(steps)
    assert json.loads(json.dumps(steps.__dict__)) == steps.__dict__  # it goes into the avatar's metadata


def test_a_subject_cut_by_the_frame_is_centre_cropped():
    cut = bust().crop((30, 10, SIDE - 30, SIDE - 20))  # the shoulders leave the frame
    pixels, steps = prepare_portrait(cut, 64)
    assert steps.background == "alpha" and not steps.reframed
    assert torch.equal(pixels, prepare_portrait(cut, 64, reframe=False)[0])


def test_a_busy_background_is_left_and_said():
    rgb = np.asarray(on(bust(), (0, 0, 0))).copy()
    noise = np.random.default_rng(2).integers(0, 256, rgb.shape, dtype=np.uint8)
    alpha = np.asarray(bust())[..., 3:] > 0
    photo = np.where(alpha, rgb, noise)
    pixels, steps = prepare_portrait(photo, 64)
    assert steps.background == "none" and not steps.reframed
    assert torch.equal(pixels, prepare_portrait(photo, 64, find_background=False, reframe=False)[0])
    assert "no transparent or one-colour background" in portrait_note(steps)


def test_flat_images_are_not_taken_for_a_background():
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 255
    pixels, steps = prepare_portrait(red, 32)
    assert steps.background == "none"
    assert pixels[0].min() == 1.0 and pixels[1:].max() == 0.0


def test_a_phone_photo_is_turned_upright(tmp_path):
    upright = on(bust(), GREY_WORLD)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a phone stores a portrait shot
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    stored.save(tmp_path / "phone.jpg", quality=95, exif=exif)
    pixels = load_portrait(tmp_path / "phone.jpg", 64)
    assert psnr(pixels, load_portrait(bust(), 64)) > 25


def test_arrays_and_bit_depths(tmp_path):
    rgb = np.asarray(on(bust(), (255, 255, 255)))
    reference = load_portrait(rgb, 64)
    assert torch.allclose(load_portrait(rgb / 255.0, 64), reference, atol=1 / 255)
    assert torch.allclose(load_portrait(rgb.astype(np.uint16) * 257, 64), reference, atol=1 / 255)
    grey = rgb.mean(2).round().astype(np.uint8)
    assert load_portrait(grey, 64).shape == (3, 64, 64)
    assert torch.equal(load_portrait(grey[..., None], 64), load_portrait(grey, 64))
    # A 16-bit greyscale PNG is scaled to 8 bits, not clipped to white.
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    assert torch.allclose(load_portrait(tmp_path / "grey16.png", 64), load_portrait(grey, 64), atol=1 / 255)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        load_portrait(rgb.astype(np.float32), 64)
    with pytest.raises(ValueError, match="uint8, uint16 or float"):
        load_portrait(rgb.astype(np.int64), 64)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        load_portrait(np.zeros((64, 64, 2), np.uint8), 64)


@pytest.mark.blender
@pytest.mark.slow
def test_real_renders_off_their_film_read_like_the_renders(tmp_path):
    """The generator's own renders turned into what a user brings (grey world, a JPEG backdrop, zoomed out),
    read by the embedded model's image path: close to the renders, and far closer than the centre crop."""
    pytest.importorskip("bpy")
    from blender_scenes import generate_dataset
    from training import portrait_inputs

    data, out = tmp_path / "data", tmp_path / "report.json"
    args = ["--out", str(data), "--count", "4", "--seed", "11", "--views", "1", "--res", "128", "--quiet"]
    assert generate_dataset.main(args) == 0
    assert portrait_inputs.main(["--data", str(data), "--out", str(out), "--threads", "2"]) == 0
    report = json.loads(out.read_text())
    assert report["avatars"] == 4
    for variant in portrait_inputs.VARIANTS:
        before, now = report[variant]["centre crop (before)"], report[variant]["load_portrait"]
        if variant == "render (RGBA)":
            assert now == before and now["psnr"] == portrait_inputs.IDENTICAL
            continue
        assert now["psnr"] > before["psnr"] + 5, variant
        assert now["psnr"] > 18 and now["cosine"] > 0.85, (variant, now)
