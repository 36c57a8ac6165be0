"""What every training stage shares: distributed setup, checkpoints with resume, EMA, presets, NaN guard.

Checkpoints are a folder holding `<name>.safetensors` (tensors, namespaced per module) and `<name>.json`
(step, config, optimiser-free metadata); optimiser state goes to `<name>.optim.pt`. The json is written
last, so a checkpoint counts as complete only when its json exists and names the same step.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from rodin_core.data import DatasetError, list_records
from rodin_core.io_utils import (
    load_tensors,
    prefixed,
    read_json,
    save_tensors_atomic,
    unprefixed,
    write_json_atomic,
)

T = TypeVar("T")


# ----------------------------------------------------------------------------- distributed


@dataclasses.dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistInfo:
    """Joins the process group when started by torchrun (gloo on CPU, NCCL on GPU); a no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if torch.cuda.is_available():
        torch.cuda.set_device(info.local_rank)
    return info


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value


def lr_scale(step: int, total: int, decay_start: float) -> float:
    """1 until `decay_start` (a fraction of the run), then linearly down to 0.1 at the last step."""
    start = int(total * decay_start)
    if step < start:
        return 1.0
    return 1.0 - 0.9 * (step - start) / max(1, total - start)


def pick_device(requested: str = "auto", info: DistInfo | None = None) -> torch.device:
    """The device a run asked for; under torchrun on GPUs each rank takes its own local GPU."""
    if info is not None and info.enabled and torch.cuda.is_available():
        return torch.device(f"cuda:{info.local_rank}")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but torch sees no CUDA GPU; use --device cpu")
    return torch.device(requested)


# ----------------------------------------------------------------------------- presets


