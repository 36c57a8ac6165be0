"""Helpers shared by the training stages, and the pipeline that chains them."""

from pathlib import Path

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


def test_pipeline_gives_the_text_encoder_its_caption_avatars(capsys):
    from training.pipeline import PRESETS, STAGES, main, stage_commands

    tiny = stage_commands("tiny", PRESETS["tiny"], Path("w"))
    assert set(tiny) == set(STAGES) and STAGES.index("captions") < STAGES.index("text")
    render = tiny["captions"]
    assert render[render.index("--views") + 1] == "1" and render[render.index("--count") + 1] == "1500"
    assert render[render.index("--seed") + 1] != tiny["render"][tiny["render"].index("--seed") + 1]
    assert tiny["text"][-2:] == ["--extra-data", str(Path("w") / "captions")]
    paper = stage_commands("paper", PRESETS["paper"], Path("w"))
    assert paper["captions"] == [] and "--extra-data" not in paper["text"]
    assert main(["--preset", "paper", "--only", "captions", "--dry-run"]) == 0
    assert "nothing to do" in capsys.readouterr().out
