"""Operators: generate (non-blocking in the UI, blocking in `blender -b` and scripts), cancel, seed dice,
regenerate and variations of a selected avatar. Also callable from Python:

    bpy.ops.rodin.generate(seed=7, count=2, steps=20, guidance=2.0, mesh_resolution=128, blocking=True)
"""

from __future__ import annotations

import json
import random

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from . import jobs
from .importer import avatar_to_object, carries_planes, set_shading, stored_planes
from .preferences import get_preferences, user_dir
from .properties import SAMPLER_ITEMS

SETTING_NAMES = (
    "guidance",
    "sampler",
    "steps",
    "image_guidance",
    "draw_glasses",
    "mesh_resolution",
    "texture_size",
    "max_faces",
)
_ACTIVE: dict[str, jobs.GenerationJob] = {}
_PREVIEWS = None


def preview_icon(path: str) -> int:
    """Icon id of a preview PNG (shown as the panel's thumbnail)."""
    global _PREVIEWS
    import bpy.utils.previews

    if _PREVIEWS is None:
        _PREVIEWS = bpy.utils.previews.new()
    if path not in _PREVIEWS:
        _PREVIEWS.load(path, path, "IMAGE")
    return _PREVIEWS[path].icon_id


def free_previews() -> None:
    global _PREVIEWS
    if _PREVIEWS is not None:
        import bpy.utils.previews

        bpy.utils.previews.remove(_PREVIEWS)
        _PREVIEWS = None


def _panel_guidance(panel, text) -> float:
    """The panel's classifier-free guidance for an avatar: its prompt guidance for a prompt's."""
    return panel.prompt_guidance if text else panel.guidance


def _request(context, seeds, values, image, variation=0, text=None, **extra) -> jobs.Request:
    prefs = get_preferences(context)
    settings = {name: values[name] for name in SETTING_NAMES}
    settings["max_faces"] = settings["max_faces"] or None
    return jobs.Request(
        seeds=seeds,
        settings=settings,
        image=bpy.path.abspath(image) if image else None,
        text=text or None,
        variation=variation,
        **extra,
        weights=bpy.path.abspath(prefs.weights_path) if prefs and prefs.weights_path else None,
        device=prefs.device if prefs else "CPU",
        threads=prefs.threads if prefs else 0,
        preview_dir=user_dir("previews"),
    )


def _place(context, result: jobs.Result, origin, spacing: float, replace: bpy.types.Object | None):
    location = (origin[0] + result.index * spacing, origin[1], origin[2])
    if replace is not None:
        location = tuple(replace.location)
        bpy.data.objects.remove(replace, do_unlink=True)
    obj = avatar_to_object(
        result.avatar, f"Rodin_{result.seed}", context.scene, location, context.scene.rodin.shading
    )
    if result.preview:
        context.scene.rodin.preview_path = result.preview
    return obj


class _Generating:
    """What the generate-like operators share: run blocking or hand the job to a timer."""

    def start(self, context, request, spacing, replace=None, blocking=False, origin=None):
        state = context.scene.rodin
        if state.running:
            self.report({"WARNING"}, "Rodin is already generating; cancel it first")
            return {"CANCELLED"}
        job = jobs.GenerationJob(request)
        origin = tuple(origin) if origin is not None else tuple(context.scene.cursor.location)
        if blocking or bpy.app.background:
            job.run()
            made = []
            while not job.results.empty():
                made.append(_place(context, job.results.get(), origin, spacing, replace))
            if job.error:
                self.report({"ERROR"}, f"Rodin: {job.error}")
                return {"CANCELLED"}
            if job.unknown_words:
                self.report({"WARNING"}, _unknown_message(job.unknown_words))
            if job.sentence_words:
                self.report({"INFO"}, _sentence_message(job.sentence_words))
            for note in job.notes:
                self.report({"WARNING"}, f"Rodin: {note}")
            self.report({"INFO"}, f"Rodin: {len(made)} avatar(s) generated")
            return {"FINISHED"}
        state.running, state.progress, state.stage = True, 0.0, "loading model"
        _ACTIVE[context.scene.name] = job.start()
        scene_name = context.scene.name

        def poll():
            return _poll(scene_name, origin, spacing, replace.name if replace else None)

        bpy.app.timers.register(poll, first_interval=0.2)
        return {"FINISHED"}


