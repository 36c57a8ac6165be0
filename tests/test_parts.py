"""The part segmenter (rodin_core.parts) and the hair repaint that paints where it sees hair."""

import pytest
import torch
import torch.nn as nn
from helpers import random_bundle

from rodin_core.lift import LiftConfig
from rodin_core.parts import (
    INPUT_CHANNELS,
    PART_CLASSES,
    PartsConfig,
    PartSegmenter,
    part_probabilities,
    render_channels,
    share_of,
)
from rodin_core.pipeline import AvatarPipeline, GenerationSettings
from rodin_core.recolour import RecolourConfig, recolour
from rodin_core.regions import region_masks


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return AvatarPipeline.from_bundle(random_bundle(tmp_path_factory.mktemp("b") / "m.json"))


class AboveIsHair(nn.Module):
    """A segmenter by rule, to test what the repaint does with one: every surface point above `height` is
    hair, everything else that shows is skin."""

    def __init__(self, height: float) -> None:
        super().__init__()
        self.height = height

    def forward(self, x):
        shows, z = x[:, 3] > 0.05, x[:, 6]
        logits = torch.full((x.shape[0], len(PART_CLASSES), *x.shape[2:]), -20.0)
        for k, where in ((0, ~shows), (PART_CLASSES.index("skin"), shows & (z <= self.height))):
            logits[:, k][where] = 20.0
        logits[:, PART_CLASSES.index("hair")][shows & (z > self.height)] = 20.0
        return logits


def test_the_segmenter_reads_render_channels_and_names_parts():
    model = PartSegmenter(PartsConfig(width=8))
    x = torch.rand(2, INPUT_CHANNELS, 16, 12)
    probs = part_probabilities(model, x)
    assert probs.shape == (2, len(PART_CLASSES), 16, 12)
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 16, 12))
    assert torch.all(share_of(probs, ("hair", "brows")) <= 1 + 1e-6)
    torch.testing.assert_close(share_of(probs, PART_CLASSES), torch.ones(2, 16, 12))
    with pytest.raises(ValueError, match="unknown part"):
        share_of(probs, ("hair", "tail"))
    with pytest.raises(ValueError, match="multiples of 4"):
        model(torch.rand(1, INPUT_CHANNELS, 18, 16))
    with pytest.raises(ValueError, match=f"\\(B, {INPUT_CHANNELS}, H, W\\)"):
        model(torch.rand(1, 3, 16, 16))


def test_render_channels_hold_no_surface_point_where_nothing_shows():
    rgb, alpha = torch.rand(4, 4, 3), torch.zeros(4, 4)
    alpha[1:3, 1:3] = 1.0
    point = torch.randn(4, 4, 3)
    x = render_channels(rgb, alpha, point)
    assert x.shape == (INPUT_CHANNELS, 4, 4)
    assert torch.equal(x[:3], rgb.permute(2, 0, 1)) and torch.equal(x[3], alpha)
    assert torch.equal(x[4:, 1:3, 1:3], point[1:3, 1:3].permute(2, 0, 1))
    assert x[4:, 0].abs().sum() == 0 and x[4:, :, 3].abs().sum() == 0


def test_the_repaint_paints_where_the_segmenter_sees_hair(pipe):
    planes = pipe.sample_planes(4, pipe.latent(4), GenerationSettings(steps=3))
    quick = RecolourConfig(size=16, min_pixels=0, fit=LiftConfig(steps=4))
    painted = recolour(pipe.decoder, planes, "blond", config=quick, segmenter=AboveIsHair(-1.0))
    # The fit changes the planes inside the hair region and beside the face, and nowhere else.
    inside = (region_masks(["hair", "hair_sides"], planes.shape[-1])[None, :, None] > 0).expand_as(planes)
    assert torch.equal(painted[~inside], planes[~inside]) and not torch.equal(painted[inside], planes[inside])
    # What it paints is what the segmenter reads as hair: hair above the middle of the head changes the renders
    # there, and the part below it, read as skin, keeps its colour (the fit's other rays hold it).
    low = recolour(pipe.decoder, planes, "blond", config=quick, segmenter=AboveIsHair(0.6))
    high = recolour(pipe.decoder, planes, "blond", config=quick, segmenter=AboveIsHair(-1.0))
    assert not torch.equal(low, high)
    # A segmenter that sees no hair leaves nothing to repaint, whatever the colour rules would have painted.
    seen_none = RecolourConfig(size=16, fit=LiftConfig(steps=4))
    assert recolour(pipe.decoder, planes, "blond", config=seen_none, segmenter=AboveIsHair(5.0)) is None
    with pytest.raises(ValueError, match="multiple of 4"):
        recolour(pipe.decoder, planes, "blond", config=RecolourConfig(size=18), segmenter=AboveIsHair(0.0))


def test_both_hat_reports_count_alike():
    from training.common import count_hats, hats_line

    count = count_hats([(True, True), (True, False), (False, True), (False, False), (False, False)])
    assert count == {"hats": 2, "hats_found": 1, "bare_heads": 3, "bare_taken_for_hats": 1}
    assert hats_line(count) == "1 of 2 hats found, 1 of 3 bare heads taken for hats"


def test_the_report_counts_hats_found_on_heads_with_hair():
    from training.train_parts import HAT_PIXELS, hats_found

    hair, hat = PART_CLASSES.index("hair"), PART_CLASSES.index("headwear")
    labels = torch.zeros(4, 6, 8, 8, dtype=torch.long)
    labels[:3, 0, :3] = hair  # three avatars with hair, one bald
    labels[0, 1, :2] = hat  # the first wears a hat
    pred = labels.clone()
    pred[1, 2, :2] = hat  # the second, bare, is taken for wearing one
    pred[3, 0, :2] = hat  # the bald one counts for nothing
    assert hats_found(pred, labels) == {"hats": 1, "hats_found": 1, "bare_heads": 2, "bare_taken_for_hats": 1}
    pred[0, 1, 0] = hair  # 8 hat pixels left: too few to count as found
    assert int((pred[0] == hat).sum()) < HAT_PIXELS
    labels[1, 5, :2] = hat  # a hat only past the repaint's views: not the repaint's concern
    assert hats_found(pred, labels)["hats_found"] == 0 and hats_found(pred, labels)["bare_heads"] == 2
