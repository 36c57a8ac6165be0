"""Rodin core: the tri-plane avatar model and everything it does, with no dependency on Blender."""

__version__ = "0.1.0"
