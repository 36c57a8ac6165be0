"""Scene settings of the Rodin panel and the state of the running generation."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from .importer import SHADING_ITEMS

SAMPLER_ITEMS = [
    ("dpmpp_2m", "DPM-Solver++ (2M)", "Fast: good results in ~20 steps"),
    ("ddim", "DDIM", "Deterministic, needs more steps"),
    ("ddpm", "DDPM", "Ancestral sampling, needs hundreds of steps"),
]


class RodinSettings(bpy.types.PropertyGroup):
    seed: IntProperty(name="Seed", default=0, min=0, description="Same seed, same avatar")
    count: IntProperty(name="Avatars", default=1, min=1, max=64, description="How many (consecutive seeds)")
    spacing: FloatProperty(
        name="Spacing", default=0.6, min=0.0, unit="LENGTH", description="Gap between avatars"
    )
    sampler: EnumProperty(name="Sampler", items=SAMPLER_ITEMS, default="dpmpp_2m")
    steps: IntProperty(name="Steps", default=20, min=1, max=1000)
    guidance: FloatProperty(
        name="Guidance", default=2.0, min=0.0, max=20.0, description="Classifier-free guidance"
    )
    # A prompt's own default (rodin_core.pipeline.PROMPT_GUIDANCE): its avatars read closer to the prompt at 3.
    prompt_guidance: FloatProperty(
        name="Guidance",
        default=3.0,
        min=0.0,
        max=20.0,
        description="Classifier-free guidance for a prompt (3 follows the words more closely than 2)",
    )
    conditioning: EnumProperty(
        name="Condition",
        items=[
            ("NONE", "None", "Sample freely from the model"),
            ("IMAGE", "Image", "Follow a frontal portrait image"),
            ("TEXT", "Text", "Follow a description"),
        ],
        default="NONE",
    )
    image_path: StringProperty(name="Image", subtype="FILE_PATH", description="A frontal portrait (PNG/JPG)")
    image_guidance: FloatProperty(
        name="Match portrait",
        default=1.0,
        min=0.0,
        max=10.0,
        description="How strongly the avatar's front is pulled towards the portrait: yours, or for a prompt the one "
        "the model draws for it, twice as hard (0: its latent code alone; lower it for portraits not framed like "
        "the generator's frontal views). Adds ~9 s per avatar on 2 cores",
    )
    draw_glasses: BoolProperty(
        name="Draw glasses",
        default=False,
        description="When the prompt gives the avatar glasses, draw the frame on in 3D after sampling (the model "
        "draws glasses faintly). Adds ~26 s per avatar on 2 cores",
    )
    prompt: StringProperty(name="Prompt", description='e.g. "an old man with a grey beard and a cap"')
    edit_prompt: StringProperty(
        name="Edit", description='What to change, e.g. "add round glasses", "blond hair" or "remove the hat"'
    )
    edit_image: StringProperty(
        name="Edit image", subtype="FILE_PATH", description="Move towards this portrait"
    )
    edit_strength: FloatProperty(
        name="Strength",
        default=1.0,
        min=0.05,
        max=1.0,
        description="How much of the avatar (or of the named part) is re-imagined; for a hair colour "
        '("make the hair blond"), how much of the new colour the hair takes',
    )
    edit_local: BoolProperty(
        name="Only the named part",
        default=True,
        description='A prompt naming a part ("glasses", "hair", "beard", "shirt", "hat") leaves the rest untouched',
    )
    inbetweens: IntProperty(name="In-betweens", default=3, min=1, max=32)
    mesh_resolution: IntProperty(name="Mesh resolution", default=128, min=32, max=512)
    texture_size: IntProperty(name="Texture size", default=512, min=64, max=8192)
    max_faces: IntProperty(
        name="Face budget",
        default=20000,
        min=0,
        description="Decimate to this many faces (0 = keep all); more faces take longer to UV-unwrap",
    )
    shading: EnumProperty(
        name="Shading",
        items=SHADING_ITEMS,
        default="LIT",
        description="How new avatars' materials show the baked colours (Set Shading changes selected ones)",
    )
    # Runtime state (not saved as settings the user edits).
    running: BoolProperty(default=False, options={"SKIP_SAVE"})
    progress: FloatProperty(
        name="Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR", options={"SKIP_SAVE"}
    )
    stage: StringProperty(default="", options={"SKIP_SAVE"})
    preview_path: StringProperty(default="", options={"SKIP_SAVE"})
