"""Assemble the weights bundle (the embedded model) from the stages' outputs.

    python -m training.export --fit runs/tiny/fit --base runs/tiny/base [--upsampler runs/tiny/upsampler] \
        --out rodin_core/weights/rodin_tiny.json --preset tiny
    python -m training.export --from rodin_core/weights/rodin_tiny.json --portrait runs/tiny/portrait --out NEW.json

`--from` starts from an existing bundle instead of the fit and base runs: the parts given (upsampler, text
encoders, refiner, portrait model, part segmenter) are added or replace that bundle's, every other tensor is kept bit for bit.
`--from BUNDLE --base RUN` replaces the base model (UNet, image encoder, latent prior) with a run continued from
that bundle (`train_base --init-from BUNDLE`), whose tri-planes share the bundle's decoder and statistics.

The bundle is checked by loading it into an AvatarPipeline before this command reports success.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from rodin_core import __version__
from rodin_core.bundle import load_bundle, save_bundle
from rodin_core.io_utils import load_tensors, prefixed, read_json
from rodin_core.mesh import DEFAULT_THRESHOLD
from rodin_core.parts import PART_CLASSES
from training.common import git_commit


def build_bundle(
    fit: Path,
    base: Path,
    upsampler: Path | None,
    preset: str,
    threshold: float,
    text: Path | None = None,
    refiner: Path | None = None,
    sentence: Path | None = None,
    portrait: Path | None = None,
    parts: Path | None = None,
) -> tuple[dict, dict]:
    fitted = read_json(fit / "fitted" / "fitted.json", "fitted tri-plane metadata")
    base_cfg = read_json(base / "base" / "base.json", "base model config")
    tensors = prefixed(load_tensors(fit / "fitted" / "decoder.safetensors", "decoder weights"), "decoder")
    tensors.update(load_tensors(base / "base" / "base.safetensors", "base model weights"))
    config = {
        "version": f"{__version__}+{preset}",
        "fit_resolution": fitted["resolution"],
        "decoder": fitted["decoder"],
        "base": base_entry(base_cfg),
        "upsampler": None,
        "mesh": {"threshold": threshold},
        "made_by": {
            "commit": git_commit(),
            "preset": preset,
            "base_steps": base_steps(base_cfg),
        },
        "train_ids": base_cfg["train_ids"],
        "holdout_ids": base_cfg["holdout_ids"],
    }
    add_parts(config, tensors, upsampler, text, refiner, sentence, portrait, parts)
    return config, tensors


def add_parts(
    config: dict,
    tensors: dict,
    upsampler: Path | None = None,
    text: Path | None = None,
    refiner: Path | None = None,
    sentence: Path | None = None,
    portrait: Path | None = None,
    parts: Path | None = None,
) -> None:
    """Adds (or replaces) the optional parts of a bundle, in place, from their run folders."""
    if upsampler is not None:
        up_cfg = read_json(upsampler / "upsampler" / "upsampler.json", "upsampler config")
        tensors.update(load_tensors(upsampler / "upsampler" / "upsampler.safetensors", "upsampler weights"))
        config["upsampler"] = {k: up_cfg[k] for k in ("resolution", "unet", "schedule", "residual")}
        config["made_by"]["upsampler_steps"] = up_cfg["steps"]
    if text is not None:
        text_cfg = read_json(text / "text.json", "text encoder config")
        tensors.update(load_tensors(text / "text.safetensors", "text encoder weights"))
        config["text"] = {"config": text_cfg["config"], "vocab": text_cfg["vocab"]}
        config["made_by"]["text_retrieval_top1"] = text_cfg["heldout_retrieval_top1"]
    if sentence is not None:
        sent_cfg = read_json(sentence / "sentence.json", "sentence head config")
        weights = load_tensors(sentence / "sentence.safetensors", "sentence head weights")
        tensors.update({k: v for k, v in weights.items() if k.startswith("sentence.")})
        tensors.setdefault("stats.z_mean", weights["stats.z_mean"])
        config["sentence"] = {"config": sent_cfg["config"]}
        config["made_by"]["sentence_retrieval_top1"] = sent_cfg["heldout_retrieval_top1"]
        config["made_by"]["sentence_paraphrased_retrieval_top1"] = sent_cfg["paraphrased_retrieval_top1"]
    if refiner is not None:
        ref_cfg = read_json(refiner / "refiner" / "refiner.json", "refiner config")
        weights = load_tensors(refiner / "refiner" / "refiner.safetensors", "refiner weights")
        tensors.update(prefixed(weights, "refiner"))
        config["refiner"] = ref_cfg["refiner"]
        config["made_by"]["refiner_steps"] = ref_cfg["steps"]
    if portrait is not None:
        por_cfg = read_json(portrait / "portrait" / "portrait.json", "portrait model config")
        weights = load_tensors(portrait / "portrait" / "portrait.safetensors", "portrait model weights")
        for key in [k for k in tensors if k.startswith("portrait.")]:
            del tensors[key]
        tensors.update(weights)
        config["portrait"] = {"config": por_cfg["config"]}
        config["made_by"]["portrait_steps"] = portrait_steps(por_cfg)
        config["made_by"]["portrait_training_portraits"] = por_cfg["portraits"]
    if parts is not None:
        parts_cfg = read_json(parts / "parts" / "parts.json", "part segmenter config")
        if parts_cfg["classes"] != list(PART_CLASSES):
            raise SystemExit(
                f"error: {parts} was trained on the parts {parts_cfg['classes']}, this code names "
                f"{list(PART_CLASSES)}; train it again with python -m training.train_parts"
            )
        weights = load_tensors(parts / "parts" / "parts.safetensors", "part segmenter weights")
        for key in [k for k in tensors if k.startswith("parts.")]:
            del tensors[key]
        tensors.update(weights)
        config["parts"] = {"config": parts_cfg["config"]}
        config["made_by"]["parts_steps"] = parts_cfg["steps"]
        config["made_by"]["parts_holdout_iou"] = parts_cfg["holdout_iou"]


# What a base run holds besides the planes' statistics (which a run continued from a bundle shares with it).
BASE_PARTS = ("unet", "encoder", "prior")


def replace_base(config: dict, tensors: dict, base: Path) -> None:
    """Replaces a bundle's base model (in place) with `base`'s, a run continued from that bundle: its tri-planes
    were fitted with the bundle's decoder and normalised with the bundle's statistics, so the decoder, text
    encoders, portrait model and part segmenter still fit it. Refuses a run with other statistics."""
    base_cfg = read_json(base / "base" / "base.json", "base model config")
    weights = load_tensors(base / "base" / "base.safetensors", "base model weights")
    for key in ("stats.mean", "stats.std"):
        if key not in tensors or not torch.equal(weights[key], tensors[key]):
            raise SystemExit(
                f"error: {base} normalises its tri-planes with other statistics than this bundle, so it was "
                "not continued from it; train it with train_base --init-from BUNDLE, or export a new bundle "
                "with --fit and --base"
            )
    for key in [k for k in tensors if k.split(".")[0] in BASE_PARTS]:
        del tensors[key]
    tensors.update({k: v for k, v in weights.items() if k.split(".")[0] in BASE_PARTS})
    config["base"] = base_entry(base_cfg)
    config["made_by"]["base_steps"] = base_steps(base_cfg)
    config["train_ids"], config["holdout_ids"] = base_cfg["train_ids"], base_cfg["holdout_ids"]


def base_entry(meta: dict) -> dict:
    """What a bundle's config holds of a base run (its base.json): the model's shape and sampling defaults."""
    return {k: meta[k] for k in ("resolution", "unet", "encoder", "prior", "schedule", "guidance")}


def base_steps(meta: dict) -> int:
    """The steps a base run (its base.json) was trained for, those of the bundle it continued (--init-from)
    included."""
    return meta["steps"] + meta.get("init_steps", 0)


def portrait_steps(meta: dict) -> int:
    """The steps an exported portrait model (its portrait.json) was trained for, those of the model its run
    started from (train_portrait --init) included."""
    return meta["steps"] + (meta.get("init") or {}).get("steps", 0)


def from_bundle(path: Path) -> tuple[dict, dict]:
    """An existing bundle's config (without its format tag, which save_bundle writes) and tensors."""
    config, tensors = load_bundle(path)
    config.pop("format", None)
    config["made_by"] = {**config.get("made_by", {}), "extended_by_commit": git_commit()}
    return config, dict(tensors)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.splitlines()[0])
    p.add_argument("--fit", help="run folder of training.fit_triplanes")
    p.add_argument("--base", help="run folder of training.train_base")
    p.add_argument(
        "--from",
        dest="start",
        help="an existing bundle .json to start from instead of --fit (its other parts are kept; with --base, "
        "a run continued from it, its base model is replaced)",
    )
    p.add_argument("--upsampler", help="run folder of training.train_upsampler (optional)")
    p.add_argument("--text", help="run folder of training.train_text (optional)")
    p.add_argument(
        "--sentence",
        help="run folder of training.train_text --encoder sentence: prompts through the offline sentence model "
        "(optional)",
    )
    p.add_argument("--refiner", help="run folder of training.train_refiner: sharpens previews (optional)")
    p.add_argument(
        "--portrait",
        help="run folder of training.train_portrait: text prompts steered by a drawn portrait (optional)",
    )
    p.add_argument(
        "--parts",
        help="run folder of training.train_parts: the part segmenter hair-colour edits paint with (optional)",
    )
    p.add_argument("--out", required=True, help="bundle .json path (the .safetensors goes beside it)")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="mesh density iso-level")
    args = p.parse_args(argv)
    parts = {
        name: Path(value) if value else None
        for name, value in (
            ("upsampler", args.upsampler),
            ("text", args.text),
            ("refiner", args.refiner),
            ("sentence", args.sentence),
            ("portrait", args.portrait),
            ("parts", args.parts),
        )
    }
    if args.start:
        if args.fit:
            p.error("--from replaces --fit (the bundle's decoder is kept); give one or the other")
        config, tensors = from_bundle(Path(args.start))
        if args.base:
            replace_base(config, tensors, Path(args.base))
        add_parts(config, tensors, **parts)
    elif args.fit and args.base:
        config, tensors = build_bundle(
            Path(args.fit), Path(args.base), preset=args.preset, threshold=args.threshold, **parts
        )
    else:
        p.error(
            "give --fit and --base (a new bundle), or --from BUNDLE (an existing one to extend, with --base its "
            "base model replaced)"
        )
    save_bundle(args.out, config, tensors)
    from rodin_core.pipeline import AvatarPipeline

    AvatarPipeline.from_bundle(args.out)  # refuses to report success for a bundle that does not load
    size = Path(args.out).with_suffix(".safetensors").stat().st_size / 2**20
    print(f"bundle written: {args.out} ({size:.1f} MB of weights)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