def _poll(scene_name: str, origin, spacing: float, replace_name: str | None):
    """Timer on the main thread: mirror progress into the UI, import finished avatars, report the end."""
    scene = bpy.data.scenes.get(scene_name)
    job = _ACTIVE.get(scene_name)
    if scene is None or job is None:
        return None
    state = scene.rodin
    state.progress, state.stage = job.fraction, job.stage
    context = bpy.context
    while not job.results.empty():
        replace = bpy.data.objects.get(replace_name) if replace_name else None
        _place(context, job.results.get(), origin, spacing, replace)
    for area in getattr(context.screen, "areas", []):
        if area.type == "VIEW_3D":
            area.tag_redraw()
    if not job.done:
        return 0.2
    state.running = False
    del _ACTIVE[scene_name]
    if job.error:
        state.stage = f"Error: {job.error}"
        _popup(f"Rodin could not generate: {job.error}", "ERROR")
    else:
        state.stage = "Cancelled" if job.cancelled else "Done"
        state.progress = 0.0 if job.cancelled else 1.0
        if job.unknown_words:
            state.stage += f" (unknown words: {', '.join(job.unknown_words)})"
            _popup(_unknown_message(job.unknown_words), "INFO")
        if job.sentence_words:
            state.stage += f" (read by the sentence model: {', '.join(job.sentence_words)})"
            _popup(_sentence_message(job.sentence_words), "INFO")
        for note in job.notes:
            _popup(f"Rodin: {note}", "INFO")
    return None


def _unknown_message(words: list[str]) -> str:
    return f"Rodin left out words the model does not know: {', '.join(words)}"


def _sentence_message(words: list[str]) -> str:
    return f"Rodin read the prompt with the sentence model; no training caption uses: {', '.join(words)}"


def _popup(message: str, icon: str) -> None:
    wm = bpy.context.window_manager
    if not bpy.app.background and wm.windows:  # no UI to pop up in (popup_menu crashes without one)
        wm.popup_menu(lambda self, ctx: self.layout.label(text=message), title="Rodin", icon=icon)
    print(f"[Rodin] {message}")


class RODIN_OT_generate(bpy.types.Operator, _Generating):
    """Generate avatars with the embedded model and add them to the scene"""

    bl_idname = "rodin.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}

    seed: IntProperty(name="Seed", min=0)
    count: IntProperty(name="Avatars", min=1, max=64, default=1)
    spacing: FloatProperty(name="Spacing", min=0.0, default=0.6)
    sampler: EnumProperty(name="Sampler", items=SAMPLER_ITEMS)
    steps: IntProperty(name="Steps", min=1, max=1000, default=20)
    guidance: FloatProperty(name="Guidance", min=0.0, max=20.0, default=2.0)
    image_path: StringProperty(name="Image", subtype="FILE_PATH", description="Condition on this portrait")
    image_guidance: FloatProperty(name="Match portrait", min=0.0, max=10.0, default=1.0)
    draw_glasses: BoolProperty(
        name="Draw glasses", default=False, description="Draw a prompt's glasses on in 3D"
    )
    prompt: StringProperty(name="Prompt", description="Condition on this description")
    mesh_resolution: IntProperty(name="Mesh resolution", min=32, max=512, default=128)
    texture_size: IntProperty(name="Texture size", min=64, max=8192, default=512)
    max_faces: IntProperty(name="Face budget", min=0, default=20000)
    blocking: BoolProperty(name="Blocking", default=False, description="Wait for the result (scripts)")

    def execute(self, context):
        panel = context.scene.rodin
        names = ("seed", "count", "spacing", *SETTING_NAMES)
        # Properties given by a caller win; the rest come from the panel.
        values = {
            n: getattr(self, n) if self.properties.is_property_set(n) else getattr(panel, n) for n in names
        }
        image = (
            self.image_path
            if self.properties.is_property_set("image_path")
            else (panel.image_path if panel.conditioning == "IMAGE" else "")
        )
        prompt = (
            self.prompt
            if self.properties.is_property_set("prompt")
            else (panel.prompt if panel.conditioning == "TEXT" else "")
        ).strip()
        if panel.conditioning == "IMAGE" and not image:
            self.report({"ERROR"}, "Rodin: choose a portrait image, or set the condition to None")
            return {"CANCELLED"}
        if panel.conditioning == "TEXT" and not prompt:
            self.report(
                {"ERROR"}, "Rodin: type a description in the prompt box, or set the condition to None"
            )
            return {"CANCELLED"}
        if image and prompt:
            self.report({"ERROR"}, "Rodin: condition on an image or on a prompt, not both")
            return {"CANCELLED"}
        if not self.properties.is_property_set("guidance"):
            values["guidance"] = _panel_guidance(panel, prompt)
        seeds = list(range(values["seed"], values["seed"] + values["count"]))
        request = _request(context, seeds, values, image, text=prompt)
        return self.start(context, request, values["spacing"], blocking=self.blocking)


