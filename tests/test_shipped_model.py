"""The embedded model as users get it: load, generate on the CPU, check the avatar is plausible."""

import numpy as np
import pytest
import torch
import trimesh

from rodin_core.bundle import DEFAULT_BUNDLE, load_bundle
from rodin_core.pipeline import AvatarPipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def avatar():
    pipe = AvatarPipeline.from_bundle()
    return pipe.generate(seed=7, steps=20, mesh_resolution=96, texture_size=512)


def test_bundle_is_small_and_says_where_it_came_from():
    config, _ = load_bundle()
    assert DEFAULT_BUNDLE.with_suffix(".safetensors").stat().st_size < 50 * 2**20
    assert config["made_by"]["preset"] == "tiny" and config["made_by"]["commit"] != "unknown"
    assert config["text"] is not None  # prompts work with the shipped model


def test_generated_avatar_is_one_head_sized_textured_component(avatar):
    mesh = trimesh.Trimesh(avatar.vertices, avatar.faces, process=True)
    parts = mesh.split(only_watertight=False)
    largest = max(len(p.faces) for p in parts)
    assert largest > 0.9 * len(mesh.faces)  # one main body, no sizeable floaters
    extent = mesh.bounds[1] - mesh.bounds[0]
    assert 0.15 < extent.max() < 0.55  # head and shoulders: 15-55 cm
    assert extent[2] > 0.5 * extent.max()  # standing up (Z is up), not a flat sheet
    assert np.abs(mesh.centroid[:2]).max() < 0.1  # centred in x and y
    texture = avatar.texture.reshape(-1, 3).astype(float)
    assert texture.std(axis=0).mean() > 10  # not flat
    assert avatar.uvs.shape == (len(avatar.faces), 3, 2)
    assert avatar.metadata["seed"] == 7 and avatar.metadata["model"]["preset"] == "tiny"


def test_same_seed_same_avatar():
    pipe = AvatarPipeline.from_bundle()
    a = pipe.sample_planes(3, pipe.latent(3))
    b = pipe.sample_planes(3, pipe.latent(3))
    assert (a == b).all()


def test_edit_strength_sets_how_much_of_the_avatar_changes():
    pipe = AvatarPipeline.from_bundle()
    z = pipe.latent(3)
    planes = pipe.sample_planes(3, z)
    z_new, _ = pipe.edit_latent(z, text="add glasses")

    def change(latent, strength):
        return float((pipe.edit_planes(planes, latent, 3, strength) - planes).abs().mean())

    light, half, full = change(z_new, 0.1), change(z_new, 0.6), change(z_new, 1.0)
    assert light < half < full
    assert change(z, 1.0) < 1e-6  # its own latent and noise: the avatar itself
    assert change(z, 0.6) < half  # re-noising alone changes less than re-noising towards the prompt


@pytest.mark.blender
def test_text_prompts_find_their_avatars_among_held_out_renders(tmp_path):
    """The shipped text encoder against real Blender renders of the avatars it never trained on: each
    held-out caption's latent must be closest to its own avatar's image latent far more often than chance."""
    pytest.importorskip("bpy")
    from blender_scenes.attributes import caption, draw_attributes
    from blender_scenes.avatar_factory import build_avatar, clear_avatar
    from blender_scenes.camera_rig import camera_poses
    from blender_scenes.dataset_writer import record_seed
    from blender_scenes.renderer import ViewRenderer, setup_scene
    from training.pipeline import PRESETS

    pipe = AvatarPipeline.from_bundle()
    indices = [int(name.rsplit("_", 1)[1]) for name in pipe.config["holdout_ids"]]
    renderer = ViewRenderer(setup_scene(64, samples=16, device="cpu"))
    image_z, text_z = [], []
    for index in indices:
        seed = record_seed(PRESETS["tiny"].seed, index)
        attrs = draw_attributes(seed)
        clear_avatar()
        build_avatar(attrs)
        path = tmp_path / f"{index}.png"
        renderer.render(camera_poses(seed, 1)[0], path)
        image_z.append(pipe.encode_image(path)[0])
        z, unknown = pipe.encode_text(caption(attrs))
        assert unknown == []  # captions only use words the model was trained on
        text_z.append(z[0])
    sims = (
        torch.nn.functional.normalize(torch.stack(text_z), dim=1)
        @ torch.nn.functional.normalize(torch.stack(image_z), dim=1).T
    )
    n = len(indices)
    top1 = (sims.argmax(1) == torch.arange(n)).float().mean().item()
    top5 = (sims.topk(5, dim=1).indices == torch.arange(n)[:, None]).any(1).float().mean().item()
    assert top1 >= 3 / n and top5 >= 2 * 5 / n, (top1, top5)
