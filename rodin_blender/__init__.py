"""Rodin Avatars: generate textured 3D avatars with an embedded tri-plane diffusion model.

The model code lives in the `rodin_core` wheel shipped with this extension; this package is the Blender
side only (panel, operators, preferences, importer).
"""

from __future__ import annotations

import bpy

from . import operators, panel, preferences, properties

CLASSES = (preferences.RodinPreferences, properties.RodinSettings, *operators.CLASSES, *panel.CLASSES)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.rodin = bpy.props.PointerProperty(type=properties.RodinSettings)


def unregister() -> None:
    for job in operators._ACTIVE.values():
        job.cancel.set()
    operators.free_previews()
    del bpy.types.Scene.rodin
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