class RODIN_OT_cancel(bpy.types.Operator):
    """Stop the running generation after the current step"""

    bl_idname = "rodin.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        job = _ACTIVE.get(context.scene.name)
        if job is None:
            self.report({"INFO"}, "Rodin: nothing is running")
            return {"CANCELLED"}
        job.cancel.set()
        context.scene.rodin.stage = "cancelling..."
        return {"FINISHED"}


class RODIN_OT_random_seed(bpy.types.Operator):
    """Pick a random seed"""

    bl_idname = "rodin.random_seed"
    bl_label = "Random Seed"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        context.scene.rodin.seed = random.randrange(0, 2**31 - 1)
        return {"FINISHED"}


def _selected_avatar(context):
    obj = context.active_object
    return obj if obj is not None and "rodin_seed" in obj else None


def _meta(obj) -> dict:
    """The metadata an avatar object carries (its seed, latent, prompt, mode...)."""
    return json.loads(obj.get("rodin_metadata", "{}"))


def _from_seed(cls, obj) -> bool:
    """Whether the avatar was drawn from its seed (and its image or prompt), so the seed can draw it again."""
    if obj is None:
        return False
    if _meta(obj).get("mode") in ("edit", "interpolate"):
        cls.poll_message_set(
            "Edited and in-between avatars are not drawn from a seed; regenerate their sources"
        )
        return False
    return True


