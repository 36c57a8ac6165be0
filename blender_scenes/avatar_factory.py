"""Builds a stylised head-and-shoulders avatar in the current Blender scene from its attributes.

Parts are made with bmesh (no operator context needed, so it works in `blender -b` and in the bpy
module alike) and live in one collection that `clear_avatar` empties between records. The avatar fits
in [-1, 1]^3 with the face towards -Y (docs/CONVENTIONS.md).

`looks` versions what the factory draws, so a data set can be rendered again exactly as before: looks 1 draws
every age with the same face (the embedded model's training data; age showed only in the hair colour its draw
favours), looks 2 shows age on the face (AGE_LOOKS).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bmesh
import bpy
import numpy as np
from mathutils import Matrix, Vector

from .attributes import EYE_RGB, HAIR_RGB, LOOKS, SHIRT_RGB, SKIN_RGB

COLLECTION = "RodinAvatar"
HEAD_CENTRE = Vector((0.0, 0.0, 0.15))


@dataclass(frozen=True)
class AgeLook:
    """How an age shows on the face: feature sizes relative to an adult's, and marks drawn on the skin. The cues
    are large enough to read in the data set's 64 px renders (the head is about 27 px wide there)."""

    eyes: float = 1.0
    nose: float = 1.0
    ears: float = 1.0
    blush: bool = False  # rosy cheeks
    lines: bool = False  # eye bags, smile lines, forehead lines
    brows_grey: float = 0.0  # how far the eyebrows fade from the hair colour towards grey


AGE_LOOKS = {
    "young": AgeLook(eyes=1.2, nose=0.8, ears=0.92, blush=True),
    "adult": AgeLook(),
    "old": AgeLook(eyes=0.95, nose=1.15, ears=1.15, lines=True, brows_grey=0.5),
}
GREY = (0.7, 0.7, 0.7)
BLUSH = (0.95, 0.35, 0.4)


def _mix(a, b, t: float) -> tuple[float, ...]:
    return tuple((1 - t) * x + t * y for x, y in zip(a, b))


def _linear(rgb) -> tuple[float, float, float, float]:
    return (*(float(c) ** 2.2 for c in rgb), 1.0)


