"""Marching cubes, clean-up, UV baking and file export on analytic fields with known answers."""

import json

import numpy as np
import pytest
import torch
import trimesh

from rodin_core.avatar import Avatar
from rodin_core.decoder import TriplaneField
from rodin_core.export import write_avatar
from rodin_core.mesh import (
    MeshConfig,
    decimate,
    extract_mesh,
    keep_main_components,
    marching_cubes,
    vertex_normals,
)
from rodin_core.texture import bake_texture, rasterize_uv


def sphere_density(radius=0.5, centre=(0.0, 0.0, 0.0)):
    c = torch.tensor(centre)
    return lambda p: 10.0 * torch.exp(30.0 * (radius - (p - c).norm(dim=-1)))


def test_marching_cubes_sphere_radius_and_orientation():
    verts, faces = extract_mesh(sphere_density(0.5), MeshConfig(resolution=64))
    radii = np.linalg.norm(verts, axis=1)
    assert radii.mean() == pytest.approx(0.5, abs=0.01)
    assert radii.std() < 0.01
    mesh = trimesh.Trimesh(verts, faces)
    assert mesh.is_watertight and mesh.volume > 0  # closed, faces wound outwards
    normals = vertex_normals(verts, faces)
    assert ((normals * verts).sum(1) > 0).mean() > 0.99


def test_floaters_are_removed_and_decimation_meets_the_budget():
    big, small = sphere_density(0.5), sphere_density(0.08, (0.8, 0.8, 0.8))
    volume_fn = lambda p: big(p) + small(p)  # noqa: E731
    verts, faces = extract_mesh(volume_fn, MeshConfig(resolution=64, keep_ratio=0.1))
    assert np.linalg.norm(verts, axis=1).max() < 0.6  # the small blob is gone
    v2, f2 = decimate(verts, faces, 1000)
    assert 800 <= len(f2) <= 1100
    assert np.linalg.norm(v2, axis=1).mean() == pytest.approx(0.5, abs=0.02)
    both = keep_main_components(*marching_cubes(np.pad(np.ones((8, 8, 8)), 4) * 20, 10.0), keep_ratio=0.0)
    assert len(both[1]) > 0


def test_empty_field_is_explained():
    with pytest.raises(ValueError, match="no surface"):
        extract_mesh(lambda p: torch.zeros(len(p)), MeshConfig(resolution=32))
    with pytest.raises(ValueError, match="between 16 and 512"):
        extract_mesh(sphere_density(), MeshConfig(resolution=8))


def colour_field(points, dirs):
    return points * 0.5 + 0.5  # colour = position: every texel can be checked against its 3D point


def test_baked_texture_matches_the_colour_field():
    verts, faces = extract_mesh(sphere_density(0.5), MeshConfig(resolution=48))
    normals = vertex_normals(verts, faces)
    uvs, texture = bake_texture(verts, faces, normals, colour_field, 256)
    assert uvs.shape == (len(faces), 3, 2) and texture.shape == (256, 256, 3)
    # Sample the texture at face centroids in UV space and compare with the field at the 3D centroid.
    rng = np.random.default_rng(0)
    pick = rng.choice(len(faces), 300, replace=False)
    uv = uvs[pick].mean(1)
    col = np.clip((uv[:, 0] * 256).astype(int), 0, 255)
    row = np.clip(((1 - uv[:, 1]) * 256).astype(int), 0, 255)
    got = texture[row, col] / 255.0
    expected = colour_field(verts[faces[pick]].mean(1), None)
    assert np.abs(got - expected).mean() < 0.03


def test_rasterizer_covers_a_triangle_exactly():
    uvs = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    face_id, bary = rasterize_uv(uvs, np.array([[0, 1, 2]]), 64)
    covered = face_id >= 0
    assert abs(covered.mean() - 0.5) < 0.03  # half the square
    assert np.allclose(bary[covered].sum(-1), 1.0, atol=1e-5)
    assert covered[-1, 0] and not covered[0, -1]  # bottom-left (v = 0) in, top-right out


@pytest.fixture(scope="module")
def textured_avatar():
    verts, faces = extract_mesh(sphere_density(0.5), MeshConfig(resolution=32))
    normals = vertex_normals(verts, faces)
    uvs, texture = bake_texture(verts, faces, normals, colour_field, 128)
    return Avatar(verts * 0.25, faces, uvs, texture, metadata={"seed": 3, "settings": {"steps": 20}})


def test_glb_round_trip_keeps_texture_and_axes(textured_avatar, tmp_path):
    paths = write_avatar(textured_avatar, tmp_path, "a", "glb")
    assert {p.name for p in paths} == {"a.glb", "a.json"}
    scene = trimesh.load(tmp_path / "a.glb")
    mesh = next(iter(scene.geometry.values()))
    image = np.asarray(mesh.visual.material.baseColorTexture)
    assert image.shape[:2] == (128, 128)
    assert np.abs(image[..., :3].astype(int) - textured_avatar.texture.astype(int)).max() <= 1
    # Y-up in the file: the avatar's +Z (top) is the file's +Y.
    top = textured_avatar.vertices[:, 2].argmax()
    assert mesh.vertices[:, 1].max() == pytest.approx(textured_avatar.vertices[top, 2], abs=1e-4)
    assert json.loads((tmp_path / "a.json").read_text())["seed"] == 3


def test_obj_export_writes_material_and_texture(textured_avatar, tmp_path):
    paths = write_avatar(textured_avatar, tmp_path, "b", "obj")
    names = {p.name for p in paths}
    assert "b.obj" in names and "b.json" in names
    assert any(n.endswith(".png") for n in names) and any(n.endswith(".mtl") for n in names)
    loaded = trimesh.load(tmp_path / "b.obj", force="mesh")
    assert len(loaded.faces) == len(textured_avatar.faces)
    with pytest.raises(ValueError, match="unknown format"):
        write_avatar(textured_avatar, tmp_path, "c", "fbx")


class _ShellField(TriplaneField):
    """Density 0 beyond radius 0.6, a thin dense red shell between 0.55 and 0.6, blue inside."""

    def __init__(self) -> None:
        pass

    def __call__(self, points, dirs):
        r = points.norm(dim=-1)
        sigma = torch.where(r < 0.6, torch.full_like(r, 200.0), torch.zeros_like(r))
        red, blue = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])
        rgb = torch.where((r > 0.55)[..., None], red, blue).expand(*r.shape, 3)
        return sigma, rgb


def test_seen_colour_is_what_a_ray_meets_before_the_surface():
    field = _ShellField()
    # Surface points at radius 0.5 (inside the dense shell), looked at from outside along -normal.
    normal = torch.nn.functional.normalize(
        torch.randn(1, 32, 3, generator=torch.Generator().manual_seed(0)), dim=-1
    )
    points = 0.5 * normal
    # The colour at the point itself is the inner blue; a ray from outside stops in the red shell first.
    assert torch.allclose(field.color(points, -normal), torch.tensor([0.0, 0.0, 1.0]).expand(1, 32, 3))
    seen = field.seen_color(points, -normal, outside=0.12, inside=0.12, samples=13)
    assert torch.allclose(seen, torch.tensor([1.0, 0.0, 0.0]).expand(1, 32, 3), atol=1e-3)
    # No density along the whole segment: the colour at the point.
    far = 2.0 * normal
    assert torch.allclose(field.seen_color(far, -normal), field.color(far, -normal))
