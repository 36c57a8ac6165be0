"""Colour edits: "make the hair blond" repaints the hair the avatar has, in 3D, and changes nothing else.

A latent edit moves the avatar's code towards the colour word and redraws the hair with the base model, which
draws hair colour poorly from its code (docs/results.md: the asked colour read after a quarter of the hair
edits). A colour is a simpler change than a shape: the geometry stays, only how the hair looks changes. So a
colour edit renders the avatar from a few views, paints the hair's pixels in the colour as the decoder renders
that hair colour (`HAIR_LOOKS`, painted more saturated, since the fit falls short of it), and fits the tri-plane
features of the hair's regions to those pictures (rodin_core.lift: a fixed 2D edit lifted into 3D). The fit
changes the planes only inside the regions' masks (rodin_core.regions), through a smooth coarse offset, so every
point outside keeps its features bit for bit and the hair takes no speckle.

Which pixels are hair: with the bundle's part segmenter (rodin_core.parts, trained on the generator's own part
labels) the pixels it reads as hair, in every view, whatever their colour: a hat, the face, the ears and the
shirt are not painted, and the fit also reaches the hair beside the face ("hair_sides"), holding every
unpainted pixel there as it was. Each painted pixel keeps its brightness relative to the front's hair, so the
sides and back stay darker than the crown as real hair does.

Without a segmenter (a bundle that has none), colour rules decide. The hair region also holds headwear (a hat
sits where hair would be), and a hat is told apart by its colour. Below the line where the generator's hats end,
at the sides of the head, whatever is not skin is the avatar's own hair; the top of the head shows the hair or
the hat. When the two colours are far apart the top is a hat, and only the pixels nearer the hair's colour than
the hat's are painted. A hat of the hair's own hue (a black beanie on black hair) is not told apart and is
painted with the hair. The region also runs down the back, where long hair falls over the shirt; the shirt,
whose colour the chest shows, is told apart the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .cameras import Cameras
from .decoder import TriplaneDecoder
from .lift import LiftConfig, cameras, lift
from .parts import PartSegmenter, part_probabilities, render_channels, share_of
from .preview import PREVIEW_SAMPLING, render_field
from .regions import region_masks
from .rendering import SamplingConfig
from .text import INSTRUCTING, words
from .triplane import sample_features

# How each hair colour of the generator looks in the decoder's frontal renders: the mean colour of the crown
# (the top 40 % of the hair region, no headwear) over the fitted tri-planes of the 240 training avatars. Measure
# again for another decoder with `python -m training.hair_looks`.
HAIR_LOOKS: dict[str, tuple[float, float, float]] = {
    "black": (0.564, 0.439, 0.450),
    "brown": (0.615, 0.475, 0.459),
    "blond": (0.992, 0.938, 0.712),
    "red": (0.925, 0.543, 0.403),
    "grey": (0.844, 0.814, 0.788),
    "white": (0.992, 0.984, 0.968),
    "blue": (0.559, 0.531, 0.733),
}
# Words a hair-colour prompt may hold besides the colour and the instruction words.
_HAIR_WORDS = frozenset(("hair", "colour", "color", "coloured", "colored", "dye", "dyed"))

# The cheeks in a frontal view at the generator's framing, as fractions of the image: skin, whatever else shows.
_CHEEKS = (slice(22 / 64, 30 / 64), slice(24 / 64, 40 / 64))

# Heights (scene z, docs/CONVENTIONS.md) that tell hair from headwear. The generator's caps and beanies cover the
# head from z = 0.24-0.28 up (a top hat from 0.46) and leave out the hair they cover; so between the ears' top
# and that line what is not skin is the avatar's own hair, and above TOP_HEIGHT it is the hair's crown or a hat.
OWN_HAIR_HEIGHTS = (0.02, 0.2)
TOP_HEIGHT = 0.5
# Distance in chromaticity between the crown's colour and the own hair's beyond which the crown is headwear;
# chosen on the fitted training avatars (`python -m training.hair_looks` measures how it tells hats apart).
HEADWEAR_APART = 0.12
# Below this height the front view shows the chest: the shirt (the collar ends near z = -0.6).
CHEST_HEIGHT = -0.65


@dataclass(frozen=True)
class RecolourConfig:
    # Views painted and fitted: (azimuth, elevation) in degrees; the first must be the front (its cheeks give the
    # skin colour), the last looks down on the crown.
    views: tuple[tuple[float, float], ...] = (
        (0.0, 0.0),
        (60.0, 0.0),
        (-60.0, 0.0),
        (180.0, 0.0),
        (0.0, 50.0),
    )
    size: int = 40  # pixels per side of each view
    fit: LiftConfig = LiftConfig()  # the fit of the painted views (offset at 1/4 resolution: smooth colour)
    skin_width: float = 0.12  # RGB distance within which a pixel counts as skin and is left alone
    min_pixels: int = 12  # fewer painted pixels than this (a bald head) is nothing to recolour
    paint_sampling: SamplingConfig = SamplingConfig(uniform=32, importance=32)  # the views painted
    # With the part segmenter: the parts it sees that are painted (rodin_core.parts), the regions the fit may
    # change (rodin_core.regions), and whether each painted pixel keeps its brightness relative to the front's
    # hair (shading) rather than taking the crown's look flat.
    painted_parts: tuple[str, ...] = ("hair",)
    segmented_regions: tuple[str, ...] = ("hair", "hair_sides")
    shaded: bool = True
    # The look painted this many times as far from its own grey (same mean brightness) as HAIR_LOOKS measured it:
    # the fit falls short of its target, and with the measured look the repainted hair rendered less saturated
    # than the generator's hair of that colour (blond: blue chromaticity 0.301 against 0.273, white's 0.330;
    # docs/results.md, session 32). 1 paints the measured look.
    saturation: float = 1.6

    def validate(self) -> None:
        if not self.views or self.views[0] != (0.0, 0.0):
            raise ValueError("recolouring needs the front view (0, 0) first; its cheeks give the skin colour")
        if self.size < 16 or self.saturation <= 0:
            raise ValueError(f"impossible recolour settings: {self}")
        self.fit.validate()


def hair_colour_named(text: str) -> str | None:
    """The hair colour a prompt asks for when recolouring the hair is all it asks ("make the hair blond",
    "red hair", "dye her hair blonde"); None for anything else, which stays a latent edit."""
    tokens = [w for w in words(text) if w not in INSTRUCTING]
    colours = [w for w in tokens if w in HAIR_LOOKS]
    rest = [w for w in tokens if w not in HAIR_LOOKS and w not in _HAIR_WORDS]
    if "hair" not in tokens or len(colours) != 1 or rest:
        return None
    return colours[0]


def crown(share: torch.Tensor, top: float = 0.4) -> torch.Tensor:
    """(H, W) bool: the pixels wholly in the hair region (share > 0.9, from `part_share`) in its top `top` of
    rows, above the forehead the region also covers: where a frontal view shows the hair's colour."""
    inside = share > 0.9
    rows = inside.any(1).nonzero().flatten()
    out = torch.zeros_like(inside)
    if len(rows):
        first, height = int(rows.min()), int(rows.max() - rows.min() + 1)
        out[first : first + max(2, int(top * height))] = True
    return out & inside


