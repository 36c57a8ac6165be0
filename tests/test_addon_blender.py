"""The add-on inside Blender (bpy module): registration, the importer, the operator's blocking and threaded
paths, cancel, and errors reported instead of raised."""

import json
import time

import numpy as np
import pytest
import torch
from helpers import random_bundle

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.blender

import rodin_blender  # noqa: E402
from rodin_blender import jobs, operators  # noqa: E402
from rodin_blender.importer import COLLECTION, avatar_to_object, stored_planes  # noqa: E402
from rodin_core.avatar import Avatar  # noqa: E402
from rodin_core.pipeline import DEFAULT_GUIDANCE, PROMPT_GUIDANCE, AvatarPipeline  # noqa: E402


@pytest.fixture(scope="module")
def registered():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    rodin_blender.register()
    yield
    rodin_blender.unregister()


@pytest.fixture
def pipeline_with(tmp_path):
    """Puts a pipeline from an untrained bundle where the add-on looks for the default model."""

    def use(**kwargs):
        pipe = AvatarPipeline.from_bundle(random_bundle(tmp_path / "m.json", **kwargs))
        jobs._PIPELINES[("", "CPU")] = pipe
        return pipe

    yield use
    jobs._PIPELINES.clear()


def textured_cube() -> Avatar:
    v = np.array([[x, y, z] for x in (-0.1, 0.1) for y in (-0.1, 0.1) for z in (0, 0.3)], np.float32)
    f = np.array(
        [
            [0, 1, 3],
            [0, 3, 2],
            [4, 6, 7],
            [4, 7, 5],
            [0, 4, 5],
            [0, 5, 1],
            [2, 3, 7],
            [2, 7, 6],
            [0, 2, 6],
            [0, 6, 4],
            [1, 5, 7],
            [1, 7, 3],
        ]
    )
    uvs = np.tile(np.array([[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]], np.float32), (len(f), 1, 1))
    tex = np.zeros((8, 8, 3), np.uint8)
    tex[:4] = (255, 0, 0)  # top half red (row 0 = top)
    return Avatar(v, f, uvs, tex, np.full((8, 3), 0.5, np.float32), {"seed": 11, "latent": [0.0] * 16})


def generate_one(seed: int):
    """One avatar from the panel's settings, blocking: the new object, its metadata and the object names before."""
    before = {o.name for o in bpy.data.objects}
    result = bpy.ops.rodin.generate(seed=seed, steps=2, mesh_resolution=32, texture_size=64, blocking=True)
    assert result == {"FINISHED"}
    (obj,) = [o for o in bpy.data.objects if o.name not in before and "rodin_seed" in o]
    return obj, json.loads(obj["rodin_metadata"]), before


def test_registration_adds_panel_settings_and_operators(registered):
    assert hasattr(bpy.types, "VIEW3D_PT_rodin")
    assert bpy.context.scene.rodin.steps == 20
    ops = (
        "generate",
        "cancel",
        "random_seed",
        "regenerate",
        "variations",
        "edit",
        "interpolate",
        "set_shading",
    )
    for op in ops:
        assert hasattr(bpy.ops.rodin, op)


def test_importer_builds_a_textured_object(registered):
    obj = avatar_to_object(textured_cube(), "Cube", bpy.context.scene, (1.0, 0.0, 0.0))
    mesh = obj.data
    assert len(mesh.polygons) == 12 and len(mesh.uv_layers) == 1
    assert tuple(mesh.uv_layers[0].data[1].uv) == pytest.approx((0.9, 0.1))
    assert all(p.use_smooth for p in mesh.polygons)
    nodes = obj.active_material.node_tree.nodes
    tex = next(n for n in nodes if n.type == "TEX_IMAGE")
    assert tex.image.packed_file is not None
    assert tex.outputs["Color"].links[0].to_socket.name == "Base Color"
    pixels = np.array(tex.image.pixels[:]).reshape(8, 8, 4)
    assert pixels[7, 0, 0] == pytest.approx(1.0) and pixels[0, 0, 0] == pytest.approx(0.0)  # top row is red
    assert obj.users_collection[0].name == COLLECTION and obj["rodin_seed"] == 11
    assert tuple(obj.location) == (1.0, 0.0, 0.0)