class _Builder:
    def __init__(self, attrs: dict[str, Any], looks: int) -> None:
        if looks not in LOOKS:
            raise ValueError(f"looks must be one of {LOOKS}; got {looks!r}")
        self.attrs = attrs
        self.age = AGE_LOOKS[attrs["age"]] if looks >= 2 else AGE_LOOKS["adult"]
        shape = attrs["shape"]
        self.ear_size = shape["ear_size"] * self.age.ears
        self.rx = 0.40 * shape["head_width"]
        self.ry = 0.44 * shape["head_depth"]
        self.rz = 0.50 * shape["head_height"]
        self.collection = bpy.data.collections.get(COLLECTION) or bpy.data.collections.new(COLLECTION)
        if self.collection.name not in bpy.context.scene.collection.children:
            bpy.context.scene.collection.children.link(self.collection)
        self.materials: dict[str, bpy.types.Material] = {}

    # -- materials -------------------------------------------------------------------------------

    def material(self, name: str, rgb, roughness: float = 0.5, metallic: float = 0.0, sheen: float = 0.0):
        key = f"rodin_{name}"
        if key in self.materials:
            return self.materials[key]
        mat = bpy.data.materials.new(key)
        mat.use_nodes = True
        bsdf = mat.node_tree.nodes.get("Principled BSDF")
        bsdf.inputs["Base Color"].default_value = _linear(rgb)
        bsdf.inputs["Roughness"].default_value = roughness
        bsdf.inputs["Metallic"].default_value = metallic
        if sheen and "Sheen Weight" in bsdf.inputs:
            bsdf.inputs["Sheen Weight"].default_value = sheen
        mat.diffuse_color = _linear(rgb)
        self.materials[key] = mat
        return mat

    # -- geometry helpers -------------------------------------------------------------------------

    def add(self, name: str, bm: bmesh.types.BMesh, mat, smooth: bool = True) -> bpy.types.Object:
        mesh = bpy.data.meshes.new(name)
        bm.to_mesh(mesh)
        bm.free()
        for poly in mesh.polygons:
            poly.use_smooth = smooth
        mesh.materials.append(mat)
        obj = bpy.data.objects.new(name, mesh)
        self.collection.objects.link(obj)
        return obj

    @staticmethod
    def sphere(segments: int = 32, rings: int = 16) -> bmesh.types.BMesh:
        bm = bmesh.new()
        bmesh.ops.create_uvsphere(bm, u_segments=segments, v_segments=rings, radius=1.0)
        return bm

    @staticmethod
    def transform(bm, scale=(1, 1, 1), location=(0, 0, 0), rotation: Matrix | None = None) -> None:
        mat = Matrix.Translation(Vector(location))
        if rotation is not None:
            mat = mat @ rotation.to_4x4()
        mat = mat @ Matrix.Diagonal((*scale, 1.0))
        bmesh.ops.transform(bm, matrix=mat, verts=bm.verts)

    @staticmethod
    def keep(bm, predicate: Callable[[Vector], bool]) -> None:
        doomed = [v for v in bm.verts if not predicate(v.co)]
        bmesh.ops.delete(bm, geom=doomed, context="VERTS")

    def ellipsoid(
        self, name, scale, location, mat, rotation=None, segments=24, rings=12, keep=None, smooth=True
    ):
        bm = self.sphere(segments, rings)
        self.transform(bm, scale, location, rotation)
        if keep is not None:
            self.keep(bm, keep)
        return self.add(name, bm, mat, smooth)

    def cylinder(
        self, name, radius, depth, location, mat, rotation=None, segments=24, radius2=None, scale=(1, 1, 1)
    ):
        bm = bmesh.new()
        bmesh.ops.create_cone(
            bm,
            cap_ends=True,
            segments=segments,
            radius1=radius,
            radius2=radius if radius2 is None else radius2,
            depth=depth,
        )
        self.transform(bm, scale, location, rotation)
        return self.add(name, bm, mat, smooth=True)

    def torus(
        self,
        name,
        major,
        minor,
        location,
        mat,
        rotation=None,
        major_segments=24,
        minor_segments=8,
        scale=(1, 1, 1),
    ):
        bm = bmesh.new()
        verts = []
        for i in range(major_segments):
            a = 2 * math.pi * i / major_segments + (math.pi / major_segments if major_segments == 4 else 0)
            for j in range(minor_segments):
                b = 2 * math.pi * j / minor_segments
                r = major + minor * math.cos(b)
                verts.append(bm.verts.new((r * math.cos(a), r * math.sin(a), minor * math.sin(b))))
        for i in range(major_segments):
            for j in range(minor_segments):
                i2, j2 = (i + 1) % major_segments, (j + 1) % minor_segments
                bm.faces.new(
                    (
                        verts[i * minor_segments + j],
                        verts[i2 * minor_segments + j],
                        verts[i2 * minor_segments + j2],
                        verts[i * minor_segments + j2],
                    )
                )
        self.transform(bm, scale, location, rotation)
        return self.add(name, bm, mat, smooth=major_segments != 4)

    def surface_y(self, x: float, z: float, inset: float = 0.0) -> float:
        """Front surface (y < 0) of the head ellipsoid at (x, z), moved `inset` inwards."""
        t = 1.0 - (x / self.rx) ** 2 - ((z - HEAD_CENTRE.z) / self.rz) ** 2
        return -self.ry * math.sqrt(max(t, 0.0)) + inset

    # -- parts -----------------------------------------------------------------------------------

    def head(self) -> None:
        a, shape = self.attrs, self.attrs["shape"]
        skin = self.material("skin", SKIN_RGB[a["skin_tone"]], roughness=0.55)
        bm = self.sphere(40, 24)
        self.transform(bm, (self.rx, self.ry, self.rz), HEAD_CENTRE)
        jaw = shape["jaw_width"]
        for v in bm.verts:
            below = (HEAD_CENTRE.z - v.co.z) / self.rz
            if below > 0:
                # Narrow (or widen) the lower half towards the chin and pull the chin a little forward.
                v.co.x *= 1.0 - (1.0 - jaw) * below * 0.9 - 0.12 * below**2
                if v.co.y < 0:
                    v.co.y *= 1.0 + 0.08 * below
        self.add("head", bm, skin)

        ear_s = self.ear_size
        for side in (-1, 1):
            self.ellipsoid(
                f"ear_{side}",
                (0.035, 0.07 * ear_s, 0.11 * ear_s),
                (side * (self.rx - 0.005), 0.02, HEAD_CENTRE.z + 0.0),
                skin,
                segments=16,
                rings=8,
            )
        nose = shape["nose_size"] * self.age.nose
        nz = HEAD_CENTRE.z - 0.06
        self.ellipsoid(
            "nose",
            (0.05 * nose, 0.07 * nose, 0.1 * nose),
            (0, self.surface_y(0, nz) - 0.015 * nose, nz),
            skin,
            segments=16,
            rings=8,
        )
        skin_rgb = SKIN_RGB[a["skin_tone"]]
        lips = self.material("lips", (skin_rgb[0] * 0.85, skin_rgb[1] * 0.5, skin_rgb[2] * 0.5), 0.45)
        mz = HEAD_CENTRE.z - 0.2
        self.ellipsoid(
            "mouth",
            (0.09 * jaw, 0.03, 0.022),
            (0, self.surface_y(0, mz) + 0.01, mz),
            lips,
            segments=16,
            rings=8,
        )

        white = self.material("eye_white", (0.95, 0.95, 0.95), 0.2)
        iris = self.material("iris", EYE_RGB[a["eye_color"]], 0.25)
        pupil = self.material("pupil", (0.02, 0.02, 0.02), 0.2)
        ez = HEAD_CENTRE.z + 0.05
        e = self.age.eyes
        for side in (-1, 1):
            ex = side * 0.15 * shape["head_width"]
            ey = self.surface_y(ex, ez) + 0.035
            self.ellipsoid(
                f"eye_{side}", (0.062 * e, 0.04, 0.05 * e), (ex, ey, ez), white, segments=16, rings=8
            )
            self.ellipsoid(
                f"iris_{side}", (0.034 * e, 0.02, 0.034 * e), (ex, ey - 0.03, ez), iris, segments=12, rings=6
            )
            self.ellipsoid(
                f"pupil_{side}",
                (0.015 * e, 0.01, 0.015 * e),
                (ex, ey - 0.045, ez),
                pupil,
                segments=8,
                rings=4,
            )
        if self.age.blush:
            self.cheeks()
        if self.age.lines:
            self.age_lines()

        brows = _mix(HAIR_RGB[a["hair_color"]], GREY, self.age.brows_grey)
        brow_mat = self.material("brows", brows, 0.7)
        thickness = {"thin": 0.012, "thick": 0.024, "bushy": 0.036}[a["eyebrows"]]
        bz = ez + 0.085
        for side in (-1, 1):
            bx = side * 0.15 * shape["head_width"]
            rot = Matrix.Rotation(side * 0.12, 3, "Y")
            self.ellipsoid(
                f"brow_{side}",
                (0.075, 0.02, thickness),
                (bx, self.surface_y(bx, bz) - 0.005, bz),
                brow_mat,
                rotation=rot,
                segments=12,
                rings=6,
            )

    def mark(self, name: str, x: float, z: float, size, mat, tilt: float = 0.0) -> None:
        """A flat ellipsoid lying on the face at (x, z), tilted `tilt` radians in the face's plane."""
        rotation = Matrix.Rotation(math.atan2(x, self.ry) * 0.8, 3, "Z") @ Matrix.Rotation(tilt, 3, "Y")
        self.ellipsoid(
            name, size, (x, self.surface_y(x, z) - 0.004, z), mat, rotation=rotation, segments=12, rings=6
        )

    def cheeks(self) -> None:
        skin = SKIN_RGB[self.attrs["skin_tone"]]
        blush = self.material("blush", _mix(skin, BLUSH, 0.45), 0.55)
        for side in (-1, 1):
            self.mark(f"cheek_{side}", side * 0.2, HEAD_CENTRE.z - 0.07, (0.06, 0.012, 0.045), blush)

    def age_lines(self) -> None:
        skin = SKIN_RGB[self.attrs["skin_tone"]]
        line = self.material("wrinkles", tuple(0.5 * c for c in skin), 0.7)
        c, width = HEAD_CENTRE, self.attrs["shape"]["head_width"]
        for side in (-1, 1):
            ex = side * 0.15 * width
            self.mark(f"eye_bag_{side}", ex, c.z - 0.015, (0.055, 0.01, 0.014), line)
            # Smile lines from the nose's wings down past the mouth's corners.
            self.mark(f"smile_line_{side}", side * 0.115, c.z - 0.14, (0.013, 0.01, 0.075), line, -side * 0.3)
        for k in range(3):
            self.mark(f"forehead_line_{k}", 0.0, c.z + 0.19 + 0.03 * k, (0.16 - 0.02 * k, 0.01, 0.008), line)

    def body(self) -> None:
        a, shape = self.attrs, self.attrs["shape"]
        skin = self.material("skin", SKIN_RGB[a["skin_tone"]], roughness=0.55)
        shirt = self.material("shirt", SHIRT_RGB[a["shirt_color"]], roughness=0.8, sheen=0.3)
        self.cylinder("neck", 0.15, 0.6, (0, 0.03, -0.42), skin)
        sw = shape["shoulder_width"]
        self.ellipsoid(
            "torso",
            (0.82 * sw, 0.36, 0.5),
            (0, 0.05, -1.02),
            shirt,
            segments=40,
            rings=20,
            keep=lambda co: co.z > -0.985,
        )
        if a["clothing"] == "turtleneck":
            self.cylinder("collar", 0.175, 0.3, (0, 0.03, -0.5), shirt)
        elif a["clothing"] == "collared_shirt":
            for side in (-1, 1):
                rot = Matrix.Rotation(side * 0.5, 3, "Y") @ Matrix.Rotation(0.5, 3, "X")
                self.ellipsoid(
                    f"collar_{side}",
                    (0.09, 0.02, 0.1),
                    (side * 0.1, -0.15, -0.56),
                    shirt,
                    rotation=rot,
                    segments=8,
                    rings=4,
                )
            self.torus("collar_band", 0.16, 0.03, (0, 0.03, -0.6), shirt)
        else:
            self.torus("neckline", 0.18, 0.025, (0, 0.05, -0.62), shirt)

    def hair(self) -> None:
        a = self.attrs
        style = a["hair_style"]
        if style == "bald":
            return
        mat = self.material("hair", HAIR_RGB[a["hair_color"]], roughness=0.6, sheen=0.5)
        c = HEAD_CENTRE
        rx, ry, rz = self.rx, self.ry, self.rz
        hat = a["headwear"] != "none"
        # Hair hidden under a hat is left out so the hat silhouette is what shows.
        top_limit = (lambda co: co.z < c.z + 0.3 * rz) if hat else (lambda co: True)

        def face_free(co, brow=0.32):
            return not (co.y < -0.15 and co.z < c.z + brow * rz)

        if style == "buzz":
            self.ellipsoid(
                "hair",
                (rx * 1.03, ry * 1.03, rz * 1.02),
                c,
                mat,
                segments=36,
                rings=18,
                keep=lambda co: (
                    co.z > c.z + 0.02 - 0.3 * max(co.y, 0) and face_free(co, 0.42) and top_limit(co)
                ),
            )
        elif style == "short":
            self.ellipsoid(
                "hair",
                (rx * 1.08, ry * 1.08, rz * 1.1),
                c + Vector((0, 0.02, 0.02)),
                mat,
                segments=36,
                rings=18,
                keep=lambda co: (
                    co.z > c.z - 0.12 - 0.4 * max(co.y, 0) and face_free(co, 0.45) and top_limit(co)
                ),
            )
        elif style == "bob":
            self.ellipsoid(
                "hair",
                (rx * 1.16, ry * 1.12, rz * 1.1),
                c + Vector((0, 0.03, 0.0)),
                mat,
                segments=36,
                rings=18,
                keep=lambda co: co.z > c.z - 0.42 and face_free(co, 0.38) and top_limit(co),
            )
        elif style == "long":
            self.ellipsoid(
                "hair",
                (rx * 1.12, ry * 1.1, rz * 1.08),
                c + Vector((0, 0.03, 0.0)),
                mat,
                segments=36,
                rings=18,
                keep=lambda co: face_free(co, 0.36) and top_limit(co),
            )
            self.ellipsoid(
                "hair_back", (rx * 0.95, 0.2, 0.5), (0, 0.25, c.z - 0.55), mat, segments=24, rings=12
            )
        elif style == "bun":
            self.ellipsoid(
                "hair",
                (rx * 1.05, ry * 1.05, rz * 1.04),
                c,
                mat,
                segments=36,
                rings=18,
                keep=lambda co: co.z > c.z - 0.2 - 0.3 * max(co.y, 0) and face_free(co, 0.42),
            )
            self.ellipsoid("bun", (0.17, 0.17, 0.16), (0, 0.33, c.z + 0.42), mat, segments=20, rings=10)
        elif style == "mohawk":
            self.ellipsoid(
                "hair", (0.07, ry * 0.95, rz * 0.35), (0, 0.04, c.z + rz * 0.88), mat, segments=20, rings=10
            )
            self.ellipsoid(
                "hair_sides",
                (rx * 1.01, ry * 1.01, rz * 1.0),
                c,
                mat,
                segments=36,
                rings=18,
                keep=lambda co: c.z - 0.05 < co.z < c.z + 0.35 * rz and co.y > -0.1,
            )

    def facial_hair(self) -> None:
        a = self.attrs
        kind = a["facial_hair"]
        if kind == "none":
            return
        mat = self.material("facial_hair", HAIR_RGB[a["hair_color"]], roughness=0.7, sheen=0.5)
        c = HEAD_CENTRE
        mz = c.z - 0.145
        if kind == "moustache":
            self.ellipsoid(
                "moustache",
                (0.1, 0.03, 0.028),
                (0, self.surface_y(0, mz) - 0.005, mz),
                mat,
                segments=16,
                rings=8,
            )
        else:
            jaw = a["shape"]["jaw_width"]
            self.ellipsoid(
                "beard",
                (self.rx * 1.02 * min(jaw, 1.0) + 0.02, self.ry * 1.06, self.rz * 1.04),
                c,
                mat,
                segments=36,
                rings=18,
                keep=lambda co: (
                    co.y < 0.05
                    and co.z < c.z - 0.05
                    and not (abs(co.x) < 0.07 and abs(co.z - (c.z - 0.2)) < 0.03)
                ),
            )
            self.ellipsoid(
                "moustache",
                (0.1, 0.03, 0.03),
                (0, self.surface_y(0, mz) - 0.01, mz),
                mat,
                segments=16,
                rings=8,
            )

    def glasses(self) -> None:
        a = self.attrs
        kind = a["glasses"]
        if kind == "none":
            return
        frame = self.material("glasses", (0.05, 0.05, 0.06), roughness=0.3, metallic=0.6)
        ez = HEAD_CENTRE.z + 0.05
        facing = Matrix.Rotation(math.pi / 2, 3, "X")
        segments = 24 if kind == "round" else 4
        major = 0.085 if kind == "round" else 0.105
        front_y = 0.0
        for side in (-1, 1):
            ex = side * 0.15 * self.attrs["shape"]["head_width"]
            front_y = self.surface_y(ex, ez) - 0.05
            self.torus(
                f"lens_rim_{side}",
                major,
                0.014,
                (ex, front_y, ez),
                frame,
                rotation=facing,
                major_segments=segments,
                minor_segments=6,
            )
            # Temples run back to the ears along the side of the head.
            self.cylinder(
                f"temple_{side}",
                0.012,
                self.ry + 0.05,
                (side * (self.rx + 0.02), front_y / 2 + 0.02, ez + 0.02),
                frame,
                rotation=Matrix.Rotation(math.pi / 2, 3, "X"),
                segments=6,
            )
        self.cylinder(
            "bridge",
            0.012,
            0.1,
            (0, front_y - 0.01, ez + 0.02),
            frame,
            rotation=Matrix.Rotation(math.pi / 2, 3, "Y"),
            segments=6,
        )

    def headwear(self) -> None:
        a = self.attrs
        kind = a["headwear"]
        if kind == "none":
            return
        mat = self.material("headwear", a["headwear_rgb"], roughness=0.75, sheen=0.3)
        c = HEAD_CENTRE
        rx, ry, rz = self.rx, self.ry, self.rz
        if kind == "cap":
            self.ellipsoid(
                "cap",
                (rx * 1.1, ry * 1.1, rz * 1.08),
                c,
                mat,
                segments=32,
                rings=16,
                keep=lambda co: co.z > c.z + 0.25 * rz,
            )
            self.cylinder(
                "cap_brim",
                0.2,
                0.02,
                (0, -ry - 0.1, c.z + 0.3 * rz),
                mat,
                scale=(1.0, 0.9, 1.0),
                rotation=Matrix.Rotation(-0.15, 3, "X"),
                segments=24,
            )
        elif kind == "beanie":
            self.ellipsoid(
                "beanie",
                (rx * 1.12, ry * 1.12, rz * 1.18),
                c,
                mat,
                segments=32,
                rings=16,
                keep=lambda co: co.z > c.z + 0.22 * rz,
            )
            self.torus(
                "beanie_rim",
                1.0,
                0.06,
                (0, 0, c.z + 0.3 * rz),
                mat,
                scale=(rx * 1.08, ry * 1.08, 1.0),
                major_segments=32,
            )
        else:  # top hat
            crown_bottom = c.z + 0.62 * rz
            height = min(0.3, 0.97 - crown_bottom)
            self.cylinder(
                "hat_crown", rx * 0.8, height, (0, 0.0, crown_bottom + height / 2), mat, segments=28
            )
            self.cylinder("hat_brim", rx * 1.25, 0.025, (0, 0.0, crown_bottom), mat, segments=28)

    def earrings(self) -> None:
        kind = self.attrs["earrings"]
        if kind == "none":
            return
        metal = self.material("earrings", (0.95, 0.78, 0.3), roughness=0.2, metallic=1.0)
        ear_s = self.ear_size
        z = HEAD_CENTRE.z - 0.1 * ear_s
        for side in (-1, 1):
            x = side * (self.rx + 0.02)
            if kind == "studs":
                self.ellipsoid(
                    f"stud_{side}", (0.025, 0.025, 0.025), (x, -0.01, z), metal, segments=10, rings=6
                )
            else:
                self.torus(
                    f"hoop_{side}",
                    0.045,
                    0.01,
                    (x, -0.01, z - 0.045),
                    metal,
                    rotation=Matrix.Rotation(math.pi / 2, 3, "Y"),
                    major_segments=16,
                    minor_segments=6,
                )


