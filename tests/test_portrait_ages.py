"""training.portrait_ages: the age marks found in a data set's faces, and read on a model's drawn portraits."""

import json

import numpy as np
import pytest
import torch
from helpers import random_bundle
from PIL import Image

from blender_scenes.attributes import draw_attributes
from rodin_core.io_utils import load_tensors, prefixed, save_tensors_atomic, unprefixed, write_json_atomic
from training import portrait_ages
from training.portrait_ages import MARKS, age_report, generator_marks

SIZE = 16
CHEEKS = [(10, 3), (10, 12)]  # redder on a young face
LINES = [(5, c) for c in range(5, 11)]  # darker on an old face


def face(age: str, rng: np.random.Generator) -> np.ndarray:
    """(SIZE, SIZE, 3) in [0, 1]: skin with a little noise, and the marks of its age."""
    image = np.array([0.8, 0.6, 0.5]) + rng.normal(0, 0.01, (SIZE, SIZE, 3))
    if age == "young":
        for r, c in CHEEKS:
            image[r, c] += [0.1, -0.1, -0.1]
    if age == "old":
        for r, c in LINES:
            image[r, c] -= 0.2
    return image.clip(0, 1)


def faces_by_age(count: int, seed: int = 0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    return {
        age: torch.tensor(np.stack([face(age, rng) for _ in range(count)])).permute(0, 3, 1, 2).float()
        for age in ("young", "adult", "old")
    }


def test_marks_are_found_where_the_ages_differ_and_read_on_drawn_pairs():
    faces = faces_by_age(10)
    marks = generator_marks(faces, count=2)
    assert sorted(map(tuple, marks["young cheeks"]["pixels"].nonzero().tolist())) == CHEEKS
    assert set(map(tuple, marks["old lines"]["pixels"].nonzero().tolist())) <= set(LINES)
    assert marks["young cheeks"]["generator"] == pytest.approx(0.2, abs=0.02)  # R up 0.1, G and B down 0.1
    assert marks["old lines"]["generator"] == pytest.approx(0.2, abs=0.02)
    # A model that draws the ages shows the generator's gaps on every pair; one that draws every age as an adult
    # shows none, and about half its pairs lean either way.
    drawn = faces_by_age(8, seed=1)
    report = age_report(marks, drawn)
    for row in report.values():
        assert row["share_of_generator"] == pytest.approx(1.0, abs=0.15)
        assert row["pairs_right_way"] == row["pairs"] == 8
    ageless = {age: drawn["adult"] for age in drawn}
    ageless["adult"] = faces_by_age(8, seed=2)["adult"]
    for row in age_report(marks, ageless).values():
        assert abs(row["drawn_gap"]) < 0.02 and 0 < row["pairs_right_way"] < 8
    assert set(report) == set(MARKS)


def write_faces(root, ages: list[str], looks: int = 2, hidden: int = 0) -> None:
    """A data set in the generator's format: one 16 px frontal view per record; `hidden` more young records
    wear glasses (the check must leave them out)."""
    rng = np.random.default_rng(3)
    plan = [(age, "none") for age in ages] + [("young", "round")] * hidden
    for i, (age, glasses) in enumerate(plan):
        folder = root / f"avatar_{i:06d}"
        (folder / "images").mkdir(parents=True)
        rgb = face(age, rng) if glasses == "none" else np.zeros((SIZE, SIZE, 3))
        rgba = np.concatenate([rgb, np.ones((SIZE, SIZE, 1))], axis=2)
        Image.fromarray((rgba * 255).round().astype(np.uint8), "RGBA").save(folder / "images" / "000.png")
        frame = {"file_path": "images/000.png", "transform_matrix": np.eye(4).tolist()}
        write_json_atomic(
            folder / "transforms.json",
            {"fl_x": 20.0, "fl_y": 20.0, "cx": 8.0, "cy": 8.0, "w": SIZE, "h": SIZE, "frames": [frame]},
        )
        attrs = {**draw_attributes(i), "age": age, "glasses": glasses, "facial_hair": "none"}
        attrs["headwear"] = "none"
        meta = {"attributes": attrs, **({"looks": looks} if looks != 1 else {})}
        write_json_atomic(folder / "attributes.json", meta)


def test_the_check_runs_on_a_data_set_and_a_training_run(tmp_path, capsys):
    bundle = random_bundle(tmp_path / "b.json", with_text=True, with_portrait=True)
    data = tmp_path / "faces"
    write_faces(data, ["young", "adult", "old"] * 4, hidden=3)
    args = ["--data", str(data), "--weights", str(bundle), "--seeds", "1", "--pixels", "2"]
    assert portrait_ages.main([*args, "--out", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["faces"] == {"young": 4, "adult": 4, "old": 4}  # the 3 with glasses left out
    assert sorted(map(tuple, report["marks"]["young cheeks"]["pixels"])) == CHEEKS
    assert all(row["pairs"] == len(portrait_ages.PROMPTS) for row in report["marks"].values())
    # The test bundle's vocabulary knows few of the prompts' words; the user is told which were left out.
    assert "old" in report["unknown_words"] and "words the bundle does not know" in capsys.readouterr().out
    # A training run's portrait model (the EMA of its latest checkpoint) in place of the bundle's.
    run = tmp_path / "run"
    weights = unprefixed(load_tensors(bundle.with_suffix(".safetensors"), "bundle"), "portrait")
    save_tensors_atomic(run / "latest.safetensors", prefixed({k: v * 0 for k, v in weights.items()}, "ema"))
    assert portrait_ages.main([*args, "--run", str(run), "--out", str(tmp_path / "run.json")]) == 0
    ran = json.loads((tmp_path / "run.json").read_text())
    assert ran["portrait_model"] == str(run)
    assert ran["marks"]["young cheeks"]["drawn_gap"] != report["marks"]["young cheeks"]["drawn_gap"]


def test_the_check_explains_what_it_cannot_use(tmp_path):
    bundle = random_bundle(tmp_path / "b.json", with_text=True, with_portrait=True)
    plain = random_bundle(tmp_path / "plain.json", with_text=True)
    flat = tmp_path / "looks1"
    write_faces(flat, ["young", "adult", "old"] * 4, looks=1)
    few = tmp_path / "few"
    write_faces(few, ["young", "adult", "old"] * 3)
    base = ["--weights", str(bundle), "--seeds", "1"]
    with pytest.raises(SystemExit, match="looks 1, which draws every age alike.*--looks 2"):
        portrait_ages.main([*base, "--data", str(flat)])
    with pytest.raises(SystemExit, match="3 young, 3 adult, 3 old faces.*at least 4 of each age"):
        portrait_ages.main([*base, "--data", str(few)])
    with pytest.raises(SystemExit, match="does not exist"):
        portrait_ages.main([*base, "--data", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit, match="holds no portrait model"):
        portrait_ages.main(["--weights", str(plain), "--data", str(few)])
    with pytest.raises(SystemExit, match="no latest.safetensors"):
        portrait_ages.main([*base, "--data", str(few), "--run", str(tmp_path)])
    weights = unprefixed(load_tensors(bundle.with_suffix(".safetensors"), "bundle"), "portrait")
    weights.pop(sorted(weights)[0])
    save_tensors_atomic(tmp_path / "cut" / "latest.safetensors", prefixed(weights, "ema"))
    with pytest.raises(SystemExit, match="--run .*cut: its portrait model is not the bundle's shape"):
        portrait_ages.main([*base, "--data", str(few), "--run", str(tmp_path / "cut")])
    with pytest.raises(SystemExit, match="--pixels 300 is more than the 16x16 portrait"):
        portrait_ages.main([*base, "--data", str(few), "--pixels", "300"])
    with pytest.raises(SystemExit, match="--seeds must be at least 1"):
        portrait_ages.main([*base, "--data", str(few), "--seeds", "0"])
