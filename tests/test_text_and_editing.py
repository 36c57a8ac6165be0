"""Prompts (tokenizer, vocabulary, unknown words), text conditioning, SDEdit and local editing, interpolation."""

import pytest
import torch
from helpers import random_bundle

from rodin_core import pipeline
from rodin_core.lift import LiftConfig, cameras, lift
from rodin_core.pipeline import AvatarPipeline, GenerationSettings, noise_seed
from rodin_core.recolour import (
    HAIR_LOOKS,
    RecolourConfig,
    hair_and_headwear,
    hair_colour_named,
    own_hair_share,
    painted_look,
    recolour,
    shirt_colour,
)
from rodin_core.regions import blend_region, parts_named, region_masks
from rodin_core.text import TextConfig, TextEncoder, Vocabulary, batch_ids, words
from rodin_core.triplane import sample_features


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    path = random_bundle(tmp_path_factory.mktemp("b") / "m.json", with_upsampler=True, with_text=True)
    return AvatarPipeline.from_bundle(path)


def test_synonyms_fold_and_unknown_words_are_reported():
    vocab = Vocabulary.build(["an old man with grey hair and round glasses"])
    assert words("An elderly GUY, gray hair & spectacles!") == ["an", "old", "man", "grey", "hair", "glasses"]
    ids, unknown = vocab.encode("an elderly man with purple unicorn glasses", max_len=48)
    assert unknown == ["purple", "unicorn"]
    assert len(ids) == 5
    batch, unknowns = batch_ids(vocab, ["old man", "glasses", "zebra"], 48)
    assert batch.shape == (3, 2) and batch[1, 1] == 0 and unknowns[2] == ["zebra"]


def test_text_encoder_maps_onto_the_latent_sphere():
    vocab = Vocabulary.build(["a man with a hat"])
    enc = TextEncoder(TextConfig(z_dim=16, width=32, layers=1, heads=2), len(vocab))
    ids, _ = batch_ids(vocab, ["a man", "a man with a hat"], 48)
    z = enc(ids)
    assert z.shape == (2, 16) and torch.allclose(z.norm(dim=-1), torch.full((2,), 4.0), atol=1e-4)
    assert not torch.allclose(z[0], z[1])


def test_prompts_in_the_pipeline(pipe):
    z, unknown = pipe.encode_text("a young man with glitter glasses")
    assert z.shape == (1, 16) and unknown == ["glitter"]
    with pytest.raises(ValueError, match="none of the words"):
        pipe.encode_text("zebra unicorn")
    with pytest.raises(ValueError, match="not both"):
        pipe.latent(0, image="x.png", text="a man")


def test_a_prompt_samples_with_its_own_guidance_unless_one_is_asked_for(pipe, monkeypatch):
    used = []
    original = pipeline.sample_base

    def recording(unet, schedule, z, resolution, gen, guidance, *args, **kwargs):
        used.append(guidance)
        return original(unet, schedule, z, resolution, gen, guidance, *args, **kwargs)

    monkeypatch.setattr(pipeline, "sample_base", recording)
    quick = {
        "steps": 2,
        "upsampler_steps": 2,
        "mesh_resolution": 32,
        "texture_size": 64,
        "image_guidance": 0.0,
        "threshold": 0.01,  # untrained weights: a low iso-level still gives a surface
    }
    prompted = pipe.generate(3, text="an old man with a hat", **quick)
    free = pipe.generate(3, **quick)
    asked = pipe.generate(3, text="an old man with a hat", guidance=4.5, **quick)
    assert used == [pipeline.PROMPT_GUIDANCE, pipeline.DEFAULT_GUIDANCE, 4.5]
    assert pipeline.PROMPT_GUIDANCE != pipeline.DEFAULT_GUIDANCE
    # the avatar records the number it was sampled with, so regenerating it samples the same way
    assert [a.metadata["settings"]["guidance"] for a in (prompted, free, asked)] == used


def test_interpolation_ends_reproduce_the_two_avatars(pipe):
    settings = GenerationSettings(steps=3, upsampler_steps=2)
    strip = pipe.interpolate(4, 9, 3, settings)
    assert len(strip) == 3
    assert torch.allclose(strip[0], pipe.sample_planes(4, pipe.latent(4), settings), atol=1e-5)
    assert torch.allclose(strip[-1], pipe.sample_planes(9, pipe.latent(9), settings), atol=1e-5)
    assert not torch.allclose(strip[1], strip[0]) and not torch.allclose(strip[1], strip[2])
    with pytest.raises(ValueError, match="at least 2"):
        pipe.interpolate(1, 2, 1)


