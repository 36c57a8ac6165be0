"""Add-on preferences: device, threads, alternative weights, where outputs go."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty


def _devices(self, context):
    items = [("CPU", "CPU", "Run the model on the processor")]
    try:
        import torch

        if torch.cuda.is_available():
            items.append(("CUDA", "CUDA", f"Run on {torch.cuda.get_device_name(0)}"))
    except Exception:  # noqa: BLE001 - preferences must draw even when torch is broken
        pass
    return items


class RodinPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    device: EnumProperty(name="Device", items=_devices, description="Where the diffusion model runs")
    threads: IntProperty(name="CPU threads", default=0, min=0, max=256, description="0 = torch's default")
    weights_path: StringProperty(
        name="Weights",
        subtype="FILE_PATH",
        description="Alternative weights bundle (.json written by training.export); empty = the embedded model",
    )
    output_dir: StringProperty(
        name="Outputs",
        subtype="DIR_PATH",
        description="Where previews and exported files go; empty = the extension's user folder",
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "device")
        layout.prop(self, "threads")
        layout.prop(self, "weights_path")
        layout.prop(self, "output_dir")


def get_preferences(context=None) -> RodinPreferences | None:
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon else None


def user_dir(sub: str) -> str:
    prefs = get_preferences()
    if prefs is not None and prefs.output_dir:
        return bpy.path.abspath(prefs.output_dir)
    try:
        return bpy.utils.extension_path_user(__package__, path=sub, create=True)
    except ValueError:  # loaded as a plain module (tests, scripts): fall back to a temporary folder
        import tempfile

        return tempfile.mkdtemp(prefix="rodin-")