def _glb_materials(path) -> tuple[list[dict], list[str]]:
    import struct

    data = open(path, "rb").read()
    (length,) = struct.unpack("<I", data[12:16])  # the JSON chunk follows the 12-byte header
    doc = json.loads(data[20 : 20 + length])
    return doc["materials"], doc.get("extensionsUsed", [])


def test_unlit_shading_shows_the_baked_colours_and_exports_as_gltf_unlit(registered, tmp_path):
    obj = avatar_to_object(textured_cube(), "Unlit", bpy.context.scene, shading="UNLIT")
    tree = obj.active_material.node_tree
    output = next(n for n in tree.nodes if n.type == "OUTPUT_MATERIAL")
    surface = output.inputs["Surface"].links[0].from_node
    assert surface.type == "BACKGROUND"
    assert surface.inputs["Color"].links[0].from_node.image.name == "Unlit_albedo"
    bpy.ops.object.select_all(action="DESELECT")
    obj.select_set(True)
    path = tmp_path / "unlit.glb"
    bpy.ops.export_scene.gltf(filepath=str(path), use_selection=True, export_format="GLB")
    materials, used = _glb_materials(path)
    assert "KHR_materials_unlit" in used and "KHR_materials_unlit" in materials[0]["extensions"]
    assert "baseColorTexture" in materials[0]["pbrMetallicRoughness"]
    meshes = len(bpy.data.meshes)
    with pytest.raises(ValueError, match="unknown shading 'GLOSSY'"):
        avatar_to_object(textured_cube(), "Bad", bpy.context.scene, shading="GLOSSY")
    assert len(bpy.data.meshes) == meshes  # refused before anything was made


def test_set_shading_switches_selected_avatars_and_keeps_their_texture(registered):
    scene = bpy.context.scene
    obj = avatar_to_object(textured_cube(), "Switch", scene)
    image = next(n.image for n in obj.active_material.node_tree.nodes if n.type == "TEX_IMAGE")
    bpy.ops.object.select_all(action="DESELECT")
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj
    scene.rodin.shading = "UNLIT"
    try:
        assert bpy.ops.rodin.set_shading() == {"FINISHED"}
        mat = obj.active_material
        assert mat["rodin_shading"] == "UNLIT" and len(obj.material_slots) == 1
        assert next(n.image for n in mat.node_tree.nodes if n.type == "TEX_IMAGE") == image
        assert mat.name == "Switch_material"  # not "Switch_material.001" beside the replaced one
        scene.rodin.shading = "LIT"
        bpy.ops.rodin.set_shading()
        tree = obj.active_material.node_tree
        output = next(n for n in tree.nodes if n.type == "OUTPUT_MATERIAL")
        assert output.inputs["Surface"].links[0].from_node.type == "BSDF_PRINCIPLED"
        # The replaced material is not left behind, and the new one has the avatar's material name.
        assert [m.name for m in bpy.data.materials if m.name.startswith("Switch_material")] == [
            "Switch_material"
        ]
    finally:
        scene.rodin.shading = "LIT"


def test_blocking_generate_imports_avatars(registered, pipeline_with):
    pipeline_with(threshold=0.01)  # untrained weights: a low iso-level still gives a closed surface to import
    before = {o.name for o in bpy.data.objects}
    result = bpy.ops.rodin.generate(
        seed=2, count=2, steps=2, mesh_resolution=32, texture_size=64, blocking=True
    )
    assert result == {"FINISHED"}
    made = [o for o in bpy.data.objects if "rodin_seed" in o and o.name not in before]
    assert sorted(o["rodin_seed"] for o in made) == [2, 3]
    assert bpy.context.scene.rodin.preview_path.endswith(".png")


def test_errors_become_reports_not_tracebacks(registered, pipeline_with):
    pipeline_with(threshold=1e9)  # nothing reaches this density: extraction fails with a message
    # From a script, an operator's ERROR report surfaces as RuntimeError carrying the report's text; in the UI
    # the same report shows in the status bar.
    with pytest.raises(RuntimeError, match="Rodin: NoSurfaceError: no surface at density"):
        bpy.ops.rodin.generate(seed=1, steps=2, mesh_resolution=32, blocking=True)


def run_threaded(request, cancel_after=None):
    scene = bpy.context.scene
    job = jobs.GenerationJob(request)
    operators._ACTIVE[scene.name] = job.start()
    scene.rodin.running = True
    if cancel_after is not None:
        time.sleep(cancel_after)
        job.cancel.set()
    deadline = time.time() + 120
    while operators._poll(scene.name, (0.0, 0.0, 0.0), 0.5, None) is not None:
        assert time.time() < deadline
        time.sleep(0.05)
    return scene.rodin


