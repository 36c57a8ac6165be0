"""Glasses edits: "add glasses" draws the generator's frame onto the avatar, in 3D.

A latent edit moves the avatar's code towards glasses and redraws the eyes with the base model, which draws
them faintly (docs/results.md: glasses read after under half of those edits). But what glasses look like is
known exactly: the generator (blender_scenes.avatar_factory) puts the same dark frame on every head, two rims
around the eyes a little in front of the face, a bridge and two temples back to the ears. So this edit builds
that frame as tubes in scene space, draws them into a few rendered views of the avatar (each tube pixel hidden
where the avatar's own surface is nearer the camera), and fits the eyes region's tri-plane features to those
pictures (rodin_core.lift). Every feature outside the eyes region is kept.

The frame is placed for an average head (the generator's head width varies by about ±15 %, which moves the rims'
centres by up to 0.025 scene units, a third of a rim's radius); only its depth is read from the avatar, from
where its rendered surface lies in front of the eyes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import rig
from .cameras import Cameras
from .decoder import TriplaneDecoder
from .lift import LiftConfig, cameras, lift
from .preview import render_field
from .regions import region_masks
from .rendering import SamplingConfig, render_rays
from .text import INSTRUCTING, REMOVING, words
from .triplane import PLANE_AXES, sample_features

# The generator's frame (blender_scenes.avatar_factory: glasses()), in scene units for an average head.
EYE_HEIGHT = 0.2  # the head's centre (z = 0.15) + 0.05
EYE_SIDE = 0.15  # eyes at x = +-0.15 of the head width
HEAD_HALF_WIDTH = 0.40
HEAD_HALF_DEPTH = 0.44
STAND_OFF = 0.05  # the rims sit this far in front of the face's surface at the eyes
RIMS = {"round": (0.085, 24), "square": (0.105, 4)}  # torus major radius, segments (4: a square)
RIM_TUBE = 0.014
BAR_TUBE = 0.012  # bridge and temples
# The colour the frame is drawn in: a mid grey. The generator's dark metal frame blends with the skin in 64 px
# renders (a least-squares fit over real renders gives 0.55, 0.50, 0.47 for a sharp rim). On 12 avatars the
# report does not use (seeds from 51 001, scratch logs/glassestune28.py, classifier24f), dark grey (0.13) changed
# other families' readings most (kept 82.7 %, success 8 %), this one least (87.8 %, 33 %; 0.55: 85.9 %, 33 %).
FRAME_LOOK = (0.35, 0.32, 0.31)
# Words a glasses prompt may hold besides the kind and the instruction words.
_GLASSES_WORDS = frozenset(("glasses", "a", "pair", "of", "some", "on", "wear", "wearing"))
# Words that, just before "glasses", say a description has none.
_NEGATING = REMOVING | {"no", "not", "never", "nor"}


@dataclass(frozen=True)
class GlassesConfig:
    # Views drawn and fitted: (azimuth, elevation) in degrees. The back and the far sides keep the eyes band's
    # features where the frame is not (the band goes round the whole head).
    views: tuple[tuple[float, float], ...] = (
        (0.0, 0.0),
        (25.0, 0.0),
        (-25.0, 0.0),
        (0.0, 20.0),
        (0.0, -15.0),
        (70.0, 0.0),
        (-70.0, 0.0),
        (180.0, 0.0),
    )
    size: int = 64  # pixels per side of each view: the rims are under a pixel wide at 64
    supersample: int = 4  # the frame's coverage is drawn at this many sub-pixels per side
    # Rims are thin: the offset at full resolution, and a lower rate than a repaint's, which speckles less.
    fit: LiftConfig = LiftConfig(steps=200, learning_rate=0.08, coarse=1)
    paint_sampling: SamplingConfig = SamplingConfig(uniform=32, importance=32)
    margin: float = 0.04  # how far beyond a tube the planes may change (scene units; a texel at 64 is 0.031)

    def validate(self) -> None:
        if not self.views or self.size < 16 or self.supersample < 1 or self.margin < 0:
            raise ValueError(f"impossible glasses settings: {self}")
        self.fit.validate()


def glasses_named(text: str) -> str | None:
    """The kind of glasses ("round" or "square") a prompt asks to add when adding glasses is all it asks ("add
    glasses", "give her square glasses", "put on round glasses"; plain glasses are round); None for anything
    else, including taking glasses off, which stays a latent edit."""
    tokens = words(text)
    if "glasses" not in tokens or any(w in REMOVING for w in tokens):
        return None
    rest = [w for w in tokens if w not in INSTRUCTING and w not in _GLASSES_WORDS]
    kinds = [w for w in rest if w in RIMS]
    if len(kinds) > 1 or len(rest) != len(kinds):
        return None
    return kinds[0] if kinds else "round"


def glasses_stated(text: str) -> str | None:
    """The kind of glasses ("round" or "square") a description of an avatar gives it ("an old man with round
    glasses and a cap"; plain glasses are round, as for `glasses_named`); None when it gives none, or says the
    avatar has none ("without glasses", "no glasses", "not wearing glasses")."""
    tokens = words(text)
    if "glasses" not in tokens:
        return None
    at = tokens.index("glasses")
    if any(w in _NEGATING for w in tokens[max(0, at - 3) : at]):
        return None
    return tokens[at - 1] if at and tokens[at - 1] in RIMS else "round"


def frame_tubes(kind: str, front_y: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The frame as tube segments: ends (S, 2, 3) in scene space and radii (S,), the rims' plane at y = front_y
    (the face looks towards -y)."""
    if kind not in RIMS:
        raise ValueError(f"unknown kind of glasses {kind!r}; known: {', '.join(RIMS)}")
    major, segments = RIMS[kind]
    turn = math.pi / segments if segments == 4 else 0.0  # the generator's 4-segment torus is a square
    ends, radii = [], []
    for side in (-1, 1):
        cx = side * EYE_SIDE
        corners = [
            (
                cx + major * math.cos(2 * math.pi * i / segments + turn),
                front_y,
                EYE_HEIGHT + major * math.sin(2 * math.pi * i / segments + turn),
            )
            for i in range(segments + 1)
        ]
        ends += [(a, b) for a, b in zip(corners, corners[1:])]
        radii += [RIM_TUBE] * segments
        # The temple: beside the head at the rims' height, from the rims' plane back to the ear.
        x, y, half = side * (HEAD_HALF_WIDTH + 0.02), front_y / 2 + 0.02, (HEAD_HALF_DEPTH + 0.05) / 2
        ends.append(((x, y - half, EYE_HEIGHT + 0.02), (x, y + half, EYE_HEIGHT + 0.02)))
        radii.append(BAR_TUBE)
    ends.append(((-0.05, front_y - 0.01, EYE_HEIGHT + 0.02), (0.05, front_y - 0.01, EYE_HEIGHT + 0.02)))
    radii.append(BAR_TUBE)
    return torch.tensor(ends, dtype=torch.float32), torch.tensor(radii, dtype=torch.float32)


def frame_masks(ends: torch.Tensor, radii: torch.Tensor, resolution: int, margin: float) -> torch.Tensor:
    """(3, R, R) in [0, 1]: the texels of each plane within `margin` of the frame's tubes as that plane sees
    them (a soft edge one texel wide), inside the eyes region: the features an added frame may change. Texels
    elsewhere in the eyes band stay as they were, so the fit cannot speckle them."""
    steps = torch.linspace(0, 1, 16)
    points = (ends[:, :1] + steps[None, :, None] * (ends[:, 1:] - ends[:, :1])).reshape(-1, 3)
    reach = radii.repeat_interleave(len(steps)) + margin
    centres = (torch.arange(resolution, dtype=torch.float32) + 0.5) / resolution * 2 - 1
    v, u = torch.meshgrid(centres, centres, indexing="ij")  # rows follow v, columns follow u
    texel = 2.0 / resolution
    masks = []
    for a, b in PLANE_AXES:
        gap = ((u[..., None] - points[:, a]) ** 2 + (v[..., None] - points[:, b]) ** 2).sqrt() - reach
        masks.append((0.5 - gap.min(-1).values / texel).clamp(0, 1))
    return torch.stack(masks) * region_masks(["eyes"], resolution)


def tube_hits(
    origins: torch.Tensor, dirs: torch.Tensor, ends: torch.Tensor, radii: torch.Tensor
) -> torch.Tensor:
    """(N,) distance along each ray (N, 3 origins, unit dirs) to the nearest tube it passes through; inf where it
    misses them all. The distance is that of the ray's closest approach to the tube's axis."""
    a, e = ends[:, 0], ends[:, 1] - ends[:, 0]  # (S, 3)
    w0 = origins[:, None] - a[None]  # (N, S, 3)
    along = (dirs[:, None] * e[None]).sum(-1)  # d . e
    ee = (e * e).sum(-1)[None]
    dw, ew = (dirs[:, None] * w0).sum(-1), (e[None] * w0).sum(-1)
    denom = (ee - along**2).clamp_min(1e-9)
    s = ((ew - along * dw) / denom).clamp(0, 1)
    t = ((a[None] + s[..., None] * e[None] - origins[:, None]) * dirs[:, None]).sum(-1).clamp_min(0)
    s = (((origins[:, None] + t[..., None] * dirs[:, None]) - a[None]) * e[None]).sum(-1).div(ee).clamp(0, 1)
    gap = (origins[:, None] + t[..., None] * dirs[:, None] - a[None] - s[..., None] * e[None]).norm(dim=-1)
    t = torch.where(gap < radii[None], t, torch.full_like(t, math.inf))
    return t.min(1).values


def frame_coverage(
    cams: Cameras, view: int, ends, radii, surface_t: torch.Tensor, supersample: int
) -> torch.Tensor:
    """(H, W) in [0, 1]: the share of each pixel the frame covers where the avatar's surface (distance along
    each ray, `surface_t` (H, W), inf where nothing is hit) does not hide it."""
    h, w = cams.height, cams.width
    fine = Cameras(
        cams.c2w[view : view + 1],
        cams.fl_x * supersample,
        cams.fl_y * supersample,
        cams.cx * supersample,
        cams.cy * supersample,
        w * supersample,
        h * supersample,
    )
    pixel = torch.arange(fine.width * fine.height)
    o, d, _ = fine.rays(torch.zeros_like(pixel), pixel)
    hit = tube_hits(o, d, ends, radii).reshape(1, 1, fine.height, fine.width)
    surface = F.interpolate(surface_t[None, None], scale_factor=supersample, mode="nearest")
    shown = (hit < surface).float()
    return F.avg_pool2d(shown, supersample)[0, 0]


def _surface(decoder, planes, cams, view, sampling) -> tuple[dict, torch.Tensor]:
    """One view's render ({"rgb", "alpha"} over white) and the distance along each ray to its surface (inf where
    the alpha is under a half), in one pass."""
    origin = cams.c2w[view, :3, 3].to(planes)

    def field(points, dirs):
        sigma, rgb = decoder(sample_features(planes, points), dirs)
        return sigma, torch.cat([rgb, (points - origin).norm(dim=-1, keepdim=True)], -1)

    out = render_field(field, cams, view, sampling, extra=1)
    depth = out["extra"][..., 0] / out["alpha"].clamp_min(1e-4)
    return out, torch.where(out["alpha"] > 0.5, depth, torch.full_like(depth, math.inf))


@torch.no_grad()
def face_depth(decoder: TriplaneDecoder, planes: torch.Tensor, sampling: SamplingConfig) -> float:
    """The y of the avatar's face in front of the eyes (the mean over both eyes of where a ray from the front
    meets the surface)."""
    eye = torch.tensor(rig.spherical_eye(0.0, 0.0), dtype=torch.float32)
    aims = torch.tensor([[side * EYE_SIDE, 0.0, EYE_HEIGHT] for side in (-1, 1)])
    dirs = F.normalize(aims - eye, dim=-1)
    origins = eye.expand_as(dirs)

    def point_y(points, d):
        sigma = decoder(sample_features(planes, points), d)[0]
        return sigma, points[..., 1:2]

    out = render_rays(point_y, origins[None], dirs[None], sampling, torch.zeros(1), jitter=False)
    return float((out["rgb"][0, :, 0] / out["alpha"][0].clamp_min(1e-4)).mean())


def add_glasses(
    decoder: TriplaneDecoder,
    planes: torch.Tensor,
    kind: str = "round",
    strength: float = 1.0,
    config: GlassesConfig = GlassesConfig(),
    progress=None,
    cancel=None,
) -> torch.Tensor:
    """Planes (1, 3, C, R, R) with the generator's `kind` of glasses drawn on ("round" or "square"); `strength`
    blends the frame in from nothing (0) to fully drawn (1). `progress` and `cancel` reach the fit
    (rodin_core.lift)."""
    config.validate()
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"glasses strength must be between 0 and 1; got {strength}")
    planes = planes.detach().float()
    cams = cameras(config.views, config.size)
    with torch.no_grad():
        ends, radii = frame_tubes(kind, face_depth(decoder, planes, config.paint_sampling) - STAND_OFF)
        look = torch.tensor(FRAME_LOOK)
        targets, alphas, covers = [], [], []
        for v in range(len(config.views)):
            out, surface_t = _surface(decoder, planes, cams, v, config.paint_sampling)
            cover = strength * frame_coverage(cams, v, ends, radii, surface_t, config.supersample)
            targets.append(out["rgb"] + cover[..., None] * (look - out["rgb"]))
            alphas.append(out["alpha"] + cover * (1 - out["alpha"]))
            covers.append(cover)
    masks = frame_masks(ends, radii, planes.shape[-1], config.margin)
    focus = torch.stack(covers) > 0.05
    target, alpha = torch.stack(targets), torch.stack(alphas)
    return lift(decoder, planes, masks, cams, target, alpha, focus, config.fit, progress, cancel)
