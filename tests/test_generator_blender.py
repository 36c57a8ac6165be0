"""The Blender data generator through the `bpy` module: determinism, cameras, resume, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_scenes import generate_dataset  # noqa: E402
from blender_scenes.attributes import FAMILIES  # noqa: E402
from blender_scenes.camera_rig import camera_poses, intrinsics, project  # noqa: E402
from blender_scenes.dataset_writer import is_complete  # noqa: E402
from rodin_core.data import DatasetError  # noqa: E402

pytestmark = pytest.mark.blender
ROOT = Path(__file__).resolve().parent.parent


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGBA"), dtype=np.float32) / 255.0


def _generate(out: Path, *extra: str) -> int:
    return generate_dataset.main(
        ["--out", str(out), "--count", "2", "--seed", "3", "--views", "3", "--res", "32", "--quiet", *extra]
    )


def test_same_seed_same_record_and_pixels(tmp_path):
    assert _generate(tmp_path / "a", "--depth") == 0
    assert _generate(tmp_path / "b", "--depth") == 0
    for record in ("avatar_000000", "avatar_000001"):
        a, b = tmp_path / "a" / record, tmp_path / "b" / record
        assert json.loads((a / "attributes.json").read_text()) == json.loads(
            (b / "attributes.json").read_text()
        )
        for view in ("000", "001", "002"):
            pa, pb = _png(a / "images" / f"{view}.png"), _png(b / "images" / f"{view}.png")
            assert pa.shape == (32, 32, 4)
            assert np.abs(pa - pb).mean() < 1e-3
            # Something was drawn, and the background is transparent.
            assert 0.05 < pa[..., 3].mean() < 0.9
            depth = np.load(a / "depth" / f"{view}.npy")
            # Depth is where alpha is (the mask edges may differ by a pixel of antialiasing).
            assert ((depth > 0) == (pa[..., 3] > 0.5)).mean() > 0.93
    index = json.loads((tmp_path / "a" / "dataset.json").read_text())
    assert index["count"] == 2 and [r["id"] for r in index["records"]] == ["avatar_000000", "avatar_000001"]
    transforms = json.loads((tmp_path / "a" / "avatar_000000" / "transforms.json").read_text())
    assert transforms["frames"][0]["is_frontal"] and transforms["w"] == 32
    # The two avatars differ.
    assert (
        np.abs(
            _png(tmp_path / "a" / "avatar_000000" / "images" / "000.png")
            - _png(tmp_path / "a" / "avatar_000001" / "images" / "000.png")
        ).mean()
        > 1e-3
    )


def test_transforms_match_the_rendered_camera(tmp_path):
    """A bright marker at a known 3D point lands where camera_rig.project says, in every view."""
    from blender_scenes.renderer import ViewRenderer, setup_scene

    res = 96
    scene = setup_scene(res, samples=4, device="cpu")
    for name in [o.name for o in scene.objects if o.type == "LIGHT"]:
        bpy.data.objects.remove(bpy.data.objects[name])
    point = np.array([0.35, -0.25, 0.4])
    mesh = bpy.data.meshes.new("marker")
    import bmesh

    bm = bmesh.new()
    bmesh.ops.create_uvsphere(bm, u_segments=16, v_segments=8, radius=0.03)
    bm.to_mesh(mesh)
    bm.free()
    marker = bpy.data.objects.new("marker", mesh)
    marker.location = point.tolist()
    scene.collection.objects.link(marker)
    renderer = ViewRenderer(scene)
    intr = intrinsics(res)
    poses = camera_poses(seed=11, views=5)
    for k, c2w in enumerate(poses):
        path = tmp_path / f"{k}.png"
        renderer.render(c2w, path)
        alpha = _png(path)[..., 3]
        rows, cols = np.nonzero(alpha > 0.5)
        assert len(rows) > 3, f"marker not visible in view {k}"
        col, row = project(point, c2w, intr)
        # Pixel (c, r) covers [c, c+1): its centre is c + 0.5.
        assert abs(cols.mean() + 0.5 - col) < 0.6 and abs(rows.mean() + 0.5 - row) < 0.6, (k, col, row)


def test_frontal_view_looks_at_the_face():
    c2w = camera_poses(seed=5, views=4)[0]
    np.testing.assert_allclose(c2w[:3, 2], [0, -1, 0], atol=1e-9)  # camera +Z points back to -Y: it looks +Y
    assert c2w[1, 3] < 0


@pytest.mark.slow
def test_resume_after_a_killed_run(tmp_path):
    out = tmp_path / "data"
    cmd = [
        sys.executable,
        "-m",
        "blender_scenes.generate_dataset",
        "--out",
        str(out),
        "--count",
        "4",
        "--views",
        "2",
        "--res",
        "32",
        "--samples",
        "4",
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "avatar_000000").is_dir():
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / "avatar_000000").is_dir(), "the first record never appeared"
    # The killed run may leave a half-written temp folder; it must never look like a record.
    for entry in out.iterdir():
        if entry.name.startswith("avatar_"):
            assert is_complete(entry)
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "complete records" in done.stdout
    assert sorted(e.name for e in out.iterdir()) == [
        "avatar_000000",
        "avatar_000001",
        "avatar_000002",
        "avatar_000003",
        "dataset.json",
    ]
    assert json.loads((out / "dataset.json").read_text())["count"] == 4


def test_bad_input_is_explained(tmp_path, capsys):
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    assert _generate(tmp_path / "foreign") == 2
    assert "not a Rodin data set" in capsys.readouterr().err
    assert generate_dataset.main(["--out", str(tmp_path / "x"), "--count", "0"]) == 2
    assert "--count" in capsys.readouterr().err
    assert _generate(tmp_path / "ok") == 0
    # Resuming with other settings must not mix two kinds of records.
    assert (
        generate_dataset.main(["--out", str(tmp_path / "ok"), "--count", "2", "--seed", "3", "--res", "64"])
        == 2
    )
    assert "settings" in capsys.readouterr().err
    assert generate_dataset.main(["--out", str(tmp_path / "y"), "--count", "2", "--shard", "2/2"]) == 2


def test_variants_change_one_attribute_and_nothing_else(tmp_path, capsys):
    """A data set with --variants renders each avatar again from the same cameras with one family's value changed;
    the attribute classifier reads them as pairs."""
    from training.attribute_classifier import load_pairs

    out = tmp_path / "pairs"
    assert _generate(out, "--variants", "hair_color", "glasses") == 0
    record = out / "avatar_000000"
    meta = json.loads((record / "attributes.json").read_text())
    attrs, variants = meta["attributes"], meta["variants"]
    assert set(variants) == {"hair_color", "glasses"}
    assert all(variants[f] != attrs[f] for f in variants)
    for view in ("000", "001", "002"):
        base = _png(record / "images" / f"{view}.png")
        for family in variants:
            other = _png(record / "variants" / family / "images" / f"{view}.png")
            # Another look of the same avatar from the same camera: most pixels stay, and the front shows the change
            # (another view may look from behind the glasses).
            changed = np.abs(other[..., :3] - base[..., :3]).max(-1) > 0.1
            assert changed.mean() < 0.25 and (view != "000" or changed.mean() > 0), (
                family,
                view,
                changed.mean(),
            )
    assert json.loads((out / "dataset.json").read_text())["settings"]["variants"] == ["hair_color", "glasses"]

    pairs = load_pairs(out, ["avatar_000000", "avatar_000001"])
    assert pairs["before"].shape == pairs["after"].shape == (2 * 2 * 3, 3, 64, 64)
    families = list(FAMILIES)
    for i, k in enumerate(pairs["changed"].tolist()):
        family = families[k]
        # Only the changed family's label differs between the two images of a pair.
        differ = [f for f in FAMILIES if pairs["y_before"][f][i] != pairs["y_after"][f][i]]
        assert differ == [family]
    # --pair-min-change leaves out exactly the views whose variant moves fewer pixels, and says so when none is left.
    moved = pairs["moved"]
    assert len(moved) == len(pairs["before"]) and (moved > 0).any()
    threshold = int(moved.float().median()) + 1
    kept = load_pairs(out, ["avatar_000000", "avatar_000001"], min_change=threshold)
    assert len(kept["before"]) == int((moved >= threshold).sum()) and kept["dropped"] == int(
        (moved < threshold).sum()
    )
    assert 0 < kept["dropped"] < len(moved) and pairs["dropped"] == 0 and (kept["moved"] >= threshold).all()
    with pytest.raises(DatasetError, match="--pair-min-change"):
        load_pairs(out, ["avatar_000000"], min_change=64 * 64 + 1)

    # Resuming with other variants, or asking for a family that cannot change alone, is refused.
    assert _generate(out, "--variants", "hair_color") == 2
    assert "--variants" in capsys.readouterr().err
    assert _generate(tmp_path / "sex", "--variants", "sex") == 2
    assert "cannot change alone" in capsys.readouterr().err
    # A data set without variants is no pair data.
    assert _generate(tmp_path / "plain") == 0
    with pytest.raises(DatasetError, match="no variants"):
        load_pairs(tmp_path / "plain", ["avatar_000000"])


def test_part_labels_name_what_each_pixel_shows():
    """The labels the part segmenter learns from: a ray that hits the avatar gets its object's part, one that
    misses is background, in agreement with the depth map of the same camera."""
    from blender_scenes.attributes import draw_attributes
    from blender_scenes.avatar_factory import avatar_triangles, build_avatar, clear_avatar
    from blender_scenes.part_labels import object_part, part_label_maps
    from blender_scenes.renderer import depth_map
    from rodin_core.parts import PART_CLASSES

    attrs = {**draw_attributes(5), "hair_style": "short", "headwear": "cap", "glasses": "round"}
    attrs["facial_hair"] = "beard"
    clear_avatar()
    objects = build_avatar(attrs)
    poses, intr = camera_poses(0, 3), intrinsics(48)
    maps = part_label_maps(objects, poses, intr)
    assert maps.shape == (3, 48, 48) and maps.dtype == np.uint8
    vertices, faces = avatar_triangles(objects)
    for k, c2w in enumerate(poses):
        assert np.array_equal(maps[k] > 0, depth_map(vertices, faces, c2w, intr) > 0)
    front = maps[0]
    named = {PART_CLASSES[i] for i in np.unique(front)}
    assert {"background", "skin", "eyes", "headwear", "shirt", "glasses", "facial_hair"} <= named
    # The face's centre (the nose) is skin; the
    # cap is the top of the head's silhouette, the shirt its bottom.
    col, row = project(np.array([0.0, -1.0, 0.1]), poses[0], intr)
    assert PART_CLASSES[front[int(row), int(col)]] == "skin"
    rows = [r for r in range(48) if front[r].any()]
    for r, part in ((rows[0], "headwear"), (rows[-1], "shirt")):
        assert PART_CLASSES[np.bincount(front[r][front[r] > 0]).argmax()] == part
    with pytest.raises(ValueError, match="no part names"):
        mat = bpy.data.materials.new("rodin_unknown_thing")
        objects[0].data.materials[0] = mat
        object_part(objects[0])
    clear_avatar()


def test_looks_2_shows_age_on_the_face_and_looks_1_draws_as_before(tmp_path):
    """Looks 1 (the embedded model's data) draws every age alike; looks 2 draws a young face with larger eyes and
    rosy cheeks, an old one with lines and greying brows, and changes nothing but the face."""
    from blender_scenes.attributes import draw_attributes
    from blender_scenes.avatar_factory import build_avatar, clear_avatar
    from blender_scenes.part_labels import part_label_maps
    from blender_scenes.renderer import ViewRenderer, setup_scene
    from rodin_core.parts import PART_CLASSES

    base = {**draw_attributes(5), "hair_style": "bald", "headwear": "none", "glasses": "none"}
    base.update(facial_hair="none", earrings="none", skin_tone="light", hair_color="black")
    pose, intr = camera_poses(0, 1)[0], intrinsics(48)
    renderer = ViewRenderer(setup_scene(48, samples=16, device="cpu"))
    images, parts = {}, {}
    for looks in (1, 2):
        for age in FAMILIES["age"]:
            clear_avatar()
            objects = build_avatar({**base, "age": age}, looks)
            renderer.render(pose, tmp_path / f"{looks}_{age}.png")
            rgba = _png(tmp_path / f"{looks}_{age}.png")
            # Over white, as the models see it.
            images[looks, age] = rgba[..., :3] * rgba[..., 3:] + 1 - rgba[..., 3:]
            parts[looks, age] = part_label_maps(objects, [pose], intr)[0]
    clear_avatar()
    for age in FAMILIES["age"]:
        assert np.array_equal(images[1, age], images[1, "adult"]), age
    assert np.array_equal(images[2, "adult"], images[1, "adult"])

    face = [PART_CLASSES.index(p) for p in ("skin", "eyes", "brows")]
    adult = images[2, "adult"]
    for age in ("young", "old"):
        changed = np.abs(images[2, age] - adult).max(-1) > 0.05
        assert changed.sum() >= 10, (age, changed.sum())
        on_face = np.isin(parts[2, age], face) | np.isin(parts[2, "adult"], face)
        # A pixel next to the face's silhouette blends it in (labels are read at pixel centres only).
        on_face = on_face | np.roll(on_face, 1, 0) | np.roll(on_face, -1, 0) | np.roll(on_face, 1, 1)
        on_face = on_face | np.roll(on_face, -1, 1)
        assert on_face[changed].all(), age
        skin = changed & (parts[2, age] == PART_CLASSES.index("skin")) & (parts[2, "adult"] == parts[2, age])
        shift = (images[2, age] - adult)[skin].mean(0)  # the skin that stays skin: cheeks or lines
        if age == "young":
            assert shift[0] - shift[1] > 0.03, shift  # redder: the cheeks
        else:
            assert shift.mean() < -0.03, shift  # darker: the lines

    # A data set of looks 2 says so, record by record, and its avatars can change age alone.
    out = tmp_path / "aged"
    assert _generate(out, "--looks", "2", "--variants", "age") == 0
    assert json.loads((out / "dataset.json").read_text())["settings"]["looks"] == 2
    for record in sorted(out.glob("avatar_*")):
        meta = json.loads((record / "attributes.json").read_text())
        assert meta["looks"] == 2 and meta["variants"]["age"] != meta["attributes"]["age"]
        front, aged = (
            _png(record / "images" / "000.png"),
            _png(record / "variants" / "age" / "images" / "000.png"),
        )
        assert not np.array_equal(front, aged)
