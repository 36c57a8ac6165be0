"""Render a synthetic avatar data set with Blender (Cycles).

Either inside Blender:
    blender -b -P blender_scenes/generate_dataset.py -- --out data/tiny --count 256 --seed 0 --views 24 --res 64 --depth
or with the `bpy` module (pip install bpy==5.0.1):
    python -m blender_scenes.generate_dataset --out data/tiny --count 256 --seed 0 --views 24 --res 64 --depth

Split the work over machines (or a Slurm array) with --shard I/N: shard I renders the indices i with
i % N == I. Re-running the same command resumes: complete records are skipped, half-written ones
(temp folders of a killed run) are discarded and redone.

--looks 2 shows each avatar's age on its face (blender_scenes.avatar_factory); the default, 1, renders every data
set as the embedded model's training data was rendered.

--variants FAMILY... also renders every avatar again, from the same cameras, with one attribute changed and
nothing else (e.g. the hair dyed, glasses put on or taken off): pairs that teach the attribute classifier to read
each family from what shows it alone (training.attribute_classifier --pair-data).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script by `blender -P`: make the repository importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "blender_scenes"

try:
    import bpy  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    sys.stderr.write(
        "error: Blender's Python module `bpy` is not available.\n"
        "  Install it with `pip install bpy==5.0.1` (Python 3.11), or run this file inside Blender:\n"
        "  blender -b -P blender_scenes/generate_dataset.py -- --out DIR --count N\n"
    )
    raise SystemExit(2) from None

import numpy as np
from tqdm import tqdm

from rodin_core.io_utils import write_json_atomic

from .attributes import VARIABLE_FAMILIES, caption, draw_attributes, variant_value
from .avatar_factory import avatar_triangles, build_avatar, clear_avatar
from .camera_rig import RADIUS, camera_poses, intrinsics
from .dataset_writer import (
    DatasetSettings,
    DatasetWriter,
    parse_shard,
    record_seed,
    shard_indices,
    write_ply,
)
from .renderer import ViewRenderer, depth_map, mesh_bvh, setup_scene


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="data set folder (created, or resumed if it is one)"
    )
    parser.add_argument("--count", type=int, required=True, help="number of avatars in the whole data set")
    parser.add_argument(
        "--seed", type=int, default=0, help="data set seed; record i uses avatar seed seed*1000003+i"
    )
    parser.add_argument(
        "--views", type=int, default=24, help="views per avatar, frontal view included (default 24)"
    )
    parser.add_argument("--res", type=int, default=64, help="image width and height in pixels (default 64)")
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel (default 16)")
    parser.add_argument(
        "--depth", action="store_true", help="also write depth/NNN.npy (planar depth, 0 = background)"
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=[],
        metavar="FAMILY",
        help="also render each avatar with only this family's value changed, one variant per family "
        f"(variants/FAMILY/images/; the value in attributes.json's variants): {', '.join(VARIABLE_FAMILIES)} "
        "(age with --looks 2)",
    )
    parser.add_argument(
        "--looks",
        type=int,
        default=1,
        help="what the avatar factory draws: 1 (default) as the embedded model's training data, 2 age shown on the "
        "face (young: larger eyes, rosy cheeks; old: lines, greying eyebrows)",
    )
    parser.add_argument("--shard", default=None, help="I/N: render only indices i with i %% N == I")
    parser.add_argument(
        "--device", choices=("auto", "cpu", "gpu"), default="auto", help="Cycles device (default auto)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def render_record(
    index: int, args: argparse.Namespace, writer: DatasetWriter, renderer: ViewRenderer
) -> Path:
    seed = record_seed(args.seed, index)
    attrs = draw_attributes(seed)
    temp = writer.begin(index)
    clear_avatar()
    objects = build_avatar(attrs, args.looks)
    vertices, faces = avatar_triangles(objects)
    intr = intrinsics(args.res)
    poses = camera_poses(seed, args.views)
    bvh = mesh_bvh(vertices, faces) if args.depth else None
    frames = []
    for k, c2w in enumerate(poses):
        name = f"{k:03d}"
        renderer.render(c2w, temp / "images" / f"{name}.png")
        frame = {"file_path": f"images/{name}.png", "transform_matrix": c2w.tolist(), "is_frontal": k == 0}
        if args.depth:
            np.save(temp / "depth" / f"{name}.npy", depth_map(vertices, faces, c2w, intr, bvh))
            frame["depth_file_path"] = f"depth/{name}.npy"
        frames.append(frame)
    variants = {family: variant_value(attrs, family, seed) for family in args.variants}
    for family, value in variants.items():
        clear_avatar()
        build_avatar({**attrs, family: value}, args.looks)
        for k, c2w in enumerate(poses):
            renderer.render(c2w, temp / "variants" / family / "images" / f"{k:03d}.png")
    write_ply(temp / "mesh.ply", vertices, faces)
    transforms = {
        "camera_model": "PINHOLE",
        **intr.as_dict(),
        "camera_convention": "opengl",
        "aabb": [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]],
        "near": RADIUS - 1.8,
        "far": RADIUS + 1.8,
        "frontal_index": 0,
        "frames": frames,
    }
    write_json_atomic(temp / "transforms.json", transforms)
    write_json_atomic(
        temp / "attributes.json",
        {
            "seed": seed,
            "index": index,
            "attributes": attrs,
            "caption": caption(attrs),
            **({"variants": variants} if variants else {}),
            **({"looks": args.looks} if args.looks != 1 else {}),
        },
    )
    return writer.commit(index, temp)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    args = parse_args(argv)
    settings = DatasetSettings(
        seed=args.seed,
        views=args.views,
        resolution=args.res,
        depth=args.depth,
        variants=tuple(args.variants),
        looks=args.looks,
    )
    try:
        settings.validate(args.count)
        shard = parse_shard(args.shard)
        writer = DatasetWriter(args.out, settings)
        writer.prepare()
    except (ValueError, FileExistsError, NotADirectoryError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    indices = shard_indices(args.count, shard)
    writer.clean_stale(indices)
    todo = writer.pending(indices)
    if todo:
        scene = setup_scene(args.res, samples=args.samples, device=args.device)
        renderer = ViewRenderer(scene)
        started = time.perf_counter()
        for index in tqdm(
            todo, desc=f"rendering avatars (shard {shard[0]}/{shard[1]})", unit="avatar", disable=args.quiet
        ):
            render_record(index, args, writer, renderer)
        wall = time.perf_counter() - started
        views = len(todo) * args.views * (1 + len(args.variants))
        print(
            f"rendered {len(todo)} avatars ({views} views) in {wall:.1f} s: {views / wall:.1f} views/s, "
            f"{100 * renderer.render_seconds / wall:.0f}% inside Cycles"
        )
    index = writer.write_index()
    print(f"{args.out}: {index['count']} complete records ({len(indices) - len(todo)} were already there)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
