"""Still renders of generated avatars with Cycles (previews for the README, galleries and tests)."""

from __future__ import annotations

import math

import bpy
import numpy as np
from mathutils import Vector


def frame_objects(
    scene: bpy.types.Scene, objects, azimuth_deg: float = 0.0, margin: float = 1.1
) -> bpy.types.Object:
    """A camera looking at the objects' bounding box from the front (-Y) rotated by azimuth, slightly from
    above, at the distance where the box's extent across the image fills it up to `margin`."""
    corners = np.array([list(o.matrix_world @ Vector(c)) for o in objects for c in o.bound_box])
    centre = (corners.min(0) + corners.max(0)) / 2
    cam_data = bpy.data.cameras.new("Rodin Preview Camera")
    cam_data.lens = 50.0
    cam = bpy.data.objects.new("Rodin Preview Camera", cam_data)
    scene.collection.objects.link(cam)
    az = math.radians(azimuth_deg)
    view = Vector((-math.sin(az), math.cos(az), -0.1)).normalized()  # from the camera towards the objects
    right = view.cross(Vector((0.0, 0.0, 1.0))).normalized()
    up = right.cross(view)
    offsets = corners - centre
    half_across = max(np.abs(offsets @ np.array(right)).max(), np.abs(offsets @ np.array(up)).max())
    half_depth = float(np.abs(offsets @ np.array(view)).max())
    # A square render: the sensor width spans the field of view on both axes.
    half_fov = math.atan(cam_data.sensor_width / (2 * cam_data.lens))
    distance = margin * float(half_across) / math.tan(half_fov) + half_depth
    cam.location = Vector(centre) - view * distance
    cam.rotation_euler = view.to_track_quat("-Z", "Y").to_euler()
    scene.camera = cam
    return cam


def add_lights(scene: bpy.types.Scene) -> None:
    key = bpy.data.objects.new("Rodin Key Light", bpy.data.lights.new("Rodin Key Light", "SUN"))
    key.data.energy = 3.0
    key.rotation_euler = (math.radians(50), 0.0, math.radians(-30))
    scene.collection.objects.link(key)
    world = scene.world or bpy.data.worlds.new("Rodin World")
    scene.world = world
    world.color = (0.6, 0.6, 0.6)


def render_still(
    scene: bpy.types.Scene, path: str, size: int = 256, samples: int = 16, transparent=True
) -> None:
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = transparent
    # AgX, Blender's default view transform, desaturates bright colours; the textures hold the colours the
    # avatar's renders had (themselves rendered with Standard, blender_scenes.renderer), so show them as they are.
    scene.view_settings.view_transform = "Standard"
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = path
    bpy.ops.render.render(write_still=True)
