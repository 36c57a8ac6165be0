"""The portrait model: text latent code -> frontal portrait (rodin_core.portrait), trained on generator renders.

    python -m blender_scenes.generate_dataset --out runs/tiny/portraits --count 10000 --seed 11 --views 1 --res 64
    python -m training.train_portrait --data runs/tiny/portraits --out runs/tiny/portrait
    torchrun --nproc_per_node 8 -m training.train_portrait --data ... --out ... --preset paper

Every record's frontal view is paired with descriptions of its attributes (partial, reordered and reworded, as
the text encoders were trained: training.train_text.describe) read by the bundle's text encoders into latent
codes; the word encoder's and, where the bundle has one and the sentence model is installed, the sentence-model
head's, so the model follows both. The text encoders stay frozen. With `words` (the default where the bundle has a
word encoder) the model also reads the descriptions' words through its own word path, a copy of the word encoder
trained on by the denoising loss, in place of the frozen word encoder's codes (rodin_core.portrait); samples with the sentence model's code get no words, as its
prompts will not. Codes and words are dropped together on `cfg_drop` of the samples for classifier-free guidance.
Views and codes are computed once into OUT/inputs.safetensors.
Writes OUT/latest.* (resume with --resume), OUT/samples_*.png and, at the end, OUT/portrait/ for
`training.export --portrait OUT`. `--init RUN/portrait` starts from an exported model (one without a word path
gains one, starting from the bundle's word encoder: how session 18's model was trained on from session 17's).
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

from blender_scenes.attributes import caption
from rodin_core.bundle import BundleError, load_bundle
from rodin_core.data import DatasetError, list_records
from rodin_core.io_utils import load_tensors, read_json, save_tensors_atomic, unprefixed, write_json_atomic
from rodin_core.pipeline import AvatarPipeline
from rodin_core.portrait import PortraitConfig, PortraitModel
from rodin_core.preview import grid
from rodin_core.sampling import sample_portraits
from rodin_core.schedule import NoiseSchedule
from rodin_core.sentence import embed_sentences
from rodin_core.text import batch_ids
from rodin_core.unet import UNetConfig
from training.common import (
    EMA,
    Checkpointer,
    check_finite,
    cleanup_distributed,
    git_commit,
    init_distributed,
    lr_scale,
    pick_device,
    resolve_preset,
)
from training.evaluate_text import PROMPTS
from training.export import portrait_steps
from training.train_base import frontal_images
from training.train_text import describe


@dataclasses.dataclass(frozen=True)
class PortraitTrainConfig:
    portrait: PortraitConfig = dataclasses.field(default_factory=PortraitConfig)
    batch: int = 32
    lr: float = 3e-4
    lr_decay_start: float = 0.7
    steps: int = 6000  # ~0.6 s a step on 2 CPU cores: 61 minutes
    ema_decay: float = 0.999
    cfg_drop: float = 0.15
    mirror_prob: float = 0.5
    descriptions: int = 6  # descriptions of each avatar encoded up front, one drawn per step
    words: bool = True  # give the model a word path (where the bundle has a word encoder)
    checkpoint_every: int = 250
    sample_every: int = 1000
    seed: int = 0


PRESETS = {
    "tiny": PortraitTrainConfig(),
    "smoke": PortraitTrainConfig(
        portrait=PortraitConfig(
            size=16, unet=UNetConfig(channels=12, base=8, mults=(1, 2), z_dim=64, groups=4, planes=1)
        ),
        batch=4,
        steps=20,
        descriptions=2,
        checkpoint_every=10,
        sample_every=1000,
    ),
    # Portraits at the paper preset's encoder size (128 px) for its 512-d text latents.
    "paper": PortraitTrainConfig(
        portrait=PortraitConfig(
            size=128,
            unet=UNetConfig(
                channels=12, base=128, mults=(1, 2, 2, 4), blocks=2, z_dim=512, groups=32, planes=1
            ),
        ),
        batch=64,
        lr=1e-4,
        steps=200_000,
        descriptions=16,
        checkpoint_every=2000,
        sample_every=10_000,
    ),
}


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m training.train_portrait", description=__doc__.splitlines()[0])
    p.add_argument(
        "--data",
        nargs="+",
        help="data set folders of the generator (frontal views used); may be left out when OUT already holds "
        "its inputs.* (a run copied to another machine without the renders)",
    )
    p.add_argument("--out", required=True)
    p.add_argument(
        "--bundle",
        help="weights bundle .json whose text encoders read the descriptions (default: the embedded one)",
    )
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument(
        "--words-only",
        action="store_true",
        help="train on the word encoder's codes alone, even where the sentence model is installed",
    )
    p.add_argument(
        "--init",
        help="a portrait model to start from instead of random weights: an exported run's RUN/portrait folder, "
        "or a weights bundle .json that holds one (the embedded bundle's, to train it on)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int)
    return p.parse_args(argv)


def text_readers(pipe: AvatarPipeline, words_only: bool) -> dict:
    """The bundle's text encoders as batch functions: descriptions -> latent codes (B, z_dim)."""
    readers = {}
    if pipe.text_encoder is not None:
        max_len = pipe.text_encoder.config.max_len
        readers["words"] = lambda texts: pipe.text_encoder(batch_ids(pipe.vocab, texts, max_len)[0])
    if pipe.sentence_ready and not words_only:
        readers["sentence"] = lambda texts: pipe.sentence_head(embed_sentences(texts))
    if not readers:
        raise SystemExit(
            f"{pipe.source} has no text encoder; the portrait model learns from its latent codes"
        )
    return readers