def test_edit_strength_must_be_in_range(pipe):
    # How much strength changes is a property of a trained model: tests/test_shipped_model.py checks it.
    planes = pipe.sample_planes(5, pipe.latent(5), GenerationSettings(steps=2, upsampler_steps=2))
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="strength"):
            pipe.edit_planes(planes, pipe.latent(5), 5, strength=bad)


def test_prompts_name_the_parts_they_change():
    assert parts_named("add round glasses") == ["eyes"]
    assert parts_named("make the hair blond and add a beard") == ["hair", "mouth"]
    assert parts_named("a red T-shirt") == ["torso"]
    assert parts_named("make him older") == [] and parts_named("red") == []
    with pytest.raises(ValueError, match="unknown avatar part"):
        region_masks(["tail"], 16)


def _line(z: float, y: float = -0.3) -> torch.Tensor:
    """(1, 9, 3) points across the avatar at height z."""
    xs = torch.linspace(-0.8, 0.8, 9)
    return torch.stack([xs, torch.full_like(xs, y), torch.full_like(xs, z)], -1)[None]


def test_a_local_edit_leaves_every_point_outside_its_part_unchanged():
    torch.manual_seed(0)
    a, b = torch.randn(2, 1, 3, 4, 32, 32).unbind(0)
    blended = blend_region(a, b, ["eyes"])
    for z in (-0.7, -0.1, 0.5, 0.9):  # chest, chin, forehead, crown: outside the eye band
        for y in (-0.5, 0.0, 0.6):
            assert torch.equal(sample_features(blended, _line(z, y)), sample_features(a, _line(z, y)))
    inside = sample_features(blended, _line(0.2))
    assert not torch.allclose(inside, sample_features(a, _line(0.2)))
    assert torch.equal(blend_region(a, b, []), b)  # no part named: the whole avatar changes


def test_own_latent_at_full_strength_gives_the_avatar_back(pipe):
    settings = GenerationSettings(steps=4, upsampler_steps=2)
    z = pipe.latent(5)
    planes = pipe.sample_planes(5, z, settings)
    assert torch.allclose(pipe.edit_planes(planes, z, 5, 1.0, settings), planes, atol=1e-5)


def test_a_prompt_naming_a_part_edits_only_that_part(pipe):
    settings = GenerationSettings(steps=4, upsampler_steps=2)
    seed = noise_seed(6, variation=2)  # a variation: its noise is not its seed's own
    z = pipe.latent(6)
    planes = pipe.generate(
        6, variation=2, steps=4, upsampler_steps=2, mesh_resolution=32, texture_size=64, threshold=0.01
    ).planes
    assert torch.allclose(planes, pipe.sample_planes(seed, z, settings), atol=1e-6)
    local = pipe.edit(planes, z, seed, text="add glasses", settings=settings)
    assert local.parts == ["eyes"] and local.unknown_words == []  # "add" is an instruction, not a description
    assert local.method == "drawn" and local.note is None
    chest = _line(-0.7)
    assert torch.allclose(sample_features(local.planes, chest), sample_features(planes, chest), atol=1e-6)
    assert not torch.allclose(local.planes, planes, atol=1e-3)
    whole = pipe.edit(planes, z, seed, text="add glasses", local=False, settings=settings)
    assert whole.parts == [] and not torch.allclose(
        sample_features(whole.planes, chest), sample_features(planes, chest), atol=1e-3
    )
    assert whole.method == "redrawn" and whole.note is None


