"""The weights bundle: every network of the model in one safetensors file plus a JSON config beside it.

NAME.json          {"format": "rodin-bundle/1", "version": ..., "decoder": {...}, "base": {...},
                    "upsampler": {...} | null, "mesh": {...}, "made_by": {"commit", "preset", ...}}
NAME.safetensors   decoder.*, unet.*, encoder.*, prior.*, upsampler.*, text.*, refiner.*, stats.*
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .io_utils import load_tensors, read_json, save_tensors_atomic, unprefixed, write_json_atomic

BUNDLE_FORMAT = "rodin-bundle/1"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_BUNDLE = WEIGHTS_DIR / "rodin_tiny.json"
REQUIRED = {"decoder": "decoder", "base": "unet"}


class BundleError(ValueError):
    """A weights bundle that is missing, corrupt, or does not match this version of the code."""


def save_bundle(json_path: str | Path, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    json_path = Path(json_path)
    save_tensors_atomic(
        json_path.with_suffix(".safetensors"), {k: v.contiguous() for k, v in tensors.items()}
    )
    write_json_atomic(json_path, {"format": BUNDLE_FORMAT, **config})


def load_bundle(json_path: str | Path | None = None) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Reads and checks a bundle; every problem is reported with the file and what to do about it."""
    json_path = Path(json_path) if json_path else DEFAULT_BUNDLE
    if json_path.suffix == ".safetensors":
        json_path = json_path.with_suffix(".json")
    if not json_path.is_file():
        hint = (
            "the embedded model is missing from this installation: reinstall the package, or train one with "
            "`python -m training.pipeline --preset tiny`"
            if json_path == DEFAULT_BUNDLE
            else "pass the .json file written by `python -m training.export`"
        )
        raise BundleError(f"weights bundle {json_path} not found; {hint}")
    try:
        config = read_json(json_path, "weights bundle config")
    except ValueError as exc:
        raise BundleError(str(exc)) from exc
    if config.get("format") != BUNDLE_FORMAT:
        raise BundleError(
            f"{json_path} is not a Rodin weights bundle (format {config.get('format')!r}, expected "
            f"{BUNDLE_FORMAT!r}); was it written by a different version?"
        )
    tensor_path = json_path.with_suffix(".safetensors")
    if not tensor_path.is_file():
        raise BundleError(f"{json_path} has no weights beside it: {tensor_path} is missing")
    try:
        tensors = load_tensors(tensor_path, "weights bundle")
    except ValueError as exc:
        raise BundleError(str(exc)) from exc
    for section, prefix in REQUIRED.items():
        if section not in config:
            raise BundleError(f"{json_path} has no {section!r} section; the bundle is incomplete")
        if not unprefixed(tensors, prefix):
            raise BundleError(f"{tensor_path} holds no {prefix}.* weights; the bundle is incomplete")
    return config, tensors


def load_module(
    module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str, source: Path | str
) -> None:
    try:
        module.load_state_dict(unprefixed(tensors, prefix))
    except RuntimeError as exc:
        raise BundleError(
            f"the {prefix} weights in {source} do not fit the configured network (mismatched config and "
            f"weights, or a bundle from another version): {str(exc).splitlines()[0]}"
        ) from exc
    module.eval()
