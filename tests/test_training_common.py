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


def test_pipeline_trains_and_exports_the_sentence_head_only_where_the_model_is_installed(monkeypatch, capsys):
    from training import pipeline

    work = Path("w")
    cmds = pipeline.stage_commands("tiny", pipeline.PRESETS["tiny"], work)
    assert cmds["sentence"][cmds["sentence"].index("--encoder") + 1] == "sentence"
    assert cmds["sentence"][-2:] == ["--extra-data", str(work / "captions")]
    assert cmds["export"][cmds["export"].index("--sentence") + 1] == str(work / "sentence")
    monkeypatch.setattr(pipeline, "sentence_model_missing", lambda: "the sentence model is not installed")
    cmds = pipeline.stage_commands("tiny", pipeline.PRESETS["tiny"], work)
    assert cmds["sentence"] == [] and "--sentence" not in cmds["export"]
    assert pipeline.main(["--only", "sentence", "--dry-run"]) == 0
    assert "stage sentence: skipped, the sentence model is not installed" in capsys.readouterr().out


def test_pipeline_trains_the_portrait_model_after_the_text_encoders_and_adds_it_to_their_bundle():
    from training.pipeline import PRESETS, STAGES, stage_commands

    work = Path("w")
    cmds = stage_commands("tiny", PRESETS["tiny"], work)
    render = cmds["portraits"]
    assert render[render.index("--views") + 1] == "1" and render[render.index("--count") + 1] == "10000"
    seeds = {c[c.index("--seed") + 1] for c in (cmds["render"], cmds["captions"], render)}
    assert len(seeds) == 3  # three data sets, no avatar in two of them
    train = cmds["portrait"]
    bundle = str(work / "bundle" / "rodin_tiny.json")
    assert train[train.index("--bundle") + 1] == bundle == cmds["export"][cmds["export"].index("--out") + 1]
    assert train[train.index("--data") + 1 : train.index("--bundle")] == [str(work / "portraits")]
    assert STAGES.index("export") < STAGES.index("portrait") < STAGES.index("add-portrait")
    add = cmds["add-portrait"]
    assert add[add.index("--from") + 1] == add[add.index("--out") + 1] == bundle
    assert add[add.index("--portrait") + 1] == str(work / "portrait")


def test_pipeline_trains_the_part_segmenter_on_the_fit_and_exports_it():
    from training.pipeline import PRESETS, STAGES, stage_commands

    work = Path("w")
    cmds = stage_commands("tiny", PRESETS["tiny"], work)
    parts = cmds["parts"]
    assert parts[parts.index("--fit") + 1] == str(work / "fit") and parts[parts.index("--data") + 1] == str(
        work / "data"
    )
    assert cmds["export"][cmds["export"].index("--parts") + 1] == parts[parts.index("--out") + 1]
    assert STAGES.index("fit") < STAGES.index("parts") < STAGES.index("export")


def _attributes(**changes) -> dict:
    from blender_scenes.attributes import draw_attributes

    return {**draw_attributes(3), **changes}


def test_attribute_labels_index_the_families_and_name_a_bad_record(tmp_path):
    from blender_scenes.attributes import FAMILIES
    from rodin_core.data import DatasetError
    from rodin_core.io_utils import write_json_atomic
    from training.train_base import attribute_labels

    write_json_atomic(tmp_path / "a" / "attributes.json", {"attributes": _attributes(glasses="round")})
    write_json_atomic(tmp_path / "b" / "attributes.json", {"attributes": _attributes(glasses="none")})
    labels = attribute_labels(tmp_path, ["a", "b"])
    col = list(FAMILIES).index("glasses")
    assert labels.shape == (2, len(FAMILIES))
    assert [FAMILIES["glasses"][i] for i in labels[:, col].tolist()] == ["round", "none"]
    write_json_atomic(tmp_path / "c" / "attributes.json", {"attributes": _attributes(glasses="monocle")})
    with pytest.raises(DatasetError, match=r"c[/\\]attributes.json.*monocle"):
        attribute_labels(tmp_path, ["a", "c"])


def test_attribute_loss_trains_the_image_encoder_and_is_off_by_default():
    import dataclasses

    import torch

    from training.train_base import PRESETS, BaseModel

    cfg = PRESETS["smoke"]
    assert cfg.attribute_weight == 0 and BaseModel(cfg).attributes is None
    torch.manual_seed(0)
    model = BaseModel(dataclasses.replace(cfg, attribute_weight=1.0))
    size = cfg.encoder.image_size
    images = torch.rand(6, 3, size, size)
    labels = torch.stack(
        [torch.randint(head.out_features, (6,)) for head in model.attributes.heads.values()], 1
    )
    x_t = torch.randn(2, cfg.unet.channels, cfg.resolution, 3 * cfg.resolution)
    # More views than tri-planes: the extra ones feed only the attribute loss.
    pred, first = model(x_t, torch.tensor([5, 9]), images, torch.ones(2), labels)
    assert pred.shape == x_t.shape and first.item() > 0.5
    assert model(x_t, torch.tensor([5, 9]), images[:2], torch.ones(2))[1].item() == 0.0
    first.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    optim = torch.optim.Adam([*model.encoder.parameters(), *model.attributes.parameters()], lr=3e-3)
    for _ in range(60):
        loss = model.attributes.loss(model.encoder(images), labels)
        optim.zero_grad()
        loss.backward()
        optim.step()
    assert loss.item() < 0.5 * first.item()


def test_real_view_accuracy_prefers_the_check_set():
    from training.attribute_classifier import real_view_accuracy

    holdout, check = {"sex": 0.5}, {"sex": 0.9}
    acc, views = real_view_accuracy({"holdout_frontal_accuracy": holdout})
    assert acc == holdout and "held-out" in views
    meta = {"holdout_frontal_accuracy": holdout, "check_frontal_accuracy": check, "check_data": "runs/x"}
    acc, views = real_view_accuracy({**meta, "check_avatars": 400})
    assert acc == check and views == "the frontal views of 400 avatars of runs/x (which nothing trained on)"
