"""Stage 1: fit one tri-plane per avatar and one shared decoder to the rendered views.

    python -m training.fit_triplanes --data data/tiny --out runs/tiny/fit --preset tiny
    python -m training.fit_triplanes --data my_captures --out runs/mine --frozen-decoder runs/tiny/fit/fitted
    torchrun --nproc_per_node 8 -m training.fit_triplanes --data ... --out ... --preset paper

Writes OUT/latest.* (checkpoint, resumed with --resume), then OUT/fitted/ (planes.safetensors,
decoder.safetensors, fitted.json) and OUT/report.json (held-out PSNR/SSIM per avatar) with OUT/holdout.png.
Under torchrun the avatars are sharded across ranks (rank r fits avatars r, r+W, ...) and the decoder's
gradients are all-reduced, so every rank keeps the same decoder.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from rodin_core.bundle import load_bundle, load_module
from rodin_core.data import AvatarViews, DatasetError, list_records, load_record
from rodin_core.decoder import DecoderConfig, TriplaneDecoder
from rodin_core.fitting import FitConfig, PlaneBank, fit_loss, holdout_views, train_views
from rodin_core.io_utils import (
    load_tensors,
    prefixed,
    read_json,
    save_tensors_atomic,
    unprefixed,
    write_json_atomic,
)
from rodin_core.rendering import SamplingConfig
from training.common import (
    Checkpointer,
    all_reduce_mean,
    check_finite,
    cleanup_distributed,
    git_commit,
    init_distributed,
    lr_scale,
    pick_device,
    resolve_preset,
)
from training.fit_report import evaluate_fit, save_fitted


@dataclasses.dataclass(frozen=True)
class FitRunConfig:
    fit: FitConfig = dataclasses.field(default_factory=FitConfig)
    decoder: DecoderConfig = dataclasses.field(default_factory=DecoderConfig)
    steps: int = 4500
    checkpoint_every: int = 250
    eval_limit: int | None = None  # held-out evaluation of the first N avatars (None: all)
    lr_decay_start: float = 0.6  # fraction of the run after which learning rates decay linearly to 10%
    eval_sampling: SamplingConfig = dataclasses.field(
        default_factory=lambda: SamplingConfig(uniform=48, importance=48)
    )
    seed: int = 0


PRESETS = {
    # 256 avatars at 64 px on 2 CPU cores: ~0.62 s a step, about 47 minutes (+3 for the held-out report).
    "tiny": FitRunConfig(eval_limit=64),
    # Two short CI-sized runs use this one (a few avatars, a few hundred steps).
    "smoke": FitRunConfig(
        fit=FitConfig(resolution=32, avatars_per_step=2, rays_per_avatar=256, warmup_steps=20),
        steps=60,
        checkpoint_every=20,
        eval_sampling=SamplingConfig(uniform=32, importance=16),
    ),
    # GPU clusters: 256^2 x 32-channel planes (the upsampler's target), more rays and samples.
    "paper": FitRunConfig(
        fit=FitConfig(
            resolution=256,
            channels=32,
            avatars_per_step=16,
            rays_per_avatar=4096,
            sampling=SamplingConfig(uniform=32, importance=0, depth_band=32),
        ),
        decoder=DecoderConfig(channels=32, hidden=128, color_hidden=64),
        steps=200_000,
        checkpoint_every=2000,
    ),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m training.fit_triplanes",
        description="Fit tri-planes and a shared decoder to a rendered avatar data set (Rodin stage 1).",
    )
    p.add_argument("--data", required=True, help="data set folder written by blender_scenes.generate_dataset")
    p.add_argument("--out", required=True, help="run folder for checkpoints, fitted planes and the report")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--resume", action="store_true", help="continue from OUT/latest.* if it exists")
    p.add_argument("--steps", type=int, help="override the preset's number of steps")
    p.add_argument("--limit", type=int, help="fit only the first N avatars of the data set")
    p.add_argument(
        "--frozen-decoder",
        help="decoder to fit new avatars with, unchanged: the fitted/ folder of an earlier fit (decoder.safetensors "
        "+ fitted.json) or a weights bundle .json (e.g. rodin_core/weights/rodin_tiny.json, the embedded model)",
    )
    p.add_argument("--no-depth", action="store_true", help="ignore depth maps (fitting from images only)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument(
        "--avatars-per-step",
        type=int,
        help="override the preset's avatars per step (a GPU fits 32 at once as fast as a CPU fits 8)",
    )
    p.add_argument("--eval-limit", type=int, help="evaluate held-out views of only the first N avatars")
    return p.parse_args(argv)


def load_avatars(
    root: Path, limit: int | None, use_depth: bool, rank: int, world: int
) -> tuple[list[str], list]:
    records = list_records(root)
    if limit:
        records = records[:limit]
    if len(records) < world:
        raise DatasetError(
            f"{root} has {len(records)} avatars, fewer than the {world} ranks; use fewer processes"
        )
    mine = records[rank::world]
    return [r.name for r in records], [load_record(r, use_depth=use_depth) for r in mine]


def load_frozen_decoder(source: Path) -> tuple[DecoderConfig, TriplaneDecoder]:
    if source.suffix in (".json", ".safetensors"):
        # A weights bundle: tri-planes fitted with its decoder live in the latent space its base model learned.
        meta, tensors = load_bundle(source)
    else:
        meta = read_json(source / "fitted.json", "fitted tri-plane metadata")
        tensors = prefixed(load_tensors(source / "decoder.safetensors", "decoder weights"), "decoder")
    config = DecoderConfig(**meta["decoder"])
    decoder = TriplaneDecoder(config)
    load_module(decoder, tensors, "decoder", source)
    return config, decoder


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = init_distributed()
    overrides = {"steps": args.steps} if args.steps else {}
    run = resolve_preset(PRESETS, args.preset, overrides)
    if args.avatars_per_step is not None:
        if args.avatars_per_step < 1:
            raise SystemExit(f"error: --avatars-per-step must be at least 1, got {args.avatars_per_step}")
        run = dataclasses.replace(
            run, fit=dataclasses.replace(run.fit, avatars_per_step=args.avatars_per_step)
        )
    device = pick_device(args.device, info)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    frozen = args.frozen_decoder is not None
    if frozen:
        decoder_cfg, decoder = load_frozen_decoder(Path(args.frozen_decoder))
        decoder.requires_grad_(False)
    else:
        torch.manual_seed(run.seed)  # the same decoder initialisation on every rank
        decoder_cfg, decoder = run.decoder, TriplaneDecoder(run.decoder)
    fit_cfg = dataclasses.replace(run.fit, channels=decoder_cfg.channels)
    decoder = decoder.to(device)

    all_ids, avatars = load_avatars(
        Path(args.data), args.limit, not args.no_depth, info.rank, info.world_size
    )
    fit_cfg = dataclasses.replace(
        fit_cfg, holdout_views=holdout_views(len(avatars[0].cameras), fit_cfg.holdout_views)
    )
    views = train_views(len(avatars[0].cameras), fit_cfg.holdout_views)
    bank = PlaneBank(
        len(avatars),
        fit_cfg.channels,
        fit_cfg.resolution,
        fit_cfg.init_std,
        fit_cfg.plane_lr,
        run.seed + info.rank,
        device,
    )
    optim = (
        torch.optim.Adam(decoder.parameters(), lr=fit_cfg.decoder_lr, betas=(0.9, 0.99))
        if not frozen
        else None
    )

    ckpt = Checkpointer(out, "latest")
    shard_ckpt = Checkpointer(out, f"latest_bank_rank{info.rank}")
    step = 0
    if args.resume and (out / "report.json").is_file() and ckpt.exists():
        done = read_json(ckpt.json_path, "checkpoint metadata")["step"]
        if done >= run.steps and (out / "fitted" / "fitted.json").is_file():
            if info.is_main:
                print(f"{out} is complete ({done} steps, report.json written); nothing to do", flush=True)
            cleanup_distributed()
            return 0
    if args.resume and ckpt.exists():
        meta = ckpt.load({"decoder": decoder}, {"decoder": optim} if optim else None)
        if meta.get("world_size", 1) != info.world_size or meta.get("avatars") != len(all_ids):
            raise SystemExit(
                f"checkpoint in {out} was written by {meta.get('world_size')} ranks over {meta.get('avatars')} "
                f"avatars; this run has {info.world_size} ranks and {len(all_ids)} avatars. Resume with the same "
                "settings or use a new --out folder."
            )
        bank.load(unprefixed(shard_ckpt.load_tensors(), "bank"))
        step = int(meta["step"])
        if info.is_main:
            print(f"resumed from {ckpt.json_path} at step {step}", flush=True)
    elif not (out / "fitted").exists():
        ckpt.refuse_overwrite()

    def save(step: int) -> None:
        shard_ckpt.save(step, {"bank": bank.state()}, {"rank": info.rank})
        if info.enabled:
            dist.barrier()
        if info.is_main:
            meta = {
                "world_size": info.world_size,
                "avatars": len(all_ids),
                "preset": args.preset,
                "fit": fit_cfg.to_dict(),
                "decoder_config": decoder_cfg.to_dict(),
                "device": str(device),
            }
            ckpt.save(step, {"decoder": decoder}, meta, {"decoder": optim} if optim else None)

    gen = random.Random(run.seed * 1000 + info.rank + step)
    bar = tqdm(total=run.steps, initial=step, disable=not info.is_main, desc="fit", dynamic_ncols=True)
    running: dict[str, float] = {}
    started = time.time()
    while step < run.steps:
        scale = lr_scale(step, run.steps, run.lr_decay_start)
        bank.lr = fit_cfg.plane_lr * scale
        if optim:
            for group in optim.param_groups:
                group["lr"] = fit_cfg.decoder_lr * scale
        k = min(fit_cfg.avatars_per_step, len(avatars))
        index = torch.tensor(gen.sample(range(len(avatars)), k))
        planes = bank.gather(index)
        batch: list[AvatarViews] = [avatars[i] for i in index.tolist()]
        loss, stats = fit_loss(planes, decoder, batch, fit_cfg, step, gen, views)
        check_finite(loss, step, ckpt)
        if optim:
            optim.zero_grad(set_to_none=True)
        loss.backward()
        if optim:
            for p in decoder.parameters():
                if p.grad is not None:
                    p.grad.copy_(all_reduce_mean(p.grad))
            optim.step()
        bank.step(index, planes.grad)
        step += 1
        for key, value in stats.items():
            running[key] = value if key not in running else 0.98 * running[key] + 0.02 * value
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(psnr=f"{running['psnr']:.2f}", mask=f"{running['mask']:.4f}")
        if step % run.checkpoint_every == 0 or step == run.steps:
            save(step)
            if info.is_main:
                write_json_atomic(
                    out / "progress.json",
                    {"step": step, "running": running, "seconds": time.time() - started},
                )
    bar.close()

    write_fitted(out, info, all_ids, bank, decoder, decoder_cfg, fit_cfg, args)
    if info.is_main:
        report = evaluate_fit(
            out / "fitted", Path(args.data), run.eval_sampling, args.eval_limit or run.eval_limit, out
        )
        print(
            f"held-out PSNR {report['mean_psnr']:.2f} dB, SSIM {report['mean_ssim']:.3f}, "
            f"after 2x down/up-sampling {report['mean_psnr_rescaled']:.2f} dB over {report['evaluated']} avatars; "
            f"report in {out / 'report.json'}",
            flush=True,
        )
    cleanup_distributed()
    return 0


def write_fitted(out, info, all_ids, bank, decoder, decoder_cfg, fit_cfg, args) -> None:
    """Gathers every rank's planes in data set order into OUT/fitted/ (rank 0 writes)."""
    folder = out / "fitted"
    save_tensors_atomic(out / f"shard_rank{info.rank}.safetensors", {"planes": bank.planes.cpu()})
    if info.enabled:
        dist.barrier()
    if not info.is_main:
        return
    planes = torch.zeros(len(all_ids), *bank.planes.shape[1:])
    for rank in range(info.world_size):
        planes[rank :: info.world_size] = load_tensors(out / f"shard_rank{rank}.safetensors")["planes"]
    save_fitted(
        folder,
        planes,
        decoder.state_dict(),
        {
            "format": "rodin-fitted/1",
            "ids": all_ids,
            "data": str(Path(args.data).resolve()),
            "decoder": decoder_cfg.to_dict(),
            "resolution": fit_cfg.resolution,
            "channels": fit_cfg.channels,
            "holdout_views": list(fit_cfg.holdout_views),
            "frozen_decoder": args.frozen_decoder,
            "commit": git_commit(),
        },
    )
    for rank in range(info.world_size):
        (out / f"shard_rank{rank}.safetensors").unlink(missing_ok=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DatasetError as exc:
        sys.exit(f"error: {exc}")
