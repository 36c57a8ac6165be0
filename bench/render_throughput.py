"""Data set rendering throughput: views per second and the share of time spent outside Cycles.

    python bench/render_throughput.py [--count 8 --views 24 --res 64]

Runs the real generator (bpy module) twice in this process, without and with the depth pass, into temporary
folders. The baseline is the time inside Cycles itself (measured around each render call): the overhead is
everything else (building avatars, writing records, depth ray casting). The target is < 30 % overhead.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def run(count: int, views: int, res: int, depth: bool) -> tuple[float, float]:
    from blender_scenes.generate_dataset import main as generate

    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "--out",
            tmp,
            "--count",
            str(count),
            "--seed",
            "100",
            "--views",
            str(views),
            "--res",
            str(res),
            "--quiet",
        ] + (["--depth"] if depth else [])
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            generate(args)
    m = re.search(r"([\d.]+) views/s, (\d+)% inside Cycles", buf.getvalue())
    if not m:
        raise SystemExit(f"could not read the generator's statistics from: {buf.getvalue()!r}")
    return float(m.group(1)), float(m.group(2))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--views", type=int, default=24)
    p.add_argument("--res", type=int, default=64)
    args = p.parse_args()
    for depth in (False, True):
        rate, inside = run(args.count, args.views, args.res, depth)
        print(
            f"{'with' if depth else 'without'} depth: {rate:.1f} views/s, {inside:.0f}% of the time inside Cycles "
            f"(overhead {100 - inside:.0f}% vs the Cycles-only baseline), {args.count} avatars x {args.views} "
            f"views at {args.res} px",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
