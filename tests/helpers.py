"""Small builders shared by tests."""

from __future__ import annotations

from pathlib import Path

import torch

from rodin_core.bundle import save_bundle
from rodin_core.decoder import DecoderConfig, TriplaneDecoder
from rodin_core.encoder import EncoderConfig, ImageEncoder
from rodin_core.io_utils import prefixed
from rodin_core.prior import LatentPrior, PriorConfig
from rodin_core.schedule import ScheduleConfig
from rodin_core.text import TextConfig, TextEncoder, Vocabulary
from rodin_core.unet import TriplaneUNet, UNetConfig

SMALL_UNET = UNetConfig(channels=8, base=16, mults=(1, 2), z_dim=16, groups=4)
SMALL_ENCODER = EncoderConfig(z_dim=16, widths=(16, 16, 32, 32))
SMALL_PRIOR = PriorConfig(z_dim=16, hidden=32, layers=1)


def untrained_unet(config: UNetConfig) -> TriplaneUNet:
    """A UNet whose zero-initialised layers are randomised, so its samples depend on their inputs."""
    unet = TriplaneUNet(config)
    for param in unet.parameters():
        if param.dim() > 1 and not param.any():  # zero-initialised residual branches and output
            torch.nn.init.normal_(param, std=0.05)
    return unet


def random_bundle(
    path: Path,
    resolution: int = 16,
    with_upsampler: bool = False,
    with_text: bool = False,
    threshold: float = 10.0,
    with_sentence: bool = False,
    with_portrait: bool = False,
    portrait_words: bool = False,
) -> Path:
    """An untrained but complete bundle (right structure, random weights)."""
    if portrait_words and not with_text:
        raise ValueError("a portrait model's word path reads the word encoder's vocabulary: pass with_text")
    torch.manual_seed(0)
    decoder = DecoderConfig()
    tensors = prefixed(TriplaneDecoder(decoder).state_dict(), "decoder")
    tensors.update(prefixed(untrained_unet(SMALL_UNET).state_dict(), "unet"))
    tensors.update(prefixed(ImageEncoder(SMALL_ENCODER).state_dict(), "encoder"))
    tensors.update(prefixed(LatentPrior(SMALL_PRIOR).state_dict(), "prior"))
    tensors.update({"stats.mean": torch.zeros(8), "stats.std": torch.ones(8) * 0.2})
    config = {
        "version": "test",
        "fit_resolution": 2 * resolution,
        "decoder": decoder.to_dict(),
        "base": {
            "resolution": resolution,
            "unet": SMALL_UNET.to_dict(),
            "encoder": SMALL_ENCODER.to_dict(),
            "prior": SMALL_PRIOR.to_dict(),
            "schedule": ScheduleConfig().to_dict(),
            "guidance": 2.0,
        },
        "upsampler": None,
        "mesh": {"threshold": threshold},
    }
    if with_upsampler:
        up = UNetConfig(channels=8, cond_channels=8, base=16, mults=(1, 2), groups=4)
        tensors.update(prefixed(untrained_unet(up).state_dict(), "upsampler"))
        tensors.update({"stats_hi.mean": torch.zeros(8), "stats_hi.std": torch.ones(8) * 0.2})
        config["upsampler"] = {
            "resolution": 2 * resolution,
            "unet": up.to_dict(),
            "schedule": ScheduleConfig(prediction="x0").to_dict(),
            "residual": True,
        }
    if with_text:
        vocab = Vocabulary.build(
            ["a young man with short red hair and round glasses", "a woman wearing a cap"]
        )
        text_cfg = TextConfig(z_dim=SMALL_ENCODER.z_dim, width=32, layers=1, heads=2)
        tensors.update(prefixed(TextEncoder(text_cfg, len(vocab)).state_dict(), "text"))
        tensors["stats.z_mean"] = torch.zeros(SMALL_ENCODER.z_dim)
        config["text"] = {"config": text_cfg.to_dict(), "vocab": vocab.tokens}
    if with_sentence:
        from rodin_core.sentence import SentenceConfig, SentenceHead

        sent_cfg = SentenceConfig(hidden=32, z_dim=SMALL_ENCODER.z_dim)
        tensors.update(prefixed(SentenceHead(sent_cfg).state_dict(), "sentence"))
        tensors["stats.z_mean"] = torch.zeros(SMALL_ENCODER.z_dim)
        config["sentence"] = {"config": sent_cfg.to_dict()}
    if with_portrait:
        from rodin_core.portrait import PortraitConfig, PortraitModel

        portrait = PortraitConfig(
            size=16,
            unet=UNetConfig(channels=12, base=8, mults=(1, 2), z_dim=16, groups=4, planes=1),
            vocab_size=len(vocab) if portrait_words else 0,
            text=text_cfg if portrait_words else TextConfig(),
        )
        model = PortraitModel(portrait)
        model.unet = untrained_unet(portrait.unet)
        tensors.update(prefixed(model.state_dict(), "portrait"))
        config["portrait"] = {"config": portrait.to_dict()}
    save_bundle(path, config, tensors)
    return path
