"""Stage 4 (optional): the text encoder that maps prompts onto the image latents z.

    python -m training.train_text --base runs/tiny/base --data data/tiny --out runs/tiny/text

Targets are the base model's image-encoder latents of each training avatar's frontal view. Texts are the
generator's captions plus augmentations drawn from the same attributes: partial descriptions (a random subset
of the attribute phrases), shuffled phrase order, alternative wordings and synonyms. Loss: CLIP-style InfoNCE
between text and image latents plus an L2 pull onto the latent itself, so the text embedding can be fed to
the diffusion model as z. Reports retrieval accuracy on the held-out avatars' captions (chance = 1/N).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from blender_scenes.attributes import caption
from rodin_core.io_utils import read_json, save_tensors_atomic, write_json_atomic
from rodin_core.text import TextConfig, TextEncoder, Vocabulary, batch_ids
from training.common import extra_record_names
from training.train_base import frontal_images
from training.train_upsampler import load_base

CLOTHES = {
    "t_shirt": ["t-shirt", "tee"],
    "collared_shirt": ["collared shirt", "shirt"],
    "turtleneck": ["turtleneck"],
}
HAIR = {
    "bald": ["a bald head", "no hair", "bald"],
    "buzz": ["buzzed {c} hair", "a {c} buzz cut"],
    "short": ["short {c} hair"],
    "bob": ["a {c} bob", "{c} bob hair"],
    "long": ["long {c} hair"],
    "bun": ["{c} hair in a bun", "a {c} bun"],
    "mohawk": ["a {c} mohawk"],
}
SUBJECT_SYNONYMS = {"man": ["man", "male", "guy", "gentleman"], "woman": ["woman", "female", "lady"]}


def phrases(attrs: dict, rng: random.Random) -> list[str]:
    """Alternative wordings of every described attribute of one avatar."""
    c = attrs["hair_color"]
    out = [rng.choice(HAIR[attrs["hair_style"]]).format(c=rng.choice([c, "gray" if c == "grey" else c]))]
    if attrs["facial_hair"] != "none":
        out.append(rng.choice([f"a {attrs['facial_hair']}", attrs["facial_hair"]]))
    if attrs["glasses"] != "none":
        out.append(rng.choice([f"{attrs['glasses']} glasses", "glasses", f"{attrs['glasses']} spectacles"]))
    if attrs["earrings"] != "none":
        out.append(f"{'stud' if attrs['earrings'] == 'studs' else 'hoop'} earrings")
    if attrs["headwear"] != "none":
        hw = attrs["headwear"].replace("_", " ")
        out.append(rng.choice([f"a {hw}", hw, "a hat"] if hw != "top hat" else ["a top hat", "top hat"]))
    out.append(f"a {attrs['shirt_color']} {rng.choice(CLOTHES[attrs['clothing']])}")
    out.append(f"{attrs['skin_tone']} skin")
    out.append(f"{attrs['eye_color']} eyes")
    return out


def describe(attrs: dict, rng: random.Random) -> str:
    """A random partial, reordered, reworded description of the avatar."""
    if rng.random() < 0.25:
        return caption(attrs)
    age = {"young": ["young"], "adult": ["", "adult"], "old": ["old", "elderly"]}[attrs["age"]]
    noun = " ".join(
        w
        for w in (rng.choice(age) if rng.random() < 0.7 else "", rng.choice(SUBJECT_SYNONYMS[attrs["sex"]]))
        if w
    )
    parts = phrases(attrs, rng)
    rng.shuffle(parts)
    parts = parts[: rng.randint(1, len(parts))]
    joined = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    if rng.random() < 0.2:
        return joined
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun} with {joined}"


def extra_pairs(root: Path, encoder, attrs: dict) -> tuple[list[str], torch.Tensor]:
    """Keys (root/name) of another data set's avatars, their attributes added to `attrs`, and frontal latents."""
    names = extra_record_names(root)
    keys = [str(root / n) for n in names]
    for key in keys:
        attrs[key] = read_json(Path(key) / "attributes.json", "attributes")["attributes"]
    with torch.no_grad():
        z = torch.cat(
            [
                encoder(frontal_images(root, names[i : i + 256], encoder.config.image_size))
                for i in range(0, len(names), 256)
            ]
        )
    return keys, z


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.train_text", description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument(
        "--extra-data",
        help="another data set of the generator (other --seed) whose avatars' captions and frontal latents are added "
        "to the training pairs: more attribute combinations than the model's own training avatars",
    )
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    base_cfg, encoder, _, _, _ = load_base(Path(args.base))
    data, out = Path(args.data), Path(args.out)
    train_ids, holdout_ids = base_cfg["train_ids"], base_cfg["holdout_ids"]
    attrs = {
        i: read_json(data / i / "attributes.json", "attributes")["attributes"]
        for i in train_ids + holdout_ids
    }
    with torch.no_grad():
        z_train = encoder(frontal_images(data, train_ids, encoder.config.image_size))
        z_hold = encoder(frontal_images(data, holdout_ids, encoder.config.image_size))
    z_mean = z_train.mean(0)  # the model's own training latents: what `edit_latent` moves away from
    if args.extra_data:
        extra_ids, z_extra = extra_pairs(Path(args.extra_data), encoder, attrs)
        train_ids, z_train = train_ids + extra_ids, torch.cat([z_train, z_extra])
        print(f"{len(extra_ids)} extra avatars from {args.extra_data}", flush=True)
    rng = random.Random(0)
    corpus = [describe(attrs[i], rng) for i in train_ids for _ in range(30)] + [
        caption(attrs[i]) for i in train_ids
    ]
    vocab = Vocabulary.build(corpus)
    cfg = TextConfig(z_dim=z_train.shape[1])
    torch.manual_seed(0)
    model = TextEncoder(cfg, len(vocab))
    optim = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=1e-4)
    bar = tqdm(range(args.steps), desc="text", dynamic_ncols=True)
    for step in bar:
        idx = rng.sample(range(len(train_ids)), min(args.batch, len(train_ids)))
        texts = [describe(attrs[train_ids[i]], rng) for i in idx]
        ids, _ = batch_ids(vocab, texts, cfg.max_len)
        t = model(ids)
        z = z_train[idx]
        logits = (
            F.normalize(t, dim=-1) @ F.normalize(z, dim=-1).T * model.log_temperature.exp().clamp(max=100)
        )
        target = torch.arange(len(idx))
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) + 0.1 * F.mse_loss(
            t, z
        )
        optim.zero_grad()
        loss.backward()
        optim.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    with torch.no_grad():
        ids, _ = batch_ids(vocab, [caption(attrs[i]) for i in holdout_ids], cfg.max_len)
        sims = F.normalize(model(ids), dim=-1) @ F.normalize(z_hold, dim=-1).T
        top1 = (sims.argmax(1) == torch.arange(len(holdout_ids))).float().mean().item()
        top5 = sims.topk(min(5, len(holdout_ids)), dim=1).indices == torch.arange(len(holdout_ids))[:, None]
        top5 = top5.any(1).float().mean().item()
    out.mkdir(parents=True, exist_ok=True)
    save_tensors_atomic(
        out / "text.safetensors",
        {f"text.{k}": v for k, v in model.state_dict().items()} | {"stats.z_mean": z_mean},
    )
    report = {
        "heldout_retrieval_top1": top1,
        "heldout_retrieval_top5": top5,
        "chance_top1": 1 / len(holdout_ids),
        "chance_top5": min(5, len(holdout_ids)) / len(holdout_ids),
        "steps": args.steps,
        "training_avatars": len(train_ids),
        "extra_data": args.extra_data,
    }
    write_json_atomic(
        out / "text.json",
        {"format": "rodin-text/1", "config": cfg.to_dict(), "vocab": vocab.tokens, **report},
    )
    print(
        f"held-out caption -> avatar retrieval: top-1 {top1:.2f} (chance {1 / len(holdout_ids):.2f}), "
        f"top-5 {top5:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
