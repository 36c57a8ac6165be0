"""Generation off Blender's main thread.

A GenerationJob runs the pipeline in a worker thread and leaves finished avatars in a queue; the main thread
(a bpy.app.timers callback, see operators.py) takes them out and builds the Blender objects, because bpy must
only be touched from the main thread. Cancel sets an event the samplers check at every step.
"""

from __future__ import annotations

import os
import queue
import threading
import traceback
from dataclasses import dataclass, field

_PIPELINES: dict[tuple[str, str], object] = {}
_LOCK = threading.Lock()

STAGE_SPAN = {  # share of one avatar's progress bar per stage
    "latent": (0.0, 0.02),
    "portrait": (0.02, 0.05),  # a text prompt's portrait (rodin_core.portrait)
    "base diffusion": (0.05, 0.45),
    "upsampling": (0.45, 0.55),
    "drawing glasses": (0.55, 0.6),  # a prompt's glasses drawn on (GenerationSettings.draw_glasses)
    "mesh": (0.6, 0.75),
    "texture": (0.75, 0.98),
    "done": (0.98, 1.0),
}


def get_pipeline(weights: str | None, device: str, threads: int = 0):
    """The pipeline for these weights on this device, loaded once per Blender session."""
    import torch

    from rodin_core.pipeline import AvatarPipeline

    if threads:
        torch.set_num_threads(threads)
    key = (weights or "", device)
    with _LOCK:
        if key not in _PIPELINES:
            _PIPELINES[key] = AvatarPipeline.from_bundle(weights or None, device=device.lower())
        return _PIPELINES[key]


@dataclass
class Request:
    seeds: list[int]
    settings: dict
    image: str | None = None
    text: str | None = None
    mode: str = "generate"  # "generate", "edit" (seeds[0] + latent + strength) or "interpolate" (seeds a, b)
    latents: list | None = None  # stored latent codes of the avatars being edited / interpolated
    variations: list | None = None  # and their variation indices (which diffusion noise they were drawn from)
    planes: list | None = None  # and the tri-planes they carry: (float16 bytes, shape) or None
    strength: float = 1.0
    local: bool = True  # an edit naming a part (glasses, hair, ...) changes only that part
    inbetweens: int = 3
    variation: int = 0
    weights: str | None = None
    device: str = "CPU"
    threads: int = 0
    preview_dir: str | None = None


def _decode_planes(stored, pipe):
    """Tri-planes an object carried (float16 bytes, shape), checked against the model that will edit them."""
    import numpy as np
    import torch

    data, shape = stored
    expected = [1, 3, pipe.decoder.config.channels, pipe.final_resolution, pipe.final_resolution]
    if list(shape) != expected or len(data) != 2 * int(np.prod(shape)):
        raise ValueError(
            f"this avatar's tri-planes {list(shape)} were made by another model (this one makes {expected}); "
            "generate it again with this model, then edit it"
        )
    return torch.from_numpy(np.frombuffer(data, dtype=np.float16).reshape(shape).astype(np.float32))


@dataclass
class Result:
    index: int
    seed: int
    avatar: object
    preview: str | None


