"""The main job, headless: generate avatars with the embedded model into a Blender scene.

    python scripts/generate_blend.py --seed 7 --count 1 --out out/demo

Writes OUT/avatars.blend (textures packed), OUT/avatars.glb and OUT/preview.png (a Cycles render of the
textured meshes). Uses the add-on's own operator and importer through the bpy module.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--out", default="out/demo")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--mesh-resolution", type=int, default=128)
    p.add_argument("--texture-size", type=int, default=512)
    p.add_argument("--preview-size", type=int, default=384)
    p.add_argument(
        "--columns", type=int, default=0, help="lay the avatars out in rows of this many (default: one row)"
    )
    p.add_argument("--weights", help="weights bundle .json (default: the embedded model)")
    p.add_argument(
        "--shading",
        choices=["lit", "unlit"],
        default="lit",
        help="materials: lit by the scene (Principled BSDF) or the baked colours as rendered (unlit)",
    )
    args = p.parse_args(argv)

    import bpy

    import rodin_blender
    from rodin_blender import render

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    rodin_blender.register()
    scene = bpy.context.scene
    scene.rodin.shading = args.shading.upper()
    if args.weights:
        import rodin_blender.jobs as jobs

        jobs._PIPELINES[("", "CPU")] = jobs.get_pipeline(args.weights, "CPU")
    result = bpy.ops.rodin.generate(
        seed=args.seed,
        count=args.count,
        steps=args.steps,
        mesh_resolution=args.mesh_resolution,
        texture_size=args.texture_size,
        blocking=True,
    )
    if result != {"FINISHED"}:
        print("error: generation failed (see the message above)", file=sys.stderr)
        return 1
    avatars = sorted((o for o in bpy.data.objects if "rodin_seed" in o), key=lambda o: o["rodin_seed"])
    if args.columns > 0:
        # Rows go down in Z: the preview camera looks from -Y, so a grid in the XZ plane fills the frame.
        for i, obj in enumerate(avatars):
            row, col = divmod(i, args.columns)
            obj.location = (col * 0.6, 0.0, -row * 0.7)
    bpy.ops.object.select_all(action="DESELECT")
    for obj in avatars:
        obj.select_set(True)
    bpy.ops.export_scene.gltf(filepath=str(out / "avatars.glb"), use_selection=True, export_format="GLB")
    render.frame_objects(scene, avatars)
    render.add_lights(scene)
    render.render_still(scene, str(out / "preview.png"), size=args.preview_size, samples=32)
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "avatars.blend"))
    print(f"wrote {out / 'avatars.blend'}, {out / 'avatars.glb'} and {out / 'preview.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
