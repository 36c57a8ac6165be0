"""The training stages end to end on a few freshly rendered avatars: fit -> base -> export -> sample.

Small and short (the `smoke` presets): this checks that every stage runs, resumes and hands the next stage
what it needs, not the quality of the result (docs/results.md has the real runs).
"""

import json
import shutil

import pytest
import torch

from rodin_core.io_utils import load_tensors, save_tensors_atomic
from rodin_core.pipeline import AvatarPipeline, GenerationSettings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    pytest.importorskip("bpy")
    from blender_scenes.generate_dataset import main as generate

    root = tmp_path_factory.mktemp("data")
    assert (
        generate(
            ["--out", str(root), "--count", "5", "--seed", "11", "--views", "8", "--res", "32", "--depth"]
        )
        == 0
    )
    return root


def test_fit_base_export_sample(dataset, tmp_path, capsys):
    from training import export, fit_triplanes, train_base, train_text, train_upsampler

    fit = tmp_path / "fit"
    args = ["--data", str(dataset), "--out", str(fit), "--preset", "smoke", "--threads", "2"]
    assert fit_triplanes.main([*args, "--steps", "30"]) == 0
    # Asking for the same folder again without --resume must not overwrite it silently.
    first = (fit / "latest.json").read_text()
    assert fit_triplanes.main([*args, "--steps", "60", "--resume"]) == 0
    assert json.loads((fit / "latest.json").read_text())["step"] == 60 != json.loads(first)["step"]
    report = json.loads((fit / "report.json").read_text())
    assert report["evaluated"] == 5 and report["mean_psnr"] > 10.0
    assert (fit / "holdout.png").is_file()
    # Stages that take the fitted/ folder accept the fit run folder too.
    from training.fit_report import load_fitted

    assert load_fitted(fit)[0] == load_fitted(fit / "fitted")[0]

    # The second mode: new captures fitted against the shared decoder, which must stay exactly as it was.
    frozen = tmp_path / "frozen"
    fargs = [
        "--data",
        str(dataset),
        "--out",
        str(frozen),
        "--preset",
        "smoke",
        "--threads",
        "2",
        "--limit",
        "2",
    ]
    with pytest.raises(SystemExit, match="--avatars-per-step must be at least 1"):
        fit_triplanes.main([*fargs, "--avatars-per-step", "0", "--frozen-decoder", str(fit / "fitted")])
    fargs += ["--avatars-per-step", "1", "--device", "cpu"]
    assert fit_triplanes.main([*fargs, "--steps", "10", "--frozen-decoder", str(fit / "fitted")]) == 0
    assert json.loads((frozen / "latest.json").read_text())["fit"]["avatars_per_step"] == 1
    shared = load_tensors(fit / "fitted" / "decoder.safetensors")
    kept = load_tensors(frozen / "fitted" / "decoder.safetensors")
    assert shared.keys() == kept.keys() and all(torch.equal(shared[k], kept[k]) for k in shared)
    assert json.loads((frozen / "report.json").read_text())["evaluated"] == 2

    base = tmp_path / "base"
    bargs = ["--fitted", str(fit / "fitted"), "--out", str(base), "--preset", "smoke", "--threads", "2"]
    assert train_base.main([*bargs, "--steps", "10"]) == 0
    with pytest.raises(SystemExit, match="already holds a checkpoint"):
        train_base.main(bargs)
    (base / "prior.json").unlink()  # the prior is refitted after the resumed run
    with pytest.raises(SystemExit, match="--batch must be at least 1"):
        train_base.main([*bargs, "--resume", "--batch", "0"])
    with pytest.raises(SystemExit, match="--lr-decay-start is a fraction of the run"):
        train_base.main([*bargs, "--resume", "--lr-decay-start", "1.5"])
    # A resumed run may change the batch (the GPU legs of the shipped model did) and decay the rate.
    assert (
        train_base.main([*bargs, "--resume", "--steps", "20", "--batch", "3", "--lr-decay-start", "0.5"]) == 0
    )
    assert json.loads((base / "latest.json").read_text())["step"] == 20
    assert (base / "samples_final_cond.png").is_file() and (base / "samples_final_uncond.png").is_file()

    # The attribute loss on z, with labelled views of another data set (here the same records again).
    attr = tmp_path / "base_attr"
    aargs = [*bargs[:2], "--out", str(attr), "--preset", "smoke", "--threads", "2", "--steps", "3"]
    with pytest.raises(SystemExit, match="--attribute-data feeds the attribute loss"):
        train_base.main([*aargs, "--attribute-data", str(dataset)])
    with pytest.raises(SystemExit, match="--attribute-weight must be 0 or more"):
        train_base.main([*aargs, "--attribute-weight", "-1"])
    assert train_base.main([*aargs, "--attribute-weight", "0.5", "--attribute-data", str(dataset)]) == 0
    assert "attribute loss: 5 more labelled views" in capsys.readouterr().out
    exported = load_tensors(attr / "base" / "base.safetensors")
    assert exported and not any(k.startswith("attributes.") for k in exported)  # training-only heads

    up = tmp_path / "up"
    uargs = ["--fit", str(fit), "--base", str(base), "--out", str(up), "--preset", "smoke", "--threads", "2"]
    assert train_upsampler.main([*uargs, "--eval-limit", "1"]) == 0
    assert "project's image encoder" in capsys.readouterr().out  # the log names the perceptual network
    up_report = json.loads((up / "report.json").read_text())
    assert set(up_report["mean"]) == {"gt_diffusion", "gt_bilinear", "sample_diffusion", "sample_bilinear"}
    assert (up / "comparison.png").is_file()

    text = tmp_path / "text"
    assert (
        train_text.main(["--base", str(base), "--data", str(dataset), "--out", str(text), "--steps", "20"])
        == 0
    )
    # Another data set's avatars widen the caption/latent pairs (here the same records again, under new keys).
    wide = tmp_path / "text_wide"
    text_args = ["--base", str(base), "--data", str(dataset), "--steps", "5"]
    assert train_text.main([*text_args, "--out", str(wide), "--extra-data", str(dataset)]) == 0
    own = json.loads((text / "text.json").read_text())["training_avatars"]
    assert json.loads((wide / "text.json").read_text())["training_avatars"] == own + len(
        list(dataset.glob("*/transforms.json"))
    )
    with pytest.raises(SystemExit, match="--extra-data: .*does not exist"):
        train_text.main([*text_args, "--out", str(wide), "--extra-data", str(tmp_path / "nowhere")])
    # The head on the offline sentence model: its own run folder, exported beside the word encoder.
    sentence = tmp_path / "sentence"
    assert train_text.main([*text_args, "--out", str(sentence), "--encoder", "sentence"]) == 0
    sent_report = json.loads((sentence / "sentence.json").read_text())
    assert sent_report["encoder"] == "sentence" and 0 <= sent_report["paraphrased_retrieval_top1"] <= 1
    assert "reworded captions: top-1" in capsys.readouterr().out

    bundle = tmp_path / "model.json"
    exp = [
        "--fit",
        str(fit),
        "--base",
        str(base),
        "--upsampler",
        str(up),
        "--out",
        str(bundle),
        "--text",
        str(text),
        "--sentence",
        str(sentence),
        "--preset",
        "smoke",
    ]
    assert export.main(exp) == 0
    pipe = AvatarPipeline.from_bundle(bundle)
    assert pipe.text_encoder is not None and pipe.upsampler is not None and pipe.sentence_ready
    assert pipe.text_model_for("a chap in a crimson jumper") == "sentence"
    assert pipe.encode_text("a chap in a crimson jumper")[0].shape == (1, pipe.encoder.config.z_dim)
    planes = pipe.sample_planes(0, pipe.latent(0), GenerationSettings(steps=4, upsampler_steps=2))
    assert planes.shape == (1, 3, 8, 32, 32) and torch.isfinite(planes).all()
    assert planes.abs().max() <= 1.0

    # The portrait model: the data set's frontal views with their descriptions read by the bundle's text
    # encoders, then added to that bundle with every other tensor kept.
    from training import train_portrait

    portrait = tmp_path / "portrait"
    pargs = ["--data", str(dataset), "--bundle", str(bundle), "--out", str(portrait), "--preset", "smoke"]
    pargs += ["--threads", "2"]
    assert train_portrait.main(pargs) == 0
    with pytest.raises(SystemExit, match="already holds a checkpoint"):
        train_portrait.main(pargs)
    assert train_portrait.main([*pargs, "--resume", "--steps", "25"]) == 0  # inputs read back, not rebuilt
    assert json.loads((portrait / "latest.json").read_text())["step"] == 25
    portrait_meta = json.loads((portrait / "portrait" / "portrait.json").read_text())
    assert portrait_meta["portraits"] == 5 and portrait_meta["text_models"] == ["words", "sentence"]
    # It reads the prompts' words with its own copy of the bundle's word encoder, trained on.
    assert portrait_meta["config"]["vocab_size"] == len(json.loads(bundle.read_text())["text"]["vocab"]) + 2
    trained_words = load_tensors(portrait / "portrait" / "portrait.safetensors")["portrait.words.head.weight"]
    assert not torch.equal(
        trained_words, load_tensors(bundle.with_suffix(".safetensors"))["text.head.weight"]
    )
    # A run can start from an exported model instead of random weights.
    started = tmp_path / "portrait_more"
    sargs = [*pargs[:5], str(started), "--preset", "smoke", "--threads", "2", "--steps", "2"]
    assert train_portrait.main([*sargs, "--init", str(portrait / "portrait")]) == 0
    init = json.loads((started / "portrait" / "portrait.json").read_text())["init"]
    assert init == {"from": str(portrait / "portrait"), "steps": 25}  # counted into the bundle's made_by
    with pytest.raises(SystemExit, match="no portrait.safetensors"):
        train_portrait.main([*sargs[:5], str(tmp_path / "p3"), *sargs[6:], "--init", str(portrait)])
    assert (portrait / "samples_final.png").is_file()
    portrait_bundle = tmp_path / "with_portrait.json"
    assert (
        export.main(["--from", str(bundle), "--portrait", str(portrait), "--out", str(portrait_bundle)]) == 0
    )
    before = load_tensors(bundle.with_suffix(".safetensors"))
    after = load_tensors(portrait_bundle.with_suffix(".safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert {k for k in after if k not in before} == set(
        load_tensors(portrait / "portrait" / "portrait.safetensors")
    )
    # A run trains on elsewhere (a GPU box) from its inputs.* alone, starting from the model a bundle holds.
    moved, other = tmp_path / "moved", tmp_path / "other"
    for folder in (moved, other):
        folder.mkdir()
        for name in ("inputs.json", "inputs.safetensors"):
            shutil.copy(portrait / name, folder / name)
    margs = [
        "--bundle",
        str(bundle),
        "--out",
        str(moved),
        "--preset",
        "smoke",
        "--threads",
        "2",
        "--steps",
        "2",
    ]
    assert train_portrait.main([*margs, "--init", str(portrait_bundle)]) == 0
    moved_meta = json.loads((moved / "portrait" / "portrait.json").read_text())
    assert moved_meta["init"] == {"from": str(portrait_bundle), "steps": 25}
    assert moved_meta["data"] == [dataset.name] and moved_meta["portraits"] == 5
    with pytest.raises(SystemExit, match="--data is needed"):
        train_portrait.main([*margs[:3], str(tmp_path / "nothing"), *margs[4:]])
    with pytest.raises(SystemExit, match="holds no portrait model"):
        train_portrait.main([*margs[:3], str(other), *margs[4:], "--init", str(bundle)])
    with pytest.raises(SystemExit):  # --from replaces --fit/--base, never both
        export.main(["--from", str(bundle), "--fit", str(fit), "--out", str(tmp_path / "x.json")])
    ppipe = AvatarPipeline.from_bundle(portrait_bundle)
    z, drawn, _ = ppipe.text_conditioning(0, "a chap in a crimson jumper", GenerationSettings(steps=2))
    assert drawn.shape == (3, 16, 16) and 0 <= drawn.min() and drawn.max() <= 1

    # The part segmenter: examples from the fitted avatars and the generator's labels, a held-out report, and
    # a bundle whose hair-colour edits paint with it.
    from training import train_parts

    parts = tmp_path / "parts"
    targs = ["--data", str(dataset), "--fit", str(fit), "--out", str(parts), "--threads", "2", "--width", "8"]
    with pytest.raises(SystemExit, match="leaves no avatar"):
        train_parts.main([*targs, "--holdout", "5", "--steps", "2"])
    assert train_parts.main([*targs, "--holdout", "1", "--steps", "4", "--resume"]) == 0
    assert train_parts.main([*targs, "--holdout", "1", "--steps", "6", "--resume"]) == 0  # on from step 4
    parts_meta = json.loads((parts / "parts" / "parts.json").read_text())
    assert parts_meta["avatars"] == 4 and parts_meta["views_per_avatar"] == 8
    assert 0.0 <= parts_meta["holdout_pixel_accuracy"] <= 1.0 and parts_meta["holdout_iou"]["background"] > 0
    assert set(parts_meta["holdout_headwear"]) == {"hats", "hats_found", "bare_heads", "bare_taken_for_hats"}
    labels = load_tensors(parts / "examples.safetensors")["labels"]
    assert labels.shape == (5, 8, 40, 40) and set(labels.unique().tolist()) >= {
        0,
        1,
        8,
    }  # background, skin, shirt
    parts_bundle = tmp_path / "with_parts.json"
    assert export.main(["--from", str(bundle), "--parts", str(parts), "--out", str(parts_bundle)]) == 0
    assert json.loads(parts_bundle.read_text())["made_by"]["parts_steps"] == 6
    spipe = AvatarPipeline.from_bundle(parts_bundle)
    assert spipe.part_segmenter is not None and AvatarPipeline.from_bundle(bundle).part_segmenter is None
    planes = spipe.sample_planes(3, spipe.latent(3), GenerationSettings(steps=2))
    edit = spipe.edit(
        planes, spipe.latent(3), 3, text="make the hair blond", settings=GenerationSettings(steps=2)
    )
    assert edit.planes.shape == planes.shape and torch.isfinite(edit.planes).all()

    # Continuing the exported model: planes fitted with the bundle's decoder, base initialised from the bundle.
    refit = tmp_path / "refit"
    rargs = ["--data", str(dataset), "--out", str(refit), "--preset", "smoke", "--threads", "2"]
    assert fit_triplanes.main([*rargs, "--steps", "10", "--frozen-decoder", str(bundle)]) == 0
    kept = load_tensors(refit / "fitted" / "decoder.safetensors")
    assert all(torch.equal(shared[k], kept[k]) for k in shared)
    more = tmp_path / "more"
    margs = ["--fitted", str(refit / "fitted"), "--out", str(more), "--preset", "smoke", "--threads", "2"]
    assert train_base.main([*margs, "--steps", "5", "--init-from", str(bundle)]) == 0
    # Resuming it without the bundle would renormalise the planes with other statistics: refused.
    with pytest.raises(SystemExit, match="--init-from"):
        train_base.main([*margs, "--steps", "6", "--resume"])
    more_cfg = json.loads((more / "base" / "base.json").read_text())
    assert more_cfg["init_steps"] == 20 and more_cfg["steps"] == 5
    continued = load_tensors(more / "base" / "base.safetensors")
    assert torch.equal(
        continued["stats.mean"], load_tensors(base / "base" / "base.safetensors")["stats.mean"]
    )
    # The continued base model replaces the bundle's; the decoder, text encoders and the rest are kept.
    swapped = tmp_path / "swapped.json"
    assert export.main(["--from", str(bundle), "--base", str(more), "--out", str(swapped)]) == 0
    before = load_tensors(bundle.with_suffix(".safetensors"))
    after = load_tensors(swapped.with_suffix(".safetensors"))
    assert set(after) == set(before) and all(torch.equal(after[k], continued[k]) for k in continued)
    kept_parts = [k for k in before if k.split(".")[0] not in export.BASE_PARTS]
    assert kept_parts and all(torch.equal(after[k], before[k]) for k in kept_parts)
    assert json.loads(swapped.read_text())["made_by"]["base_steps"] == 25
    # A base run with statistics of its own was not continued from the bundle: refused with what to do.
    (tmp_path / "odd" / "base").mkdir(parents=True)
    shutil.copy(more / "base" / "base.json", tmp_path / "odd" / "base" / "base.json")
    save_tensors_atomic(
        tmp_path / "odd" / "base" / "base.safetensors",
        {**continued, "stats.mean": continued["stats.mean"] + 1},
    )
    with pytest.raises(SystemExit, match="--init-from"):
        export.main(
            ["--from", str(bundle), "--base", str(tmp_path / "odd"), "--out", str(tmp_path / "y.json")]
        )
    # Planes from another decoder live in another latent space: refused with what to do.
    other = tmp_path / "other_fitted"
    other.mkdir()
    for name in ("planes.safetensors", "fitted.json"):
        (other / name).write_bytes((refit / "fitted" / name).read_bytes())
    save_tensors_atomic(other / "decoder.safetensors", {k: v + 0.01 for k, v in kept.items()})
    with pytest.raises(SystemExit, match="--frozen-decoder"):
        train_base.main(
            [
                "--fitted",
                str(other),
                "--out",
                str(tmp_path / "x"),
                "--preset",
                "smoke",
                "--init-from",
                str(bundle),
            ]
        )

    # Meshes of the fitted avatars against the generator's meshes, baked texture rendered back in Blender.
    from training import evaluate_mesh

    ev = tmp_path / "eval"
    margs = ["--fit", str(fit), "--data", str(dataset), "--out", str(ev), "--weights", str(bundle)]
    assert (
        evaluate_mesh.main(
            [*margs, "--count", "1", "--mesh-resolution", "48", "--texture-size", "128", "--threshold", "1"]
        )
        == 0
    )
    mesh_report = json.loads((ev / "mesh_evaluation.json").read_text())
    assert mesh_report["avatars"] == 1 and mesh_report["chamfer_mean"] >= 0
    assert set(mesh_report["psnr_mean"]) == {"baked_vs_nerf", "baked_vs_real", "nerf_vs_real"}
    # The baked mesh must actually be in Blender's render, and look like the NeRF it came from.
    assert mesh_report["per_avatar"][0]["baked_coverage"] > 0.05
    assert mesh_report["psnr_mean"]["baked_vs_nerf"] > 15.0
    assert (ev / "mesh_vs_nerf.png").is_file()

    # How each hair colour renders through the fitted decoder: the table colour edits paint with.
    from training import hair_looks

    fitted = load_fitted(fit)
    looks = hair_looks.hair_looks(fitted, dataset)
    for look in looks.values():
        assert look["avatars"] >= 1 and all(0.0 <= c <= 1.0 for c in look["rgb"])
    # How the recolour tells hats from hair, per headwear kind, over the avatars with hair.
    found = hair_looks.headwear_found(fitted, dataset, limit=3)
    assert all(0 <= row["found"] <= row["avatars"] for row in found["by_kind"].values())
    assert (
        sum(row["avatars"] for row in found["by_kind"].values()) == found["hats"] + found["bare_heads"] <= 3
    )
    assert found["bare_taken_for_hats"] == found["by_kind"].get("none", {"found": 0})["found"]
    if looks:
        assert hair_looks.main(["--fit", str(fit), "--data", str(dataset), "--headwear", "--limit", "2"]) == 0
        out = capsys.readouterr().out
        assert "avatars  rgb" in out and "headwear told from hair" in out
    else:  # none of the 5 avatars has hair without headwear
        with pytest.raises(SystemExit, match="nothing to measure"):
            hair_looks.main(["--fit", str(fit), "--data", str(dataset)])

    # Generation quality: attribute classifier, then shape and attribute metrics of the exported model.
    from training import attribute_classifier, evaluate

    cls = tmp_path / "classifier"
    split = base / "base" / "base.json"
    cargs = ["--data", str(dataset), "--split", str(split), "--out", str(cls), "--epochs", "1"]
    cargs += ["--fit", str(fit), "--batch", "8", "--threads", "2"]
    with pytest.raises(SystemExit, match="--check-data: .*does not exist"):
        attribute_classifier.main([*cargs, "--check-data", str(tmp_path / "nowhere")])
    cargs += ["--extra-data", str(dataset), str(dataset), "--check-data", str(dataset)]
    with pytest.raises(SystemExit, match="--pair-data: .*no variants"):
        attribute_classifier.main([*cargs, "--pair-data", str(dataset)])
    from blender_scenes.generate_dataset import main as generate

    pair_data = tmp_path / "pairs"
    pair_args = ["--out", str(pair_data), "--count", "3", "--seed", "12", "--views", "2", "--res", "32"]
    assert generate([*pair_args, "--variants", "hair_color", "glasses", "--quiet"]) == 0
    with pytest.raises(SystemExit, match="--pair-min-change must be 0 or more"):
        attribute_classifier.main([*cargs, "--pair-data", str(pair_data), "--pair-min-change", "-1"])
    pair_cargs = [*cargs, "--pair-data", str(pair_data), "--pair-batch", "4", "--pair-min-change", "1"]
    assert attribute_classifier.main(pair_cargs) == 0
    cls_meta = json.loads((cls / "classifier.json").read_text())
    # The last of the 3 pair avatars is held out, all of its pairs whatever --pair-min-change: its 2 views, each
    # with 2 variants.
    held = cls_meta["pairs_held_out"]
    assert held["pairs"] == 4 and all(0.0 <= held[k] <= 1.0 for k in ("shows", "kept", "success"))
    assert cls_meta["pair_data"] == [str(pair_data)] and cls_meta["pair_batch"] == 4
    assert cls_meta["pair_min_change"] == 1
    train_ids = json.loads(split.read_text())["train_ids"]
    views = {d.name: len(list((d / "images").glob("*.png"))) for d in dataset.iterdir() if d.is_dir()}
    # Every view of the training avatars, three renders of each one's fitted tri-planes, every view of each of
    # the two extra data sets.
    assert cls_meta["train_images"] == sum(views[t] for t in train_ids) + 3 * len(train_ids) + 2 * sum(
        views.values()
    )
    assert cls_meta["extra_data"] == [str(dataset)] * 2 and cls_meta["check_data"] == str(dataset)
    assert cls_meta["check_avatars"] == len(views)
    accuracies = ("holdout_frontal_accuracy", "holdout_all_views_accuracy", "holdout_fitted_frontal_accuracy")
    for key in (*accuracies, "check_frontal_accuracy"):
        assert all(0.0 <= a <= 1.0 for a in cls_meta[key].values())
    quality = tmp_path / "quality"
    eargs = ["--weights", str(bundle), "--data", str(dataset), "--classifier", str(cls), "--fit", str(fit)]
    eargs += ["--out", str(quality), "--mesh-resolution", "32", "--steps", "4", "--threshold", "0.5"]
    with pytest.raises(SystemExit, match="--train-count must lie between 0 and the 3 training avatars"):
        evaluate.main([*eargs, "--train-count", "4"])
    extra = ["--fresh-data", str(dataset), "--fresh-count", "3", "--train-count", "2"]
    assert evaluate.main([*eargs, *extra, "--compare-image-guidance"]) == 0
    report = json.loads((quality / "evaluation.json").read_text())
    unguided, final = report["models"]
    assert "image guidance 0" in unguided["name"] and report["sampling"]["image_guidance"] == 1.0
    for model in (unguided, final):
        assert 0.0 <= model["attribute_agreement_conditioned_side_mean"] <= 1.0
        assert 0.0 <= model["attribute_agreement_fresh"]["side_mean"] <= 1.0
    assert report["fresh"]["avatars"] == 3 and 0.0 <= final["attribute_agreement_fresh"]["mean"] <= 1.0
    assert report["training"]["avatars"] == 2 and 0.0 <= final["attribute_agreement_training"]["mean"] <= 1.0
    text = (quality / "evaluation.md").read_text()
    assert "3 fresh avatars" in text and "2 training avatars" in text and "read 40° to the side" in text
    # With --fit the fitted renders, not the real views, bound the agreement.
    assert "reproduced each avatar exactly through this decoder" in text
    # The real-view column comes from the check set, the larger sample, and says so.
    assert report["classifier_accuracy_on_real_frontal_views"] == cls_meta["check_frontal_accuracy"]
    assert f"the frontal views of {len(views)} avatars of {dataset} (which nothing trained on)" in text
    # Text prompts and edits, read by both text encoders of the bundle.
    from training import evaluate_text

    targs = [
        "--weights",
        str(portrait_bundle),
        "--data",
        str(dataset),
        "--classifier",
        str(cls),
        "--out",
        str(quality),
    ]
    assert evaluate_text.main([*targs, "--fresh", "1", "--edits", "1", "--steps", "2"]) == 0
    text_report = json.loads((quality / "text_evaluation.json").read_text())
    assert text_report["text"]["prompts"] == 3  # the 2 held-out captions and 1 fresh draw
    # Prompts went through drawn portraits; the latent code alone and the portraits themselves are reported.
    assert text_report["settings"]["portrait_model"] and text_report["text_latent_only"]["prompts"] == 3
    assert 0.0 <= text_report["text"]["portraits"]["agreement_mean"] <= 1.0
    # The same avatars read from the side, a view no drawn portrait shows, against chance from the side.
    side = text_report["text"]["side"]
    assert side["prompts"] == 3 and 0.0 <= side["agreement_mean"] <= 1.0 and 0.0 <= side["chance_mean"] <= 1.0
    assert (
        "degrees to the side, a view no drawn portrait shows" in (quality / "text_evaluation.md").read_text()
    )
    assert set(text_report["reworded"]) == {"words", "sentence"}
    # Success counting only the families the classifier can read never falls below the strict success.
    assert set(text_report["readable_families"]) <= set(
        text_report["classifier_accuracy_on_real_frontal_views"]
    )
    for e in text_report["edits"].values():
        assert e["cases"] == 0 or e["success"] <= e["success_readable"] <= e["shows_new_value"]
    for v in text_report["reworded"].values():
        assert 0.0 <= v["retrieval_reworded"]["top1"] <= v["retrieval_reworded"]["top5"] <= 1.0
        assert 0.0 <= v["reworded_agreement"]["agreement_mean"] <= 1.0
    assert "Prompts in other words" in (quality / "text_evaluation.md").read_text()
    assert f"avatars of {dataset} (which nothing trained on)" in (quality / "text_evaluation.md").read_text()
    assert (quality / "text_prompts_reworded.png").is_file()
    # The edits measured again into that report keep its text numbers; another sampler is refused.
    assert evaluate_text.main([*targs, "--edits-only", "--edits", "0", "--steps", "2"]) == 0
    again = json.loads((quality / "text_evaluation.json").read_text())
    assert again["text"] == text_report["text"] and again["edits"] == {} and again["settings"]["drawn_edits"]
    with pytest.raises(SystemExit, match="other settings .*the sampler steps"):
        evaluate_text.main([*targs, "--edits-only", "--edits", "1", "--steps", "3"])
    # The edits' ceiling: the generator makes each edit itself, read by the same classifier.
    from training import edit_ceiling

    cl_args = ["--classifier", str(cls), "--out", str(quality), "--count", "1", "--samples", "2"]
    assert edit_ceiling.main(cl_args) == 0
    ceil = json.loads((quality / "edit_ceiling.json").read_text())
    assert set(ceil["edits"]) == {prompt for prompt, *_ in evaluate_text.EDITS}
    for e in ceil["edits"].values():
        assert e["cases"] == 0 or e["success"] <= e["success_readable"] <= e["shows_new_value"]
    assert "generator's change" in (quality / "edit_ceiling.md").read_text()
    with pytest.raises(SystemExit):
        edit_ceiling.main([*cl_args, "--count", "0"])
    # What the bundle's image latents hold of each family (a 2-fold probe on the 5 avatars).
    from training import probe_latents

    pargs = ["--weights", str(bundle), "--data", str(dataset), "--out", str(quality)]
    assert probe_latents.main([*pargs, "--folds", "2"]) == 0
    probe = json.loads((quality / "probe.json").read_text())
    assert probe["avatars"] == 5 and all(0.0 <= f["probe"] <= 1.0 for f in probe["per_family"].values())
    with pytest.raises(SystemExit, match="needs at least 12"):
        probe_latents.main([*pargs, "--folds", "6"])
    # Retrieval from a pool: the probed avatars themselves, so the nearest latent is each avatar's own.
    assert probe_latents.main([*pargs, "--folds", "2", "--pool", str(dataset), "--pool-sizes", "5,2"]) == 0
    retrieval = json.loads((quality / "probe.json").read_text())["retrieval"]["sizes"]
    assert set(retrieval) == {"2", "5"} and retrieval["5"]["mean"] == 1.0
    with pytest.raises(SystemExit, match="between 1 and the 5 avatars"):
        probe_latents.main([*pargs, "--folds", "2", "--pool", str(dataset), "--pool-sizes", "6"])
    assert set(final["shape"]) == {evaluate.GROUND_TRUTH, evaluate.FITTED}
    assert report["threshold"] == 0.5 and 0 <= final["samples_without_surface"] < 2
    for metrics in [*final["shape"].values(), *report["reference_fitted_training"].values()]:
        assert 0.0 <= metrics["COV"] <= 1.0 and 0.0 <= metrics["1-NNA"] <= 1.0 and metrics["MMD"] > 0
    assert 0.0 <= final["attribute_agreement_conditioned_mean"] <= 1.0
    assert set(report["classifier_accuracy_on_fitted_renders"]) == set(
        final["attribute_agreement_conditioned"]
    )
    for like in (final["conditioned_likeness"], report["reference_fitted_likeness"]):
        assert 5.0 < like["psnr"] < 60.0 and 5.0 < like["head_psnr"] < 60.0
    assert "| reference: fitted training tri-planes |" in (quality / "evaluation.md").read_text()

    # The optional image-space refiner: trained on renders of the fitted planes, reported on held-out views.
    from training import train_refiner

    ref = tmp_path / "refiner"
    rargs = ["--fit", str(fit), "--out", str(ref), "--preset", "smoke"]
    assert train_refiner.main(rargs) == 0
    ref_report = json.loads((ref / "report.json").read_text())
    assert (
        ref_report["evaluated"] == len(ref_report["views"]) >= 1 and 5.0 < ref_report["mean"]["plain"] < 60.0
    )
    assert json.loads((ref / "refiner" / "refiner.json").read_text())["steps"] == 10
    with pytest.raises(SystemExit, match="--resume"):
        train_refiner.main(rargs)
    assert train_refiner.main([*rargs, "--resume", "--steps", "12"]) == 0
    assert json.loads((ref / "latest.json").read_text())["step"] == 12
    # A bundle with the refiner sharpens previews; render(refine=False) gives the plain NeRF view.
    refined_bundle = tmp_path / "refined.json"
    rexp = ["--fit", str(fit), "--base", str(base), "--refiner", str(ref), "--out", str(refined_bundle)]
    assert export.main([*rexp, "--preset", "smoke"]) == 0
    rpipe = AvatarPipeline.from_bundle(refined_bundle)
    assert rpipe.refiner is not None and AvatarPipeline.from_bundle(bundle).refiner is None
    one = rpipe.sample_planes(0, rpipe.latent(0), GenerationSettings(steps=2))
    plain, refined = rpipe.render(one, size=32, refine=False)[0], rpipe.render(one, size=32)[0]
    assert plain.shape == refined.shape == (32, 32, 3) and not torch.equal(plain, refined)
