"""The portrait model (text latent -> frontal portrait): the image UNet, the fold, training on its codes, and
the pipeline's text path through a drawn portrait."""

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from helpers import random_bundle

from rodin_core.io_utils import prefixed, save_tensors_atomic
from rodin_core.pipeline import (
    DRAWN_PORTRAIT_GAIN,
    PROMPT_GUIDANCE,
    AvatarPipeline,
    GenerationSettings,
    latent_list,
)
from rodin_core.portrait import PortraitConfig, PortraitModel
from rodin_core.sampling import sample_portraits
from rodin_core.schedule import NoiseSchedule
from rodin_core.text import PAD, TextConfig, TextEncoder
from rodin_core.unet import TriplaneUNet, UNetConfig
from training.train_portrait import init_from

TINY = PortraitConfig(
    size=8, unet=UNetConfig(channels=12, base=16, mults=(1, 2), z_dim=4, groups=4, planes=1)
)
WORDY = dataclasses.replace(TINY, vocab_size=8, text=TextConfig(z_dim=4, width=16, layers=1, heads=2))


def test_the_unet_works_on_plain_images_and_tri_planes_keep_their_layers():
    image = TriplaneUNet(UNetConfig(channels=3, base=8, mults=(1, 2), z_dim=4, groups=4, planes=1))
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    out = image(x, torch.tensor([10, 500]), torch.randn(2, 4))
    assert out.shape == x.shape and image.sample_shape(2, 8) == (2, 3, 8, 8)
    out.sum().backward()
    # Pixels talk to their neighbours only through ordinary convolutions: no plane context, one plane.
    assert "down.0.conv1.weight" in image.state_dict() and image.plane_embedding.shape[0] == 1
    triplane = TriplaneUNet(UNetConfig(channels=4, base=8, mults=(1, 2), groups=4))
    assert "down.0.conv1.conv.weight" in triplane.state_dict()  # bundles written before keep loading
    assert triplane.sample_shape(1, 8) == (1, 4, 8, 24)
    with pytest.raises(ValueError, match="planes=3.*planes=1"):
        TriplaneUNet(UNetConfig(planes=2))


