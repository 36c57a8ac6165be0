"""View3D > Sidebar > Rodin."""

from __future__ import annotations

import os

import bpy

from .operators import preview_icon


class VIEW3D_PT_rodin(bpy.types.Panel):
    bl_label = "Rodin Avatars"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Rodin"

    def draw(self, context):
        layout = self.layout
        s = context.scene.rodin
        row = layout.row(align=True)
        row.prop(s, "seed")
        row.operator("rodin.random_seed", text="", icon="FILE_REFRESH")
        row = layout.row(align=True)
        row.prop(s, "count")
        row.prop(s, "spacing")
        col = layout.column(align=True)
        col.prop(s, "sampler")
        col.prop(s, "steps")
        col.prop(s, "prompt_guidance" if s.conditioning == "TEXT" else "guidance")
        layout.prop(s, "conditioning")
        if s.conditioning == "IMAGE":
            layout.prop(s, "image_path")
            layout.prop(s, "image_guidance")
        elif s.conditioning == "TEXT":
            layout.prop(s, "prompt", text="")
            layout.prop(s, "image_guidance", text="Match drawn portrait")
            layout.prop(s, "draw_glasses")
        box = layout.box()
        box.label(text="Mesh")
        box.prop(s, "mesh_resolution")
        box.prop(s, "texture_size")
        box.prop(s, "max_faces")
        row = box.row(align=True)
        row.prop(s, "shading")
        row.operator("rodin.set_shading", text="", icon="SHADING_TEXTURE")
        if s.running:
            layout.progress(factor=s.progress, type="BAR", text=s.stage or "working")
            layout.operator("rodin.cancel", icon="CANCEL")
        else:
            layout.operator("rodin.generate", icon="OUTLINER_OB_ARMATURE")
            if s.stage:
                row = layout.row()
                row.alert = s.stage.startswith("Error")
                row.label(text=s.stage)
        selected = context.active_object
        if selected is not None and "rodin_seed" in selected:
            box = layout.box()
            box.label(text=f"Selected avatar: seed {selected['rodin_seed']}")
            row = box.row(align=True)
            row.operator("rodin.regenerate", icon="FILE_REFRESH")
            row.operator("rodin.variations", icon="DUPLICATE")
            box.label(text="Edit")
            box.prop(s, "edit_prompt", text="")
            box.prop(s, "edit_image")
            box.prop(s, "edit_strength")
            box.prop(s, "edit_local")
            box.operator("rodin.edit", icon="MODIFIER")
        pair = [o for o in context.selected_objects if "rodin_seed" in o]
        if len(pair) == 2:
            box = layout.box()
            box.label(text="Two avatars selected")
            box.prop(s, "inbetweens")
            box.operator("rodin.interpolate", icon="IPO_EASE_IN_OUT")
        if s.preview_path and os.path.isfile(s.preview_path):
            layout.template_icon(icon_value=preview_icon(s.preview_path), scale=8.0)


CLASSES = (VIEW3D_PT_rodin,)
