"""Avatar (rodin_core) -> Blender mesh object with UVs, a packed baked texture and a material."""

from __future__ import annotations

import json
import os
import tempfile

import bpy
import numpy as np

COLLECTION = "Rodin Avatars"


def avatar_collection(scene: bpy.types.Scene) -> bpy.types.Collection:
    coll = bpy.data.collections.get(COLLECTION)
    if coll is None:
        coll = bpy.data.collections.new(COLLECTION)
    if coll.name not in scene.collection.children:
        scene.collection.children.link(coll)
    return coll


def texture_image(name: str, texture: np.ndarray) -> bpy.types.Image:
    """A packed sRGB PNG image from an (H, W, 3) uint8 array whose row 0 is the top."""
    from rodin_core.export import png_bytes

    # Written as a real PNG and packed, so the .blend is self-contained and the texture survives reloads.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{bpy.path.clean_name(name)}.png")
        with open(path, "wb") as fh:
            fh.write(png_bytes(texture))
        image = bpy.data.images.load(path)
        image.pack()
    image.name = name
    image.filepath_raw = f"//{os.path.basename(path)}"
    image.colorspace_settings.name = "sRGB"
    return image


# How an avatar's material shows its baked colours. The colours are what the model rendered, the lighting of
# the generator's scenes included, so "UNLIT" shows them as they are (like the NeRF previews), and exports to
# glTF as KHR_materials_unlit, the extension meant for captured lighting; "LIT" lets the scene's lights shade them.
SHADING_ITEMS = [
    ("LIT", "Lit", "Principled BSDF with the baked colours as base colour, shaded by the scene's lights"),
    (
        "UNLIT",
        "As rendered",
        "The baked colours as the model rendered them (their lighting included), unchanged by the scene's "
        "lights; glTF export writes KHR_materials_unlit",
    ),
]
SHADINGS = tuple(item[0] for item in SHADING_ITEMS)


def avatar_material(name: str, image: bpy.types.Image | None, shading: str = "LIT") -> bpy.types.Material:
    _check_shading(shading)
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    bsdf.inputs["Roughness"].default_value = 0.6
    if image is not None:
        source = nodes.new("ShaderNodeTexImage")
        source.image = image
    else:
        source = nodes.new("ShaderNodeAttribute")
        source.attribute_name = "Col"
    source.location = (-400, 250)
    links.new(source.outputs["Color"], bsdf.inputs["Base Color"])
    if shading == "UNLIT":
        # Blender's glTF exporter recognises a Background shader on a surface as an unlit material.
        unlit = nodes.new("ShaderNodeBackground")
        unlit.location = (-100, 450)
        links.new(source.outputs["Color"], unlit.inputs["Color"])
        output = next(n for n in nodes if n.type == "OUTPUT_MATERIAL")
        links.new(unlit.outputs["Background"], output.inputs["Surface"])
    mat["rodin_shading"] = shading
    return mat


def _check_shading(shading: str) -> None:
    if shading not in SHADINGS:
        raise ValueError(f"unknown shading {shading!r}; choose one of {', '.join(SHADINGS)}")


def set_shading(obj: bpy.types.Object, shading: str) -> None:
    """Gives an avatar object a new material of `shading` with the same baked texture."""
    old = obj.active_material
    image = None
    if old is not None and old.node_tree is not None:
        image = next((n.image for n in old.node_tree.nodes if n.type == "TEX_IMAGE"), None)
    mat = avatar_material(f"{obj.name}_material", image, shading)
    if obj.material_slots:
        obj.material_slots[0].material = mat
    else:
        obj.data.materials.append(mat)
    if old is not None and old.users == 0:
        bpy.data.materials.remove(old)
        # Made while the old one still held the name, the new material got a ".001" suffix: give it the name.
        mat.name = f"{obj.name}_material"


def avatar_to_object(
    avatar, name: str, scene: bpy.types.Scene, location=(0.0, 0.0, 0.0), shading: str = "LIT"
) -> bpy.types.Object:
    _check_shading(shading)
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(avatar.vertices.astype(np.float64), [], avatar.faces.astype(np.int64))
    if avatar.uvs is not None:
        uv = mesh.uv_layers.new(name="UVMap")
        uv.data.foreach_set("uv", avatar.uvs.astype(np.float32).ravel())
    if avatar.vertex_colors is not None:
        col = mesh.color_attributes.new("Col", "FLOAT_COLOR", "POINT")
        rgba = np.ones((len(avatar.vertices), 4), np.float32)
        rgba[:, :3] = avatar.vertex_colors
        col.data.foreach_set("color", rgba.ravel())
    mesh.validate()
    mesh.shade_smooth()
    image = texture_image(f"{name}_albedo", avatar.texture) if avatar.texture is not None else None
    mesh.materials.append(avatar_material(f"{name}_material", image, shading))
    obj = bpy.data.objects.new(name, mesh)
    obj.location = location
    avatar_collection(scene).objects.link(obj)
    meta = avatar.metadata or {}
    obj["rodin_seed"] = int(meta.get("seed", 0))
    obj["rodin_metadata"] = json.dumps(meta)
    planes = getattr(avatar, "planes", None)
    if planes is not None:
        # The avatar's NeRF (float16, ~200 kB at 64^2 x 8 channels) travels with the object: edits start from it
        # and an edited avatar can be edited again.
        obj[PLANES_KEY] = planes_to_bytes(planes)
        obj[PLANES_KEY + "_shape"] = list(planes.shape)
    return obj


PLANES_KEY = "rodin_planes"


def planes_to_bytes(planes) -> bytes:
    return np.ascontiguousarray(planes.detach().cpu().numpy(), dtype=np.float16).tobytes()


def carries_planes(obj) -> bool:
    """Whether the object carries its tri-planes (objects made before they were stored do not)."""
    return PLANES_KEY in obj and PLANES_KEY + "_shape" in obj


def stored_planes(obj) -> tuple[bytes, list[int]] | None:
    """The tri-planes an object carries (bytes and shape), or None for objects made before they were stored."""
    if not carries_planes(obj):
        return None
    return bytes(obj[PLANES_KEY]), [int(v) for v in obj[PLANES_KEY + "_shape"]]
