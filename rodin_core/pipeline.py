"""AvatarPipeline: seed / image / text -> tri-plane -> textured mesh. The one entry point of the add-on and CLI.

    pipe = AvatarPipeline.from_bundle()            # the embedded model
    avatar = pipe.generate(seed=7)                 # an Avatar: vertices (m), faces, uvs, texture, metadata

Stages: latent code (prior, image encoder or text encoder) -> for a text prompt, a frontal portrait drawn by the
portrait model (when the bundle has one) -> base diffusion (with classifier-free guidance, and image guidance
towards the portrait, the user's or the drawn one) -> upsampler (or bilinear when the bundle has none) -> density grid -> marching cubes -> UV atlas -> bake.
Deterministic per seed on a given device. `progress(stage, done, total)` is called along the way; setting
the `cancel` event (threading.Event) stops generation within one sampler step with GenerationCancelled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import __version__
from .avatar import Avatar
from .bundle import BundleError, load_bundle, load_module
from .cameras import Cameras
from .decoder import DecoderConfig, TriplaneDecoder, TriplaneField
from .encoder import EncoderConfig, ImageEncoder
from .glasses import add_glasses, glasses_named, glasses_stated
from .images import load_portrait, portrait_note, prepare_portrait
from .mesh import MeshConfig, extract_mesh, to_metres, vertex_normals
from .parts import PartsConfig, PartSegmenter
from .portrait import PortraitConfig, PortraitModel
from .preview import render_image
from .prior import LatentPrior, PriorConfig
from .recolour import hair_colour_named, part_share, recolour
from .refiner import ImageRefiner, RefinerConfig
from .regions import blend_region, parts_named
from .samplers import SAMPLERS, GenerationCancelled
from .sampling import sample_base, sample_latents, sample_portraits, sample_upsampled
from .schedule import NoiseSchedule, ScheduleConfig
from .sentence import INSTALL_HINT, SentenceConfig, SentenceHead, embed_sentences, sentence_model_missing
from .text import INSTRUCTING, REMOVING, TextConfig, TextEncoder, Vocabulary, batch_ids, words
from .texture import bake_texture, vertex_colors
from .triplane import denormalize, normalize, resample, roll_in, roll_out
from .unet import TriplaneUNet, UNetConfig
from .view_guidance import MAX_STRENGTH, ViewGuidance, ViewGuidanceConfig

Progress = Callable[[str, int, int], None]

__all__ = [
    "AvatarPipeline",
    "EditResult",
    "GenerationSettings",
    "GenerationCancelled",
    "BundleError",
    "latent_list",
    "noise_seed",
]


@dataclass(frozen=True)
class GenerationSettings:
    # Classifier-free guidance; None: the default for what conditions the avatar, PROMPT_GUIDANCE for a text prompt
    # given to `AvatarPipeline.generate`, DEFAULT_GUIDANCE otherwise (`guidance_for`).
    guidance: float | None = None
    sampler: str = "dpmpp_2m"
    steps: int = 20
    upsampler_steps: int = 10
    mesh_resolution: int = 128
    # 512 px texels are ~4x finer than the 64^2 tri-planes' own detail on the bust: baked meshes rendered
    # against their NeRF gave 26.93 dB at 512 and at 1024 (training.evaluate_mesh), for a quarter of the bake.
    texture_size: int = 512
    # The UV unwrap (xatlas) grows faster than linearly with faces: 20k unwraps ~7x faster than 54k
    # (bench/extract), and the texture carries the colour detail.
    max_faces: int | None = 20000
    threshold: float | None = None  # density iso-level; None: the bundle's
    # How strongly an avatar is pulled towards rendering its portrait from the front (rodin_core.view_guidance):
    # the user's portrait, or for a text prompt the one the portrait model draws; 0: the latent code alone.
    # On 64 avatars no stage saw, 1.0 raised attribute agreement from 54 % to 71 % (63 % read 40 degrees to
    # the side), for ~9 s per avatar on 2 cores.
    image_guidance: float = 1.0
    # Draw the generator's frame onto a prompt's avatar when the prompt gives it glasses ("... round glasses ...";
    # rodin_core.glasses, as the "add glasses" edit does), since the base model draws them faintly. Off by
    # default: on the text report's 32 prompts it lowered attribute agreement from 68.4 to 65.2 % (glasses 39 ->
    # 50 %, age, skin tone and eye colour read worse; docs/results.md, session 28).
    draw_glasses: bool = False

    def validate(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if not 1 <= self.steps <= 1000:
            raise ValueError(f"steps must be between 1 and 1000; got {self.steps}")
        if self.guidance is not None and not 0.0 <= self.guidance <= 20.0:
            raise ValueError(f"guidance must be between 0 and 20; got {self.guidance}")
        ViewGuidanceConfig(strength=self.image_guidance).validate()
        if not 64 <= self.texture_size <= 8192:
            raise ValueError(f"texture size must be between 64 and 8192; got {self.texture_size}")
        MeshConfig(resolution=self.mesh_resolution, max_faces=self.max_faces).validate()


# Classifier-free guidance when none is asked for. Unconditional and image-conditioned avatars: 2 (held-out likeness
# best at 1-2, attribute agreement within noise from 1 to 3, worse at 4.5; docs/results.md, "Base diffusion").
# Text prompts: 3, what the text report has measured since session 16; on 136 prompts no stage saw, 3 read 68.6 %
# from the front against 68.0 % at 2, 59.0 against 58.0 % from the side (docs/results.md, session 30).
DEFAULT_GUIDANCE = 2.0
PROMPT_GUIDANCE = 3.0


def guidance_for(settings: GenerationSettings, prompt: bool = False) -> float:
    """The classifier-free guidance `settings` sample with: theirs, or the default for a prompt or anything else."""
    if settings.guidance is not None:
        return settings.guidance
    return PROMPT_GUIDANCE if prompt else DEFAULT_GUIDANCE


@dataclass
class EditResult:
    planes: torch.Tensor  # (1, 3, C, R, R) final tri-planes of the edited avatar
    latent: torch.Tensor  # the latent code the edit moved to
    unknown_words: list[str]  # words of the prompt the model does not know (left out)
    parts: list[str]  # the parts it was limited to (rodin_core.regions); empty = the whole avatar
    # The (3, S, S) frontal portrait the edit was pulled towards: the avatar's front redrawn with the change by
    # the portrait model (a prompt), the user's image (an image edit), or None (latent code alone).
    portrait: torch.Tensor | None = None
    # How the change was made: "repainted" (the hair's colour painted in 3D), "drawn" (the glasses frame drawn in
    # 3D) or "redrawn" (the diffusion model redrew it from the edited latent code).
    method: str = "redrawn"
    # Why the edit was not made the way its prompt suggests, in words for the user; None when it was.
    note: str | None = None


NO_HAIR_TO_REPAINT = (
    "no hair to repaint (a bald head, or hair hidden under a hat), so the model redrew the hair region from the "
    "edited latent code, which can change more than the colour"
)

# A prompt's avatar is pulled towards the portrait drawn for it twice as hard as towards a user's portrait (and takes
# the encoder's reading of that portrait as its code, `text_conditioning`): on 136 prompts no stage saw, agreement
# rose from 56.6 to 59.4 % read from the front and 49.2 to 52.8 % from 40 degrees to the side (docs/results.md,
# session 23). A user's portrait keeps the strength asked: 2.0 lost likeness away from the front there (session 13).
# Edits that redraw the front keep it too (not measured with the gain).
DRAWN_PORTRAIT_GAIN = 2.0

# Which text encoder reads a prompt: "words", the project's own word-level encoder; "sentence", the head on the
# offline sentence-embedding model (rodin_core.sentence); "auto", words unless the prompt has words the word
# encoder does not know and the sentence model is there to read them.
TEXT_MODELS = ("auto", "words", "sentence")


class AvatarPipeline:
    def __init__(
        self,
        config: dict[str, Any],
        tensors: dict[str, torch.Tensor],
        source: str,
        device="cpu",
        text_model: str = "auto",
    ) -> None:
        if text_model not in TEXT_MODELS:
            raise ValueError(f"unknown text model {text_model!r}; choose one of {', '.join(TEXT_MODELS)}")
        self.config = config
        self.source = source
        self.device = torch.device(device)
        self.decoder = TriplaneDecoder(DecoderConfig(**config["decoder"]))
        load_module(self.decoder, tensors, "decoder", source)
        base = config["base"]
        self.resolution = int(base["resolution"])
        self.schedule = NoiseSchedule(ScheduleConfig(**base["schedule"]))
        self.unet = TriplaneUNet(UNetConfig(**_tuples(base["unet"])))
        load_module(self.unet, tensors, "unet", source)
        self.encoder = ImageEncoder(EncoderConfig(**_tuples(base["encoder"])))
        load_module(self.encoder, tensors, "encoder", source)
        self.prior = LatentPrior(PriorConfig(**base["prior"]))
        load_module(self.prior, tensors, "prior", source)
        self.mean, self.std = tensors["stats.mean"], tensors["stats.std"]
        self.upsampler = None
        up = config.get("upsampler")
        if up:
            self.up_resolution = int(up["resolution"])
            self.up_schedule = NoiseSchedule(ScheduleConfig(**up["schedule"]))
            self.upsampler = TriplaneUNet(UNetConfig(**_tuples(up["unet"])))
            load_module(self.upsampler, tensors, "upsampler", source)
            self.up_mean, self.up_std = tensors["stats_hi.mean"], tensors["stats_hi.std"]
        self.text_encoder, self.vocab = None, None
        text = config.get("text")
        if text:
            self.vocab = Vocabulary(text["vocab"])
            self.text_encoder = TextEncoder(TextConfig(**text["config"]), len(self.vocab))
            load_module(self.text_encoder, tensors, "text", source)
        self.sentence_head = None
        if config.get("sentence"):
            self.sentence_head = SentenceHead(SentenceConfig(**config["sentence"]["config"]))
            load_module(self.sentence_head, tensors, "sentence", source)
        if text or config.get("sentence"):
            self.z_mean = tensors["stats.z_mean"]
        self.portrait_model = None
        if config.get("portrait"):
            portrait = PortraitConfig.from_dict(config["portrait"]["config"])
            vocab_size = len(self.vocab) if self.vocab is not None else 0
            if portrait.vocab_size and portrait.vocab_size != vocab_size:
                raise ValueError(
                    f"{source}: the portrait model reads words by a vocabulary of {portrait.vocab_size} tokens, "
                    f"the bundle's word encoder has {vocab_size}; export the portrait model trained with this "
                    "bundle's text encoder"
                )
            self.portrait_model = PortraitModel(portrait)
            load_module(self.portrait_model, tensors, "portrait", source)
            self.portrait_schedule = NoiseSchedule(portrait.schedule)
        self.text_model = text_model
        if text_model == "sentence":
            self._check_sentence()
        # Without a part segmenter, hair-colour edits tell hair by colour rules (rodin_core.recolour).
        self.part_segmenter = None
        if config.get("parts"):
            self.part_segmenter = PartSegmenter(PartsConfig(**config["parts"]["config"]))
            load_module(self.part_segmenter, tensors, "parts", source)
        self.refiner = None
        if config.get("refiner"):
            self.refiner = ImageRefiner(RefinerConfig(**config["refiner"]))
            load_module(self.refiner, tensors, "refiner", source)
        self.final_resolution = (
            self.up_resolution if self.upsampler is not None else int(config["fit_resolution"])
        )
        self.threshold = float(config.get("mesh", {}).get("threshold", 10.0))
        # How image guidance works (its strength comes from GenerationSettings.image_guidance); benchmarks
        # and evaluations swap it to compare, e.g. latent_iterations=0 for the x0 correction alone.
        self.view_guidance = ViewGuidanceConfig()
        for module in self.modules():
            module.to(self.device)

    @classmethod
    def from_bundle(
        cls, path: str | Path | None = None, device: str = "cpu", text_model: str = "auto"
    ) -> AvatarPipeline:
        config, tensors = load_bundle(path)
        return cls(config, tensors, str(path or "the embedded bundle"), device, text_model)

    def modules(self) -> list[torch.nn.Module]:
        return [
            m
            for m in (
                self.decoder,
                self.unet,
                self.encoder,
                self.prior,
                self.upsampler,
                self.text_encoder,
                self.sentence_head,
                self.portrait_model,
                self.refiner,
            )
            if m is not None
        ]

    @property
    def version(self) -> str:
        return str(self.config.get("version", "unknown"))

    # ------------------------------------------------------------------ latent codes

    @torch.no_grad()
    def encode_image(self, image) -> torch.Tensor:
        return self.encode_pixels(self.portrait(image))

    def portrait(self, image) -> torch.Tensor:
        """Any portrait `load_portrait` takes -> (3, S, S) pixels at the encoder's size."""
        return load_portrait(image, self.encoder.config.image_size)

    @torch.no_grad()
    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """The latent code (1, z_dim) of a (3, S, S) portrait from `portrait` (or one the portrait model drew, at
        its own size: resized to the encoder's)."""
        size = self.encoder.config.image_size
        pixels = pixels[None].to(self.device)
        if pixels.shape[-2:] != (size, size):
            pixels = F.interpolate(
                pixels, size=(size, size), mode="bilinear", antialias=True, align_corners=False
            )
        return self.encoder(pixels)

    def _check_sentence(self) -> None:
        if self.sentence_head is None:
            raise ValueError(
                "this model has no sentence-model head; export one with training.export --sentence, "
                "or use the word encoder (text model 'words')"
            )
        problem = sentence_model_missing()
        if problem:
            raise ValueError(f"text model 'sentence': {problem}")

    @property
    def sentence_ready(self) -> bool:
        """The bundle has a sentence-model head and the sentence model is installed."""
        return self.sentence_head is not None and sentence_model_missing() is None

    def text_model_for(self, text: str) -> str:
        """The encoder that reads this prompt: "words" or "sentence" (see TEXT_MODELS)."""
        if self.text_encoder is None and self.sentence_head is None:
            raise ValueError("this model has no text encoder; condition on an image, or none")
        if self.text_model == "sentence" or (self.text_model == "auto" and self.text_encoder is None):
            self._check_sentence()
            return "sentence"
        if self.text_model == "words" or not self.sentence_ready:
            if self.text_encoder is None:
                raise ValueError("this model has only a sentence-model head; use text model 'sentence'")
            return "words"
        return "sentence" if self.unfamiliar_words(text) else "words"

    def unfamiliar_words(self, text: str) -> list[str]:
        """Words of the prompt that no training caption uses (the word encoder would leave them out)."""
        known = self.vocab.index if self.vocab is not None else {}
        return sorted({w for w in words(text) if w not in known})

    @torch.no_grad()
    def encode_text(self, text: str) -> tuple[torch.Tensor, list[str]]:
        """The latent code of a prompt and the words that were left out (the word encoder does not know them;
        the sentence model leaves none out)."""
        if self.text_model_for(text) == "sentence":
            return self.sentence_head(embed_sentences([text], str(self.device)).to(self.device)), []
        ids, unknown = batch_ids(self.vocab, [text], self.text_encoder.config.max_len)
        if not (ids > 0).any():
            sample = ", ".join(w for w in self.vocab.tokens if len(w) > 3)[:200]
            hint = "" if self.sentence_head is None else f"; or install the sentence model: {INSTALL_HINT}"
            raise ValueError(
                f"none of the words in {text!r} are known to the model; it knows words like: {sample}{hint}"
            )
        return self.text_encoder(ids.to(self.device)), unknown[0]

    @torch.no_grad()
    def latent(self, seed: int, image=None, text: str | None = None) -> torch.Tensor:
        if image is not None and text is not None:
            raise ValueError("condition on an image or on a text prompt, not both")
        if image is not None:
            return self.encode_image(image)
        if text is not None:
            return self.encode_text(text)[0]
        gen = torch.Generator().manual_seed(_seed(seed, "latent"))
        return sample_latents(self.prior, self.schedule, 1, gen)

    @torch.no_grad()
    def draw_portrait(
        self,
        seed: int,
        z: torch.Tensor,
        progress: Progress | None = None,
        cancel=None,
        text: str | None = None,
    ) -> torch.Tensor:
        """The (3, S, S) frontal portrait the portrait model draws for text latent code z (1, z_dim), with the
        model's own sampler, steps and guidance (PortraitConfig), not the base model's settings. `text`: the
        prompt z was read from, whose words a portrait model with a word path reads too."""
        self._require_portrait_model()
        gen = torch.Generator().manual_seed(_seed(seed, "portrait"))
        portraits = sample_portraits(
            self.portrait_model,
            self.portrait_schedule,
            z.to(self.device),
            gen,
            progress=_stage(progress, "portrait"),
            cancel=cancel,
            ids=self.portrait_words(text),
        )
        return portraits[0].cpu()

    def portrait_words(self, text: str | None) -> torch.Tensor | None:
        """Token ids (1, L) of a prompt for the portrait model's word path; None without a word path or a prompt,
        and for a prompt the sentence model reads (words outside the vocabulary, which the path never saw)."""
        model = self.portrait_model
        if text is None or model is None or model.words is None or self.text_model_for(text) != "words":
            return None
        return batch_ids(self.vocab, [text], model.config.text.max_len)[0]

    def _require_portrait_model(self) -> None:
        if self.portrait_model is None:
            raise ValueError("this model has no portrait model; export one with training.export --portrait")

    def text_conditioning(
        self,
        seed: int,
        text: str,
        settings: GenerationSettings = GenerationSettings(),
        progress: Progress | None = None,
        cancel=None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, list[str]]:
        """What a prompt conditions the base model on: a latent code, the portrait the portrait model draws for it
        (None without a portrait model or with image guidance 0) and the words left out.

        With a drawn portrait the code is the image encoder's reading of that portrait, as for a user's portrait
        (the prompt's own code only chose what the portrait model drew), and `sample_planes(drawn=True)` pulls
        towards it DRAWN_PORTRAIT_GAIN times as hard; without one it is the prompt's own code."""
        z, unknown = self.encode_text(text)
        portrait = None
        if self.portrait_model is not None and settings.image_guidance > 0:
            portrait = self.draw_portrait(seed, z, progress, cancel, text)
            z = self.encode_pixels(portrait)
        return z, portrait, unknown

    # ------------------------------------------------------------------ tri-planes

    @torch.no_grad()
    def sample_planes(
        self,
        seed: int,
        z: torch.Tensor,
        settings: GenerationSettings = GenerationSettings(),
        progress: Progress | None = None,
        cancel=None,
        image: torch.Tensor | None = None,
        drawn: bool = False,
    ) -> torch.Tensor:
        """(1, 3, C, R, R) tri-plane at the final resolution, in the decoder's value range.

        `image`: the (3, S, S) portrait z was encoded from (`load_portrait`, or `drawn`: one the portrait model
        drew for a prompt, `text_conditioning`); with `settings.image_guidance` > 0 the sample is also pulled
        towards rendering it from the front (rodin_core.view_guidance), at `guidance_strength`."""
        gen = torch.Generator().manual_seed(_seed(seed, "base"))
        correct = self._view_guidance(seed, image, guidance_strength(settings, drawn))
        rolled = sample_base(
            self.unet,
            self.schedule,
            z,
            self.resolution,
            gen,
            guidance_for(settings),
            settings.sampler,
            settings.steps,
            _stage(progress, "base diffusion"),
            cancel,
            correct=correct,
            steer=correct.steer_latent if correct is not None else None,
        )
        planes = denormalize(roll_in(rolled.cpu()), self.mean, self.std)
        return self._finish(planes, seed, settings, progress, cancel)

    def _view_guidance(self, seed: int, image: torch.Tensor | None, strength: float):
        """Image guidance towards a (3, S, S) frontal portrait, or None (no portrait, or strength 0)."""
        if image is None or strength <= 0:
            return None
        size = image.shape[-1]
        return ViewGuidance(
            image.permute(1, 2, 0),
            Cameras.orbit([0.0], 0.0, size),
            self.decoder,
            self.mean,
            self.std,
            self.final_resolution,
            torch.Generator().manual_seed(_seed(seed, "guidance")),
            replace(self.view_guidance, strength=strength),
        )

    def field(self, planes: torch.Tensor) -> TriplaneField:
        return TriplaneField(planes.to(self.device), self.decoder)

    @torch.no_grad()
    def render(
        self,
        planes: torch.Tensor,
        azimuths=(0.0,),
        elevation: float = 0.0,
        size: int = 128,
        refine: bool = True,
    ) -> list:
        """Preview views of the NeRF, sharpened by the bundle's refiner when it has one (and `refine`)."""
        cams = Cameras.orbit(azimuths, elevation, size)
        views = [
            render_image(planes[0].to(self.device), self.decoder, cams, i)["rgb"] for i in range(len(cams))
        ]
        if self.refiner is not None and refine:
            views = [self.refiner.refine(v) for v in views]
        return views

    # ------------------------------------------------------------------ meshes

    @torch.no_grad()
    def mesh_from_planes(
        self,
        planes: torch.Tensor,
        settings: GenerationSettings = GenerationSettings(),
        progress: Progress | None = None,
        cancel=None,
        timings: dict[str, float] | None = None,
    ) -> Avatar:
        timings = timings if timings is not None else {}
        field = self.field(planes)
        mesh_cfg = MeshConfig(
            resolution=settings.mesh_resolution,
            threshold=settings.threshold or self.threshold,
            max_faces=settings.max_faces,
        )
        t = time.perf_counter()
        _report(progress, "mesh", 0, 3)

        def density(points):
            return field.density(points[None].to(self.device))[0]

        def color(points, dirs):
            return field.seen_color(points[None].to(self.device), dirs[None].to(self.device))[0].cpu()

        verts, faces = extract_mesh(density, mesh_cfg, cancel)
        timings["mesh"] = time.perf_counter() - t
        _report(progress, "texture", 1, 3)
        t = time.perf_counter()
        normals = vertex_normals(verts, faces)
        uvs, texture = bake_texture(verts, faces, normals, color, settings.texture_size, cancel=cancel)
        colors = vertex_colors(verts, normals, color)
        timings["texture"] = time.perf_counter() - t
        _report(progress, "done", 3, 3)
        return Avatar(to_metres(verts), faces, uvs, texture, colors)

    def draw_stated(
        self,
        planes: torch.Tensor,
        text: str,
        settings: GenerationSettings = GenerationSettings(),
        progress: Progress | None = None,
        cancel=None,
    ) -> tuple[torch.Tensor, list[str]]:
        """A prompt's sampled avatar (final tri-planes) with what the prompt gives it that the base model draws
        faintly drawn on, and the names of what was: glasses (`glasses_stated`, `settings.draw_glasses`)."""
        kind = glasses_stated(text) if settings.draw_glasses else None
        if kind is None:
            return planes, []
        return self._draw_glasses(planes, kind, 1.0, progress, cancel), [f"{kind} glasses"]

    def _draw_glasses(self, planes, kind: str, strength: float, progress, cancel) -> torch.Tensor:
        """Final tri-planes with the generator's `kind` of frame drawn on (rodin_core.glasses), on the CPU."""
        framed = add_glasses(
            self.decoder,
            planes[:1].to(self.device).float(),
            kind,
            strength,
            progress=_stage(progress, "drawing glasses"),
            cancel=cancel,
        )
        return framed.cpu()

    def generate(
        self,
        seed: int = 0,
        image=None,
        text: str | None = None,
        settings: GenerationSettings | None = None,
        progress: Progress | None = None,
        cancel=None,
        variation: int = 0,
        **overrides,
    ) -> Avatar:
        """One avatar. Keyword overrides (guidance=, steps=, sampler=, mesh_resolution=, texture_size=,
        max_faces=, image_guidance=) change the default settings; with no guidance asked for, a prompt samples with
        PROMPT_GUIDANCE and anything else with DEFAULT_GUIDANCE. `variation` > 0 keeps the seed's latent code
        (its identity) and draws different diffusion noise: variations of one avatar. With an `image` the
        avatar follows the portrait through its latent code and, unless `image_guidance` is 0, through its
        frontal render (the portrait is taken as a frontal view framed like the generator's). A `text` prompt does
        the same with the portrait the portrait model draws for it, when the bundle has one (`avatar.portrait`;
        the same for every variation of the seed)."""
        settings = settings or GenerationSettings()
        if overrides:
            settings = GenerationSettings(**{**settings.__dict__, **overrides})
        settings.validate()
        prompted = text is not None and image is None
        # the number, not None: the metadata records what the avatar was sampled with
        settings = replace(settings, guidance=guidance_for(settings, prompted))
        timings: dict[str, float] = {}
        t = time.perf_counter()
        _report(progress, "latent", 0, 1)
        unknown: list[str] = []
        portrait, read = None, None
        if prompted:
            z, portrait, unknown = self.text_conditioning(seed, text, settings, progress, cancel)
        elif image is not None and text is None:
            # read once: encoded, then the target of image guidance
            portrait, read = prepare_portrait(image, self.encoder.config.image_size)
            z = self.encode_pixels(portrait)
        else:
            z = self.latent(seed, image=image, text=text)  # none: the prior; both: latent() refuses
        steering = portrait if settings.image_guidance > 0 else None
        drawn = steering is not None and image is None
        planes = self.sample_planes(
            noise_seed(seed, variation), z, settings, progress, cancel, steering, drawn
        )
        timings["diffusion"] = time.perf_counter() - t
        drawn_on: list[str] = []
        if prompted:
            t = time.perf_counter()
            planes, drawn_on = self.draw_stated(planes, text, settings, progress, cancel)
            if drawn_on:
                timings["drawn"] = time.perf_counter() - t
        avatar = self.mesh_from_planes(planes, settings, progress, cancel, timings)
        avatar.metadata = {
            "seed": int(seed),
            "variation": int(variation),
            "conditioning": "image" if image is not None else ("text" if text else "none"),
            "image": str(image) if isinstance(image, (str, Path)) else None,
            # how the portrait was read (rodin_core.images): its background, and its reframing, if any
            "portrait_read": None if read is None else {**read.__dict__, "note": portrait_note(read)},
            "text": text,
            "text_model": self.text_model_for(text) if text is not None and image is None else None,
            "unknown_words": unknown,
            # How the avatar was steered besides its latent code: the user's portrait or one drawn for the prompt.
            "portrait": None if steering is None else ("given" if image is not None else "drawn"),
            "image_guidance_strength": guidance_strength(settings, drawn) if steering is not None else 0.0,
            "drawn_on": drawn_on,  # what the prompt asked for that was drawn on after sampling (draw_stated)
            "latent": latent_list(z),
            "settings": settings.__dict__,
            "model": {"version": self.version, "bundle": self.source, **self.config.get("made_by", {})},
            "rodin_core": __version__,
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
            "units": "metres, Z up, face towards -Y",
        }
        avatar.planes = planes
        avatar.portrait = steering
        return avatar

    @torch.no_grad()
    def edit_latent(
        self, z: torch.Tensor, text: str | None = None, image=None
    ) -> tuple[torch.Tensor, list[str]]:
        """Moves z towards a prompt ("add glasses": the prompt's direction from the mean latent), away from it
        ("remove the glasses", "take off the hat", "without a beard"), or to an image's latent."""
        if image is not None:
            return self.encode_image(image), []
        if text is None:
            return z, []
        tokens = words(text)
        # "remove the glasses", "take off the hat", "without a beard": move away from what the prompt names.
        away = bool(tokens) and tokens[0] in REMOVING
        # Instruction words are not descriptions; the model knowing none of them is expected, not worth a report.
        known = self.vocab.index if self.vocab is not None else {}
        described = [w for w in tokens if w not in INSTRUCTING or w in known]
        if not described:
            raise ValueError(f"the edit {text!r} names nothing to change; say what, e.g. 'add round glasses'")
        target, unknown = self.encode_text(" ".join(described))
        direction = target - self.z_mean.to(target)
        moved = z - direction if away else z + direction
        return torch.nn.functional.normalize(moved, dim=-1) * z.shape[-1] ** 0.5, unknown

    @torch.no_grad()
    def edit_planes(
        self,
        planes: torch.Tensor,
        z: torch.Tensor,
        seed: int,
        strength: float = 1.0,
        settings: GenerationSettings = GenerationSettings(),
        progress: Progress | None = None,
        cancel=None,
        image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """SDEdit: noise the avatar's base tri-plane to `strength` (0 = unchanged, 1 = resampled) and denoise it
        towards latent z. `seed` is the avatar's noise seed (see `noise_seed`): the re-noising reuses the noise
        the avatar was drawn from, so its own latent at strength 1 gives the avatar back exactly. `image`: a
        (3, S, S) frontal portrait the edit is pulled towards as in `sample_planes` (e.g. `edit_portrait`'s)."""
        x0 = roll_out(normalize(resample(planes.cpu(), self.resolution), self.mean, self.std))
        gen = torch.Generator().manual_seed(_seed(seed, "base"))
        start, x_t, steps = _renoise(self.schedule, x0, gen, strength, settings.steps)
        correct = self._view_guidance(seed, image, guidance_strength(settings))
        rolled = sample_base(
            self.unet,
            self.schedule,
            z,
            self.resolution,
            gen,
            guidance_for(settings),
            settings.sampler,
            steps,
            _stage(progress, "base diffusion"),
            cancel,
            start=start,
            x_start=x_t.to(self.device),
            correct=correct,
            steer=correct.steer_latent if correct is not None else None,
        )
        return self._finish(
            denormalize(roll_in(rolled.cpu()), self.mean, self.std), seed, settings, progress, cancel
        )

    @torch.no_grad()
    def edit_portrait(
        self,
        planes: torch.Tensor,
        z: torch.Tensor,
        seed: int,
        strength: float = 0.6,
        parts: list[str] | None = None,
        progress: Progress | None = None,
        cancel=None,
    ) -> torch.Tensor:
        """The avatar's frontal render redrawn by the portrait model towards latent z (SDEdit in 2D): a (3, S, S)
        portrait of the same avatar with the change, which `edit_planes` then lifts into 3D. `strength` as in
        `edit_planes`; low keeps more of the render (its layout, the other features), high draws more of z.
        With `parts` only the pixels where those parts show are redrawn (`part_mask`); every other pixel stays
        the render's at every step (inpainting), so the portrait model cannot change what the edit keeps."""
        self._require_portrait_model()
        model = self.portrait_model
        size = model.config.size
        front = self.render(planes, (0.0,), size=size, refine=False)[0]
        x0 = model.fold(front.permute(2, 0, 1)[None].cpu())
        keep = None
        if parts:
            mask = self.part_mask(planes, parts, size).expand(1, 3, -1, -1)
            inside = torch.nn.functional.pixel_unshuffle(mask, model.config.fold).to(self.device)
            known = x0.to(self.device)

            def keep(estimate: torch.Tensor, t: int) -> torch.Tensor:
                return inside * estimate + (1 - inside) * known

        gen = torch.Generator().manual_seed(_seed(seed, "portrait"))
        start, x_t, steps = _renoise(self.portrait_schedule, x0, gen, strength, model.config.steps)
        x = sample_base(
            model.unet,
            self.portrait_schedule,
            z.to(self.device),
            model.config.resolution,
            gen,
            model.config.guidance,
            model.config.sampler,
            steps,
            _stage(progress, "portrait"),
            cancel,
            start=start,
            x_start=x_t.to(self.device),
            correct=keep,
        )
        return model.unfold(x)[0].cpu()

    @torch.no_grad()
    def part_mask(self, planes: torch.Tensor, parts: list[str], size: int) -> torch.Tensor:
        """(1, 1, size, size) in [0, 1]: where the named parts (rodin_core.regions) show in the avatar's frontal
        view: the share of the visible surface's features a local edit replaces, composited along each ray. A
        point one plane's edit reaches counts as wholly inside (x3): most parts are masked on two of the three
        planes, and a pixel redrawn at 2/3 would be pulled back to the render at every step."""
        batch = planes[:1].to(self.device).float()
        return part_share(self.decoder, batch, parts, Cameras.orbit((0.0,), 0.0, size), 0)[None, None]

    @torch.no_grad()
    def edit(
        self,
        planes: torch.Tensor,
        z: torch.Tensor,
        seed: int,
        text: str | None = None,
        image=None,
        strength: float = 1.0,
        local: bool = True,
        settings: GenerationSettings = GenerationSettings(),
        progress: Progress | None = None,
        cancel=None,
        portrait_strength: float | None = None,
        drawn_edits: bool = True,
    ) -> EditResult:
        """An avatar (its final tri-planes, latent z and noise seed) changed by a prompt or a portrait.

        With `local`, a prompt that names a part ("glasses", "hair", "beard", "shirt", ...) changes only that
        part (rodin_core.regions) and leaves the rest of the avatar exactly as it was; a prompt that names none,
        and any image edit, changes the whole avatar. Unless `settings.image_guidance` is 0 an image edit is also
        pulled towards its image. A prompt edit is pulled towards the avatar's own front with the change redrawn
        by the portrait model only when `portrait_strength` is given (`edit_portrait`, e.g. 1.0; only the named
        part's pixels are redrawn): on 8 avatars per edit that did not raise edit success (docs/results.md),
        it costs the guidance's time, and unlike the latent code alone it does not give the avatar back exactly
        for its own latent.

        Two local prompts are drawn rather than redrawn, unless `drawn_edits` is False: the change is painted
        into a few views of the avatar and fitted into the part's tri-plane features (rodin_core.lift), with the
        latent code unchanged.
        - A prompt that only recolours the hair ("make the hair blond") repaints the hair the avatar has
          (rodin_core.recolour: the pixels the bundle's part segmenter reads as hair; geometry, hats, face and
          clothes kept; `strength` blends the colour in). A head with no hair to paint gets the latent edit,
          which can draw hair, and its `note` says so.
        - A prompt that only adds glasses ("add glasses", "give her square glasses") draws the generator's
          frame around the eyes (rodin_core.glasses; `strength` blends the frame in)."""
        drawn = drawn_edits and local and text and image is None
        colour = hair_colour_named(text) if drawn else None
        if colour is not None:
            painted = recolour(
                self.decoder,
                planes[:1].to(self.device).float(),
                colour,
                min(strength, 1.0),
                progress=_stage(progress, "repainting the hair"),
                cancel=cancel,
                segmenter=self.part_segmenter,
            )
            if painted is not None:
                return EditResult(painted.cpu(), z, [], ["hair"], method="repainted")
        kind = glasses_named(text) if drawn else None
        if kind is not None:
            framed = self._draw_glasses(planes, kind, min(strength, 1.0), progress, cancel)
            return EditResult(framed, z, [], ["eyes"], method="drawn")
        z_new, unknown = self.edit_latent(z, text=text, image=image)
        parts = parts_named(text) if (local and text and image is None) else []
        target = None
        if settings.image_guidance > 0:
            if image is not None:
                target = self.portrait(image)
            elif text is not None and portrait_strength is not None and self.portrait_model is not None:
                target = self.edit_portrait(planes, z_new, seed, portrait_strength, parts, progress, cancel)
        edited = self.edit_planes(planes, z_new, seed, strength, settings, progress, cancel, target)
        note = NO_HAIR_TO_REPAINT if colour is not None else None
        return EditResult(
            blend_region(planes.cpu(), edited.cpu(), parts), z_new, unknown, parts, target, note=note
        )

    @torch.no_grad()
    def interpolate(
        self,
        seed_a: int,
        seed_b: int,
        count: int,
        settings: GenerationSettings = GenerationSettings(),
        z_a: torch.Tensor | None = None,
        z_b: torch.Tensor | None = None,
        planes_a: torch.Tensor | None = None,
        planes_b: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Tri-planes of `count` avatars from a to b (ends included): latent codes and initial noise are both
        interpolated on the sphere, so the ends reproduce the two avatars exactly. Seeds are the avatars' noise
        seeds (`noise_seed`); a variation's latent code must then be passed, since it is its own seed's.

        `planes_a` / `planes_b`: the avatars' own tri-planes where they are not what their seed and latent draw
        (an edit keeps most of its original): what they differ by is blended in linearly, so the strip still
        starts and ends at exactly those avatars."""
        if count < 2:
            raise ValueError(f"interpolation needs at least 2 avatars (the two ends); got {count}")
        z_a = self.latent(seed_a) if z_a is None else z_a
        z_b = self.latent(seed_b) if z_b is None else z_b
        shape = (1, self.unet.config.channels, self.resolution, 3 * self.resolution)
        n_a = torch.randn(shape, generator=torch.Generator().manual_seed(_seed(seed_a, "base")))
        n_b = torch.randn(shape, generator=torch.Generator().manual_seed(_seed(seed_b, "base")))
        out = []
        for i in range(count):
            w = i / (count - 1)
            z = _slerp(z_a, z_b, w)
            noise = _slerp(n_a.flatten(1), n_b.flatten(1), w).reshape(shape)
            seed = seed_a if w < 0.5 else seed_b
            gen = torch.Generator().manual_seed(_seed(seed, "base"))
            torch.randn(
                shape, generator=gen
            )  # the same generator state as sample_planes after its noise draw
            rolled = sample_base(
                self.unet,
                self.schedule,
                z,
                self.resolution,
                gen,
                guidance_for(settings),
                settings.sampler,
                settings.steps,
                x_start=noise.to(self.device),
            )
            planes = denormalize(roll_in(rolled.cpu()), self.mean, self.std)
            out.append(self._finish(planes, seed, settings, None, None))
        offsets = [
            p.to(end) - end if p is not None else None for p, end in ((planes_a, out[0]), (planes_b, out[-1]))
        ]
        for i in range(count):
            w = i / (count - 1)
            for offset, weight in zip(offsets, (1 - w, w)):
                if offset is not None:
                    out[i] = out[i] + weight * offset
        return out

    def _finish(self, planes, seed, settings, progress, cancel) -> torch.Tensor:
        """Base-resolution planes -> final resolution (upsampler when the bundle has one)."""
        if self.upsampler is None:
            return resample(planes, self.final_resolution)
        cond = roll_out(normalize(resample(planes, self.up_resolution), self.up_mean, self.up_std))
        gen = torch.Generator().manual_seed(_seed(seed, "upsampler"))
        hi = sample_upsampled(
            self.upsampler,
            self.up_schedule,
            cond.to(self.device),
            gen,
            settings.sampler,
            settings.upsampler_steps,
            _stage(progress, "upsampling"),
            cancel,
            residual=bool(self.config["upsampler"].get("residual", False)),
        )
        return denormalize(roll_in(hi.cpu()), self.up_mean, self.up_std)

    def generate_batch(self, seeds, **kwargs) -> list[Avatar]:
        return [self.generate(seed=s, **kwargs) for s in seeds]


def _renoise(
    schedule: NoiseSchedule, x0: torch.Tensor, generator: torch.Generator, strength: float, steps: int
) -> tuple[int, torch.Tensor, int]:
    """SDEdit's start: the timestep for `strength` (0 = unchanged, 1 = pure noise), x0 noised to it with noise from
    `generator`, and the sampler steps for the rest of the way (`steps` for a whole sample)."""
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"edit strength must be in (0, 1]; got {strength}")
    last = schedule.num_steps - 1
    start = max(1, int(round(strength * last)))
    noise = torch.randn(x0.shape, generator=generator)
    x_t = noise if start == last else schedule.add_noise(x0, noise, torch.tensor([start])).float()
    return start, x_t, max(2, int(round(steps * strength)))


def _slerp(a: torch.Tensor, b: torch.Tensor, w: float) -> torch.Tensor:
    """Spherical interpolation of row vectors (keeps the norm Gaussian noise and latent codes live on)."""
    if w == 0.0:
        return a.clone()
    if w == 1.0:
        return b.clone()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1).clamp(-0.9999, 0.9999)[:, None]
    omega = torch.arccos(cos)
    return (torch.sin((1 - w) * omega) * a + torch.sin(w * omega) * b) / torch.sin(omega)


def guidance_strength(settings: GenerationSettings, drawn: bool = False) -> float:
    """The strength image guidance pulls with: `settings.image_guidance`, DRAWN_PORTRAIT_GAIN times it (at most
    the guidance's MAX_STRENGTH) towards a portrait the portrait model drew for a prompt."""
    if not drawn:
        return settings.image_guidance
    return min(settings.image_guidance * DRAWN_PORTRAIT_GAIN, MAX_STRENGTH)


def latent_list(z: torch.Tensor) -> list[float]:
    """A (1, z_dim) latent code as avatar metadata stores it (5 decimals keep the JSON small)."""
    return [round(float(v), 5) for v in z[0].cpu()]


def noise_seed(seed: int, variation: int = 0) -> int:
    """The seed of the diffusion noise of an avatar: its own seed, or a variation's (same latent, new noise)."""
    return int(seed) + 7919 * int(variation) if variation else int(seed)


def _seed(seed: int, stage: str) -> int:
    # Separate streams per stage so changing e.g. the upsampler does not change the base sample of a seed.
    offsets = {"latent": 0, "base": 1, "upsampler": 2, "guidance": 3, "portrait": 4}
    return (int(seed) * 1_000_003 + offsets[stage]) % (2**63)


def _tuples(config: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}


def _stage(progress: Progress | None, name: str):
    if progress is None:
        return None
    return lambda done, total: progress(name, done, total)


def _report(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def image_to_uint8(image: torch.Tensor) -> np.ndarray:
    return image.clamp(0, 1).mul(255).round().byte().cpu().numpy()