def descriptions(roots: list[Path], cfg: PortraitTrainConfig) -> dict[Path, tuple[list[str], list[str]]]:
    """Per data set, its record names and `cfg.descriptions` texts of each record (the caption first), drawn
    from cfg.seed: the same texts at every call, so the words can be read again beside cached codes."""
    rng = random.Random(cfg.seed)
    out = {}
    for root in roots:
        try:
            records = [r.name for r in list_records(root)]
        except DatasetError as exc:
            raise SystemExit(f"--data {root}: {exc}") from exc
        texts = []
        for name in records:
            attrs = read_json(root / name / "attributes.json", "attributes")["attributes"]
            texts += [caption(attrs)] + [describe(attrs, rng) for _ in range(cfg.descriptions - 1)]
        out[root] = (records, texts)
    return out


def build_inputs(texts_of: dict, pipe: AvatarPipeline, cfg: PortraitTrainConfig, words_only: bool) -> dict:
    """Frontal views (N, 3, S, S) as uint8 and codes (N, readers * descriptions, z_dim) of every record."""
    images, codes, names = [], [], []
    readers = text_readers(pipe, words_only)
    per = cfg.descriptions
    for root, (records, all_texts) in texts_of.items():
        for start in tqdm(range(0, len(records), 500), desc=f"reading {root.name}", dynamic_ncols=True):
            chunk = records[start : start + 500]
            views = frontal_images(root, chunk, cfg.portrait.size)
            images.append(views.mul(255).round().byte())
            texts = all_texts[start * per : (start + len(chunk)) * per]
            with torch.no_grad():
                per_reader = [read(texts).reshape(len(chunk), per, -1) for read in readers.values()]
            codes.append(torch.cat(per_reader, dim=1))
            names += [f"{root.name}/{n}" for n in chunk]
    return {"images": torch.cat(images), "codes": torch.cat(codes), "names": names, "readers": list(readers)}