def test_a_colour_edit_with_no_hair_to_repaint_is_redrawn_and_says_so(pipe, monkeypatch):
    settings = GenerationSettings(steps=3, upsampler_steps=2)
    z = pipe.latent(3)
    planes = pipe.sample_planes(3, z, settings)
    monkeypatch.setattr(pipeline, "recolour", lambda *args, **kwargs: None)  # what a bald head gives
    redrawn = pipe.edit(planes, z, 3, text="make the hair blond", settings=settings)
    assert redrawn.method == "redrawn" and redrawn.parts == ["hair"]
    assert redrawn.note == pipeline.NO_HAIR_TO_REPAINT and "no hair to repaint" in redrawn.note
    chest = _line(-0.7)  # still a local edit: outside the hair nothing changes
    assert torch.allclose(sample_features(redrawn.planes, chest), sample_features(planes, chest), atol=1e-6)
    shirt = pipe.edit(planes, z, 3, text="a red shirt", settings=settings)  # no colour edit was asked
    assert shirt.method == "redrawn" and shirt.note is None


def test_edit_instructions_add_and_remove(pipe):
    z = pipe.latent(3)
    glasses, _ = pipe.encode_text("glasses")
    direction = glasses - pipe.z_mean
    added, unknown = pipe.edit_latent(z, text="Add some glasses")
    removed, _ = pipe.edit_latent(z, text="remove the glasses")
    assert unknown == ["some"]  # neither a description nor an instruction word: reported
    assert ((added - z) * direction).sum() > 0 > ((removed - z) * direction).sum()
    assert torch.allclose(
        pipe.edit_latent(z, text="make the hair red")[0], pipe.edit_latent(z, text="hair red")[0]
    )
    with pytest.raises(ValueError, match="names nothing to change"):
        pipe.edit_latent(z, text="make it")


def test_interpolation_from_an_edited_avatar_starts_at_the_edit(pipe):
    settings = GenerationSettings(steps=3, upsampler_steps=2)
    z = pipe.latent(4)
    edited = pipe.edit(
        pipe.sample_planes(4, z, settings), z, 4, text="round glasses", settings=settings
    ).planes
    strip = pipe.interpolate(4, 9, 3, settings, planes_a=edited)
    assert torch.allclose(strip[0], edited, atol=1e-5)
    assert torch.allclose(strip[-1], pipe.sample_planes(9, pipe.latent(9), settings), atol=1e-5)
    plain = pipe.interpolate(4, 9, 3, settings)
    assert torch.allclose(strip[1], plain[1] + 0.5 * (edited - plain[0]), atol=1e-5)


def test_prompts_that_only_recolour_the_hair():
    assert hair_colour_named("make the hair blond") == "blond"
    assert hair_colour_named("Dye her hair blonde") == "blond"  # synonyms fold
    assert hair_colour_named("red hair") == "red"
    assert hair_colour_named("make the hair grey") == "grey"
    # anything more, or less, than a hair colour stays a latent edit
    assert hair_colour_named("add glasses") is None
    assert hair_colour_named("make the hair blond and add glasses") is None
    assert hair_colour_named("make the hair long") is None
    assert hair_colour_named("blond") is None  # which part? could be a beard
    assert hair_colour_named("red or blond hair") is None
    assert hair_colour_named("a red shirt") is None


