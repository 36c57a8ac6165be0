"""The glasses edit: which prompts it takes, the frame's geometry, how it is drawn, and what it may change."""

import math
from dataclasses import replace

import pytest
import torch
from helpers import random_bundle

from rodin_core.cameras import Cameras
from rodin_core.glasses import (
    EYE_HEIGHT,
    EYE_SIDE,
    RIM_TUBE,
    GlassesConfig,
    add_glasses,
    frame_coverage,
    frame_masks,
    frame_tubes,
    glasses_named,
    glasses_stated,
    tube_hits,
)
from rodin_core.lift import LiftConfig
from rodin_core.pipeline import AvatarPipeline, GenerationSettings
from rodin_core.regions import region_masks
from rodin_core.samplers import GenerationCancelled


def test_prompts_that_only_add_glasses():
    assert glasses_named("add glasses") == "round"  # plain glasses: the generator's round frame
    assert glasses_named("Give her square glasses") == "square"
    assert glasses_named("put on a pair of round glasses") == "round"
    assert glasses_named("round glasses") == "round"
    # anything else stays a latent edit
    assert glasses_named("remove the glasses") is None
    assert glasses_named("take off the glasses") is None
    assert glasses_named("add glasses and a hat") is None
    assert glasses_named("add sunglasses") is None
    assert glasses_named("round or square glasses") is None
    assert glasses_named("make the hair blond") is None


def test_descriptions_that_give_glasses():
    assert glasses_stated("an old man with round glasses and a cap") == "round"
    assert glasses_stated("a woman with short black hair, square glasses and stud earrings") == "square"
    assert (
        glasses_stated("a young man in spectacles") == "round"
    )  # plain glasses: the generator's round frame
    # none given, or said to be absent
    assert glasses_stated("an old man with a grey beard and a cap") is None
    assert glasses_stated("a woman without glasses") is None
    assert glasses_stated("a man with no glasses and a hat") is None
    assert glasses_stated("a bald man, not wearing glasses") is None
    assert glasses_stated("a man without a hat, with square glasses") == "square"  # the negation is the hat's


def test_the_frame_sits_where_the_generator_puts_it():
    ends, radii = frame_tubes("round", -0.45)
    assert ends.shape[1:] == (2, 3) and len(ends) == len(radii)
    rims = ends[radii == RIM_TUBE].reshape(-1, 3)
    for side in (-1, 1):
        rim = rims[rims[:, 0] * side > 0]
        centre = rim.mean(0)
        assert abs(centre[0] - side * EYE_SIDE) < 0.01 and abs(centre[2] - EYE_HEIGHT) < 0.01
        assert torch.allclose(rim[:, 1], torch.full_like(rim[:, 1], -0.45))  # the rims' plane
        assert torch.allclose((rim[:, [0, 2]] - centre[[0, 2]]).norm(dim=1), torch.tensor(0.085), atol=1e-4)
    square, _ = frame_tubes("square", -0.45)
    assert len(square) == len(ends) - 2 * (24 - 4)  # four sides per rim instead of 24
    with pytest.raises(ValueError, match="unknown kind of glasses"):
        frame_tubes("aviator", -0.45)