@dataclass
class GenerationJob:
    request: Request
    cancel: threading.Event = field(default_factory=threading.Event)
    results: queue.Queue = field(default_factory=queue.Queue)
    stage: str = "loading model"
    fraction: float = 0.0
    error: str | None = None
    cancelled: bool = False
    done: bool = False
    unknown_words: list[str] = field(default_factory=list)  # prompt words the model left out
    # prompt words no training caption uses, read by the offline sentence model (rodin_core.sentence)
    sentence_words: list[str] = field(default_factory=list)
    # why an edit was not made the way its prompt suggests (EditResult.note), for the user
    notes: list[str] = field(default_factory=list)

    def note_unknown(self, words) -> None:
        self.unknown_words = sorted(set(self.unknown_words) | set(words or []))

    def start(self) -> GenerationJob:
        threading.Thread(target=self.run, name="rodin-generate", daemon=True).start()
        return self

    def run(self) -> None:
        try:
            from rodin_core.pipeline import GenerationSettings
            from rodin_core.samplers import GenerationCancelled

            req = self.request
            try:
                pipe = get_pipeline(req.weights, req.device, req.threads)
                settings = GenerationSettings(**req.settings)
                if req.mode != "generate":
                    self._derived(pipe, settings)
                    return
                n = len(req.seeds)
                for i, seed in enumerate(req.seeds):

                    def progress(stage, done, total, i=i):
                        lo, hi = STAGE_SPAN.get(stage, (0.0, 1.0))
                        self.stage = f"avatar {i + 1}/{n}: {stage}"
                        self.fraction = (i + lo + (hi - lo) * done / max(total, 1)) / n

                    avatar = pipe.generate(
                        seed=seed,
                        image=req.image,
                        text=req.text,
                        settings=settings,
                        progress=progress,
                        cancel=self.cancel,
                        variation=req.variation + i if req.variation else 0,
                    )
                    self.note_unknown(avatar.metadata.get("unknown_words"))
                    note = (avatar.metadata.get("portrait_read") or {}).get("note")
                    if note and note not in self.notes:
                        self.notes.append(note)
                    if avatar.metadata.get("text_model") == "sentence":
                        self.sentence_words = sorted(
                            set(self.sentence_words) | set(pipe.unfamiliar_words(req.text))
                        )
                    self.results.put(Result(i, seed, avatar, self._preview(pipe, avatar, seed)))
            except GenerationCancelled:
                self.cancelled = True
        except Exception as exc:  # noqa: BLE001 - every failure must reach the UI as a message
            self.error = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        finally:
            self.done = True

    def _derived(self, pipe, settings) -> None:
        """Edits and interpolations: tri-planes from stored latents, then the usual mesh + texture."""
        import torch

        from rodin_core.pipeline import latent_list, noise_seed

        req = self.request
        zs = [torch.tensor(z, dtype=torch.float32)[None] for z in (req.latents or [])]
        noise = [noise_seed(s, v) for s, v in zip(req.seeds, req.variations or [0] * len(req.seeds))]
        parts: list[str] = []
        if req.mode == "edit":
            self.stage = "editing"
            stored = (req.planes or [None])[0]
            if stored is not None:
                planes = _decode_planes(stored, pipe)
            else:  # an avatar from before objects carried their tri-planes: draw it again from its seed
                planes = pipe.sample_planes(noise[0], zs[0], settings, cancel=self.cancel)
            result = pipe.edit(
                planes,
                zs[0],
                noise[0],
                text=req.text,
                image=req.image,
                strength=req.strength,
                local=req.local,
                settings=settings,
                cancel=self.cancel,
            )
            unknown, parts, method = result.unknown_words, result.parts, result.method
            self.note_unknown(unknown)
            if result.note:
                self.notes.append(result.note)
            strips = [result.planes]
            latents = [latent_list(result.latent)]
        else:
            self.stage = "interpolating"
            ends = [_decode_planes(p, pipe) if p is not None else None for p in (req.planes or [None, None])]
            strips = pipe.interpolate(
                noise[0], noise[1], req.inbetweens + 2, settings, zs[0], zs[1], ends[0], ends[1]
            )[1:-1]
            latents = [None] * len(strips)
            unknown, method = [], None
        for i, planes in enumerate(strips):
            self.stage = f"mesh {i + 1}/{len(strips)}"
            self.fraction = (i + 0.5) / len(strips)
            avatar = pipe.mesh_from_planes(planes, settings, cancel=self.cancel)
            avatar.planes = planes
            avatar.metadata = {
                "seed": req.seeds[0],
                "mode": req.mode,
                "text": req.text,
                "strength": req.strength,
                "edited_parts": parts,
                "edited_by": method,  # "repainted", "drawn" or "redrawn" (EditResult.method); None: not an edit
                "variation": (req.variations or [0])[0],
                "latent": latents[i],  # an edit's: Edit again moves on from it
                "unknown_words": unknown,
                "settings": req.settings,
                "model": {"version": pipe.version},
            }
            self.results.put(Result(i, req.seeds[0], avatar, self._preview(pipe, avatar, req.seeds[0] + i)))

    def _preview(self, pipe, avatar, seed: int) -> str | None:
        if not self.request.preview_dir:
            return None
        from PIL import Image

        from rodin_core.preview import grid

        views = pipe.render(avatar.planes, azimuths=(0.0, 40.0), elevation=10.0, size=128)
        if avatar.metadata.get("portrait") == "drawn":  # first, what the prompt was read as
            views.insert(0, avatar.portrait.permute(1, 2, 0))
        path = os.path.join(self.request.preview_dir, f"preview_seed{seed}.png")
        Image.fromarray(grid(views, columns=len(views))).save(path)
        return path
