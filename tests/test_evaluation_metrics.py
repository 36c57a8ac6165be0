"""The metrics of training/evaluate.py on inputs whose answer is known."""

import math

import torch

from blender_scenes.attributes import FAMILIES
from training.attribute_classifier import SIZE, augment, pair_consistency
from training.evaluate import HEAD, agreement, likeness, shape_metrics


def test_shape_metrics_tell_sets_apart():
    gen = torch.Generator().manual_seed(0)
    cloud = [torch.rand(64, 3, generator=gen) for _ in range(6)]
    near = [c + 0.001 * torch.randn(64, 3, generator=gen) for c in cloud]
    far = [cloud[0] + 5.0 + 0.001 * torch.randn(64, 3, generator=gen) for _ in cloud]
    # Samples that are copies of the references: each one's nearest neighbour is its twin from the other set.
    same = shape_metrics(near, cloud)
    assert same["COV"] == 1.0 and same["1-NNA"] == 0.0 and same["MMD"] < 1e-4
    # Samples that are all one shape far from every reference (mode collapse): they cover one reference, and
    # the two sets separate fully.
    apart = shape_metrics(far, cloud)
    assert apart["COV"] == 1 / 6 and apart["1-NNA"] == 1.0 and apart["MMD"] > 10.0


def test_likeness_whole_view_and_head():
    views = [torch.full((64, 64, 3), 0.5) for _ in range(2)]
    # Off by 0.1 everywhere: MSE 0.01 is 20 dB, in the head box too.
    off = likeness([v + 0.1 for v in views], views)
    assert math.isclose(off["psnr"], 20.0, abs_tol=1e-3) and math.isclose(
        off["head_psnr"], 20.0, abs_tol=1e-3
    )
    # Wrong only outside the head box: the head is exact, the whole view is not.
    renders = [v.clone() for v in views]
    for r in renders:
        r[:, :10] = 0.0
    body = likeness(renders, views)
    assert body["head_psnr"] == math.inf and body["psnr"] < 20.0
    # Wrong only inside it: the head PSNR is the lower one.
    renders = [v.clone() for v in views]
    for r in renders:
        r[HEAD] += 0.2
    head = likeness(renders, views)
    assert head["head_psnr"] < head["psnr"]


def test_attribute_agreement_counts_matches_per_family():
    first = {fam: values[0] for fam, values in FAMILIES.items()}
    truth = [{fam: 0 for fam in FAMILIES}, {fam: 1 for fam in FAMILIES}]
    # The same prediction for both avatars: right for the first, wrong for the second in every family.
    assert agreement([first, first], truth) == {fam: 0.5 for fam in FAMILIES}
    assert agreement([first], truth[:1]) == {fam: 1.0 for fam in FAMILIES}


def test_classifier_augmentation_keeps_images_on_white():
    gen = torch.Generator().manual_seed(0)
    batch = torch.ones(8, 3, SIZE, SIZE)
    batch[:, :, 20:44, 20:44] = 0.0  # a dark square on white
    seen_shift = False
    for _ in range(20):
        out = augment(batch, gen)
        assert out.shape == batch.shape and 0.0 <= out.min() and out.max() <= 1.0
        # Shifts bring in white, never wrap the square around; blur moves no ink in or out (box stays dark).
        assert torch.allclose(out.mean(), batch.mean(), atol=1e-5)
        seen_shift |= not torch.equal(out[:, :, 20:44, 20:44], batch[:, :, 20:44, 20:44])
    assert seen_shift


def test_linear_probe_reads_what_the_codes_hold_and_nothing_else():
    from training.probe_latents import linear_probe

    gen = torch.Generator().manual_seed(0)
    z = torch.randn(200, 16, generator=gen)
    held = (z[:, 3] > 0).long()  # a family written along one axis of z
    assert linear_probe(z, held, 2, folds=5) > 0.9
    unrelated = torch.randint(2, (200,), generator=gen)  # a family z knows nothing of
    assert abs(linear_probe(z, unrelated, 2, folds=5) - 0.5) < 0.12