def test_a_ray_meets_a_tube_where_it_crosses_it():
    ends = torch.tensor([[[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])  # a tube along x through the origin
    radii = torch.tensor([0.05])
    origins = torch.tensor([[0.3, -2.0, 0.0], [0.3, -2.0, 0.04], [0.3, -2.0, 0.06], [1.5, -2.0, 0.0]])
    dirs = torch.tensor([[0.0, 1.0, 0.0]] * 4)
    hits = tube_hits(origins, dirs, ends, radii)
    assert hits[0] == pytest.approx(2.0) and hits[1] == pytest.approx(2.0)
    assert math.isinf(hits[2]) and math.isinf(hits[3])  # passes above it; passes beyond its end


def test_the_frame_is_hidden_behind_a_nearer_surface():
    cams = Cameras.orbit((0.0,), 0.0, 32)
    ends, radii = frame_tubes("round", -0.45)
    open_view = torch.full((32, 32), math.inf)
    seen = frame_coverage(cams, 0, ends, radii, open_view, supersample=4)
    assert 0 < seen.max() <= 1 and seen.sum() > 3
    # a wall in front of the rims hides them; one behind them does not
    assert frame_coverage(cams, 0, ends, radii, torch.full((32, 32), 2.0), supersample=4).sum() == 0
    assert torch.equal(frame_coverage(cams, 0, ends, radii, torch.full((32, 32), 3.5), supersample=4), seen)


def test_the_frame_changes_only_planes_near_it_inside_the_eyes_region():
    ends, radii = frame_tubes("round", -0.45)
    masks = frame_masks(ends, radii, 64, margin=0.04)
    assert masks[0].sum() == 0  # the top-down plane: its lines cross every height
    assert masks[1].sum() > 0 and masks[2].sum() > 0
    assert torch.all(masks <= region_masks(["eyes"], 64))
    # the lenses' middle is not the frame
    centre = (torch.tensor([EYE_SIDE, EYE_HEIGHT]) + 1) / 2 * 64
    assert masks[1, int(centre[1]), int(centre[0])] == 0


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    path = random_bundle(tmp_path_factory.mktemp("b") / "m.json", with_upsampler=True, with_text=True)
    return AvatarPipeline.from_bundle(path)


def test_adding_glasses_changes_only_the_planes_near_the_frame(pipe, monkeypatch):
    settings = GenerationSettings(steps=3, upsampler_steps=2)
    z = pipe.latent(3)
    planes = pipe.sample_planes(3, z, settings)
    quick = GlassesConfig(views=((0.0, 0.0), (30.0, 0.0)), size=16, supersample=2, fit=LiftConfig(steps=3))
    framed = add_glasses(pipe.decoder, planes, "square", config=quick)
    assert not torch.equal(framed, planes)
    outside = region_masks(["eyes"], planes.shape[-1])[None, :, None].expand_as(planes) == 0
    assert torch.equal(framed[outside], planes[outside])
    # on the front-facing plane, only around the rims, the bridge and the temples (their depth does not matter)
    ends, radii = frame_tubes("square", -0.45)
    away = frame_masks(ends, radii, planes.shape[-1], quick.margin)[1] == 0
    assert torch.equal(framed[0, 1][:, away], planes[0, 1][:, away])
    # AvatarPipeline.edit draws it for a prompt that only adds glasses, with the latent code unchanged
    calls = []

    def quick_glasses(decoder, planes, kind, strength=1.0, progress=None, cancel=None):
        calls.append((kind, strength))
        return add_glasses(decoder, planes, kind, strength, quick, progress, cancel)

    monkeypatch.setattr("rodin_core.pipeline.add_glasses", quick_glasses)
    edit = pipe.edit(planes, z, 3, text="add square glasses", settings=settings, strength=0.5)
    assert calls == [("square", 0.5)] and edit.parts == ["eyes"] and torch.equal(edit.latent, z)
    assert torch.equal(edit.planes[outside], planes[outside])
    pipe.edit(planes, z, 3, text="add glasses", settings=settings, drawn_edits=False)
    assert len(calls) == 1  # drawn_edits=False: the latent edit
    with pytest.raises(ValueError, match="between 0 and 1"):
        add_glasses(pipe.decoder, planes, strength=2.0, config=quick)
    with pytest.raises(ValueError, match="impossible glasses settings"):
        add_glasses(pipe.decoder, planes, config=GlassesConfig(size=4))


def test_a_prompt_that_gives_glasses_gets_them_drawn_on(pipe, monkeypatch):
    # the random bundle's field is faint: a low iso-level gives it a surface to mesh
    settings = GenerationSettings(
        steps=2, upsampler_steps=2, mesh_resolution=32, texture_size=64, threshold=0.3
    )
    quick = GlassesConfig(views=((0.0, 0.0),), size=16, supersample=2, fit=LiftConfig(steps=4))
    calls, stages = [], []

    def quick_glasses(decoder, planes, kind, strength=1.0, progress=None, cancel=None):
        calls.append(kind)
        return add_glasses(decoder, planes, kind, strength, quick, progress, cancel)

    monkeypatch.setattr("rodin_core.pipeline.add_glasses", quick_glasses)
    avatar = pipe.generate(
        7,
        text="a woman with square glasses",
        settings=settings,
        progress=lambda *a: stages.append(a),
        draw_glasses=True,
    )
    assert calls == ["square"] and avatar.metadata["drawn_on"] == ["square glasses"]
    assert ("drawing glasses", 4, 4) in stages and "drawn" in avatar.metadata["timings_s"]
    # the same prompt and seed, the frame not drawn (the default): the sampled avatar, which the frame changed
    plain = pipe.generate(7, text="a woman with square glasses", settings=settings)
    assert calls == ["square"] and plain.metadata["drawn_on"] == []
    assert not torch.equal(plain.planes, avatar.planes)
    drawn, names = pipe.draw_stated(
        plain.planes, "a woman with square glasses", replace(settings, draw_glasses=True)
    )
    assert names == ["square glasses"] and torch.equal(drawn, avatar.planes)
    # a prompt without glasses draws nothing
    assert (
        pipe.generate(7, text="a woman with a cap", settings=settings, draw_glasses=True).metadata["drawn_on"]
        == []
    )
    assert len(calls) == 2


def test_the_drawn_fit_reports_progress_and_stops_when_cancelled(pipe):
    import threading

    planes = pipe.sample_planes(3, pipe.latent(3), GenerationSettings(steps=2, upsampler_steps=2))
    quick = GlassesConfig(views=((0.0, 0.0),), size=16, supersample=2, fit=LiftConfig(steps=3))
    seen = []
    add_glasses(pipe.decoder, planes, config=quick, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    stop = threading.Event()
    stop.set()
    with pytest.raises(GenerationCancelled, match="step 0 of 3"):
        add_glasses(pipe.decoder, planes, config=quick, cancel=stop)