def build_avatar(attrs: dict[str, Any], looks: int = 1) -> list[bpy.types.Object]:
    """Creates the avatar's objects in the collection COLLECTION and returns them (`looks`: the module's note)."""
    builder = _Builder(attrs, looks)
    builder.head()
    builder.body()
    builder.hair()
    builder.facial_hair()
    builder.glasses()
    builder.headwear()
    builder.earrings()
    return list(builder.collection.objects)


def clear_avatar() -> None:
    """Removes the previous avatar's objects, meshes and materials so records never leak into each other."""
    collection = bpy.data.collections.get(COLLECTION)
    if collection is not None:
        for obj in list(collection.objects):
            mesh = obj.data
            bpy.data.objects.remove(obj, do_unlink=True)
            if mesh is not None and mesh.users == 0:
                bpy.data.meshes.remove(mesh)
    for mat in list(bpy.data.materials):
        if mat.name.startswith("rodin_") and mat.users == 0:
            bpy.data.materials.remove(mat)


def avatar_triangles(objects: list[bpy.types.Object]) -> tuple[np.ndarray, np.ndarray]:
    """All parts joined into one triangle mesh in world (scene) coordinates: (V, 3) float32, (F, 3) int32."""
    all_verts, all_faces, offset = [], [], 0
    for verts, tris in object_triangles(objects):
        all_verts.append(verts)
        all_faces.append(tris + offset)
        offset += len(verts)
    return np.concatenate(all_verts), np.concatenate(all_faces)


def object_triangles(objects: list[bpy.types.Object]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each object's triangles in world (scene) coordinates: [(V, 3) float32, (F, 3) int32] in `objects` order."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    out = []
    for obj in objects:
        evaluated = obj.evaluated_get(depsgraph)
        mesh = evaluated.to_mesh()
        mesh.calc_loop_triangles()
        verts = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", verts)
        verts = verts.reshape(-1, 3)
        mat = np.array(obj.matrix_world, dtype=np.float32)
        verts = verts @ mat[:3, :3].T + mat[:3, 3]
        tris = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int32)
        mesh.loop_triangles.foreach_get("vertices", tris)
        out.append((verts, tris.reshape(-1, 3)))
        evaluated.to_mesh_clear()
    return out
