"""Prompts (tokenizer, vocabulary, unknown words), text conditioning, SDEdit editing and interpolation."""

import pytest
import torch
from helpers import random_bundle

from rodin_core.pipeline import AvatarPipeline, GenerationSettings
from rodin_core.text import TextConfig, TextEncoder, Vocabulary, batch_ids, words


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


def test_interpolation_ends_reproduce_the_two_avatars(pipe):
    settings = GenerationSettings(steps=3, upsampler_steps=2)
    strip = pipe.interpolate(4, 9, 3, settings)
    assert len(strip) == 3
    assert torch.allclose(strip[0], pipe.sample_planes(4, pipe.latent(4), settings), atol=1e-5)
    assert torch.allclose(strip[-1], pipe.sample_planes(9, pipe.latent(9), settings), atol=1e-5)
    assert not torch.allclose(strip[1], strip[0]) and not torch.allclose(strip[1], strip[2])
    with pytest.raises(ValueError, match="at least 2"):
        pipe.interpolate(1, 2, 1)


def test_edit_strength_controls_how_much_changes(pipe):
    settings = GenerationSettings(steps=10, upsampler_steps=2)
    planes = pipe.sample_planes(5, pipe.latent(5), settings)
    z_new, _ = pipe.edit_latent(pipe.latent(5), text="round glasses")
    light = pipe.edit_planes(planes, z_new, 5, strength=0.05, settings=settings)
    heavy = pipe.edit_planes(planes, z_new, 5, strength=0.9, settings=settings)
    assert (light - planes).abs().mean() < (heavy - planes).abs().mean()
    with pytest.raises(ValueError, match="strength"):
        pipe.edit_planes(planes, z_new, 5, strength=0.0)
