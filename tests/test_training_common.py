"""Helpers shared by the training stages."""

import pytest

from training.common import lr_scale


def test_lr_scale_holds_then_decays_linearly_to_a_tenth():
    assert [lr_scale(s, 100, 0.6) for s in (0, 59)] == [1.0, 1.0]
    assert lr_scale(60, 100, 0.6) == 1.0
    assert lr_scale(80, 100, 0.6) == pytest.approx(0.55)
    assert lr_scale(100, 100, 0.6) == pytest.approx(0.1)


def test_lr_scale_of_one_never_decays_and_zero_decays_from_the_start():
    assert all(lr_scale(s, 50, 1.0) == 1.0 for s in range(50))
    assert lr_scale(25, 50, 0.0) == pytest.approx(0.55)
