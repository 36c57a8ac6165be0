"""How the image path reads portraits that are not the generator's own renders.

Each avatar's frontal render is turned into the portraits a user might bring: on Blender's grey world or a
coloured backdrop instead of a transparent film, saved as JPEG, zoomed out and off centre. Each is read by
`load_portrait` and by the centre crop alone (the loader before session 40: alpha composited, nothing else), and
compared with the render itself as the image path reads it:

- pixels: PSNR at the encoder's size against the render's;
- the latent code: how often the portrait's code finds its own avatar's among all the renders' codes (nearest
  code, top-1), and the mean cosine similarity of the two codes;
- with --samples N, the avatar itself for the first N: sampled as `generate` does from a portrait (its code, and
  image guidance towards it), its frontal render's PSNR against the render.

    python -m training.portrait_inputs --data runs/front40b --out logs/portrait_inputs.json [--samples 6]
        [--grid docs/images/portrait_inputs.png]

The data set wants frontal views larger than the encoder's input (`generate_dataset --views 1 --res 128`), so the
zoomed-out portraits still hold the detail the encoder reads.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rodin_core.bundle import BundleError
from rodin_core.data import DatasetError, list_records, load_record
from rodin_core.images import prepare_portrait
from rodin_core.metrics import psnr
from rodin_core.pipeline import AvatarPipeline, GenerationSettings
from rodin_core.preview import grid

IDENTICAL = 100.0  # the PSNR reported for identical images
GREY_WORLD = (63, 63, 63)  # Blender's default world colour (0.05 linear) as an sRGB render shows it
BACKDROP = (90, 140, 200)


def on_backdrop(rgba: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    backdrop = Image.new("RGBA", rgba.size, colour + (255,))
    return Image.alpha_composite(backdrop, rgba).convert("RGB")


def zoomed_out(rgba: Image.Image) -> Image.Image:
    """The render at 0.6 of its size on a transparent canvas 1.5 times as wide, left of centre and high."""
    w, h = rgba.size
    small = rgba.resize((round(w * 0.6), round(h * 0.6)), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (round(w * 1.5), h), (0, 0, 0, 0))
    canvas.paste(small, (round(w * 0.25), round(h * 0.1)))
    return canvas


def dithered(rgb: Image.Image) -> Image.Image:
    """Blender's default dither: about one level of noise on every pixel, the flat background too."""
    noise = np.random.default_rng(0).integers(-1, 2, size=(rgb.height, rgb.width, 3))
    return Image.fromarray((np.asarray(rgb).astype(np.int16) + noise).clip(0, 255).astype(np.uint8))


def as_jpeg(rgb: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=90)
    buffer.seek(0)
    out = Image.open(buffer)
    out.load()
    return out


VARIANTS = {
    "render (RGBA)": lambda im: im,
    "grey world": lambda im: on_backdrop(im, GREY_WORLD),
    "grey world, dithered": lambda im: dithered(on_backdrop(im, GREY_WORLD)),
    "grey world, JPEG": lambda im: as_jpeg(on_backdrop(im, GREY_WORLD)),
    "blue backdrop, JPEG": lambda im: as_jpeg(on_backdrop(im, BACKDROP)),
    "zoomed out (RGBA)": zoomed_out,
    "zoomed out, grey world, JPEG": lambda im: as_jpeg(on_backdrop(zoomed_out(im), GREY_WORLD)),
}
READERS = {"centre crop (before)": dict(find_background=False, reframe=False), "load_portrait": {}}


def frontal_rgba(record: Path) -> Image.Image:
    data = load_record(record, use_depth=False)
    return Image.fromarray(data.rgba[data.frontal_index].numpy(), "RGBA")


def sample_likeness(pipe: AvatarPipeline, pixels: torch.Tensor, reference: torch.Tensor, seed: int) -> float:
    """PSNR of the frontal render of the avatar sampled from a portrait as read against the render as read."""
    z = pipe.encode_pixels(pixels)
    planes = pipe.sample_planes(seed, z, GenerationSettings(), image=pixels)
    front = pipe.render(planes, (0.0,), size=reference.shape[-1], refine=False)[0]
    return psnr(front, reference.permute(1, 2, 0))