def part_share(
    decoder: TriplaneDecoder,
    planes: torch.Tensor,
    parts: list[str],
    cameras: Cameras,
    view: int,
    sampling: SamplingConfig = PREVIEW_SAMPLING,
) -> torch.Tensor:
    """(H, W) in [0, 1]: where the named parts show in one view of planes (1, 3, C, R, R), composited along
    each ray through the avatar's own density. A point one plane's edit reaches counts as wholly inside (x3):
    most parts are masked on two of the three planes."""
    return view_looks(decoder, planes, parts, cameras, view, sampling)["share"]


def view_looks(decoder, planes, parts, cameras, view, sampling) -> dict[str, torch.Tensor]:
    """One view of planes (1, 3, C, R, R): "rgb" and "alpha" (over white), `part_share` of the named region
    parts ("share"), and the scene point each pixel shows ("point", (H, W, 3)) with its height ("height", its z);
    both meaningless where nothing shows: read them where the alpha is high. One pass."""
    masks = region_masks(parts, planes.shape[-1]).to(planes)[None, :, None]

    def field(points, dirs):
        sigma, rgb = decoder(sample_features(planes, points), dirs)
        inside = (3 * sample_features(masks, points)[..., 0]).clamp(0, 1)
        return sigma, torch.cat([rgb, inside[..., None], points], -1)

    out = render_field(field, cameras, view, sampling, extra=4)
    extra = out.pop("extra")
    point = extra[..., 1:] / out["alpha"][..., None].clamp_min(1e-4)
    return {**out, "share": extra[..., 0], "point": point, "height": point[..., 2]}


