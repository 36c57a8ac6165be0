"""Extracted meshes and baked textures against what they came from (needs the bpy module).

    python -m training.evaluate_mesh --fit runs/tiny/fit --data runs/tiny/data --out docs/evaluation --count 8

For fitted avatars: the mesh extracted from the fitted tri-plane (marching cubes, the shipped threshold) against
the generator's ground-truth mesh (Chamfer distance of 2048-point surface samples, scene units: 1 = 0.25 m);
and the baked texture on that mesh, imported with the add-on's importer and rendered by Cycles from the
held-out cameras with an emission shader (the texture holds radiance, so no lights), against the NeRF render
of the same tri-plane and against the real render. Writes OUT/mesh_evaluation.json/.md and mesh_vs_nerf.png
(columns: real render, NeRF render of the fitted tri-plane, baked mesh rendered in Blender).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import trimesh
from PIL import Image

from rodin_core.data import load_record, read_image_over, rgba_to_target
from rodin_core.io_utils import read_json, write_json_atomic
from rodin_core.mesh import METRES_PER_UNIT
from rodin_core.metrics import psnr
from rodin_core.pipeline import AvatarPipeline, GenerationSettings
from rodin_core.preview import grid, render_image
from training.evaluate import chamfer, surface_points
from training.fit_report import load_fitted

WHITE = torch.ones(3)


def emission_only(obj) -> None:
    """Shows the baked texture as it is: image -> emission, so Cycles returns the texel colours."""
    mat = obj.active_material
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    tex = next(n for n in nodes if n.type == "TEX_IMAGE")
    emission = nodes.new("ShaderNodeEmission")
    output = next(n for n in nodes if n.type == "OUTPUT_MATERIAL")
    links.new(tex.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.evaluate_mesh", description=__doc__.splitlines()[0])
    p.add_argument("--fit", required=True, help="fit run folder (its fitted/ tri-planes and decoder)")
    p.add_argument("--data", required=True, help="the data set it was fitted to")
    p.add_argument("--out", required=True)
    p.add_argument("--weights", help="bundle for the mesh threshold (default: the embedded model)")
    p.add_argument("--threshold", type=float, help="density iso-level (default: the bundle's)")
    p.add_argument("--count", type=int, default=8, help="fitted avatars to evaluate (default 8)")
    p.add_argument("--mesh-resolution", type=int, default=128)
    p.add_argument("--texture-size", type=int, default=512)
    p.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel")
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import bpy

    from blender_scenes.renderer import ViewRenderer, setup_scene
    from rodin_blender.importer import avatar_to_object

    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta, planes, decoder = load_fitted(Path(args.fit) / "fitted")
    pipe = AvatarPipeline.from_bundle(args.weights)
    pipe.decoder = (
        decoder  # the fitted tri-planes belong to the fit's decoder (the bundle ships the same one)
    )
    settings = GenerationSettings(
        mesh_resolution=args.mesh_resolution, texture_size=args.texture_size, threshold=args.threshold
    )
    rows, tiles = [], []
    renderer = None
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(meta["ids"][: args.count]):
            record = load_record(data / name, use_depth=False)
            transforms = read_json(data / name / "transforms.json", "camera transforms")
            if renderer is None:
                renderer = ViewRenderer(setup_scene(record.cameras.width, args.samples, device="cpu"))
            avatar = pipe.mesh_from_planes(planes[i : i + 1], settings)
            gt = trimesh.load(data / name / "mesh.ply", force="mesh")
            dist = chamfer(
                surface_points(avatar.vertices / METRES_PER_UNIT, avatar.faces, i),
                surface_points(np.asarray(gt.vertices), np.asarray(gt.faces), 1000 + i),
            )
            obj = avatar_to_object(avatar, f"eval_{name}", renderer.scene)
            obj.scale = (1 / METRES_PER_UNIT,) * 3  # back to scene units, where the data set's cameras are
            emission_only(obj)
            row = {"id": name, "chamfer": dist, "faces": len(avatar.faces), "psnr": {}}
            scores = {"baked_vs_nerf": [], "baked_vs_real": [], "nerf_vs_real": []}
            coverage = []
            for view in meta["holdout_views"]:
                path = Path(tmp) / f"{name}_{view}.png"
                renderer.render(np.array(transforms["frames"][view]["transform_matrix"]), path)
                baked, alpha = read_image_over(path, WHITE)
                coverage.append(float(alpha.mean()))
                if coverage[-1] < 0.02:
                    raise SystemExit(
                        f"the baked mesh of {name} is missing from Blender's render of view {view} ({path}); "
                        "the mesh is outside the data set's camera or its material does not render"
                    )
                nerf = render_image(planes[i], decoder, record.cameras, view)["rgb"]
                real = rgba_to_target(record.rgba[view].float(), WHITE)[0]
                scores["baked_vs_nerf"].append(psnr(baked, nerf))
                scores["baked_vs_real"].append(psnr(baked, real))
                scores["nerf_vs_real"].append(psnr(nerf, real))
                if view == meta["holdout_views"][0] and len(tiles) < 8:
                    tiles.append(torch.cat([real, nerf, baked], dim=1))
            row["psnr"] = {k: float(np.mean(v)) for k, v in scores.items()}
            row["baked_coverage"] = float(np.mean(coverage))  # fraction of the image the baked mesh covers
            rows.append(row)
            print(f"{name}: Chamfer {dist:.5f}, PSNR {row['psnr']}", flush=True)
            bpy.data.objects.remove(obj)
    report = {
        "avatars": len(rows),
        "mesh_resolution": args.mesh_resolution,
        "texture_size": args.texture_size,
        "threshold": args.threshold or pipe.threshold,
        "holdout_views": meta["holdout_views"],
        "chamfer_mean": float(np.mean([r["chamfer"] for r in rows])),
        "chamfer_max": float(np.max([r["chamfer"] for r in rows])),
        "psnr_mean": {k: float(np.mean([r["psnr"][k] for r in rows])) for k in rows[0]["psnr"]},
        "per_avatar": rows,
    }
    write_json_atomic(out / "mesh_evaluation.json", report)
    (out / "mesh_evaluation.md").write_text(markdown(report))
    Image.fromarray(grid(tiles, columns=2)).save(out / "mesh_vs_nerf.png")
    print(f"Chamfer mean {report['chamfer_mean']:.5f}; PSNR {report['psnr_mean']}")
    return 0


def markdown(report: dict) -> str:
    m = report["psnr_mean"]
    return (
        "# Meshes and baked textures of fitted avatars\n\n"
        f"{report['avatars']} fitted avatars, marching-cubes grid {report['mesh_resolution']}³, density "
        f"threshold {report['threshold']}, {report['texture_size']}² texture, held-out views "
        f"{report['holdout_views']}.\n\n"
        f"- Chamfer distance to the ground-truth mesh (scene units², 1 unit = 0.25 m): mean "
        f"{report['chamfer_mean']:.5f}, max {report['chamfer_max']:.5f}\n"
        f"- Baked mesh rendered in Blender vs the NeRF render of the same tri-plane: {m['baked_vs_nerf']:.2f} dB\n"
        f"- Baked mesh vs the real render: {m['baked_vs_real']:.2f} dB (NeRF vs real: {m['nerf_vs_real']:.2f} dB)\n"
    )


if __name__ == "__main__":
    sys.exit(main())