def inputs_key(
    roots: list[Path] | None, pipe: AvatarPipeline, cfg: PortraitTrainConfig, words_only: bool
) -> dict:
    """What cached inputs were made from. Data sets count by folder name, so a run's folder can move to another
    machine (a GPU box without the renders) with its inputs and train on there."""
    return {
        "data": None if roots is None else [r.resolve().name for r in roots],
        "bundle": Path(pipe.source).name,
        "descriptions": cfg.descriptions,
        "size": cfg.portrait.size,
        "words_only": words_only,
        "seed": cfg.seed,
    }


def load_or_build_inputs(out: Path, roots, pipe, cfg, words_only) -> dict:
    """OUT/inputs.* when they were made from the same data, bundle and settings (or when `roots` is None: no data
    sets given); built (and saved) otherwise. With a word path, also "ids" (N, descriptions, L): the token ids of
    the descriptions, which inputs.json keeps."""
    key = inputs_key(roots, pipe, cfg, words_only)
    meta_path, tensor_path = out / "inputs.json", out / "inputs.safetensors"
    inputs = None
    if meta_path.is_file() and tensor_path.is_file():
        meta = read_json(meta_path, "portrait inputs")
        cached = meta.get("key", {})
        same = cached == key or (roots is None and cached == {**key, "data": cached.get("data")})
        if same and "texts" in meta:
            tensors = load_tensors(tensor_path, "portrait inputs")
            inputs = {
                **tensors,
                **{k: meta[k] for k in ("names", "readers", "texts")},
                "data": cached["data"],
            }
        elif roots is None:
            raise SystemExit(
                f"{meta_path} was made with other settings or bundle ({cached}, here {key}); give --data to "
                "build this run's inputs"
            )
    if inputs is None:
        if roots is None:
            raise SystemExit(f"--data is needed: {out} holds no inputs.json and inputs.safetensors yet")
        texts_of = descriptions(roots, cfg)
        inputs = build_inputs(texts_of, pipe, cfg, words_only)
        inputs["texts"] = [t for _, all_texts in texts_of.values() for t in all_texts]
        inputs["data"] = key["data"]
        save_tensors_atomic(tensor_path, {"images": inputs["images"], "codes": inputs["codes"]})
        write_json_atomic(meta_path, {"key": key, **{k: inputs[k] for k in ("names", "readers", "texts")}})
    if cfg.words:  # main() has set it off where the bundle has no word encoder
        ids = batch_ids(pipe.vocab, inputs["texts"], pipe.text_encoder.config.max_len)[0]
        inputs["ids"] = ids.reshape(len(inputs["images"]), cfg.descriptions, -1)
    return inputs