def test_threaded_generation_reports_progress_and_errors(registered, pipeline_with):
    pipeline_with(threshold=0.01)
    request = jobs.Request(
        seeds=[4], settings={"steps": 2, "mesh_resolution": 32, "texture_size": 64, "upsampler_steps": 2}
    )
    state = run_threaded(request)
    assert state.stage == "Done" and state.progress == 1.0 and not state.running
    assert any(o.get("rodin_seed") == 4 for o in bpy.data.objects)
    pipeline_with(threshold=1e9)
    state = run_threaded(jobs.Request(seeds=[5], settings={"steps": 2, "mesh_resolution": 32}))
    assert state.stage.startswith("Error:") and "no surface" in state.stage


def test_cancel_stops_a_running_job(registered, pipeline_with):
    pipeline_with(threshold=0.01)
    request = jobs.Request(seeds=list(range(50)), settings={"steps": 200, "mesh_resolution": 32})
    state = run_threaded(request, cancel_after=0.5)
    assert state.stage == "Cancelled"
    assert len([o for o in bpy.data.objects if o.get("rodin_seed", -1) >= 40]) == 0


def test_text_prompt_reaches_the_model_and_unknown_words_are_reported(registered, pipeline_with):
    pipeline_with(threshold=0.01, with_text=True)
    scene = bpy.context.scene
    scene.rodin.conditioning = "TEXT"
    scene.rodin.prompt = ""
    try:
        with pytest.raises(RuntimeError, match="type a description"):
            bpy.ops.rodin.generate(seed=1, steps=2, mesh_resolution=32, blocking=True)
        scene.rodin.prompt = "a woman with glitter glasses"
        scene.rodin.draw_glasses = True  # off by default
        obj, meta, before = generate_one(seed=3)
        assert meta["conditioning"] == "text" and meta["text"] == "a woman with glitter glasses"
        assert meta["unknown_words"] == ["glitter"]
        assert meta["drawn_on"] == ["round glasses"]  # the prompt's glasses, drawn on in 3D (Draw glasses)
        # a prompt samples with the panel's prompt guidance, whose default is the pipeline's for prompts
        assert (scene.rodin.prompt_guidance, scene.rodin.guidance) == (PROMPT_GUIDANCE, DEFAULT_GUIDANCE)
        assert meta["settings"]["guidance"] == PROMPT_GUIDANCE
        # Regenerate draws it again from its seed, its prompt and its settings, not from the seed's
        # unconditioned latent.
        bpy.context.view_layer.objects.active = obj
        scene.rodin.draw_glasses = False
        scene.rodin.prompt_guidance = 5.0
        assert bpy.ops.rodin.regenerate(blocking=True) == {"FINISHED"}
        (again,) = [o for o in bpy.data.objects if o.get("rodin_seed") == 3 and o.name not in before]
        again_meta = json.loads(again["rodin_metadata"])
        assert again_meta["text"] == meta["text"] and again_meta["latent"] == meta["latent"]
        assert again_meta["drawn_on"] == ["round glasses"]
        assert again_meta["settings"]["guidance"] == PROMPT_GUIDANCE  # the avatar's own, not the panel's now
        job = jobs.GenerationJob(
            jobs.Request(seeds=[3], settings={"steps": 2, "mesh_resolution": 32}, text="a man with glitter")
        )
        job.run()
        assert job.error is None and job.unknown_words == ["glitter"]
    finally:
        scene.rodin.conditioning, scene.rodin.draw_glasses = "NONE", False
        scene.rodin.property_unset("prompt_guidance")


def test_words_no_caption_uses_go_to_the_sentence_model_and_the_panel_says_so(registered, pipeline_with):
    pipeline_with(threshold=0.01, with_text=True, with_sentence=True)
    scene = bpy.context.scene
    scene.rodin.conditioning = "TEXT"
    scene.rodin.prompt = "a woman with glitter glasses"
    try:
        obj, meta, _ = generate_one(seed=3)
        assert meta["text_model"] == "sentence" and meta["unknown_words"] == []  # read, not left out
        assert meta["drawn_on"] == [] and meta["settings"]["draw_glasses"] is False
        job = jobs.GenerationJob(
            jobs.Request(seeds=[3], settings={"steps": 2, "mesh_resolution": 32}, text="a man with glitter")
        )
        job.run()
        assert job.error is None and job.unknown_words == [] and job.sentence_words == ["glitter"]
    finally:
        scene.rodin.conditioning = "NONE"