def resolve_preset(presets: Mapping[str, T], name: str, overrides: Mapping[str, Any] | None = None) -> T:
    """Returns a copy of a named preset with field overrides (only fields the config has)."""
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(sorted(presets))}")
    config = copy.deepcopy(presets[name])
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    known = {f.name for f in dataclasses.fields(config)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown config fields {sorted(unknown)}; known: {sorted(known)}")
    return dataclasses.replace(config, **overrides)


def same_tensors(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    """Whether every tensor of `a` is in `b`, bit for bit (e.g. a decoder against the one planes were fitted with)."""
    return all(name in b and torch.equal(b[name], value) for name, value in a.items())


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ----------------------------------------------------------------------------- checkpoints


class Checkpointer:
    """Atomic save / resume of named modules + optimiser state in one folder (`latest` and numbered)."""

    def __init__(self, folder: str | os.PathLike, name: str = "latest") -> None:
        self.folder = Path(folder)
        self.name = name

    @property
    def json_path(self) -> Path:
        return self.folder / f"{self.name}.json"

    @property
    def tensors_path(self) -> Path:
        return self.folder / f"{self.name}.safetensors"

    @property
    def optim_path(self) -> Path:
        return self.folder / f"{self.name}.optim.pt"

    def exists(self) -> bool:
        return self.json_path.is_file() and self.tensors_path.is_file()

    def refuse_overwrite(self) -> None:
        """Stop a fresh run that would overwrite this folder's checkpoint (a run without --resume)."""
        if self.exists():
            raise SystemExit(
                f"{self.folder} already holds a checkpoint; pass --resume to continue it or choose another --out"
            )

    def save(
        self,
        step: int,
        modules: Mapping[str, torch.nn.Module | Mapping[str, torch.Tensor]],
        meta: Mapping[str, Any] | None = None,
        optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    ) -> None:
        tensors: dict[str, torch.Tensor] = {}
        for key, module in modules.items():
            state = module.state_dict() if isinstance(module, torch.nn.Module) else module
            tensors.update(prefixed(state, key))
        save_tensors_atomic(self.tensors_path, tensors)
        if optimizers:
            tmp = self.optim_path.with_suffix(".tmp")
            torch.save({k: o.state_dict() for k, o in optimizers.items()}, tmp)
            os.replace(tmp, self.optim_path)
        write_json_atomic(self.json_path, {"step": int(step), "modules": sorted(modules), **(meta or {})})

    def load(
        self,
        modules: Mapping[str, torch.nn.Module],
        optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
        map_location: str | torch.device = "cpu",
    ) -> dict[str, Any]:
        """Restores modules (and optimisers when saved) and returns the json metadata."""
        meta = read_json(self.json_path, "checkpoint metadata")
        tensors = load_tensors(self.tensors_path, "checkpoint")
        for key, module in modules.items():
            state = unprefixed(tensors, key)
            if not state:
                raise ValueError(f"checkpoint {self.tensors_path} has no tensors for module {key!r}")
            try:
                module.load_state_dict(state)
            except RuntimeError as exc:
                raise ValueError(
                    f"checkpoint {self.tensors_path} does not match module {key!r} (was the config changed "
                    f"since it was written? start a new run folder or restore the config): {exc}"
                ) from exc
        if optimizers and self.optim_path.is_file():
            states = torch.load(self.optim_path, map_location=map_location, weights_only=True)
            for key, opt in optimizers.items():
                if key in states:
                    opt.load_state_dict(states[key])
        return meta

    def load_tensors(self) -> dict[str, torch.Tensor]:
        return load_tensors(self.tensors_path, "checkpoint")


# ----------------------------------------------------------------------------- training helpers


class EMA:
    """Exponential moving average of a module's parameters (the weights that get sampled and shipped)."""

    def __init__(self, module: torch.nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.shadow = copy.deepcopy(module).eval()
        for p in self.shadow.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, module: torch.nn.Module, step: int | None = None) -> None:
        # Warm-up keeps the average from being dominated by the random initialisation early on.
        decay = self.decay if step is None else min(self.decay, (1 + step) / (10 + step))
        for s, p in zip(self.shadow.parameters(), module.parameters()):
            s.lerp_(p.detach(), 1 - decay)
        for s, b in zip(self.shadow.buffers(), module.buffers()):
            s.copy_(b)


class NonFiniteLossError(RuntimeError):
    pass


def check_finite(loss: torch.Tensor, step: int, checkpoint: Checkpointer | None = None) -> None:
    """Stops a run on NaN/inf with a message that says what to do; the last good checkpoint is untouched."""
    if not torch.isfinite(loss).all():
        where = (
            f" The last good checkpoint is {checkpoint.json_path}."
            if checkpoint and checkpoint.exists()
            else ""
        )
        raise NonFiniteLossError(
            f"loss became {loss.item()} at step {step}; stopping without saving.{where} "
            "Lower the learning rate or check the data, then resume."
        )


def extra_record_names(root: Path, option: str = "--extra-data") -> list[str]:
    """The complete records of the data set given as `option`; a one-line exit naming the problem when it is not
    one."""
    try:
        return [record.name for record in list_records(root)]
    except DatasetError as exc:
        raise SystemExit(f"{option}: {exc}") from exc


# ----------------------------------------------------------------------------- reports


def count_hats(heads: list[tuple[bool, bool]]) -> dict[str, int]:
    """How well something tells a hat from hair, over heads with hair, each given as (wears a hat, taken for
    wearing one): the hats and how many were found, the bare heads and how many were taken for hats. The one
    format of both hat reports (training.train_parts' segmenter, training.hair_looks' find_headwear)."""
    hats = [found for worn, found in heads if worn]
    bare = [found for worn, found in heads if not worn]
    return {
        "hats": len(hats),
        "hats_found": sum(hats),
        "bare_heads": len(bare),
        "bare_taken_for_hats": sum(bare),
    }


def hats_line(count: dict[str, int]) -> str:
    """`count_hats`' result in words."""
    return (
        f"{count['hats_found']} of {count['hats']} hats found, "
        f"{count['bare_taken_for_hats']} of {count['bare_heads']} bare heads taken for hats"
    )
