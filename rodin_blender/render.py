"""Still renders of generated avatars with Cycles (previews for the README, galleries and tests)."""

from __future__ import annotations

import math

import bpy
import numpy as np
from mathutils import Vector


def frame_objects(
    scene: bpy.types.Scene, objects, azimuth_deg: float = 0.0, margin: float = 1.25
) -> bpy.types.Object:
    """A camera looking at the objects' bounding box from the front (-Y) rotated by azimuth, framing all of it."""
    corners = np.array([list(o.matrix_world @ Vector(c)) for o in objects for c in o.bound_box])
    centre = (corners.min(0) + corners.max(0)) / 2
    radius = float(np.linalg.norm(corners.max(0) - corners.min(0))) / 2
    cam_data = bpy.data.cameras.new("Rodin Preview Camera")
    cam_data.lens = 50.0
    cam = bpy.data.objects.new("Rodin Preview Camera", cam_data)
    scene.collection.objects.link(cam)
    fov = 2 * math.atan(cam_data.sensor_width / (2 * cam_data.lens))
    distance = margin * radius / math.sin(fov / 2)
    az = math.radians(azimuth_deg)
    cam.location = Vector(centre) + Vector((math.sin(az) * distance, -math.cos(az) * distance, 0.15 * radius))
    direction = Vector(centre) - cam.location
    cam.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
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
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = path
    bpy.ops.render.render(write_still=True)