class RODIN_OT_regenerate(bpy.types.Operator, _Generating):
    """Generate the selected avatar again from its seed, with the panel's mesh and texture settings"""

    bl_idname = "rodin.regenerate"
    bl_label = "Regenerate"
    blocking: BoolProperty(default=False, options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        return _from_seed(cls, _selected_avatar(context))

    def execute(self, context):
        obj = _selected_avatar(context)
        meta = _meta(obj)
        values = {n: getattr(context.scene.rodin, n) for n in SETTING_NAMES}
        values.update(
            {
                k: meta["settings"][k]
                for k in ("guidance", "sampler", "steps", "image_guidance", "draw_glasses")
                if k in meta.get("settings", {})
            }
        )
        request = _request(
            context,
            [int(obj["rodin_seed"])],
            values,
            meta.get("image"),
            meta.get("variation", 0),
            text=meta.get("text"),
        )
        return self.start(context, request, 0.0, replace=obj, blocking=self.blocking)


class RODIN_OT_variations(bpy.types.Operator, _Generating):
    """Variations of the selected avatar: its identity (latent code) with new diffusion noise"""

    bl_idname = "rodin.variations"
    bl_label = "Variations"
    count: IntProperty(name="Variations", default=3, min=1, max=32)
    blocking: BoolProperty(default=False, options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        return _from_seed(cls, _selected_avatar(context))

    def execute(self, context):
        obj = _selected_avatar(context)
        meta = _meta(obj)
        values = {n: getattr(context.scene.rodin, n) for n in SETTING_NAMES}
        values["guidance"] = _panel_guidance(context.scene.rodin, meta.get("text"))
        seed = int(obj["rodin_seed"])
        request = _request(
            context, [seed] * self.count, values, meta.get("image"), variation=1, text=meta.get("text")
        )
        return self.start(context, request, context.scene.rodin.spacing, blocking=self.blocking)


def _latent(obj) -> list[float] | None:
    return _meta(obj).get("latent")


def _variation(obj) -> int:
    """0 for an avatar drawn from its seed's own noise; a variation's index otherwise."""
    return int(_meta(obj).get("variation", 0))


class RODIN_OT_edit(bpy.types.Operator, _Generating):
    """Change the selected avatar towards a prompt or a portrait; a prompt naming a part changes only that part"""

    bl_idname = "rodin.edit"
    bl_label = "Apply Edit"
    prompt: StringProperty(name="Edit", description='e.g. "round glasses"')
    strength: FloatProperty(name="Strength", min=0.05, max=1.0, default=1.0)
    local: BoolProperty(name="Only the named part", default=True)
    blocking: BoolProperty(default=False, options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        obj = _selected_avatar(context)
        if obj is None:
            return False
        # poll runs on every redraw of the panel: check for the tri-planes, do not copy their ~200 kB
        if _latent(obj) is None or (not _from_seed(cls, obj) and not carries_planes(obj)):
            cls.poll_message_set(
                "This avatar stores no latent code and tri-planes to edit from: edit its source"
            )
            return False
        return True

    def execute(self, context):
        panel = context.scene.rodin
        obj = _selected_avatar(context)
        prompt = self.prompt if self.properties.is_property_set("prompt") else panel.edit_prompt
        strength = self.strength if self.properties.is_property_set("strength") else panel.edit_strength
        local = self.local if self.properties.is_property_set("local") else panel.edit_local
        image = panel.edit_image if not prompt else ""
        if not prompt and not image:
            self.report({"ERROR"}, 'Rodin: describe the edit (e.g. "round glasses") or pick an edit image')
            return {"CANCELLED"}
        values = {n: getattr(panel, n) for n in SETTING_NAMES}
        request = _request(
            context,
            [int(obj["rodin_seed"])],
            values,
            image,
            variations=[_variation(obj)],
            planes=[stored_planes(obj)],
            text=prompt,
            mode="edit",
            latents=[_latent(obj)],
            strength=strength,
            local=local,
        )
        origin = (obj.location.x + panel.spacing, obj.location.y, obj.location.z)
        return self.start(context, request, panel.spacing, blocking=self.blocking, origin=origin)


class RODIN_OT_interpolate(bpy.types.Operator, _Generating):
    """Avatars in between the two selected ones (their latent codes and noise blended on the sphere)"""

    bl_idname = "rodin.interpolate"
    bl_label = "Interpolate"
    count: IntProperty(name="In-betweens", min=1, max=32, default=3)
    blocking: BoolProperty(default=False, options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        chosen = [o for o in context.selected_objects if "rodin_seed" in o and _latent(o) is not None]
        return len(chosen) == 2

    def execute(self, context):
        a, b = sorted((o for o in context.selected_objects if "rodin_seed" in o), key=lambda o: o.location.x)
        count = self.count if self.properties.is_property_set("count") else context.scene.rodin.inbetweens
        values = {n: getattr(context.scene.rodin, n) for n in SETTING_NAMES}
        request = _request(
            context,
            [int(a["rodin_seed"]), int(b["rodin_seed"])],
            values,
            None,
            mode="interpolate",
            latents=[_latent(a), _latent(b)],
            variations=[_variation(a), _variation(b)],
            planes=[stored_planes(a), stored_planes(b)],
            inbetweens=count,
        )
        spacing = (b.location.x - a.location.x) / (count + 1)
        origin = (a.location.x + spacing, a.location.y, a.location.z)
        return self.start(context, request, spacing, origin=origin, blocking=self.blocking)


class RODIN_OT_set_shading(bpy.types.Operator):
    """Give the selected avatars the panel's shading (lit, or their colours as rendered), keeping their textures"""

    bl_idname = "rodin.set_shading"
    bl_label = "Set Shading"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return any("rodin_seed" in o for o in context.selected_objects)

    def execute(self, context):
        shading = context.scene.rodin.shading
        avatars = [o for o in context.selected_objects if "rodin_seed" in o]
        for obj in avatars:
            set_shading(obj, shading)
        self.report({"INFO"}, f"Rodin: {len(avatars)} avatar(s) now {shading.lower()}")
        return {"FINISHED"}


CLASSES = (
    RODIN_OT_generate,
    RODIN_OT_edit,
    RODIN_OT_interpolate,
    RODIN_OT_cancel,
    RODIN_OT_random_seed,
    RODIN_OT_regenerate,
    RODIN_OT_variations,
    RODIN_OT_set_shading,
)
