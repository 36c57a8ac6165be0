"""A contact sheet of a data set: frontal views in a grid with captions (no Blender needed).

python -m blender_scenes.contact_sheet DATASET OUT.png [--count 16] [--cell 160]
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw

from rodin_core.io_utils import read_json


def contact_sheet(dataset: Path, count: int = 16, cell: int = 160, view: int = 0) -> Image.Image:
    index = read_json(Path(dataset) / "dataset.json", "data set index")
    records = index["records"][:count]
    if not records:
        raise ValueError(f"{dataset} has no complete records yet")
    cols = math.ceil(math.sqrt(len(records)))
    rows = math.ceil(len(records) / cols)
    text_h = 44
    sheet = Image.new("RGB", (cols * cell, rows * (cell + text_h)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, record in enumerate(records):
        image = Image.open(Path(dataset) / record["id"] / "images" / f"{view:03d}.png").convert("RGBA")
        backdrop = Image.new("RGBA", image.size, (235, 235, 240, 255))
        image = Image.alpha_composite(backdrop, image).convert("RGB").resize((cell, cell), Image.LANCZOS)
        x, y = (k % cols) * cell, (k // cols) * (cell + text_h)
        sheet.paste(image, (x, y))
        lines = textwrap.wrap(record["caption"], width=cell // 6)[:4]
        draw.multiline_text((x + 3, y + cell + 1), "\n".join(lines), fill=(0, 0, 0), spacing=0)
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--cell", type=int, default=160, help="pixel size of each image in the grid")
    parser.add_argument("--view", type=int, default=0, help="view index to show (0 = frontal)")
    args = parser.parse_args(argv)
    try:
        sheet = contact_sheet(args.dataset, args.count, args.cell, args.view)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