def test_portrait_and_its_guidance_reach_the_model_and_regenerate_repeats_them(
    registered, pipeline_with, tmp_path
):
    from PIL import Image

    pipeline_with(threshold=0.01)
    portrait = np.full((64, 64, 3), 255, np.uint8)
    portrait[20:, 16:48] = (200, 40, 40)
    Image.fromarray(portrait).save(tmp_path / "portrait.png")
    scene = bpy.context.scene
    scene.rodin.conditioning, scene.rodin.image_path = "IMAGE", str(tmp_path / "portrait.png")
    scene.rodin.image_guidance = 2.5
    try:
        obj, meta, before = generate_one(seed=5)
        assert meta["conditioning"] == "image" and meta["settings"]["image_guidance"] == 2.5
        planes = stored_planes(obj)
        # Regenerate (which replaces the object) draws the avatar with its own guidance strength, whatever the panel says now.
        scene.rodin.image_guidance = 0.0
        bpy.context.view_layer.objects.active = obj
        assert bpy.ops.rodin.regenerate(blocking=True) == {"FINISHED"}
        (again,) = [o for o in bpy.data.objects if o.get("rodin_seed") == 5 and o.name not in before]
        assert json.loads(again["rodin_metadata"])["settings"]["image_guidance"] == 2.5
        assert stored_planes(again) == planes  # the same tri-planes: the same guided sample
        # Without guidance the same seed and portrait give another avatar: the strength did reach the model.
        before.add(again.name)
        assert bpy.ops.rodin.generate(seed=5, steps=2, mesh_resolution=32, texture_size=64, blocking=True)
        (plain,) = [o for o in bpy.data.objects if o.name not in before and "rodin_seed" in o]
        assert stored_planes(plain) != planes
    finally:
        scene.rodin.conditioning, scene.rodin.image_guidance = "NONE", 1.0


def test_a_portrait_on_blenders_grey_world_is_read_as_transparent_and_the_user_told(
    registered, pipeline_with, tmp_path
):
    from PIL import Image

    pipeline_with(threshold=0.01)
    portrait = np.full((64, 64, 3), 63, np.uint8)  # a render without a transparent film
    portrait[20:, 16:48] = (200, 40, 40)
    Image.fromarray(portrait).save(tmp_path / "grey.png")
    settings = {"steps": 2, "mesh_resolution": 32, "texture_size": 64, "upsampler_steps": 2}
    job = jobs.GenerationJob(jobs.Request(seeds=[4, 5], settings=settings, image=str(tmp_path / "grey.png")))
    job.run()
    assert job.error is None
    # One note for the two avatars, the one the panel shows when the job ends.
    assert job.notes == ["portrait: its flat background (63, 63, 63) was read as transparent"]
    read = job.results.get_nowait().avatar.metadata["portrait_read"]
    assert read["background"] == "flat (63, 63, 63)" and not read["reframed"]


def test_a_hair_colour_edit_with_no_hair_to_repaint_tells_the_user(registered, pipeline_with, monkeypatch):
    from rodin_core import pipeline

    pipe = pipeline_with(threshold=0.01, with_text=True)
    settings = {"steps": 2, "mesh_resolution": 32, "texture_size": 64, "upsampler_steps": 2}
    original = pipe.generate(4, **settings)
    monkeypatch.setattr(pipeline, "recolour", lambda *args, **kwargs: None)  # what a bald head gives
    job = jobs.GenerationJob(
        jobs.Request(
            seeds=[4],
            settings=settings,
            text="make the hair blond",
            mode="edit",
            latents=[original.metadata["latent"]],
        )
    )
    job.run()
    assert job.error is None and job.notes == [pipeline.NO_HAIR_TO_REPAINT]
    edited = job.results.get_nowait().avatar
    assert edited.metadata["edited_by"] == "redrawn" and edited.metadata["edited_parts"] == ["hair"]


