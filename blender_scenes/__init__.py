"""Blender-side data generation: avatar factory, camera rig, renderer, data set writer."""