def measure(
    pipe: AvatarPipeline, renders: list[Image.Image], samples: int = 0
) -> dict[str, dict[str, dict[str, float]]]:
    size = pipe.encoder.config.image_size
    reference = torch.stack([prepare_portrait(im, size)[0] for im in renders])
    codes = torch.cat([pipe.encode_pixels(x) for x in reference])
    report: dict[str, dict[str, dict[str, float]]] = {}
    for variant, make in VARIANTS.items():
        images = [make(im) for im in renders]
        report[variant] = {}
        read: list[tuple[torch.Tensor, dict]] = []
        for reader, options in READERS.items():
            pixels = torch.stack([prepare_portrait(im, size, **options)[0] for im in images])
            own = torch.cat([pipe.encode_pixels(x) for x in pixels])
            nearest = torch.cdist(own, codes).argmin(1)
            row = report[variant][reader] = {
                "psnr": float(np.mean([min(psnr(p, r), IDENTICAL) for p, r in zip(pixels, reference)])),
                "own_code_top1": float((nearest == torch.arange(len(renders))).float().mean()),
                "cosine": float(torch.nn.functional.cosine_similarity(own, codes).mean()),
            }
            same = [other for p, other in read if torch.equal(p, pixels)]
            if samples and same:  # both readers read it alike (a transparent render): the same avatars
                row["sample_psnr"] = same[0]["sample_psnr"]
            elif samples:
                row["sample_psnr"] = float(
                    np.mean(
                        [sample_likeness(pipe, pixels[i], reference[i], 30_000 + i) for i in range(samples)]
                    )
                )
            read.append((pixels, row))
            print(f"{variant} / {reader}: {row}", flush=True)
    return report


def reading_grid(renders: list[Image.Image], size: int) -> np.ndarray:
    """One row per avatar: for each portrait but the render, as the centre crop reads it, then load_portrait."""
    tiles = []
    for render in renders:
        for make in list(VARIANTS.values())[1:]:
            image = make(render)
            tiles += [
                prepare_portrait(image, size, **options)[0].permute(1, 2, 0) for options in READERS.values()
            ]
    return grid(tiles, columns=len(tiles) // len(renders))


def table(report: dict, count: int, samples: int) -> str:
    readers = list(READERS)
    what = "PSNR (dB) against the render as read / own code top-1 / code cosine"
    if samples:
        what += f" / the sampled avatar's front against the render, PSNR (dB, first {samples} avatars)"
    lines = [
        f"{count} avatars; {what}",
        "| portrait | " + " | ".join(readers) + " |",
        "|---|" + "---|" * len(readers),
    ]
    for variant, rows in report.items():
        cells = []
        for r in (rows[name] for name in readers):
            cell = f"{r['psnr']:.1f} / {100 * r['own_code_top1']:.0f} % / {r['cosine']:.3f}"
            cells.append(cell + (f" / {r['sample_psnr']:.2f}" if "sample_psnr" in r else ""))
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a generator data set (frontal views of 128 px or more)")
    p.add_argument("--weights", default=None, help="weights bundle (.json); default: the embedded one")
    p.add_argument("--limit", type=int, default=None, help="read only the data set's first N records")
    p.add_argument(
        "--samples",
        type=int,
        default=0,
        help="also sample avatars from the first N portraits (about 15 s each)",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--out", default=None, help="also write the report here (JSON)")
    p.add_argument(
        "--grid",
        default=None,
        help="also save the first 6 avatars' portraits as each reader reads them (PNG)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.limit is not None and args.limit < 2:
        raise SystemExit(f"--limit must be at least 2 (the codes are told apart); got {args.limit}")
    if args.samples < 0:
        raise SystemExit(f"--samples must be 0 or more; got {args.samples}")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        pipe = AvatarPipeline.from_bundle(args.weights)
        records = list_records(args.data)[: args.limit]
        renders = [frontal_rgba(r) for r in records]
    except (BundleError, DatasetError) as exc:
        raise SystemExit(str(exc)) from exc
    if len(renders) < 2:
        raise SystemExit(f"{args.data} holds {len(renders)} records; at least 2 are needed")
    samples = min(args.samples, len(renders))
    with torch.no_grad():
        report = measure(pipe, renders, samples)
    print(table(report, len(renders), samples))
    if args.grid:
        Path(args.grid).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(reading_grid(renders[:6], pipe.encoder.config.image_size)).save(args.grid)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            json.dumps(
                {"data": str(args.data), "avatars": len(renders), "samples": samples, **report}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
