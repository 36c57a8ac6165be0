"""Stage 2: the base tri-plane diffusion model, its image encoder, and the latent prior.

    python -m training.train_base --fitted runs/tiny/fit/fitted --out runs/tiny/base --preset tiny
    torchrun --nproc_per_node 8 -m training.train_base --fitted ... --out ... --preset paper

Trains a UNet with 3D-aware convolutions on the fitted tri-planes (resampled to the base resolution,
standardised per channel), conditioned on the latent code of each avatar's frontal view. The image encoder
learns jointly; z is zeroed on `cfg_drop` of the samples so classifier-free guidance works. Afterwards a small
diffusion prior is fitted to the encoder's codes so avatars can be sampled without an image.
Writes OUT/latest.* (resume with --resume), OUT/samples_*.png grids and, at the end, OUT/base/.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from blender_scenes.attributes import FAMILIES
from rodin_core.bundle import load_bundle, load_module
from rodin_core.cameras import Cameras
from rodin_core.data import DatasetError, load_record, rgba_to_target
from rodin_core.encoder import EncoderConfig, ImageEncoder
from rodin_core.io_utils import read_json, save_tensors_atomic, unprefixed, write_json_atomic
from rodin_core.preview import grid, render_image
from rodin_core.prior import LatentPrior, PriorConfig
from rodin_core.sampling import sample_base, sample_latents
from rodin_core.schedule import NoiseSchedule, ScheduleConfig
from rodin_core.triplane import denormalize, mirror_x, normalize, resample, roll_in, roll_out
from rodin_core.unet import TriplaneUNet, UNetConfig
from training.attribute_classifier import labels_of
from training.common import (
    EMA,
    Checkpointer,
    check_finite,
    cleanup_distributed,
    extra_record_names,
    git_commit,
    init_distributed,
    lr_scale,
    pick_device,
    resolve_preset,
    same_tensors,
)
from training.fit_report import load_fitted


@dataclasses.dataclass(frozen=True)
class BaseConfig:
    resolution: int = 32
    unet: UNetConfig = dataclasses.field(
        default_factory=lambda: UNetConfig(base=32, mults=(1, 2, 2), z_dim=64)
    )
    encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
    prior: PriorConfig = dataclasses.field(default_factory=PriorConfig)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    batch: int = 16
    lr: float = 3e-4
    lr_decay_start: float = 1.0  # fraction of the run after which the rate decays linearly to 10% (1: never)
    steps: int = 1250  # ~2 s a step on 2 CPU cores (batch 16): 42 minutes
    ema_decay: float = 0.999
    cfg_drop: float = 0.2
    mirror_prob: float = 0.5
    holdout: int = 16  # the last N fitted avatars are never trained on (conditioned samples use them)
    checkpoint_every: int = 250
    sample_every: int = 250
    prior_steps: int = 4000
    prior_batch: int = 128
    prior_lr: float = 1e-3
    guidance: float = 2.0
    # Weight of a classification loss on z that names each attribute family of the frontal view (0: off). The
    # diffusion loss alone teaches the encoder what covers many texels (shirt colour, skin) and little of small
    # features (glasses, earrings, facial hair), so conditioned samples missed them.
    attribute_weight: float = 0.0
    attribute_batch: int = 32  # labelled frontal views of --attribute-data per step, besides the batch's own
    seed: int = 0


PRESETS = {
    "tiny": BaseConfig(),
    "smoke": BaseConfig(
        unet=UNetConfig(base=16, mults=(1, 2), z_dim=16, groups=4),
        encoder=EncoderConfig(z_dim=16, widths=(16, 16, 32, 32)),
        prior=PriorConfig(z_dim=16, hidden=64, layers=2),
        resolution=16,
        batch=4,
        steps=30,
        holdout=2,
        checkpoint_every=10,
        sample_every=1000,
        prior_steps=50,
        prior_batch=8,
    ),
    # 64^2 base tri-planes with 32 channels and a 512-d latent, as in the paper (for GPU clusters).
    "paper": BaseConfig(
        resolution=64,
        unet=UNetConfig(channels=32, base=128, mults=(1, 2, 2, 4), blocks=2, z_dim=512, groups=32),
        encoder=EncoderConfig(z_dim=512, image_size=128, widths=(64, 128, 256, 512)),
        prior=PriorConfig(z_dim=512, hidden=1024, layers=6),
        batch=32,
        lr=1e-4,
        steps=300_000,
        holdout=500,
        checkpoint_every=2000,
        sample_every=10_000,
        prior_steps=100_000,
    ),
}


class AttributeHeads(nn.Module):
    """Training-only linear read-outs of every attribute family from z (not exported)."""

    def __init__(self, z_dim: int) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({f: nn.Linear(z_dim, len(v)) for f, v in FAMILIES.items()})

    def loss(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over families; labels (B, families) index FAMILIES' values."""
        return torch.stack(
            [F.cross_entropy(head(z), labels[:, i]) for i, head in enumerate(self.heads.values())]
        ).mean()