@torch.no_grad()
def write_sample_grid(
    path: Path, model: PortraitModel, schedule: NoiseSchedule, pipe: AvatarPipeline
) -> None:
    """Two portraits per prompt of the text evaluation's hand-written ones (word encoder), side by side; the same
    prompts every run, so grids compare across steps."""
    model.eval()
    device = next(model.parameters()).device
    texts = [p for p in PROMPTS for _ in range(2)]
    z = torch.cat([pipe.encode_text(p)[0] for p in texts]).to(device)
    ids = batch_ids(pipe.vocab, texts, model.config.text.max_len)[0] if model.words is not None else None
    portraits = sample_portraits(model, schedule, z, torch.Generator().manual_seed(1234), ids=ids)
    Image.fromarray(grid([p.permute(1, 2, 0).cpu() for p in portraits], columns=8)).save(path)
    model.train()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = init_distributed()
    for name in ("steps", "batch"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SystemExit(f"--{name} must be at least 1; got {value}")
    cfg = resolve_preset(PRESETS, args.preset, {"steps": args.steps, "batch": args.batch})
    device = pick_device(args.device, info)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pipe = AvatarPipeline.from_bundle(args.bundle)
    # The codes are the bundle's text latents, whatever size its preset gave them; the word path reads its
    # vocabulary with its word encoder's shape.
    unet = dataclasses.replace(cfg.portrait.unet, z_dim=pipe.encoder.config.z_dim)
    words = cfg.words and pipe.text_encoder is not None
    cfg = dataclasses.replace(
        cfg,
        words=words,
        portrait=dataclasses.replace(
            cfg.portrait,
            unet=unet,
            vocab_size=len(pipe.vocab) if words else 0,
            text=pipe.text_encoder.config if words else cfg.portrait.text,
        ),
    )
    ckpt = Checkpointer(out, "latest")
    if args.resume and (out / "portrait" / "portrait.json").is_file():
        done = read_json(out / "portrait" / "portrait.json", "portrait model config")["steps"]
        if done >= cfg.steps:
            print(f"{out} is complete ({done} steps, portrait/ written); nothing to do", flush=True)
            cleanup_distributed()
            return 0
    if not args.resume:
        ckpt.refuse_overwrite()
    roots = None if args.data is None else [Path(d) for d in args.data]
    inputs = load_or_build_inputs(out, roots, pipe, cfg, args.words_only)
    images, codes, ids = inputs["images"], inputs["codes"], inputs.get("ids")
    word_codes = inputs["readers"].index("words") if ids is not None else -1
    if info.is_main:
        print(
            f"{len(images)} portraits from {', '.join(map(str, roots or [out / 'inputs.safetensors']))}; codes from the {' and '.join(inputs['readers'])} "
            f"encoder{'s' if len(inputs['readers']) > 1 else ''}",
            flush=True,
        )

    torch.manual_seed(cfg.seed)
    model = PortraitModel(cfg.portrait)
    if model.words is not None:
        model.words.load_state_dict(pipe.text_encoder.state_dict())
    if args.init and not (args.resume and ckpt.exists()):
        init_from(model, Path(args.init))
    model = model.to(device)
    ema = EMA(model, cfg.ema_decay)
    optim = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    schedule = NoiseSchedule(cfg.portrait.schedule)
    step = 0
    if args.resume and ckpt.exists():
        step = int(ckpt.load({"model": model, "ema": ema.shadow}, {"optim": optim})["step"])
        if info.is_main:
            print(f"resumed from {ckpt.json_path} at step {step}", flush=True)
    trained = model
    if info.enabled:
        trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    seed = cfg.seed * 1000 + info.rank + step
    gen = torch.Generator().manual_seed(seed)
    # The portraits and codes move to the model once and batches are gathered there: assembling them on the CPU
    # side bound a GPU run (0.10 s a step at batch 256 on an H200). Indices still come from the CPU generator;
    # off the CPU the noise is drawn by a generator on the device, seeded the same way.
    images, codes = images.to(device), codes.to(device)
    ids = None if ids is None else ids.to(device)
    noise_gen = gen if device.type == "cpu" else torch.Generator(device).manual_seed(seed)
    bar = tqdm(total=cfg.steps, initial=step, disable=not info.is_main, desc="portrait", dynamic_ncols=True)
    running = None
    started = time.time()
    while step < cfg.steps:
        idx = torch.randint(len(images), (cfg.batch,), generator=gen).to(device)
        which = torch.randint(codes.shape[1], (cfg.batch,), generator=gen).to(device)
        z = codes[idx, which]
        views = images[idx].float() / 255
        flip = (torch.rand(cfg.batch, generator=gen) < cfg.mirror_prob).to(device)
        views = torch.where(flip[:, None, None, None], views.flip(-1), views)
        x0 = model.fold(views)
        t = torch.randint(schedule.num_steps, (cfg.batch,), generator=gen).to(device)
        noise = torch.randn(x0.shape, generator=noise_gen, device=device)
        keep = (torch.rand(cfg.batch, generator=gen) >= cfg.cfg_drop).float().to(device)
        x_t = schedule.add_noise(x0, noise, t).float()
        tokens = None
        if ids is not None:
            # Only the word encoder's codes come with their words: the sentence model's prompts will not.
            spoken = (which // cfg.descriptions == word_codes) & (keep > 0)
            tokens = ids[idx, which % cfg.descriptions] * spoken[:, None]
        pred = trained(x_t, t, z * keep[:, None], tokens)
        loss = F.mse_loss(pred, schedule.target(x0, noise, t).float())
        check_finite(loss, step, ckpt)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for group in optim.param_groups:
            group["lr"] = cfg.lr * lr_scale(step, cfg.steps, cfg.lr_decay_start)
        optim.step()
        ema.update(model, step)
        step += 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{running:.4f}")
        if info.is_main and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            ckpt.save(
                step,
                {"model": model, "ema": ema.shadow},
                {"preset": args.preset, "loss": running},
                {"optim": optim},
            )
            write_json_atomic(
                out / "progress.json", {"step": step, "loss": running, "seconds": time.time() - started}
            )
        if info.is_main and step % cfg.sample_every == 0 and step < cfg.steps:
            write_sample_grid(out / f"samples_step{step:06d}.png", ema.shadow, schedule, pipe)
    bar.close()

    if info.is_main:
        write_sample_grid(out / "samples_final.png", ema.shadow, schedule, pipe)
        export_portrait(out / "portrait", ema.shadow, cfg, args, inputs)
        print(
            f"portrait model written to {out / 'portrait'}; samples in {out / 'samples_final.png'}",
            flush=True,
        )
    cleanup_distributed()
    return 0


def init_from(model: PortraitModel, folder: Path) -> None:
    """Loads an exported portrait model's weights (RUN/portrait, or a bundle .json holding one) into `model`; a
    word path the export lacks keeps its start."""
    if folder.suffix == ".json":
        try:
            config, weights = load_bundle(folder)
        except BundleError as exc:
            raise SystemExit(f"--init {folder}: {exc}") from exc
        if "portrait" not in config:
            raise SystemExit(f"--init {folder}: this bundle holds no portrait model")
        state = unprefixed(weights, "portrait")
    elif (folder / "portrait.safetensors").is_file():
        state = unprefixed(
            load_tensors(folder / "portrait.safetensors", "portrait model to start from"), "portrait"
        )
    else:
        raise SystemExit(
            f"--init {folder}: no portrait.safetensors there; give the portrait/ folder a training run wrote, "
            "or a bundle .json"
        )
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise SystemExit(
            f"--init {folder}: its portrait model has another shape than this preset's ({exc})"
        ) from exc
    stray = [k for k in missing if not k.startswith("words.")]
    if stray or unexpected:
        raise SystemExit(
            f"--init {folder}: not a portrait model of this shape (missing {stray[:3]}, unexpected {unexpected[:3]})"
        )
    print(
        f"started from {folder}" + (" (its new word path from the word encoder)" if missing else ""),
        flush=True,
    )


def export_portrait(folder: Path, model: PortraitModel, cfg: PortraitTrainConfig, args, inputs: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors_atomic(
        folder / "portrait.safetensors", {f"portrait.{k}": v for k, v in model.state_dict().items()}
    )
    write_json_atomic(
        folder / "portrait.json",
        {
            "format": "rodin-portrait/1",
            "preset": args.preset,
            "config": cfg.portrait.to_dict(),
            "steps": cfg.steps,
            "portraits": len(inputs["images"]),
            "data": list(args.data) if args.data else inputs["data"],
            "text_models": inputs["readers"],
            "commit": git_commit(),
            # What the run started from (`--init`): its steps come before this run's.
            "init": None if args.init is None else init_record(Path(args.init)),
        },
    )


def init_record(folder: Path) -> dict:
    """The exported model a run started from: its folder or bundle, and its own training steps (theirs included)."""
    if folder.suffix == ".json":
        steps = read_json(folder, "weights bundle")["made_by"].get("portrait_steps", 0)
    else:
        steps = portrait_steps(read_json(folder / "portrait.json", "portrait model config"))
    return {"from": str(folder), "steps": steps}


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (DatasetError, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")
