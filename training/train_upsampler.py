"""Stage 3: the diffusion upsampler from base-resolution to full-resolution tri-planes.

    python -m training.train_upsampler --fit runs/tiny/fit --base runs/tiny/base --out runs/tiny/upsampler
    torchrun --nproc_per_node 8 -m training.train_upsampler ... --preset paper [--vgg vgg16-397923af.pth]

The UNet sees the noisy high-resolution tri-plane next to the (augmented) bilinear upsampling of the
low-resolution one and predicts the clean tri-plane (x0). Loss: L2 on tri-planes + a rendering loss on random
image patches of the predicted tri-plane (L2 + perceptual; VGG16 only from a local file, else the project's
own image encoder, and the log says which). At the end, held-out avatars are upsampled and compared with
plain bilinear upsampling: OUT/report.json and OUT/comparison.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from rodin_core.data import DatasetError, load_record, rgba_to_target
from rodin_core.encoder import EncoderConfig, ImageEncoder
from rodin_core.io_utils import load_tensors, read_json, save_tensors_atomic, unprefixed, write_json_atomic
from rodin_core.metrics import psnr
from rodin_core.perceptual import PerceptualLoss
from rodin_core.preview import grid, render_image
from rodin_core.rendering import SamplingConfig, render_rays
from rodin_core.sampling import sample_base, sample_upsampled
from rodin_core.schedule import NoiseSchedule, ScheduleConfig
from rodin_core.triplane import denormalize, normalize, resample, roll_in, roll_out, sample_features
from rodin_core.unet import TriplaneUNet, UNetConfig
from rodin_core.upsampler import ConditionAugment, augment_condition, make_condition
from training.common import (
    EMA,
    Checkpointer,
    check_finite,
    cleanup_distributed,
    git_commit,
    init_distributed,
    resolve_preset,
)
from training.fit_report import load_fitted
from training.train_base import plane_stats


@dataclasses.dataclass(frozen=True)
class UpsamplerConfig:
    unet: UNetConfig = dataclasses.field(
        default_factory=lambda: UNetConfig(
            channels=8, cond_channels=8, base=32, mults=(1, 2, 2), attention=False
        )
    )
    schedule: ScheduleConfig = dataclasses.field(default_factory=lambda: ScheduleConfig(prediction="x0"))
    augment: ConditionAugment = dataclasses.field(default_factory=ConditionAugment)
    batch: int = 4
    lr: float = 3e-4
    steps: int = 250
    ema_decay: float = 0.995
    patch: int = 16  # rendered patch size for the rendering loss (the paper: 112 at 512 px renders)
    w_l2: float = 1.0
    w_render: float = 1.0
    w_perceptual: float = 0.1
    render_sampling: SamplingConfig = dataclasses.field(
        default_factory=lambda: SamplingConfig(uniform=12, importance=0, depth_band=16)
    )
    residual: bool = True  # x0 = condition + UNet output (see rodin_core.sampling.sample_upsampled)
    checkpoint_every: int = 100
    eval_steps: int = 10
    seed: int = 0


PRESETS = {
    # The fitted 64^2 planes render held-out views worse than their 32^2 versions upsampled bilinearly (they
    # carry per-avatar fitting noise: docs/results.md), so plane L2 alone pulls the model below bilinear;
    # the rendering loss against the real images leads here.
    "tiny": UpsamplerConfig(w_l2=0.1, w_render=10.0, steps=1500),  # ~1.6 s a step on 2 cores: 40 minutes
    "smoke": UpsamplerConfig(
        unet=UNetConfig(channels=8, cond_channels=8, base=16, mults=(1, 2), groups=4, attention=False),
        batch=2,
        steps=10,
        patch=8,
        checkpoint_every=5,
        eval_steps=3,
    ),
    "paper": UpsamplerConfig(
        unet=UNetConfig(channels=32, cond_channels=32, base=96, mults=(1, 2, 2, 4), blocks=2, groups=32),
        batch=16,
        lr=1e-4,
        steps=200_000,
        patch=112,
        checkpoint_every=2000,
        eval_steps=20,
    ),
}


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m training.train_upsampler", description=__doc__.splitlines()[0]
    )
    p.add_argument("--fit", required=True, help="run folder of training.fit_triplanes")
    p.add_argument(
        "--base", required=True, help="run folder of training.train_base (encoder, held-out split)"
    )
    p.add_argument("--data", help="data set (default: the one recorded in fitted.json)")
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--steps", type=int)
    p.add_argument("--vgg", help="torchvision VGG16 weights file for the perceptual loss (optional)")
    p.add_argument("--threads", type=int)
    p.add_argument("--eval-limit", type=int, default=16)
    return p.parse_args(argv)


def load_base(base: Path):
    cfg = read_json(base / "base" / "base.json", "base model config")
    tensors = load_tensors(base / "base" / "base.safetensors", "base model weights")
    encoder = ImageEncoder(
        EncoderConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["encoder"].items()})
    )
    encoder.load_state_dict(unprefixed(tensors, "encoder"))
    unet = TriplaneUNet(
        UNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["unet"].items()})
    )
    unet.load_state_dict(unprefixed(tensors, "unet"))
    return cfg, encoder.eval(), unet.eval(), tensors["stats.mean"], tensors["stats.std"]


def render_patch_loss(planes, decoder, records, idx, views, cfg, perceptual, gen):
    """L2 + perceptual loss of random P x P patches rendered from `planes` (B, 3, C, R, R) vs ground truth."""
    p = cfg.patch
    origins, dirs, targets, surface = [], [], [], []
    for rec in (records[i] for i in idx):
        h, w = rec.cameras.height, rec.cameras.width
        view = views[gen.randrange(len(views))]
        top, left = gen.randrange(h - p + 1), gen.randrange(w - p + 1)
        rows, cols = torch.meshgrid(torch.arange(top, top + p), torch.arange(left, left + p), indexing="ij")
        pixel = (rows * w + cols).reshape(-1)
        o, d, depth_to_t = rec.cameras.rays(torch.full_like(pixel, view), pixel)
        origins.append(o)
        dirs.append(d)
        targets.append(rgba_to_target(rec.rgba[view].reshape(-1, 4)[pixel], torch.ones(3))[0])
        if rec.depth is not None:
            surface.append(rec.depth[view].reshape(-1)[pixel] * depth_to_t)
    surface_t = torch.stack(surface) if len(surface) == len(idx) else None

    def field_fn(points, ray_dirs):
        return decoder(sample_features(planes, points), ray_dirs)

    out = render_rays(
        field_fn,
        torch.stack(origins),
        torch.stack(dirs),
        cfg.render_sampling,
        torch.ones(3),
        surface_t=surface_t,
    )
    pred = out["rgb"].reshape(len(idx), p, p, 3).permute(0, 3, 1, 2)
    target = torch.stack(targets).reshape(len(idx), p, p, 3).permute(0, 3, 1, 2)
    l2 = F.mse_loss(pred, target)
    perc = perceptual(pred, target) if cfg.w_perceptual > 0 else l2 * 0
    return l2, perc


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = init_distributed()
    cfg = resolve_preset(PRESETS, args.preset, {"steps": args.steps} if args.steps else {})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    meta, hi, decoder = load_fitted(Path(args.fit) / "fitted")
    decoder.requires_grad_(False)
    base_cfg, encoder, base_unet, base_mean, base_std = load_base(Path(args.base))
    data = Path(args.data or meta["data"])
    ids = meta["ids"]
    n_train = len(base_cfg["train_ids"])
    if ids[:n_train] != base_cfg["train_ids"]:
        raise SystemExit(
            "the base model was trained on a different fitted set; pass the matching --fit folder"
        )
    lo_res = int(base_cfg["resolution"])
    hi_res = hi.shape[-1]
    mean, std = plane_stats(hi[:n_train])
    x_all = normalize(hi, mean, std)
    cond_all = normalize(make_condition(resample(hi, lo_res), hi_res), mean, std)
    records = [load_record(data / name) for name in ids]
    holdout = set(meta["holdout_views"])
    views = [v for v in range(len(records[0].cameras)) if v not in holdout]

    perceptual = PerceptualLoss(args.vgg, encoder)
    if info.is_main:
        print(f"perceptual loss features: {perceptual.describe()}", flush=True)

    torch.manual_seed(cfg.seed)
    unet = TriplaneUNet(cfg.unet)
    ema = EMA(unet, cfg.ema_decay)
    optim = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.0)
    schedule = NoiseSchedule(cfg.schedule)
    ckpt = Checkpointer(out, "latest")
    step = 0
    if args.resume and (out / "report.json").is_file() and (out / "upsampler" / "upsampler.json").is_file():
        done = read_json(out / "upsampler" / "upsampler.json", "upsampler config")["steps"]
        if done >= cfg.steps:
            print(f"{out} is complete ({done} steps, report.json written); nothing to do", flush=True)
            cleanup_distributed()
            return 0
    if args.resume and ckpt.exists():
        step = int(ckpt.load({"unet": unet, "ema": ema.shadow}, {"optim": optim})["step"])
        if info.is_main:
            print(f"resumed from {ckpt.json_path} at step {step}", flush=True)
    else:
        ckpt.refuse_overwrite()
    trained = DistributedDataParallel(unet) if info.enabled else unet

    gen = torch.Generator().manual_seed(cfg.seed * 1000 + info.rank + step)
    pygen = random.Random(cfg.seed * 1000 + info.rank + step)
    bar = tqdm(total=cfg.steps, initial=step, disable=not info.is_main, desc="upsampler", dynamic_ncols=True)
    running: dict[str, float] = {}
    started = time.time()
    while step < cfg.steps:
        idx = torch.randint(n_train, (cfg.batch,), generator=gen)
        x0 = x_all[idx]
        cond = augment_condition(cond_all[idx], cfg.augment, gen)
        t = torch.randint(schedule.num_steps, (cfg.batch,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        x_t = schedule.add_noise(roll_out(x0), roll_out(noise), t).float()
        pred = trained(x_t, t, cond=roll_out(cond))
        if cfg.residual:
            pred = roll_out(cond) + pred
        loss_l2 = F.mse_loss(pred, roll_out(x0))
        planes = denormalize(roll_in(pred), mean, std)
        loss_render, loss_perc = render_patch_loss(
            planes, decoder, records, idx.tolist(), views, cfg, perceptual, pygen
        )
        loss = cfg.w_l2 * loss_l2 + cfg.w_render * loss_render + cfg.w_perceptual * loss_perc
        check_finite(loss, step, ckpt)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optim.step()
        ema.update(unet, step)
        step += 1
        for key, value in {"l2": loss_l2, "render": loss_render, "perc": loss_perc}.items():
            v = float(value.detach())
            running[key] = v if key not in running else 0.98 * running[key] + 0.02 * v
        bar.update(1)
        bar.set_postfix(l2=f"{running['l2']:.4f}", render=f"{running['render']:.4f}")
        if info.is_main and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            ckpt.save(
                step, {"unet": unet, "ema": ema.shadow}, {"preset": args.preset, **running}, {"optim": optim}
            )
            write_json_atomic(
                out / "progress.json", {"step": step, "running": running, "seconds": time.time() - started}
            )
    bar.close()

    if info.is_main:
        folder = out / "upsampler"
        folder.mkdir(exist_ok=True)
        tensors = {f"upsampler.{k}": v for k, v in ema.shadow.state_dict().items()}
        tensors.update({"stats_hi.mean": mean, "stats_hi.std": std})
        save_tensors_atomic(folder / "upsampler.safetensors", tensors)
        write_json_atomic(
            folder / "upsampler.json",
            {
                "format": "rodin-upsampler/1",
                "resolution": hi_res,
                "low_resolution": lo_res,
                "unet": cfg.unet.to_dict(),
                "schedule": cfg.schedule.to_dict(),
                "residual": cfg.residual,
                "augment": cfg.augment.to_dict(),
                "perceptual": perceptual.describe(),
                "steps": cfg.steps,
                "commit": git_commit(),
            },
        )
        report = evaluate(
            ema.shadow,
            schedule,
            decoder,
            records,
            ids,
            n_train,
            x_all,
            cond_all,
            mean,
            std,
            (encoder, base_unet, base_mean, base_std, base_cfg),
            cfg,
            meta,
            args.eval_limit,
            out,
        )
        print(
            "held-out PSNR from ground-truth low-res: diffusion {gt_diffusion:.2f} dB vs bilinear {gt_bilinear:.2f} dB; "
            "from base samples: diffusion {sample_diffusion:.2f} dB vs bilinear {sample_bilinear:.2f} dB".format(
                **report["mean"]
            ),
            flush=True,
        )
    cleanup_distributed()
    return 0


@torch.no_grad()
def evaluate(
    unet, schedule, decoder, records, ids, n_train, x_all, cond_all, mean, std, base, cfg, meta, limit, out
):
    """Held-out avatars: renders of diffusion-upsampled vs bilinear tri-planes against the ground-truth views."""
    unet.eval()
    encoder, base_unet, base_mean, base_std, base_cfg = base
    base_schedule = NoiseSchedule(ScheduleConfig(**base_cfg["schedule"]))
    hi_res = x_all.shape[-1]
    lo_res = int(base_cfg["resolution"])
    rows, tiles = [], []
    gen = torch.Generator().manual_seed(99)
    for i in range(n_train, min(len(ids), n_train + limit)):
        rec = records[i]
        cond = roll_out(cond_all[i : i + 1])
        up = denormalize(
            roll_in(sample_upsampled(unet, schedule, cond, gen, steps=cfg.eval_steps, residual=cfg.residual)),
            mean,
            std,
        )[0]
        bil = denormalize(roll_in(cond), mean, std)[0]
        low = resample(denormalize(x_all[i : i + 1], mean, std), lo_res)[0]
        # The same avatar as the base model sees it: a sample conditioned on its frontal view.
        image = rgba_to_target(rec.rgba[rec.frontal_index], torch.ones(3))[0].permute(2, 0, 1)[None]
        z = encoder(image)
        sample = sample_base(base_unet, base_schedule, z, lo_res, gen, base_cfg["guidance"])
        sample_planes = denormalize(roll_in(sample), base_mean, base_std)
        s_cond = roll_out(normalize(make_condition(sample_planes, hi_res), mean, std))
        s_up = denormalize(
            roll_in(
                sample_upsampled(unet, schedule, s_cond, gen, steps=cfg.eval_steps, residual=cfg.residual)
            ),
            mean,
            std,
        )[0]
        s_bil = denormalize(roll_in(s_cond), mean, std)[0]
        row = {"id": ids[i]}
        for key, planes in {
            "gt_diffusion": up,
            "gt_bilinear": bil,
            "sample_diffusion": s_up,
            "sample_bilinear": s_bil,
        }.items():
            row[key] = sum(
                psnr(
                    render_image(planes, decoder, rec.cameras, v)["rgb"],
                    rgba_to_target(rec.rgba[v], torch.ones(3))[0],
                )
                for v in meta["holdout_views"]
            ) / len(meta["holdout_views"])
        rows.append(row)
        if len(tiles) < 4 * 6:
            v = meta["holdout_views"][0]
            tiles += [render_image(p, decoder, rec.cameras, v)["rgb"] for p in (low, bil, up)]
            tiles.append(rgba_to_target(rec.rgba[v], torch.ones(3))[0])
    keys = ("gt_diffusion", "gt_bilinear", "sample_diffusion", "sample_bilinear")
    report = {
        "evaluated": len(rows),
        "eval_steps": cfg.eval_steps,
        "columns_of_comparison_png": ["low-res render", "bilinear", "diffusion upsampled", "ground truth"],
        "mean": {k: sum(r[k] for r in rows) / len(rows) for k in keys},
        "per_avatar": rows,
    }
    write_json_atomic(out / "report.json", report)
    Image.fromarray(grid(tiles, columns=4)).save(out / "comparison.png")
    return report


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (DatasetError, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")
