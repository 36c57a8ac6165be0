"""Seconds from the add-on's Generate operator call to the avatar object in the scene, at default settings.

    python bench/addon_latency.py [--weights BUNDLE.json] [--threads 2]

Runs the real add-on in the bpy module (blocking operator, the path scripts and `blender -b` take; the UI runs
the same job in a worker thread). Cold = the first call of a Blender session (loads the model); warm = the
next one. The baseline measured in the same run is AvatarPipeline.generate alone (no Blender), so the ratio
is what the Blender layer (preview render, import, texture packing) adds. Stage breakdown from the avatar's
metadata: diffusion (base + upsampler), mesh (density grid + marching cubes), texture (UV atlas + bake).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="bundle .json (default: the embedded model)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="rodin-bench-"))

    import bpy
    import torch

    import rodin_blender
    from rodin_blender import jobs

    torch.set_num_threads(args.threads)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    rodin_blender.register()
    if args.weights:
        jobs._PIPELINES[("", "CPU")] = jobs.get_pipeline(args.weights, "CPU")

    def operator_call(seed: int) -> tuple[float, dict]:
        before = {o.name for o in bpy.data.objects}
        t = time.perf_counter()
        result = bpy.ops.rodin.generate(seed=seed, blocking=True)
        elapsed = time.perf_counter() - t
        if result != {"FINISHED"}:
            raise SystemExit("error: the operator did not finish (see the message above)")
        (obj,) = [o for o in bpy.data.objects if o.name not in before and "rodin_seed" in o]
        return elapsed, json.loads(obj["rodin_metadata"])["timings_s"]

    cold, cold_stages = operator_call(args.seed)
    warm, warm_stages = operator_call(args.seed + 1)
    pipe = jobs.get_pipeline(None, "CPU")  # the pipeline the operator used (loaded once)
    t = time.perf_counter()
    pipe.generate(seed=args.seed + 1)
    core = time.perf_counter() - t

    print(f"add-on latency at default settings, {args.threads} threads (target: under 15 s warm)")
    print(f"  operator -> object, cold (loads the model): {cold:6.2f} s   stages {cold_stages}")
    print(f"  operator -> object, warm:                   {warm:6.2f} s   stages {warm_stages}")
    blender_part = warm - sum(warm_stages.values())
    print(f"    of which Blender side (preview render, import, packing): {blender_part:.2f} s")
    print(f"  baseline AvatarPipeline.generate alone:     {core:6.2f} s")
    print(f"  ratio warm operator / baseline: {warm / core:.2f}x; cold / warm: {cold / warm:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