class BaseModel(nn.Module):
    """The UNet and the image encoder trained as one module (one DDP wrapper, one EMA)."""

    def __init__(self, config: BaseConfig) -> None:
        super().__init__()
        if config.unet.z_dim != config.encoder.z_dim:
            raise ValueError(f"unet.z_dim {config.unet.z_dim} != encoder.z_dim {config.encoder.z_dim}")
        self.unet = TriplaneUNet(config.unet)
        self.encoder = ImageEncoder(config.encoder)
        self.attributes = AttributeHeads(config.encoder.z_dim) if config.attribute_weight > 0 else None

    def forward(self, x_t, t, images, keep, labels=None):
        """The diffusion output and the attribute loss of `images` (zero without heads or labels).

        `images` may hold more views than `x_t` has samples: the extra ones only feed the attribute loss."""
        z = self.encoder(images)
        pred = self.unet(x_t, t, z[: len(x_t)] * keep[:, None])
        if self.attributes is None or labels is None:
            return pred, pred.new_zeros(())
        return pred, self.attributes.loss(z, labels)


def frontal_images(data: Path, ids: list[str], size: int) -> torch.Tensor:
    """(N, 3, size, size) frontal views composited over white."""
    out = []
    for name in ids:
        record = load_record(data / name, use_depth=False)
        rgb, _ = rgba_to_target(record.rgba[record.frontal_index], torch.ones(3))
        out.append(rgb.permute(2, 0, 1))
    images = torch.stack(out)
    if images.shape[-1] != size:
        images = F.interpolate(
            images, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    return images


def attribute_labels(data: Path, ids: list[str]) -> torch.Tensor:
    """(N, families) value indices of the avatars' attributes.json, in FAMILIES order."""
    return torch.stack(list(labels_of(data, ids).values()), dim=1)


def plane_stats(planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = planes.transpose(0, 2).reshape(planes.shape[2], -1)  # (C, everything else)
    return flat.mean(dim=1), flat.std(dim=1).clamp(min=1e-3)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m training.train_base",
        description="Train the base tri-plane diffusion model, image encoder and latent prior (Rodin stage 2).",
    )
    p.add_argument("--fitted", required=True, help="fitted/ folder from training.fit_triplanes")
    p.add_argument("--data", help="data set folder (default: the one recorded in fitted.json)")
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch", type=int, help="samples per step (default: the preset's)")
    p.add_argument(
        "--lr-decay-start",
        type=float,
        help="fraction of the run after which the learning rate decays linearly to 10%% (default: the preset's; "
        "1 keeps it constant)",
    )
    p.add_argument(
        "--attribute-weight",
        type=float,
        help="weight of the attribute loss on the image latent z (default: the preset's; 0 turns it off)",
    )
    p.add_argument(
        "--attribute-data",
        help="another data set of the generator (other --seed) whose frontal views and attributes are added to the "
        "attribute loss: the encoder learns attributes from more avatars than have fitted tri-planes",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int)
    p.add_argument(
        "--init-from",
        help="weights bundle .json to continue training from (its UNet, encoder and tri-plane statistics); "
        "the fitted tri-planes must come from its decoder (fit_triplanes --frozen-decoder BUNDLE)",
    )
    return p.parse_args(argv)


def load_init(bundle_path: Path, model: BaseModel, decoder) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Loads a bundle's base networks into `model`; returns its tri-plane statistics and training steps."""
    config, tensors = load_bundle(bundle_path)
    bundle_decoder = unprefixed(tensors, "decoder")
    if not same_tensors(decoder.state_dict(), bundle_decoder):
        raise SystemExit(
            f"the fitted tri-planes were made with a different decoder than {bundle_path}'s, so they do not "
            f"live in the latent space its base model learned; fit them with "
            f"`python -m training.fit_triplanes --frozen-decoder {bundle_path} ...`"
        )
    load_module(model.unet, tensors, "unet", bundle_path)
    load_module(model.encoder, tensors, "encoder", bundle_path)
    model.train()
    return tensors["stats.mean"], tensors["stats.std"], int(config["made_by"].get("base_steps", 0))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = init_distributed()
    if args.batch is not None and args.batch < 1:
        raise SystemExit(f"--batch must be at least 1; got {args.batch}")
    if args.lr_decay_start is not None and not 0.0 <= args.lr_decay_start <= 1.0:
        raise SystemExit(f"--lr-decay-start is a fraction of the run, 0 to 1; got {args.lr_decay_start}")
    overrides = {k: v for k, v in (("steps", args.steps), ("batch", args.batch)) if v}
    if args.lr_decay_start is not None:
        overrides["lr_decay_start"] = args.lr_decay_start
    if args.attribute_weight is not None:
        if args.attribute_weight < 0:
            raise SystemExit(f"--attribute-weight must be 0 or more; got {args.attribute_weight}")
        overrides["attribute_weight"] = args.attribute_weight
    cfg = resolve_preset(PRESETS, args.preset, overrides)
    device = pick_device(args.device, info)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    meta, planes_hi, decoder = load_fitted(Path(args.fitted))
    data = Path(args.data or meta["data"])
    if planes_hi.shape[2] != cfg.unet.channels:
        raise SystemExit(
            f"fitted tri-planes have {planes_hi.shape[2]} channels but preset {args.preset!r} expects "
            f"{cfg.unet.channels}; fit with the matching preset"
        )
    if len(meta["ids"]) <= cfg.holdout + 1:
        raise SystemExit(f"{len(meta['ids'])} fitted avatars are too few to hold out {cfg.holdout}")
    planes = resample(planes_hi, cfg.resolution)
    n_train = len(meta["ids"]) - cfg.holdout
    torch.manual_seed(cfg.seed)
    model = BaseModel(cfg)
    init_steps = 0
    if args.init_from:
        mean, std, init_steps = load_init(Path(args.init_from), model, decoder)
    else:
        mean, std = plane_stats(planes[:n_train])
    model = model.to(device)
    x_all = normalize(planes, mean, std)
    images_all = frontal_images(data, meta["ids"], cfg.encoder.image_size)
    labels_all = attribute_labels(data, meta["ids"]) if cfg.attribute_weight > 0 else None
    extra_images, extra_labels = None, None
    if args.attribute_data:
        if cfg.attribute_weight <= 0:
            raise SystemExit(
                "--attribute-data feeds the attribute loss; give it a weight with --attribute-weight"
            )
        names = extra_record_names(Path(args.attribute_data))
        extra_images = frontal_images(Path(args.attribute_data), names, cfg.encoder.image_size)
        extra_labels = attribute_labels(Path(args.attribute_data), names)
        if info.is_main:
            print(f"attribute loss: {len(names)} more labelled views from {args.attribute_data}", flush=True)

    ema = EMA(model, cfg.ema_decay)
    optim = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    schedule = NoiseSchedule(cfg.schedule)
    ckpt = Checkpointer(out, "latest")
    step = 0
    if args.resume and (out / "base" / "base.json").is_file():
        done = read_json(out / "base" / "base.json", "base model config")["steps"]
        if done >= cfg.steps:
            print(f"{out} is complete ({done} steps, base/ written); nothing to do", flush=True)
            cleanup_distributed()
            return 0
    init_from = str(Path(args.init_from).resolve()) if args.init_from else None
    if args.resume and ckpt.exists():
        saved = ckpt.load({"model": model, "ema": ema.shadow}, {"optim": optim})
        if saved.get("init_from") != init_from:
            # The tri-plane statistics come from the bundle or from the planes; a resume must keep the same ones.
            raise SystemExit(
                f"{out} was started with --init-from {saved.get('init_from')}, this run has --init-from "
                f"{init_from}; resume it with the same option or choose another --out"
            )
        step = int(saved["step"])
        if info.is_main:
            print(f"resumed from {ckpt.json_path} at step {step}", flush=True)
    else:
        ckpt.refuse_overwrite()
    trained = model
    if info.enabled:
        trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    gen = torch.Generator().manual_seed(cfg.seed * 1000 + info.rank + step)
    bar = tqdm(total=cfg.steps, initial=step, disable=not info.is_main, desc="base", dynamic_ncols=True)
    running = None
    started = time.time()
    while step < cfg.steps:
        idx = torch.randint(n_train, (cfg.batch,), generator=gen)
        x0, images = x_all[idx], images_all[idx]
        flip = torch.rand(cfg.batch, generator=gen) < cfg.mirror_prob
        x0 = torch.where(flip[:, None, None, None, None], mirror_x(x0), x0)
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        x0 = roll_out(x0).to(device)
        t = torch.randint(schedule.num_steps, (cfg.batch,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        keep = (torch.rand(cfg.batch, generator=gen) >= cfg.cfg_drop).float().to(device)
        x_t = schedule.add_noise(x0, noise, t).float()
        labels = None
        if labels_all is not None:
            labels = labels_all[idx]
            if extra_images is not None:
                pick = torch.randint(len(extra_images), (cfg.attribute_batch,), generator=gen)
                more = extra_images[pick]
                more = torch.where(
                    (torch.rand(len(pick), generator=gen) < cfg.mirror_prob)[:, None, None, None],
                    more.flip(-1),
                    more,
                )
                images, labels = torch.cat([images, more]), torch.cat([labels, extra_labels[pick]])
            labels = labels.to(device)
        pred, attribute_loss = trained(x_t, t.to(device), images.to(device), keep, labels)
        diffusion_loss = F.mse_loss(pred, schedule.target(x0, noise, t).float())
        loss = diffusion_loss + cfg.attribute_weight * attribute_loss
        check_finite(loss, step, ckpt)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        lr = cfg.lr * lr_scale(step, cfg.steps, cfg.lr_decay_start)
        if args.init_from:
            # Fresh Adam moments on trained weights: ramp the rate up so the first updates do not undo them.
            lr *= min(1.0, (step + 1) / 100)
        for group in optim.param_groups:
            group["lr"] = lr
        optim.step()
        ema.update(model, step + init_steps)
        step += 1
        running = diffusion_loss.item() if running is None else 0.98 * running + 0.02 * diffusion_loss.item()
        bar.update(1)
        bar.set_postfix(
            loss=f"{running:.4f}", **({"attr": f"{attribute_loss.item():.3f}"} if labels is not None else {})
        )
        if info.is_main and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            ckpt.save(
                step,
                {"model": model, "ema": ema.shadow},
                {"preset": args.preset, "loss": running, "init_from": init_from},
                {"optim": optim},
            )
            write_json_atomic(
                out / "progress.json", {"step": step, "loss": running, "seconds": time.time() - started}
            )
        if info.is_main and step % cfg.sample_every == 0 and step < cfg.steps:
            # Kept for evaluation: the metrics are shown to move with training (training/evaluate.py).
            snapshot = {f"unet.{k}": v for k, v in ema.shadow.unet.state_dict().items()}
            snapshot.update({f"encoder.{k}": v for k, v in ema.shadow.encoder.state_dict().items()})
            save_tensors_atomic(out / "snapshots" / f"ema_step{step:06d}.safetensors", snapshot)
            write_sample_grid(
                out / f"samples_step{step:06d}",
                ema.shadow,
                None,
                schedule,
                decoder,
                mean,
                std,
                cfg,
                images_all[n_train:],
                x_all[n_train:],
            )
    bar.close()

    if info.is_main:
        prior = train_prior(ema.shadow.encoder, images_all[:n_train], schedule, cfg, out)
        write_sample_grid(
            out / "samples_final",
            ema.shadow,
            prior,
            schedule,
            decoder,
            mean,
            std,
            cfg,
            images_all[n_train:],
            x_all[n_train:],
        )
        export_base(out / "base", ema.shadow, prior, cfg, mean, std, meta, n_train, args, init_steps)
        print(f"base model written to {out / 'base'}; samples in {out}/samples_final_*.png", flush=True)
    cleanup_distributed()
    return 0


def train_prior(
    encoder: ImageEncoder, images: torch.Tensor, schedule: NoiseSchedule, cfg: BaseConfig, out: Path
):
    """Fits the latent prior to the (EMA) encoder's codes of the training avatars and their mirror images."""
    ckpt = Checkpointer(out, "prior")
    prior = LatentPrior(cfg.prior)
    if ckpt.exists():
        ckpt.load({"prior": prior})
        return prior.eval()
    device = next(encoder.parameters()).device
    with torch.no_grad():
        # The prior is a small MLP: it trains on the CPU whatever device the encoder is on.
        z = torch.cat([encoder(images.to(device)), encoder(images.flip(-1).to(device))]).cpu()
    optim = torch.optim.AdamW(prior.parameters(), lr=cfg.prior_lr)
    gen = torch.Generator().manual_seed(cfg.seed + 7)
    for step in tqdm(range(cfg.prior_steps), desc="prior", dynamic_ncols=True, disable=None):
        z0 = z[torch.randint(len(z), (cfg.prior_batch,), generator=gen)]
        t = torch.randint(schedule.num_steps, (len(z0),), generator=gen)
        noise = torch.randn(z0.shape, generator=gen)
        loss = F.mse_loss(
            prior(schedule.add_noise(z0, noise, t).float(), t), schedule.target(z0, noise, t).float()
        )
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        for group in optim.param_groups:  # cosine decay: the prior is small and fits fast, then settles
            group["lr"] = (
                cfg.prior_lr * 0.5 * (1 + torch.cos(torch.tensor(step / cfg.prior_steps * 3.14159)).item())
            )
    ckpt.save(cfg.prior_steps, {"prior": prior}, {"loss": loss.item()})
    return prior.eval()


@torch.no_grad()
def write_sample_grid(
    prefix: Path, model, prior, schedule, decoder, mean, std, cfg, held_images, held_x
) -> None:
    """PREFIX_cond.png: rows of (held-out input | sample | fitted tri-plane); PREFIX_uncond.png: 16 samples."""
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(1234)
    cams = Cameras.orbit([0.0], 0.0, cfg.encoder.image_size)

    def render(rolled):
        planes = denormalize(roll_in(rolled.cpu()), mean, std)
        return [render_image(p, decoder, cams, 0)["rgb"] for p in planes]

    k = min(8, len(held_images))
    z = model.encoder(held_images[:k].to(device))
    cond = render(sample_base(model.unet, schedule, z, cfg.resolution, gen, cfg.guidance))
    target = render(roll_out(held_x[:k]))
    tiles = []
    for i in range(k):
        tiles += [held_images[i].permute(1, 2, 0), cond[i], target[i]]
    Image.fromarray(grid(tiles, columns=6)).save(f"{prefix}_cond.png")
    if prior is not None:
        z = sample_latents(prior.to(device), schedule, 16, gen)
        uncond = render(sample_base(model.unet, schedule, z, cfg.resolution, gen, cfg.guidance))
        Image.fromarray(grid(uncond, columns=8)).save(f"{prefix}_uncond.png")
    model.train()


def export_base(
    folder: Path, model: BaseModel, prior, cfg: BaseConfig, mean, std, meta, n_train, args, init_steps=0
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"unet.{k}": v for k, v in model.unet.state_dict().items()}
    tensors.update({f"encoder.{k}": v for k, v in model.encoder.state_dict().items()})
    tensors.update({f"prior.{k}": v for k, v in prior.state_dict().items()})
    tensors.update({"stats.mean": mean, "stats.std": std})
    save_tensors_atomic(folder / "base.safetensors", tensors)
    write_json_atomic(
        folder / "base.json",
        {
            "format": "rodin-base/1",
            "preset": args.preset,
            "resolution": cfg.resolution,
            "unet": cfg.unet.to_dict(),
            "encoder": cfg.encoder.to_dict(),
            "prior": cfg.prior.to_dict(),
            "schedule": cfg.schedule.to_dict(),
            "guidance": cfg.guidance,
            "train_ids": meta["ids"][:n_train],
            "holdout_ids": meta["ids"][n_train:],
            "steps": cfg.steps,
            # Steps of the bundle this run continued (--init-from); the model has seen steps + init_steps.
            "init_steps": init_steps,
            "init_from": args.init_from,
            "commit": git_commit(),
        },
    )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (DatasetError, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")
