"""Text prompts -> latent codes z: a word-level tokenizer with the project's own vocabulary, and a small
transformer text encoder trained contrastively (CLIP-style) against the image encoder's latents on the
generator's captions (training/train_text.py). No pretrained language model is involved.

Synonyms are folded onto the words the captions use ("gray" -> "grey", "spectacles" -> "glasses"), so they work
without being trained on; any other word outside the vocabulary is reported back, never silently dropped.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

SYNONYMS = {
    "male": "man",
    "guy": "man",
    "gentleman": "man",
    "boy": "man",
    "men": "man",
    "female": "woman",
    "lady": "woman",
    "girl": "woman",
    "women": "woman",
    "elderly": "old",
    "older": "old",
    "aged": "old",
    "senior": "old",
    "youthful": "young",
    "younger": "young",
    "middle-aged": "adult",
    "gray": "grey",
    "blonde": "blond",
    "golden": "blond",
    "ginger": "red",
    "spectacles": "glasses",
    "eyeglasses": "glasses",
    "specs": "glasses",
    "mustache": "moustache",
    "moustached": "moustache",
    "bearded": "beard",
    "tee": "t-shirt",
    "tshirt": "t-shirt",
    "t": "t-shirt",
    "hat": "hat",
    "beany": "beanie",
    "tophat": "top",
    "earring": "earrings",
    "hoop": "hoop",
    "stud": "stud",
    "eye": "eyes",
    "haired": "hair",
}
PAD, UNK = 0, 1

# Words of an edit instruction rather than of the avatar ("make the hair blond", "remove the glasses").
INSTRUCTING = frozenset(
    "add make give change turn put set remove take off without the his her their him them it its into to".split()
)
REMOVING = frozenset(("remove", "take", "without"))


def words(text: str) -> list[str]:
    raw = re.findall(r"[a-z]+(?:-[a-z]+)?", text.lower())
    return [SYNONYMS.get(w, w) for w in raw]


@dataclass
class Vocabulary:
    tokens: list[str]

    def __post_init__(self) -> None:
        self.index = {w: i + 2 for i, w in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens) + 2

    def encode(self, text: str, max_len: int) -> tuple[list[int], list[str]]:
        """Token ids (truncated to max_len) and the words that are not in the vocabulary."""
        ids, unknown = [], []
        for w in words(text):
            if w in self.index:
                ids.append(self.index[w])
            else:
                unknown.append(w)
        return ids[:max_len], unknown

    @classmethod
    def build(cls, texts) -> Vocabulary:
        return cls(sorted({w for t in texts for w in words(t)}))


@dataclass(frozen=True)
class TextConfig:
    z_dim: int = 64
    width: int = 128
    layers: int = 2
    heads: int = 4
    max_len: int = 48

    def to_dict(self) -> dict:
        return asdict(self)


class TextEncoder(nn.Module):
    def __init__(self, config: TextConfig, vocab_size: int) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(vocab_size, config.width, padding_idx=PAD)
        self.pos = nn.Parameter(torch.zeros(config.max_len, config.width))
        layer = nn.TransformerEncoderLayer(
            config.width, config.heads, 2 * config.width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.head = nn.Linear(config.width, config.z_dim)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L) padded token ids -> (B, z_dim) on the latent sphere (radius sqrt(z_dim))."""
        mask = ids == PAD
        h = self.embed(ids) + self.pos[: ids.shape[1]]
        h = self.blocks(h, src_key_padding_mask=mask)
        keep = (~mask).float()[..., None]
        pooled = (h * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return F.normalize(self.head(pooled), dim=-1) * math.sqrt(self.config.z_dim)


def batch_ids(vocab: Vocabulary, texts: list[str], max_len: int) -> tuple[torch.Tensor, list[list[str]]]:
    encoded = [vocab.encode(t, max_len) for t in texts]
    width = max(1, max(len(ids) for ids, _ in encoded))
    out = torch.full((len(texts), width), PAD, dtype=torch.long)
    for i, (ids, _) in enumerate(encoded):
        out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out, [unknown for _, unknown in encoded]