def test_edit_of_a_variation_changes_only_the_named_part(registered, pipeline_with):
    from rodin_core.triplane import sample_features

    pipe = pipeline_with(threshold=0.01, with_text=True)
    settings = {"steps": 2, "mesh_resolution": 32, "texture_size": 64, "upsampler_steps": 2}
    original = pipe.generate(4, variation=3, **settings)
    job = jobs.GenerationJob(
        jobs.Request(
            seeds=[4],
            settings=settings,
            variations=[3],
            text="round glasses",
            mode="edit",
            latents=[original.metadata["latent"]],
        )
    )
    job.run()
    assert job.error is None
    edited = job.results.get_nowait().avatar
    assert edited.metadata["mode"] == "edit" and edited.metadata["edited_parts"] == ["eyes"]
    assert edited.metadata["edited_by"] == "drawn" and job.notes == []  # drawn in 3D, nothing to say
    xs = torch.linspace(-0.8, 0.8, 9)
    chest = torch.stack([xs, torch.full_like(xs, -0.3), torch.full_like(xs, -0.7)], -1)[None]
    kept = sample_features(edited.planes, chest) - sample_features(original.planes, chest)
    assert kept.abs().max() < 1e-3  # the stored latent is rounded to 5 decimals
    plain = pipe.generate(4, **settings)  # what an edit that forgot the variation's noise would start from
    assert (sample_features(plain.planes, chest) - sample_features(original.planes, chest)).abs().max() > 1e-2


def test_an_edit_starts_from_the_planes_the_object_carries_and_can_be_edited_again(registered, pipeline_with):
    from rodin_blender.importer import planes_to_bytes, stored_planes
    from rodin_core.triplane import sample_features

    pipe = pipeline_with(threshold=0.01, with_text=True)
    settings = {"steps": 2, "mesh_resolution": 32, "texture_size": 64, "upsampler_steps": 2}
    original = pipe.generate(5, **settings)
    obj = avatar_to_object(original, "Carrier", bpy.context.scene)
    data, shape = stored_planes(obj)
    assert shape == list(original.planes.shape) and data == planes_to_bytes(original.planes)

    def edit(avatar, carried, text):
        request = jobs.Request(
            seeds=[5],
            settings=settings,
            text=text,
            mode="edit",
            latents=[avatar.metadata["latent"]],
            planes=[carried],
        )
        job = jobs.GenerationJob(request)
        job.run()
        return job

    first_job = edit(original, (data, shape), "round glasses")
    assert first_job.error is None
    first = first_job.results.get_nowait().avatar
    assert first.metadata["latent"] is not None and first.metadata["edited_parts"] == ["eyes"]
    second_job = edit(first, (planes_to_bytes(first.planes), list(first.planes.shape)), "a red t-shirt")
    assert second_job.error is None
    second = second_job.results.get_nowait().avatar
    xs = torch.linspace(-0.8, 0.8, 9)
    eyes = torch.stack([xs, torch.full_like(xs, -0.3), torch.full_like(xs, 0.2)], -1)[None]
    # The shirt edit keeps the first edit's eye band (to float16 storage precision).
    assert (sample_features(second.planes, eyes) - sample_features(first.planes, eyes)).abs().max() < 1e-2
    between = jobs.GenerationJob(
        jobs.Request(
            seeds=[5, 5],
            settings=settings,
            mode="interpolate",
            inbetweens=1,
            latents=[first.metadata["latent"], original.metadata["latent"]],
            planes=[(planes_to_bytes(first.planes), list(first.planes.shape)), (data, shape)],
        )
    )
    between.run()
    assert between.error is None and between.results.qsize() == 1
    wrong = edit(original, (data[:64], [1, 3, 8, 4, 4]), "round glasses")
    assert "made by another model" in wrong.error


class RecordingLayout:
    """Stands in for bpy's UILayout and writes down what the panel draws."""

    def __init__(self, log: list) -> None:
        self.log = log
        self.alert = False

    def row(self, **_):
        return self

    column = box = row

    def prop(self, data, name, **_):
        assert hasattr(data, name), f"panel draws a property that does not exist: {name}"
        self.log.append(("prop", name))

    def operator(self, idname, **_):
        self.log.append(("operator", idname))

    def label(self, text="", **_):
        self.log.append(("label", text))

    def progress(self, text="", **_):
        self.log.append(("progress", text))

    def template_icon(self, **_):
        self.log.append(("icon", None))


