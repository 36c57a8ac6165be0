"""The portrait model: a text latent code z -> a frontal portrait of the avatar it describes (64 x 64 RGB).

Why a 2D model beside the 3D one: the base model draws what a latent code says for avatars like its few hundred
training ones (their tri-planes cost minutes of fitting each), and a text prompt mostly names combinations it
never saw. A frontal portrait steers the base model far better than a latent code does (image guidance,
rodin_core.view_guidance), and portraits are cheap: the generator renders thousands a minute, so this model
learns from tens of thousands of avatars. Text -> portrait -> avatar, as text-to-3D pipelines go through an
image; the portrait is framed exactly like the generator's frontal view, the view image guidance expects.

The network is the project's UNet over plain images (`UNetConfig(planes=1)`), conditioned on the text
encoders' latent codes (word encoder or sentence-model head: both map a prompt to the same sphere) by AdaGN,
with classifier-free guidance. A model can also have its own word path: a copy of the word encoder, trained on by
the denoising loss, which reads the prompt's words into the code in place of the word encoder (`condition`). The
contrastive code holds what the image latents hold and loses some of the rest (a linear probe reads hair colour
from 79 % of caption codes, docs/results.md); the words keep it. It denoises the portrait folded into `fold` x
`fold` pixel blocks (space to depth: 12 channels at 32 x 32 for a 64 px portrait), a quarter of the work of a
64 x 64 UNet for the same output size. Pixels are scaled to [-1, 1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .samplers import SAMPLERS
from .schedule import ScheduleConfig
from .text import PAD, UNK, TextConfig, TextEncoder
from .unet import TriplaneUNet, UNetConfig


@dataclass(frozen=True)
class PortraitConfig:
    size: int = 64  # portrait width and height in pixels
    fold: int = 2  # pixels per side folded into channels before the UNet
    unet: UNetConfig = field(
        default_factory=lambda: UNetConfig(channels=12, base=32, mults=(1, 2, 4), z_dim=64, planes=1)
    )
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    guidance: float = 3.0  # classifier-free guidance scale of sampling
    # How the model draws, apart from the base model's settings. Ancestral DDPM over 50 steps states more of
    # the prompt than DPM-Solver++ over 20 (docs/results.md: drawn-portrait agreement on 128 fresh prompts) and
    # costs under a second at 64 px.
    sampler: str = "ddpm"
    steps: int = 50
    # The word path: the size of the word encoder's vocabulary it reads (the bundle's; 0 = no word path, as in
    # portrait models before session 18) and its transformer, the word encoder's own shape.
    vocab_size: int = 0
    text: TextConfig = field(default_factory=TextConfig)

    def validate(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(
                f"unknown portrait sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}"
            )
        if self.steps < 1:
            raise ValueError(f"the portrait model needs at least 1 sampler step; got {self.steps}")
        if self.vocab_size and self.text.z_dim != self.unet.z_dim:
            raise ValueError(
                f"the word path's codes ({self.text.z_dim}-d) must match the UNet's latent codes ({self.unet.z_dim}-d)"
            )
        if self.unet.planes != 1:
            raise ValueError("the portrait model's UNet works on images: unet.planes must be 1")
        if self.size % self.fold or self.unet.channels != 3 * self.fold**2:
            raise ValueError(
                f"a {self.size} px RGB portrait folded by {self.fold} has {3 * self.fold**2} channels; "
                f"the UNet has {self.unet.channels}"
            )
        if (self.size // self.fold) % 2 ** (len(self.unet.mults) - 1):
            raise ValueError(
                f"{self.size // self.fold} px (size / fold) cannot be halved {len(self.unet.mults) - 1} times"
            )

    @property
    def resolution(self) -> int:
        """The side of what the UNet sees."""
        return self.size // self.fold

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PortraitConfig:
        unet = {k: tuple(v) if isinstance(v, list) else v for k, v in d["unet"].items()}
        return cls(
            **{k: v for k, v in d.items() if k not in ("unet", "schedule", "text")},
            unet=UNetConfig(**unet),
            schedule=ScheduleConfig(**d["schedule"]),
            text=TextConfig(**d.get("text", {})),
        )


class PortraitModel(nn.Module):
    """The UNet and the fold between portraits (B, 3, S, S) in [0, 1] and its input (B, 3 fold^2, S/fold, S/fold)."""

    def __init__(self, config: PortraitConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.unet = TriplaneUNet(config.unet)
        self.words = None
        if config.vocab_size:
            self.words = TextEncoder(config.text, config.vocab_size)
            self.words.log_temperature.requires_grad_(False)  # a contrastive loss's; unused here

    def condition(self, z: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """The code the UNet follows, given latent codes z (B, z_dim) and token ids (B, L) of the prompts they were
        read from (`rodin_core.text.batch_ids` with the bundle's vocabulary): where a row has words, the word
        path's own reading of them; elsewhere (the sentence model's prompts, no words at all) z itself. The word
        path starts as a copy of the word encoder, so it first reads exactly the z it replaces, and the denoising
        loss then teaches it to keep what the portraits need. Zeros with no words stay the unconditional code of
        classifier-free guidance."""
        if ids is None or self.words is None:
            return z
        ids = ids.to(z.device)
        present = (ids != PAD).any(dim=1, keepdim=True)
        # An all-PAD row would leave attention nothing to attend to (NaN): it is read as one unknown word, and
        # its reading is not used.
        first = torch.arange(ids.shape[1], device=ids.device) == 0
        return torch.where(present, self.words(ids.masked_fill(~present & first, UNK)), z)

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor, ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.unet(x_t, t, self.condition(z, ids))

    def fold(self, images: torch.Tensor) -> torch.Tensor:
        size = self.config.size
        if images.dim() != 4 or tuple(images.shape[1:]) != (3, size, size):
            raise ValueError(f"portraits must be (B, 3, {size}, {size}); got {tuple(images.shape)}")
        return F.pixel_unshuffle(images * 2 - 1, self.config.fold)

    def unfold(self, x: torch.Tensor) -> torch.Tensor:
        return ((F.pixel_shuffle(x, self.config.fold) + 1) / 2).clamp(0, 1)
