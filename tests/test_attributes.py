"""The attribute draw and captions: plain Python, no Blender."""

from __future__ import annotations

import json

import pytest

from blender_scenes.attributes import FAMILIES, VARIABLE_FAMILIES, caption, draw_attributes, variant_value
from blender_scenes.dataset_writer import (
    DatasetSettings,
    DatasetWriter,
    parse_shard,
    record_seed,
    shard_indices,
)


def test_same_seed_same_attributes():
    assert json.dumps(draw_attributes(1234), sort_keys=True) == json.dumps(
        draw_attributes(1234), sort_keys=True
    )
    assert draw_attributes(1) != draw_attributes(2)


def test_every_value_of_every_family_appears_in_200_seeds():
    seen = {family: set() for family in FAMILIES}
    for seed in range(200):
        attrs = draw_attributes(seed)
        for family in FAMILIES:
            assert attrs[family] in FAMILIES[family], (family, attrs[family])
            seen[family].add(attrs[family])
    missing = {family: set(values) - seen[family] for family, values in FAMILIES.items()}
    assert all(not values for values in missing.values()), missing


def test_rules_between_families():
    for seed in range(300):
        attrs = draw_attributes(seed)
        if attrs["sex"] == "woman":
            assert attrs["facial_hair"] == "none"
        if attrs["hair_style"] in ("bun", "mohawk"):
            assert attrs["headwear"] == "none"


def test_caption_names_the_attributes():
    for seed in range(50):
        attrs = draw_attributes(seed)
        text = caption(attrs)
        assert text.startswith(("a ", "an "))
        assert attrs["sex"] in text
        assert attrs["skin_tone"] in text and attrs["eye_color"] in text
        if attrs["hair_style"] != "bald":
            assert attrs["hair_color"] in text
        else:
            assert "bald" in text
        if attrs["glasses"] != "none":
            assert f"{attrs['glasses']} glasses" in text
        else:
            assert "glasses" not in text


def test_sharding_covers_each_index_once():
    count = 37
    for total in (1, 2, 3, 5, 8):
        seen = []
        for index in range(total):
            seen += shard_indices(count, parse_shard(f"{index}/{total}"))
        assert sorted(seen) == list(range(count))


def test_bad_shard_is_explained():
    import pytest

    for text in ("3/3", "a/b", "1/0", "-1/2"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(text)


def test_record_seeds_differ_across_datasets():
    assert len({record_seed(s, i) for s in range(3) for i in range(1000)}) == 3000


def test_families_the_text_evaluation_scores_are_named_in_the_caption():
    # training.evaluate_text scores a prompt only on the families its caption states; a family it
    # thinks is stated but the caption leaves out would be scored against words the model never saw.
    from training.evaluate_text import stated_families

    spoken = {
        "t_shirt": "t-shirt",
        "collared_shirt": "collared shirt",
        "top_hat": "top hat",
        "studs": "stud earrings",
        "hoops": "hoop earrings",
        "bald": "bald head",
        "buzz": "buzzed",
    }
    for seed in range(300):
        attrs = draw_attributes(seed)
        text = caption(attrs)
        stated = stated_families(attrs)
        assert "head_shape" not in stated and "eyebrows" not in stated
        for family in stated:
            value = attrs[family]
            assert spoken.get(value, value) in text, (family, value, text)


def test_shards_started_side_by_side_share_a_new_folder(tmp_path):
    settings = DatasetSettings(seed=0, views=2, resolution=32, depth=False)
    root = tmp_path / "data"
    root.mkdir()
    # the moment another shard writes the index: only its temp file and perhaps its first record's temp folder
    (root / ".dataset.json.k3x9_2a.tmp").write_text("{")
    (root / ".avatar_000001.tmp-4242").mkdir()
    DatasetWriter(root, settings).prepare()
    assert (root / "dataset.json").is_file()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a Rodin data set"):
        DatasetWriter(foreign, settings).prepare()


def test_variants_change_one_family_and_leave_plain_data_sets_as_they_were():
    plain = DatasetSettings(seed=0, views=2, resolution=32, depth=False)
    # A data set without variants keeps the index settings it always had, so older data sets still resume.
    assert plain.as_dict() == {"seed": 0, "views": 2, "resolution": 32, "depth": False}
    paired = DatasetSettings(seed=0, views=2, resolution=32, depth=False, variants=("hair_color", "glasses"))
    assert paired.as_dict()["variants"] == ["hair_color", "glasses"]
    with pytest.raises(ValueError, match="cannot change alone"):
        DatasetSettings(seed=0, views=2, resolution=32, depth=False, variants=("sex",)).validate(1)
    with pytest.raises(ValueError, match="twice"):
        DatasetSettings(
            seed=0, views=2, resolution=32, depth=False, variants=("glasses", "glasses")
        ).validate(1)
    for seed in range(50):
        attrs = draw_attributes(seed)
        for family in VARIABLE_FAMILIES:
            value = variant_value(attrs, family, seed)
            assert value in FAMILIES[family] and value != attrs[family]
            assert variant_value(attrs, family, seed) == value  # the seed decides it


def test_looks_are_recorded_only_when_they_are_not_the_first():
    # Looks 1 is how every earlier data set was drawn: its index stays as it was, so those data sets still resume.
    plain = DatasetSettings(seed=0, views=2, resolution=32, depth=False, looks=1)
    assert "looks" not in plain.as_dict()
    aged = DatasetSettings(seed=0, views=2, resolution=32, depth=False, looks=2)
    assert aged.as_dict()["looks"] == 2
    aged.validate(1)
    with pytest.raises(ValueError, match="--looks must be one of 1, 2"):
        DatasetSettings(seed=0, views=2, resolution=32, depth=False, looks=3).validate(1)
    # Age can change alone only where the factory draws it.
    DatasetSettings(seed=0, views=2, resolution=32, depth=False, variants=("age",), looks=2).validate(1)
    with pytest.raises(ValueError, match="draws every age alike; add --looks 2"):
        DatasetSettings(seed=0, views=2, resolution=32, depth=False, variants=("age",)).validate(1)
