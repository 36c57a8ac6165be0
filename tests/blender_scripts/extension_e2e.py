"""Run by tests/test_extension_e2e.py in a fresh process: install the built zip into the bpy module, enable it,
generate an avatar through the operator, render it, save and reload the .blend. Prints a JSON summary.

    python extension_e2e.py ZIP OUT_DIR      (BLENDER_USER_RESOURCES must point at an empty folder)
"""

import json
import sys
from pathlib import Path

import bpy
import numpy as np

zip_path, out = Path(sys.argv[1]), Path(sys.argv[2])
summary = {}

bpy.ops.wm.read_factory_settings(use_empty=True)
result = bpy.ops.extensions.package_install_files(
    filepath=str(zip_path), repo="user_default", enable_on_install=True
)
summary["install"] = sorted(result)
module = "bl_ext.user_default.rodin_avatars"
summary["enabled"] = module in bpy.context.preferences.addons
import rodin_core  # noqa: E402  (importable only once the extension's wheels are installed)

summary["rodin_core_file"] = rodin_core.__file__

scene = bpy.context.scene
result = bpy.ops.rodin.generate(seed=3, steps=12, mesh_resolution=96, texture_size=512, blocking=True)
summary["generate"] = sorted(result)
avatars = [o for o in bpy.data.objects if "rodin_seed" in o]
summary["avatars"] = len(avatars)
obj = avatars[0]
mat = obj.active_material
images = [n.image for n in mat.node_tree.nodes if n.type == "TEX_IMAGE" and n.image]
summary["faces"] = len(obj.data.polygons)
summary["uv_layers"] = len(obj.data.uv_layers)
summary["packed"] = bool(images and images[0].packed_file)
summary["collection"] = obj.users_collection[0].name
summary["dimensions_m"] = list(obj.dimensions)

# Render with Cycles through the extension's own preview helpers.
render = __import__("bl_ext.user_default.rodin_avatars.render", fromlist=["render"])
render.frame_objects(scene, [obj])
render.add_lights(scene)
render.render_still(scene, str(out / "render.png"), size=96, samples=8)
img = bpy.data.images.load(str(out / "render.png"))
px = np.array(img.pixels[:]).reshape(96, 96, 4)
summary["coverage"] = float((px[..., 3] > 0.5).mean())
summary["render_rgb_std"] = float(px[..., :3][px[..., 3] > 0.5].std())

blend = out / "avatar.blend"
bpy.ops.wm.save_as_mainfile(filepath=str(blend))
bpy.ops.wm.open_mainfile(filepath=str(blend))
again = [o for o in bpy.data.objects if "rodin_seed" in o]
tex = [n.image for n in again[0].active_material.node_tree.nodes if n.type == "TEX_IMAGE" and n.image]
summary["reloaded_avatars"] = len(again)
summary["reloaded_texture_packed"] = bool(tex and tex[0].packed_file)
pixels = np.array(tex[0].pixels[:]).reshape(-1, 4)[:, :3] if tex else np.zeros((1, 3))
summary["reloaded_texture_std"] = float(pixels.std())
print("E2E_SUMMARY " + json.dumps(summary))
