"""AvatarPipeline and the weights bundle: loading, validation, determinism, cancel, conditioning inputs."""

import json
import threading

import numpy as np
import pytest
import torch
from helpers import random_bundle
from PIL import Image

from rodin_core.bundle import BundleError, load_bundle
from rodin_core.images import load_portrait
from rodin_core.pipeline import (
    DRAWN_PORTRAIT_GAIN,
    AvatarPipeline,
    GenerationCancelled,
    GenerationSettings,
    guidance_strength,
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return random_bundle(tmp_path_factory.mktemp("bundle") / "model.json", with_upsampler=True)


def test_bundle_errors_name_the_problem(tmp_path, bundle):
    with pytest.raises(BundleError, match="not found"):
        load_bundle(tmp_path / "missing.json")
    (tmp_path / "wrong.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(BundleError, match="not a Rodin weights bundle"):
        load_bundle(tmp_path / "wrong.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(BundleError):
        load_bundle(tmp_path / "broken.json")
    # Right format, weights missing beside it.
    (tmp_path / "orphan.json").write_text(bundle.read_text())
    with pytest.raises(BundleError, match="missing"):
        load_bundle(tmp_path / "orphan.json")
    # Weights that do not match the config: a different UNet width.
    config = json.loads(bundle.read_text())
    config["base"]["unet"]["base"] = 32
    (tmp_path / "mismatch.json").write_text(json.dumps(config))
    (tmp_path / "mismatch.safetensors").write_bytes(bundle.with_suffix(".safetensors").read_bytes())
    with pytest.raises(BundleError, match="do not fit"):
        AvatarPipeline.from_bundle(tmp_path / "mismatch.json")
    (tmp_path / "garbage.json").write_text(bundle.read_text())
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(BundleError):
        load_bundle(tmp_path / "garbage.json")


def test_sampling_is_deterministic_per_seed(bundle):
    pipe = AvatarPipeline.from_bundle(bundle)
    settings = GenerationSettings(steps=3, upsampler_steps=2)
    a = pipe.sample_planes(5, pipe.latent(5), settings)
    b = pipe.sample_planes(5, pipe.latent(5), settings)
    c = pipe.sample_planes(6, pipe.latent(6), settings)
    assert a.shape == (1, 3, 8, 32, 32)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_cancel_stops_within_one_step(bundle):
    pipe = AvatarPipeline.from_bundle(bundle)
    cancel = threading.Event()
    seen = []

    def progress(stage, done, total):
        seen.append((stage, done))
        if stage == "base diffusion" and done == 2:
            cancel.set()

    with pytest.raises(GenerationCancelled):
        pipe.generate(seed=1, steps=10, progress=progress, cancel=cancel)
    assert [s for s in seen if s[0] == "base diffusion"][-1] == ("base diffusion", 2)


def test_bad_settings_are_refused(bundle):
    pipe = AvatarPipeline.from_bundle(bundle)
    for kwargs, message in [
        ({"steps": 0}, "steps"),
        ({"sampler": "euler"}, "sampler"),
        ({"guidance": -1.0}, "guidance"),
        ({"mesh_resolution": 4}, "mesh resolution"),
        ({"texture_size": 10}, "texture size"),
    ]:
        with pytest.raises(ValueError, match=message):
            pipe.generate(seed=0, **kwargs)
    with pytest.raises(ValueError, match="no text encoder"):
        pipe.generate(seed=0, text="a man with a hat")


def test_portraits_of_any_size_and_mode(tmp_path):
    rgba = np.zeros((90, 60, 4), np.uint8)
    rgba[30:60, 20:40] = (255, 0, 0, 255)
    Image.fromarray(rgba).save(tmp_path / "p.png")
    x = load_portrait(tmp_path / "p.png", 64)
    assert x.shape == (3, 64, 64)
    assert x[:, 0, 0].tolist() == [1.0, 1.0, 1.0]  # transparent -> white
    assert x[0, 32, 32] == 1.0 and x[1, 32, 32] == 0.0  # the red square, centred after the crop
    Image.fromarray(rgba[..., :3]).convert("L").save(tmp_path / "g.jpg")
    assert load_portrait(tmp_path / "g.jpg", 32).shape == (3, 32, 32)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        load_portrait(tmp_path / "bad.png", 64)
    with pytest.raises(FileNotFoundError):
        load_portrait(tmp_path / "none.png", 64)
    with pytest.raises(ValueError, match="at least"):
        load_portrait(np.zeros((8, 8, 3), np.uint8), 64)


def test_image_conditioning_changes_the_latent(bundle, tmp_path):
    pipe = AvatarPipeline.from_bundle(bundle)
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((64, 64, 3), np.uint8)
    blue[..., 2] = 255
    za, zb = pipe.encode_image(red), pipe.encode_image(blue)
    assert za.shape == (1, 16)
    assert not torch.allclose(za, zb)


def test_image_guidance_pulls_the_sample_towards_the_portrait(tmp_path):
    from rodin_core.cameras import Cameras
    from rodin_core.preview import render_image
    from rodin_core.view_guidance import ViewGuidanceConfig

    # No upsampler: the planes are the guided ones. A low iso-level: the untrained field is faint.
    pipe = AvatarPipeline.from_bundle(random_bundle(tmp_path / "plain.json", threshold=0.3))
    portrait = np.full((64, 64, 3), 255, np.uint8)
    portrait[20:64, 16:48] = (200, 40, 40)  # a red bust on white
    pixels = load_portrait(portrait, 64)
    z = pipe.encode_image(portrait)
    cams = Cameras.orbit([0.0], 0.0, 64)

    def error(planes):
        return (render_image(planes[0], pipe.decoder, cams, 0)["rgb"] - pixels.permute(1, 2, 0)).pow(2).mean()

    settings = GenerationSettings(steps=4)
    plain = pipe.sample_planes(3, z, settings)
    off = pipe.sample_planes(3, z, GenerationSettings(steps=4, image_guidance=0.0), image=pixels)
    guided = pipe.sample_planes(3, z, settings, image=pixels)
    assert torch.equal(off, plain)  # strength 0: the latent code alone
    assert torch.equal(pipe.sample_planes(3, z, settings, image=pixels), guided)  # one seed, one avatar
    pipe.view_guidance = ViewGuidanceConfig(latent_iterations=0)
    x0_only = pipe.sample_planes(3, z, settings, image=pixels)
    pipe.view_guidance = ViewGuidanceConfig()
    assert not torch.equal(x0_only, guided)  # the latent code is steered too
    assert error(x0_only) < error(plain)
    # An untrained decoder barely responds to its planes, so only the direction is checked here;
    # test_view_guidance and the shipped-model test measure how far the guidance moves a render.
    assert error(guided) < error(plain)
    avatar = pipe.generate(seed=3, image=portrait, steps=4, mesh_resolution=32)
    assert avatar.metadata["settings"]["image_guidance"] == 1.0
    assert avatar.metadata["image_guidance_strength"] == 1.0  # a user's portrait: the strength asked
    assert torch.equal(avatar.planes, guided)  # generate() guides with the portrait it encodes
    # How the portrait was read is recorded; a white background needs no word to the user.
    read = {"background": "flat (255, 255, 255)", "reframed": False, "scale": 1.0, "note": None}
    assert avatar.metadata["portrait_read"] == read
    grey = portrait.copy()
    grey[:20] = grey[:, :16] = grey[:, 48:] = 63  # the bust on Blender's grey world
    said = pipe.generate(seed=3, image=grey, steps=2, mesh_resolution=32).metadata["portrait_read"]
    assert said["background"] == "flat (63, 63, 63)" and "read as transparent" in said["note"]
    assert pipe.generate(seed=3, steps=2, mesh_resolution=32).metadata["portrait_read"] is None
    small = np.full((64, 64, 3), 63, np.uint8)
    small[30:50, 24:40] = (200, 40, 40)  # a small bust wholly inside the frame: reframed
    metadata = pipe.generate(seed=3, image=small, steps=2, mesh_resolution=32).metadata
    assert metadata["portrait_read"]["reframed"] and "reframed" in metadata["portrait_read"]["note"]
    assert json.loads(json.dumps(metadata))["portrait_read"] == metadata["portrait_read"]
    # A drawn portrait (a prompt's) is pulled towards harder, within the guidance's limit.
    assert guidance_strength(settings, drawn=True) == DRAWN_PORTRAIT_GAIN > 1.0
    assert guidance_strength(GenerationSettings(image_guidance=9.0), drawn=True) == 10.0
    assert guidance_strength(GenerationSettings(image_guidance=0.0), drawn=True) == 0.0
    assert not torch.equal(pipe.sample_planes(3, z, settings, image=pixels, drawn=True), guided)
    with pytest.raises(ValueError, match="between 0 and 10"):
        GenerationSettings(image_guidance=-0.5).validate()


def test_cli_explains_bad_input(bundle, tmp_path, capsys):
    from rodin_core.cli import build_parser, main

    assert main(["generate", "--weights", str(tmp_path / "none.json")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["generate", "--weights", str(bundle), "--steps", "0"]) == 2
    assert "steps must be between" in capsys.readouterr().err
    assert (
        main(["generate", "--weights", str(bundle), "--image", str(tmp_path / "no.png"), "--steps", "2"]) == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert main(["info", "--weights", str(bundle)]) == 0
    assert "parameters" in capsys.readouterr().out
    help_text = build_parser().format_help()
    assert "rodin generate --seed 7" in help_text and "metres" in help_text


def test_build_addon_refuses_a_missing_bundle(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "build_addon", Path(__file__).parent.parent / "build_addon.py"
    )
    build_addon = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_addon)
    with pytest.raises(build_addon.BuildError, match="not found"):
        build_addon.build_core_wheel(tmp_path, tmp_path / "missing.json", tmp_path)
    with pytest.raises(build_addon.BuildError, match="no wheel for torch"):
        build_addon.collect_dependencies(tmp_path, "windows-x64", tmp_path)
    assert (
        build_addon.main(
            [
                "--platform",
                "linux-x64",
                "--weights",
                str(tmp_path / "x.json"),
                "--wheels-from",
                str(tmp_path),
                "--out",
                str(tmp_path / "dist"),
            ]
        )
        == 1
    )
    assert "error:" in capsys.readouterr().err