def test_fold_is_exactly_undone_and_bad_portraits_are_explained():
    model = PortraitModel(TINY)
    images = torch.rand(3, 3, 8, 8)
    folded = model.fold(images)
    assert folded.shape == (3, 12, 4, 4) and folded.min() >= -1 and folded.max() <= 1
    assert torch.allclose(model.unfold(folded), images, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(B, 3, 8, 8\)"):
        model.fold(torch.rand(3, 3, 16, 16))
    with pytest.raises(ValueError, match="12 channels"):
        PortraitConfig(size=8, fold=2, unet=UNetConfig(channels=3, planes=1)).validate()
    with pytest.raises(ValueError, match="planes must be 1"):
        PortraitConfig(unet=UNetConfig(channels=12)).validate()
    with pytest.raises(ValueError, match="unknown portrait sampler 'euler'"):
        PortraitConfig(sampler="euler").validate()
    with pytest.raises(ValueError, match="at least 1 sampler step"):
        PortraitConfig(steps=0).validate()
    assert PortraitConfig.from_dict(TINY.to_dict()) == TINY
    # Bundles written before the model chose its own sampler load with today's defaults.
    older = {k: v for k, v in TINY.to_dict().items() if k not in ("sampler", "steps")}
    assert PortraitConfig.from_dict(older) == TINY


def two_portraits() -> torch.Tensor:
    """Red above / blue below, and the reverse."""
    top_red = torch.zeros(3, 8, 8)
    top_red[0, :4], top_red[2, 4:] = 1.0, 1.0
    return torch.stack([top_red, top_red.flip(1)])


def train_toy(model: PortraitModel, portraits, codes, ids=None) -> NoiseSchedule:
    """A short training run of `model` on the portraits, each with its code (and token ids); 20 % unconditional."""
    schedule = NoiseSchedule(model.config.schedule)
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(300):
        idx = torch.randint(len(portraits), (16,))
        x0 = model.fold(portraits[idx])
        t = torch.randint(schedule.num_steps, (16,))
        noise = torch.randn_like(x0)
        keep = (torch.rand(16) > 0.2)[:, None]
        words = None if ids is None else ids[idx] * keep
        pred = model(schedule.add_noise(x0, noise, t).float(), t, codes[idx] * keep, words)
        loss = F.mse_loss(pred, schedule.target(x0, noise, t).float())
        optim.zero_grad()
        loss.backward()
        optim.step()
    model.eval()
    return schedule


def assert_each_draws_its_own(drawn: torch.Tensor, portraits: torch.Tensor) -> None:
    assert drawn.shape == (2, 3, 8, 8) and 0 <= drawn.min() and drawn.max() <= 1
    error = (drawn[:, None] - portraits[None]).abs().mean(dim=(2, 3, 4))  # (drawn, portrait)
    assert error[0, 0] < 0.5 * error[0, 1] and error[1, 1] < 0.5 * error[1, 0], error


def test_a_trained_portrait_model_draws_what_its_code_says():
    """Two codes, two portraits: after a short training run each code's samples must look like its own
    portrait, with and without guidance."""
    torch.manual_seed(0)
    model, portraits, codes = PortraitModel(TINY), two_portraits(), torch.eye(4)[:2] * 2
    schedule = train_toy(model, portraits, codes)
    for guidance, sampler in ((1.0, "ddpm"), (3.0, "ddpm"), (3.0, "dpmpp_2m")):
        gen = torch.Generator().manual_seed(1)
        assert_each_draws_its_own(
            sample_portraits(model, schedule, codes, gen, guidance, sampler, 10), portraits
        )


def test_a_word_path_starts_as_the_word_encoder_and_a_row_without_words_keeps_its_code(tmp_path):
    plain = PortraitModel(TINY)
    save_tensors_atomic(tmp_path / "portrait.safetensors", prefixed(plain.state_dict(), "portrait"))
    wordy = PortraitModel(WORDY)
    init_from(wordy, tmp_path)  # a model trained without words gains a word path
    encoder = TextEncoder(WORDY.text, WORDY.vocab_size)
    wordy.words.load_state_dict(encoder.state_dict())  # as training starts it
    ids = torch.tensor([[2, 5, 7], [3, 0, 0], [0, 0, 0]])
    z = torch.cat([encoder(ids[:2]), torch.randn(1, 4)])  # the last code read by another encoder
    x, t = torch.randn(3, 12, 4, 4), torch.tensor([5, 300, 900])
    # It first reads exactly the codes it replaces: the model draws what it drew before.
    assert torch.allclose(wordy.condition(z, ids), z, atol=1e-6)
    assert torch.allclose(wordy(x, t, z, ids), plain(x, t, z), atol=1e-5)
    torch.nn.init.normal_(wordy.words.head.weight)  # trained on
    code = wordy.condition(z, ids)
    assert torch.isfinite(code).all() and not torch.allclose(code[:2], z[:2], atol=1e-3)
    # No words (the sentence model's prompts, classifier-free guidance's empty branch): the code itself.
    assert torch.equal(code[2], z[2]) and torch.equal(wordy.condition(z, None), z)
    assert torch.equal(wordy.condition(torch.zeros(2, 4), torch.full((2, 3), PAD)), torch.zeros(2, 4))

    assert PortraitConfig.from_dict(WORDY.to_dict()) == WORDY
    with pytest.raises(ValueError, match="word path's codes"):
        dataclasses.replace(WORDY, text=TextConfig(z_dim=8)).validate()
    with pytest.raises(SystemExit, match="no portrait.safetensors"):
        init_from(wordy, tmp_path / "elsewhere")
    save_tensors_atomic(
        tmp_path / "x" / "portrait.safetensors", prefixed(plain.unet.state_dict(), "portrait")
    )
    with pytest.raises(SystemExit, match="not a portrait model of this shape"):
        init_from(PortraitModel(TINY), tmp_path / "x")


def test_the_word_path_learns_what_the_latent_code_does_not_say():
    """One latent code for two portraits that only the prompts' words tell apart: the word path must learn to
    draw each prompt's own portrait."""
    torch.manual_seed(0)
    model, portraits = PortraitModel(WORDY), two_portraits()
    codes, ids = torch.ones(2, 4), torch.tensor([[2, 4], [3, 4]])
    schedule = train_toy(model, portraits, codes, ids)
    gen = torch.Generator().manual_seed(1)
    assert_each_draws_its_own(
        sample_portraits(model, schedule, codes, gen, 3.0, "ddpm", 10, ids=ids), portraits
    )


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    path = random_bundle(
        tmp_path_factory.mktemp("p") / "m.json", with_text=True, with_portrait=True, portrait_words=True
    )
    return AvatarPipeline.from_bundle(path)


def test_a_prompt_is_steered_by_the_portrait_drawn_for_it(pipe):
    settings = dict(steps=3, mesh_resolution=32, texture_size=64, max_faces=None, threshold=0.05)
    avatar = pipe.generate(seed=5, text="a young man with round glasses", **settings)
    assert avatar.metadata["portrait"] == "drawn" and avatar.portrait.shape == (3, 16, 16)
    z = pipe.encode_text("a young man with round glasses")[0]
    assert torch.equal(avatar.portrait, pipe.draw_portrait(5, z, text="a young man with round glasses"))
    # The portrait model reads the prompt's words besides its latent code.
    assert pipe.portrait_words("a young man with round glasses").shape == (1, 6)
    assert not torch.equal(avatar.portrait, pipe.draw_portrait(5, z))
    z, portrait, unknown = pipe.text_conditioning(
        5, "a young man with round glasses", GenerationSettings(steps=3)
    )
    assert torch.equal(portrait, avatar.portrait) and unknown == []
    # The avatar is conditioned on the drawn portrait as on a user's: its code is the encoder's reading of it,
    # and the portrait pulls DRAWN_PORTRAIT_GAIN times as hard as the strength asked.
    assert torch.equal(z, pipe.encode_pixels(portrait))
    assert avatar.metadata["latent"] == latent_list(z)
    assert avatar.metadata["image_guidance_strength"] == DRAWN_PORTRAIT_GAIN
    # It is sampled at a prompt's own classifier-free guidance, which sample_planes is given explicitly.
    prompted = GenerationSettings(steps=3, guidance=PROMPT_GUIDANCE)
    assert avatar.metadata["settings"]["guidance"] == PROMPT_GUIDANCE
    assert torch.equal(pipe.sample_planes(5, z, prompted, image=portrait, drawn=True), avatar.planes)
    # The portrait steers: the same prompt without image guidance is a different avatar, with no portrait,
    # conditioned on the prompt's own code.
    plain = pipe.generate(seed=5, text="a young man with round glasses", image_guidance=0.0, **settings)
    assert plain.metadata["portrait"] is None and plain.portrait is None
    assert plain.metadata["latent"] == latent_list(pipe.encode_text("a young man with round glasses")[0])
    assert plain.metadata["image_guidance_strength"] == 0.0
    assert not torch.equal(plain.planes, avatar.planes)
    # A variation keeps the seed's portrait (the identity) and draws new diffusion noise.
    other = pipe.generate(seed=5, text="a young man with round glasses", variation=1, **settings)
    assert torch.equal(other.portrait, avatar.portrait) and not torch.equal(other.planes, avatar.planes)
    # Another seed, another portrait.
    assert not torch.equal(pipe.text_conditioning(6, "a young man with round glasses")[1], avatar.portrait)


def test_without_a_portrait_model_text_goes_through_the_latent_alone(tmp_path):
    plain = AvatarPipeline.from_bundle(random_bundle(tmp_path / "m.json", with_text=True))
    assert plain.portrait_words("a woman wearing a cap") is None
    assert plain.text_conditioning(1, "a woman wearing a cap", GenerationSettings(steps=2))[1] is None
    with pytest.raises(ValueError, match="no portrait model.*--portrait"):
        plain.draw_portrait(1, torch.zeros(1, 16))


def test_a_prompt_edit_is_pulled_towards_the_avatars_front_redrawn_with_the_change(pipe):
    settings = GenerationSettings(steps=4)
    z = pipe.latent(3)
    planes = pipe.sample_planes(3, z, settings)
    front = pipe.render(planes, (0.0,), size=16, refine=False)[0].permute(2, 0, 1)
    # A light redraw keeps the avatar's own front; a full one draws the prompt's portrait from scratch.
    light = pipe.edit_portrait(planes, z, 3, 0.05)
    full = pipe.edit_portrait(planes, z, 3, 1.0)
    assert light.shape == full.shape == (3, 16, 16)
    assert (light - front).abs().mean() < 0.5 * (full - front).abs().mean()
    with pytest.raises(ValueError, match=r"strength must be in \(0, 1\]"):
        pipe.edit_portrait(planes, z, 3, 0.0)

    edit = pipe.edit(
        planes, z, 3, text="add round glasses", settings=settings, portrait_strength=0.6, drawn_edits=False
    )
    assert edit.portrait.shape == (3, 16, 16) and edit.parts == ["eyes"]
    z_new = pipe.edit_latent(z, text="add round glasses")[0]
    assert torch.equal(edit.portrait, pipe.edit_portrait(planes, z_new, 3, 0.6, ["eyes"]))
    # Without image guidance the edit is the latent code's alone, as before there was a portrait model; so is a
    # prompt edit by default (no portrait_strength), image guidance or not.
    plain = pipe.edit(
        planes, z, 3, text="add round glasses", settings=GenerationSettings(steps=4, image_guidance=0)
    )
    assert plain.portrait is None and not torch.equal(plain.planes, edit.planes)
    default = pipe.edit(planes, z, 3, text="add round glasses", settings=settings)
    assert default.portrait is None and torch.equal(default.planes, plain.planes)


def test_a_local_redraw_changes_only_the_pixels_where_its_part_shows(pipe):
    z = pipe.latent(4)
    planes = pipe.sample_planes(4, z, GenerationSettings(steps=3))
    front = pipe.render(planes, (0.0,), size=16, refine=False)[0].permute(2, 0, 1)
    hair = pipe.part_mask(planes, ["hair"], 16)[0, 0]
    torso = pipe.part_mask(planes, ["torso"], 16)[0, 0]
    assert hair.shape == torso.shape == (16, 16) and 0 <= hair.min() and hair.max() <= 1
    # The scalp shows at the top of the frontal view, the shirt at the bottom (rows run downwards).
    assert hair[:6].mean() > 0.3 > hair[10:].mean() and torso[12:].mean() > 0.3 > torso[:8].mean()
    redrawn = pipe.edit_portrait(planes, pipe.edit_latent(z, text="make the hair blond")[0], 4, 1.0, ["hair"])
    # Each pixel moves at most as far as the mask lets it (exactly kept where the part does not show at all).
    assert ((redrawn - front).abs() <= 2 * hair + 1e-5).all()
    moved = (redrawn - front).abs().mean(dim=0)
    assert (hair == 0).sum() > 20 and moved[hair > 0.5 * hair.max()].mean() > 5 * moved[hair < 0.01].mean()


def test_a_portrait_model_that_reads_another_vocabulary_is_refused(tmp_path):
    path = random_bundle(tmp_path / "m.json", with_text=True, with_portrait=True, portrait_words=True)
    config = json.loads(path.read_text())
    config["portrait"]["config"]["vocab_size"] += 1
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="vocabulary of .* tokens, the bundle's word encoder has"):
        AvatarPipeline.from_bundle(path)