def recolour(
    decoder: TriplaneDecoder,
    planes: torch.Tensor,
    colour: str,
    strength: float = 1.0,
    config: RecolourConfig = RecolourConfig(),
    part: str = "hair",
    progress=None,
    cancel=None,
    segmenter: PartSegmenter | None = None,
) -> torch.Tensor | None:
    """Planes (1, 3, C, R, R) with the visible hair painted `colour` (a key of HAIR_LOOKS); `strength` blends
    from the avatar's own colours (0) to the full new colour (1). Which pixels are hair: those `segmenter` (the
    bundle's part segmenter) reads as hair, or without one the colour rules of the module's note inside the
    region `part`. Headwear keeps its colour. None when too few pixels of hair show to paint (a bald head, with
    or without a hat): that is no colour edit. `progress` and `cancel` reach the fit (rodin_core.lift)."""
    config.validate()
    if segmenter is not None and config.size % 4:
        raise ValueError(
            f"the part segmenter reads views whose size is a multiple of 4; got size {config.size}"
        )
    if colour not in HAIR_LOOKS:
        raise ValueError(f"unknown hair colour {colour!r}; known: {', '.join(HAIR_LOOKS)}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"recolour strength must be between 0 and 1; got {strength}")
    planes = planes.detach().float()
    cams = cameras(config.views, config.size)
    with torch.no_grad():
        if segmenter is not None:
            painted, views = _paint_parts(decoder, planes, cams, colour, strength, config, segmenter)
        else:
            painted, views = _paint(decoder, planes, part, cams, colour, strength, config)
    if int((painted > 0.5).sum()) < config.min_pixels:
        return None
    target, alpha, share = (torch.stack(v) for v in views)
    focus = share[..., 0] > 0.05
    regions = list(config.segmented_regions) if segmenter is not None else [part]
    masks = region_masks(regions, planes.shape[-1])
    # The fit's holding rays are drawn outside the focus, not anywhere: each of them then holds a pixel that must
    # keep its look (session 32: the shirt changed less).
    keep = ~focus
    return lift(
        decoder, planes, masks, cams, target, alpha[..., 0], focus, config.fit, progress, cancel, keep
    )


def painted_look(colour: str, saturation: float = 1.0) -> torch.Tensor:
    """(3,) the colour a repaint paints for a HAIR_LOOKS colour: its look `saturation` times as far from its own
    grey (the mean of its channels), within [0, 1]."""
    look = torch.tensor(HAIR_LOOKS[colour])
    return (look.mean() + saturation * (look - look.mean())).clamp(0, 1)


def segmented_views(
    decoder: TriplaneDecoder,
    planes: torch.Tensor,
    segmenter: PartSegmenter,
    cams: Cameras,
    sampling: SamplingConfig = PREVIEW_SAMPLING,
) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
    """Each view of planes (1, 3, C, R, R) in `cams` (`view_looks`, no region), and what part each pixel shows:
    (V, len(PART_CLASSES), H, W) probabilities from the part segmenter."""
    renders, channels = segmenter_inputs(decoder, planes, cams, sampling)
    return renders, part_probabilities(segmenter, channels)


def segmenter_inputs(
    decoder: TriplaneDecoder, planes: torch.Tensor, cams: Cameras, sampling: SamplingConfig = PREVIEW_SAMPLING
) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
    """Each view of planes (1, 3, C, R, R) in `cams` (`view_looks`, no region), and the part segmenter's input
    for them, (V, 7, H, W) (rodin_core.parts.render_channels): what it reads here and learns from in training."""
    renders = [view_looks(decoder, planes, [], cams, v, sampling) for v in range(len(cams))]
    return renders, torch.stack([render_channels(o["rgb"], o["alpha"], o["point"]) for o in renders])


def _paint_parts(decoder, planes, cams, colour, strength, config, segmenter):
    """Each view rendered and painted where the segmenter sees the parts `config.painted_parts`. Returns the
    painted share of all views side by side, and per view (painted rgb, alpha, painted share)."""
    look = painted_look(colour, config.saturation).to(planes.device)
    renders, probabilities = segmented_views(decoder, planes, segmenter, cams, config.paint_sampling)
    hairish = share_of(probabilities, config.painted_parts)
    # The look is the front crown's; shading keeps each pixel's brightness relative to the front's hair, so
    # the sides and back of the head stay darker than the crown, as real hair of that colour renders.
    front = (hairish[0] * renders[0]["alpha"]).clamp_min(1e-6)
    lit = float((renders[0]["rgb"].mean(-1) * front).sum() / front.sum())
    targets, alphas, shares = [], [], []
    for o, hair in zip(renders, hairish):
        paint = strength * hair * o["alpha"]
        shade = (o["rgb"].mean(-1, keepdim=True) / max(lit, 1e-3)).clamp(0.6, 1.15) if config.shaded else 1.0
        targets.append(o["rgb"] + paint[..., None] * ((look * shade).clamp(0, 1) - o["rgb"]))
        alphas.append(o["alpha"][..., None])
        shares.append(paint[..., None])
    # Every view counts: under a hat the front may show little hair where the sides and back show plenty.
    return torch.cat(shares, 1)[..., 0], (targets, alphas, shares)


def _paint(decoder, planes, part, cams, colour, strength, config):
    """Each view rendered and painted: the part's pixels that are the avatar's hair (not skin, not headwear)
    turned towards the colour's look. Returns the front's painted share and per view (painted rgb, alpha, part
    share)."""
    look = painted_look(colour, config.saturation).to(planes.device)
    renders, not_skin = _views(decoder, planes, part, cams, config)
    own, headwear = hair_and_headwear(renders, not_skin, _sides(config))
    shirt = shirt_colour(renders[0], own)
    paints, targets, alphas, shares = [], [], [], []
    for (rgb, alpha, share, _), other in zip(renders, not_skin):
        paint = strength * share * alpha * other
        if own is None:  # no hair below where hats end (a bald head, perhaps in a hat): nothing to recolour
            paint = torch.zeros_like(paint)
        for thing in (headwear, shirt):
            if thing is not None:
                paint = paint * own_hair_share(rgb, own, thing)
        paints.append(paint)
        targets.append(rgb + paint[..., None] * (look - rgb))
        alphas.append(alpha[..., None])
        shares.append(share[..., None])
    return paints[0], (targets, alphas, shares)


def find_headwear(
    decoder: TriplaneDecoder,
    planes: torch.Tensor,
    config: RecolourConfig = RecolourConfig(),
    part: str = "hair",
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(own hair colour, headwear colour or None) of planes (1, 3, C, R, R), as `recolour` tells them apart."""
    config.validate()
    with torch.no_grad():
        renders, not_skin = _views(decoder, planes.float(), part, cameras(config.views, config.size), config)
    return hair_and_headwear(renders, not_skin, _sides(config))


def _views(decoder, planes, part, cams, config) -> tuple[list, list]:
    """Per view (rgb, alpha, part share, height), and per view how far each pixel is from the skin's colour
    (0 = skin; the skin is the median of the front view's cheeks)."""
    renders = []
    for v in range(len(config.views)):
        out = view_looks(decoder, planes, [part], cams, v, config.paint_sampling)
        renders.append((out["rgb"], out["alpha"], out["share"], out["height"]))
    rows, cols = (slice(int(s.start * config.size), int(s.stop * config.size)) for s in _CHEEKS)
    skin = renders[0][0][rows, cols].reshape(-1, 3).median(0).values
    not_skin = [
        1 - torch.exp(-((rgb - skin) ** 2).sum(-1) / (2 * config.skin_width**2)) for rgb, *_ in renders
    ]
    return renders, not_skin


def _sides(config: RecolourConfig) -> list[int]:
    return [v for v, (az, el) in enumerate(config.views) if el == 0 and az % 180 != 0]


def hair_and_headwear(renders, not_skin, sides: list[int]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The avatar's own hair colour (the median of what is not skin at the sides of the head, below where hats
    end) and its headwear's (the median at the top of the head, when its chromaticity is HEADWEAR_APART from
    the hair's), over views of (rgb, alpha, part share, height). The side views (`sides`) are read first: the
    renders are lit from the front, and the back of a fitted head is the part of it its views show least. None
    for what no view shows."""
    low, top = [], []
    for (rgb, alpha, share, height), other in zip(renders, not_skin):
        hair_like = (alpha > 0.5) & (share > 0.9) & (other > 0.5)
        low.append(rgb[hair_like & (height > OWN_HAIR_HEIGHTS[0]) & (height < OWN_HAIR_HEIGHTS[1])])
        top.append(rgb[hair_like & (height > TOP_HEIGHT)])
    pooled = []
    for found in (low, top):
        seen = torch.cat([found[v] for v in sides]) if sides else found[0][:0]
        seen = seen if len(seen) else torch.cat(found)
        pooled.append(seen.median(0).values if len(seen) else None)
    own, crown_colour = pooled
    return own, crown_colour if _told_apart(crown_colour, own) else None


def shirt_colour(front, own: torch.Tensor | None) -> torch.Tensor | None:
    """The shirt's colour (the median of the chest in the front view's (rgb, alpha, share, height)) when its
    chromaticity is HEADWEAR_APART from the own hair's: the hair region reaches down the back for long hair,
    over the back of the shirt, which is not to be painted. None when it is not told apart."""
    rgb, alpha, _, height = front
    chest = rgb[(alpha > 0.5) & (height < CHEST_HEIGHT)]
    shirt = chest.median(0).values if len(chest) else None
    return shirt if _told_apart(shirt, own) else None


def _told_apart(thing: torch.Tensor | None, own: torch.Tensor | None) -> bool:
    """Whether a colour seen in the hair region is something other than the own hair: both seen, and their
    chromaticities HEADWEAR_APART or more apart."""
    if thing is None or own is None:
        return False
    return float((chroma(thing) - chroma(own)).norm()) >= HEADWEAR_APART


def chroma(rgb: torch.Tensor) -> torch.Tensor:
    """Chromaticity, (r, g, b) / (r + g + b) with a little added so black has one: the colour without the
    shading, which differs between the top of a head and its sides more than hair differs from hair."""
    rgb = rgb + 0.05
    return rgb / rgb.sum(-1, keepdim=True)


def own_hair_share(rgb: torch.Tensor, own: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """(H, W) in [0, 1]: how surely each pixel is the hair rather than the other thing (the headwear, the
    shirt), by which chromaticity it is nearer (a soft step 0.02 wide, so shading at a hat's brim blends)."""
    c = chroma(rgb)
    return torch.sigmoid(((c - chroma(other)).norm(dim=-1) - (c - chroma(own)).norm(dim=-1)) / 0.02)
