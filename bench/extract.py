"""Mesh extraction cost: seconds and peak memory per grid size, and the whole pipeline from seed to GLB.

    python bench/extract.py [--weights BUNDLE.json] [--grids 128 256 384] [--face-budgets 60000 20000]

Each grid size runs in its own process so peak memory (max RSS) is that configuration's own. The baseline
in the same run is the 128 grid; ratios are against it. The stage breakdown: diffusion (base + upsampler),
density grid, marching cubes + clean-up, UV atlas, bake, GLB write. Then the first grid again under each face
budget (decimation target): the UV unwrap's cost grows faster than the face count; ratios are against the
largest budget.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def single(grid: int, weights: str | None, threads: int, max_faces: int | None = None) -> dict:
    import tempfile

    import torch

    from rodin_core.export import write_avatar
    from rodin_core.mesh import (
        MeshConfig,
        decimate,
        density_grid,
        keep_main_components,
        marching_cubes,
        to_metres,
        vertex_normals,
    )
    from rodin_core.pipeline import AvatarPipeline, GenerationSettings
    from rodin_core.texture import bake_texture, rasterize_uv, uv_atlas

    torch.set_num_threads(threads)
    pipe = AvatarPipeline.from_bundle(weights)
    budget = {} if max_faces is None else {"max_faces": max_faces}
    settings = GenerationSettings(mesh_resolution=grid, **budget)
    times = {}
    t = time.perf_counter()
    planes = pipe.sample_planes(7, pipe.latent(7), settings)
    times["diffusion"] = time.perf_counter() - t
    field = pipe.field(planes)
    t = time.perf_counter()
    volume = density_grid(lambda p: field.density(p[None])[0], grid)
    times["grid"] = time.perf_counter() - t
    t = time.perf_counter()
    verts, faces = marching_cubes(volume, pipe.threshold)
    verts, faces = keep_main_components(verts, faces, MeshConfig().keep_ratio)
    verts, faces = decimate(verts, faces, settings.max_faces)
    times["marching_cubes"] = time.perf_counter() - t
    normals = vertex_normals(verts, faces)
    t = time.perf_counter()
    vmap, af, uvs = uv_atlas(verts, faces, settings.texture_size)
    rasterize_uv(uvs, af, settings.texture_size)
    times["uv"] = time.perf_counter() - t
    t = time.perf_counter()
    corner_uvs, texture = bake_texture(
        verts, faces, normals, lambda p, d: field.color(p[None], d[None])[0], settings.texture_size
    )
    times["bake_incl_atlas"] = time.perf_counter() - t
    from rodin_core.avatar import Avatar

    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        write_avatar(Avatar(to_metres(verts), faces, corner_uvs, texture), tmp, "a", "glb")
    times["glb"] = time.perf_counter() - t
    times["total"] = sum(v for k, v in times.items() if k != "uv")  # the atlas is inside bake_incl_atlas
    return {
        "grid": grid,
        "faces": int(len(faces)),
        "seconds": {k: round(v, 2) for k, v in times.items()},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights")
    p.add_argument("--grids", type=int, nargs="+", default=[128, 256, 384])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--face-budgets", type=int, nargs="*", default=[60000, 20000])
    p.add_argument("--single", type=int, help=argparse.SUPPRESS)
    p.add_argument("--max-faces", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.single:
        print("RESULT " + json.dumps(single(args.single, args.weights, args.threads, args.max_faces)))
        return 0

    def run(grid: int, max_faces: int | None = None) -> dict:
        cmd = [sys.executable, __file__, "--single", str(grid), "--threads", str(args.threads)]
        if args.weights:
            cmd += ["--weights", args.weights]
        if max_faces is not None:
            cmd += ["--max-faces", str(max_faces)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])

    results = []
    for grid in args.grids:
        results.append(run(grid))
        r = results[-1]
        base = results[0]
        print(
            f"grid {grid:3d}: {r['seconds']['total']:6.1f} s total ({r['seconds']['total'] / base['seconds']['total']:.2f}x "
            f"the {base['grid']} grid), peak {r['peak_rss_mb']:.0f} MB, {r['faces']} faces; stages {r['seconds']}",
            flush=True,
        )
    budgets = sorted(args.face_budgets, reverse=True)
    first = None
    for budget in budgets:
        r = run(args.grids[0], budget)
        first = first or r
        uv, ref = r["seconds"]["uv"], first["seconds"]["uv"]
        print(
            f"face budget {budget:6d} at grid {args.grids[0]}: {r['faces']} faces, UV unwrap {uv:.1f} s "
            f"({uv / ref:.2f}x budget {budgets[0]}), total {r['seconds']['total']:.1f} s "
            f"({r['seconds']['total'] / first['seconds']['total']:.2f}x)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