def test_nearest_agreement_copies_the_nearest_pool_avatars_values():
    from training.probe_latents import nearest_agreement

    z_pool = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    y_pool = torch.tensor([[0, 1], [1, 1], [2, 0]])  # two families
    z = torch.tensor([[1.0, 0.5], [9.0, 1.0], [0.5, 8.0], [8.5, 0.0]])
    y = torch.tensor([[0, 1], [1, 0], [2, 0], [2, 1]])
    # nearest: pool 0, 1, 2, 1 -> family 0 right for the first three, family 1 right for 0, 2, 3.
    assert nearest_agreement(z, y, z_pool, y_pool).tolist() == [0.75, 0.75]


def test_edit_summary_counts_success_with_at_most_one_other_family_changed():
    from training.evaluate_text import edit_summary

    cases = [
        {"seed": 1, "shows": True, "changed": []},
        {"seed": 2, "shows": True, "changed": ["eye_color"]},  # one other family: still a success
        {"seed": 3, "shows": True, "changed": ["eye_color", "age"]},  # two, but only one readable
        {"seed": 4, "shows": False, "changed": []},
    ]
    row = edit_summary(cases, readable=[f for f in FAMILIES if f != "eye_color"])
    others = len(FAMILIES) - 1
    assert row["cases"] == 4 and row["shows_new_value"] == 0.75
    assert math.isclose(row["others_kept_mean"], 1 - 3 / (4 * others))
    assert row["success"] == 0.5 and row["success_readable"] == 0.75
    assert row["changed_families"] == ["age", "eye_color"] and row["avatars"] is cases
    assert "others_kept_by_null_edit" not in row  # no control measured
    with_null = edit_summary([{**c, "null_changed": []} for c in cases], readable=list(FAMILIES))
    assert with_null["others_kept_by_null_edit"] == 1.0
    assert "methods" not in row  # not recorded (the edits' ceiling)
    made = edit_summary(
        [{**c, "method": m} for c, m in zip(cases, ["repainted"] * 3 + ["redrawn"])], list(FAMILIES)
    )
    assert made["methods"] == {"redrawn": 1, "repainted": 3}


def test_edits_only_reports_compare_what_the_prompts_avatars_depend_on():
    from training.evaluate_text import generating_records

    made = {"base_steps": 17250, "portrait_steps": 27350, "extended_by_commit": "a"}
    with_parts = {**made, "extended_by_commit": "b", "parts_steps": 3000, "parts_holdout_iou": {"hair": 0.8}}
    assert generating_records(made) == generating_records(with_parts)  # a part segmenter added: same avatars
    # a new portrait model changes the prompts' avatars
    assert generating_records({**made, "portrait_steps": 1}) != generating_records(made)
    assert generating_records(None) is None


def test_pair_consistency_counts_only_the_families_a_pair_did_not_change():
    gen = torch.Generator().manual_seed(0)
    before = {f: torch.randn(4, len(v), generator=gen) for f, v in FAMILIES.items()}
    changed = torch.tensor([list(FAMILIES).index("hair_color")] * 2 + [list(FAMILIES).index("glasses")] * 2)
    assert float(pair_consistency(before, before, changed)) == 0.0
    # Reading the changed family differently costs nothing.
    after = {f: v.clone() for f, v in before.items()}
    after["hair_color"][:2] = torch.randn(2, len(FAMILIES["hair_color"]), generator=gen)
    after["glasses"][2:] += torch.tensor([5.0, 0.0, 0.0])
    assert float(pair_consistency(before, after, changed)) == 0.0
    # Reading another family differently costs, symmetrically.
    after["age"] = torch.randn(4, len(FAMILIES["age"]), generator=gen)
    cost = pair_consistency(before, after, changed)
    assert float(cost) > 0.0
    assert torch.isclose(cost, pair_consistency(after, before, changed))
