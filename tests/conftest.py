"""Test-wide setup: Blender never touches the user's real configuration."""

from __future__ import annotations

import os
import tempfile

# Must happen before the first `import bpy` anywhere in the test session.
_BLENDER_HOME = tempfile.mkdtemp(prefix="rodin-blender-user-")
os.environ["BLENDER_USER_RESOURCES"] = _BLENDER_HOME
os.environ.setdefault("OMP_NUM_THREADS", "2")