def draw_panel(scene, active=None, selected=()) -> list:
    from types import SimpleNamespace

    log: list = []
    panel_self = SimpleNamespace(layout=RecordingLayout(log))
    context = SimpleNamespace(scene=scene, active_object=active, selected_objects=list(selected))
    bpy.types.VIEW3D_PT_rodin.draw(panel_self, context)
    for kind, name in log:
        if kind == "operator":
            bpy.ops.rodin.__getattr__(name.split(".")[1]).get_rna_type()  # KeyError if not registered
    return log


def test_panel_draws_what_the_state_calls_for(registered):
    scene = bpy.context.scene
    s = scene.rodin
    s.conditioning, s.running, s.stage = "NONE", False, ""
    idle = draw_panel(scene)
    props = [n for k, n in idle if k == "prop"]
    assert props[:7] == ["seed", "count", "spacing", "sampler", "steps", "guidance", "conditioning"]
    assert ("operator", "rodin.generate") in idle and ("operator", "rodin.cancel") not in idle
    assert "prompt" not in props and "image_path" not in props
    s.conditioning = "TEXT"
    text_mode = draw_panel(scene)
    assert {("prop", "prompt"), ("prop", "draw_glasses"), ("prop", "prompt_guidance")} <= set(text_mode)
    assert ("prop", "guidance") not in text_mode  # a prompt has its own guidance
    s.conditioning = "IMAGE"
    assert {("prop", "image_path"), ("prop", "image_guidance")} <= set(draw_panel(scene))
    s.conditioning = "NONE"
    s.running, s.stage = True, "avatar 1/1: base diffusion"
    busy = draw_panel(scene)
    assert ("progress", "avatar 1/1: base diffusion") in busy and ("operator", "rodin.cancel") in busy
    assert ("operator", "rodin.generate") not in busy
    s.running, s.stage = False, "Error: something broke"
    assert ("label", "Error: something broke") in draw_panel(scene)
    s.stage = ""
    a = avatar_to_object(textured_cube(), "PanelA", scene)
    b = avatar_to_object(textured_cube(), "PanelB", scene)
    one = draw_panel(scene, active=a, selected=[a])
    for op in ("rodin.regenerate", "rodin.variations", "rodin.edit"):
        assert ("operator", op) in one
    assert ("operator", "rodin.interpolate") not in one
    two = draw_panel(scene, active=a, selected=[a, b])
    assert ("operator", "rodin.interpolate") in two and ("prop", "inbetweens") in two
    plain = bpy.data.objects.new("NotAnAvatar", None)
    assert ("operator", "rodin.edit") not in draw_panel(scene, active=plain, selected=[plain])


def test_edited_avatars_cannot_be_regenerated_or_edited_again(registered):
    scene = bpy.context.scene
    drawn = avatar_to_object(textured_cube(), "Drawn", scene)
    edited_avatar = textured_cube()
    edited_avatar.metadata = {"seed": 11, "mode": "edit", "text": "round glasses"}
    edited = avatar_to_object(edited_avatar, "Edited", scene)
    bpy.context.view_layer.objects.active = drawn
    assert bpy.ops.rodin.regenerate.poll() and bpy.ops.rodin.variations.poll()
    bpy.context.view_layer.objects.active = edited
    assert not bpy.ops.rodin.regenerate.poll() and not bpy.ops.rodin.variations.poll()
    assert not bpy.ops.rodin.edit.poll()  # no latent code stored: it is not drawn from one
    carrying = textured_cube()
    carrying.metadata = {"seed": 11, "mode": "edit", "latent": [0.0] * 16}
    carrying.planes = torch.zeros(1, 3, 8, 16, 16)
    bpy.context.view_layer.objects.active = avatar_to_object(carrying, "EditedWithPlanes", scene)
    assert bpy.ops.rodin.edit.poll() and not bpy.ops.rodin.regenerate.poll()


def test_unregister_leaves_nothing_behind(registered):
    rodin_blender.unregister()
    try:
        assert not hasattr(bpy.types.Scene, "rodin")
        assert [name for name in dir(bpy.types) if "rodin" in name.lower()] == []
        with pytest.raises(KeyError):
            bpy.ops.rodin.generate.get_rna_type()
    finally:
        rodin_blender.register()  # the module fixture unregisters at the end
    assert hasattr(bpy.types.Scene, "rodin")