def _head_view(top_rgb, low_rgb, size=8):
    """A view of a head whose upper half (above where hats end) shows top_rgb and lower half low_rgb, all of it
    in the hair region and none of it skin: (rgb, alpha, share, height) and its distance from skin."""
    rgb = torch.empty(size, size, 3)
    rgb[: size // 2], rgb[size // 2 :] = torch.tensor(top_rgb), torch.tensor(low_rgb)
    height = torch.full((size, size), 0.1)
    height[: size // 2] = 0.6
    ones = torch.ones(size, size)
    return (rgb, ones, ones, height), ones


def test_a_hat_is_told_from_the_hair_by_its_colour_not_its_shading():
    brown, red = (0.5, 0.3, 0.2), (0.8, 0.1, 0.1)
    views = [_head_view(red, brown), _head_view(red, brown)]
    own, hat = hair_and_headwear([v for v, _ in views], [n for _, n in views], sides=[1])
    assert torch.allclose(own, torch.tensor(brown)) and torch.allclose(hat, torch.tensor(red))
    hairness = own_hair_share(views[0][0][0], own, hat)
    assert hairness[-1].min() > 0.99 and hairness[0].max() < 0.01  # the hair painted, the hat not
    # the same brown lit brighter at the top of the head is hair, not a hat
    lit = tuple(1.6 * c for c in brown)
    views = [_head_view(lit, brown)] * 2
    own, hat = hair_and_headwear([v for v, _ in views], [n for _, n in views], sides=[1])
    assert torch.allclose(own, torch.tensor(brown)) and hat is None
    # a head showing nothing below the hat line: no own hair colour, so nothing is taken for headwear
    rgb, alpha, share, height = views[0][0]
    bald = [((rgb, alpha, share, torch.full_like(height, 0.6)), views[0][1])]
    assert hair_and_headwear([v for v, _ in bald], [n for _, n in bald], sides=[]) == (None, None)


def test_the_back_of_the_shirt_is_told_from_long_hair():
    brown, green = torch.tensor((0.5, 0.3, 0.2)), torch.tensor((0.2, 0.5, 0.25))
    (rgb, alpha, share, height), _ = _head_view((0.5, 0.3, 0.2), (0.2, 0.5, 0.25))
    height[4:] = -0.8  # the lower half is the chest
    assert torch.allclose(shirt_colour((rgb, alpha, share, height), brown), green)
    # the hair's own hue: not told apart
    assert shirt_colour((rgb, alpha, share, height), green * 1.3) is None
    assert shirt_colour((rgb, alpha, share, height), None) is None
    assert own_hair_share(green[None, None], brown, green).item() < 0.01


def test_the_fit_holds_only_the_pixels_it_is_told_to_keep(pipe):
    """lift draws half its rays where the edit is and half from `keep`: a pixel in neither does not steer the fit,
    a kept one does, and without `keep` every pixel may."""
    planes = pipe.sample_planes(2, pipe.latent(2), GenerationSettings(steps=3, upsampler_steps=2))
    cams = cameras(((0.0, 0.0), (180.0, 0.0)), 8)
    masks = region_masks(["hair"], planes.shape[-1])
    target, alpha = torch.full((2, 8, 8, 3), 0.5), torch.ones(2, 8, 8)
    focus, keep = torch.zeros(2, 8, 8, dtype=torch.bool), torch.zeros(2, 8, 8, dtype=torch.bool)
    focus[0, :3], keep[1, 4:] = True, True
    quick = LiftConfig(steps=3, rays=64)

    def fit(t, kept):
        return lift(pipe.decoder, planes, masks, cams, t, alpha, focus, quick, keep=kept)

    other = target.clone()
    other[1, :4] = 0.0  # pixels neither painted nor kept
    assert torch.equal(fit(target, keep), fit(other, keep))
    assert not torch.equal(fit(target, None), fit(other, None))
    other[1, 4:] = 0.0  # kept pixels
    assert not torch.equal(fit(target, keep), fit(other, keep))


def test_the_painted_look_is_the_measured_one_made_more_saturated():
    assert torch.allclose(painted_look("blond", 1.0), torch.tensor(HAIR_LOOKS["blond"]))
    grey, more = torch.tensor(HAIR_LOOKS["grey"]), painted_look("grey", 1.6)
    assert torch.isclose(more.mean(), grey.mean()) and more.std() > 1.5 * grey.std()
    blond = painted_look("blond", 1.6)
    assert blond.max() <= 1.0 and blond[2] < HAIR_LOOKS["blond"][2]  # yellower: less blue
    with pytest.raises(ValueError, match="impossible recolour settings"):
        RecolourConfig(saturation=0.0).validate()


def test_recolouring_changes_only_the_hair_region(pipe):
    settings = GenerationSettings(steps=3, upsampler_steps=2)
    z = pipe.latent(2)
    planes = pipe.sample_planes(2, z, settings)
    quick = RecolourConfig(size=16, min_pixels=0, fit=LiftConfig(steps=4))
    painted = recolour(pipe.decoder, planes, "blond", config=quick)
    inside = region_masks(["hair"], planes.shape[-1])[None, :, None] > 0
    assert not torch.equal(painted[inside.expand_as(planes)], planes[inside.expand_as(planes)])
    assert torch.equal(painted[~inside.expand_as(planes)], planes[~inside.expand_as(planes)])
    with pytest.raises(ValueError, match="unknown hair colour"):
        recolour(pipe.decoder, planes, "purple", config=quick)
    with pytest.raises(ValueError, match="between 0 and 1"):
        recolour(pipe.decoder, planes, "red", strength=1.5, config=quick)
    with pytest.raises(ValueError, match="front view"):
        recolour(pipe.decoder, planes, "red", config=RecolourConfig(views=((60.0, 0.0),)))
