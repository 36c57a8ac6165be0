"""From the built extension zip to a textured avatar in a saved and reloaded .blend (the artist's path)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.blender]


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory):
    pytest.importorskip("bpy")
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "build_addon.py"), "--platform", "linux-x64", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "rodin_avatars-0.1.0-linux-x64.zip"


def test_install_generate_render_save_reload(extension_zip, tmp_path):
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "blender_user"), "PYTHONPATH": ""}
    out = tmp_path / "out"
    out.mkdir()
    # A clean interpreter without the repository on sys.path: rodin_core must come from the extension's wheel.
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            str(ROOT / "tests" / "blender_scripts" / "extension_e2e.py"),
            str(extension_zip),
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=1500,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("E2E_SUMMARY ")]
    assert proc.returncode == 0 and lines, (proc.stdout[-3000:], proc.stderr[-3000:])
    s = json.loads(lines[-1][len("E2E_SUMMARY ") :])
    assert s["install"] == ["FINISHED"] and s["enabled"]
    assert str(tmp_path / "blender_user") in s["rodin_core_file"]  # the bundled wheel, not the repo
    assert s["generate"] == ["FINISHED"] and s["avatars"] == 1
    assert s["faces"] > 1000 and s["uv_layers"] == 1 and s["packed"]
    assert s["collection"] == "Rodin Avatars"
    assert 0.2 < max(s["dimensions_m"]) < 0.8  # head and shoulders, in metres
    assert 0.05 < s["coverage"] < 0.9  # the avatar fills a sensible part of the frame
    assert s["render_rgb_std"] > 0.02  # not a flat silhouette
    assert s["reloaded_avatars"] == 1 and s["reloaded_texture_packed"]
    assert s["reloaded_texture_std"] > 0.02
