"""Tri-plane container, 3D-aware convolution bookkeeping, cameras, volume rendering and fitting."""

import random

import numpy as np
import pytest
import torch

from rodin_core.aware_conv import AwareConv3D, axis_context
from rodin_core.cameras import Cameras
from rodin_core.data import DatasetError, list_records, load_record
from rodin_core.decoder import DecoderConfig, TriplaneDecoder
from rodin_core.fitting import FitConfig, PlaneBank, fit_loss
from rodin_core.rendering import SamplingConfig, composite, importance, ray_box, render_rays
from rodin_core.rig import look_at, spherical_eye
from rodin_core.triplane import mirror_x, project, resample, roll_in, roll_out, sample_features


def texel(coord: float, r: int) -> int:
    """The texel index holding a coordinate in [-1, 1] (grid_sample, align_corners=False)."""
    return int((coord + 1) / 2 * r)


def test_roll_out_and_back():
    planes = torch.randn(2, 3, 4, 8, 8)
    rolled = roll_out(planes)
    assert rolled.shape == (2, 4, 8, 24)
    assert torch.equal(rolled[..., 8:16], planes[:, 1])
    assert torch.equal(roll_in(rolled), planes)
    with pytest.raises(ValueError, match="3R"):
        roll_in(torch.randn(1, 4, 8, 20))


def test_sample_features_reads_the_projected_texels():
    r, c = 16, 3
    planes = torch.zeros(1, 3, c, r, r)
    point = torch.tensor([0.3, -0.55, 0.8])
    x, y, z = (texel(float(v), r) for v in point)
    planes[0, 0, 0, y, x] = 1.0  # XY: row y, col x
    planes[0, 1, 1, z, x] = 1.0  # XZ: row z, col x
    planes[0, 2, 2, z, y] = 1.0  # YZ: row z, col y
    # At the texel centre bilinear sampling returns the texel exactly; the mean over planes divides by 3.
    centre = torch.tensor([(x + 0.5) / r * 2 - 1, (y + 0.5) / r * 2 - 1, (z + 0.5) / r * 2 - 1])
    feats = sample_features(planes, centre.view(1, 1, 3))
    assert torch.allclose(feats[0, 0], torch.full((c,), 1 / 3), atol=1e-6)
    uv = project(centre.view(1, 1, 3))
    assert torch.allclose(uv[0, 1, 0], centre[[0, 2]])


def test_axis_context_reaches_exactly_the_projected_lines():
    """A feature on the XZ plane at (z0, x0) is the 3D line {x = x0, z = z0} (all y). In XY it must light
    the column x0 (every row); in YZ the row z0 (every column); nothing else."""
    r, c = 8, 2
    planes = torch.zeros(1, 3, c, r, r)
    z0, x0 = 5, 2
    planes[0, 1, :, z0, x0] = 1.0
    ctx = axis_context(planes)[0]  # (3, 2C, R, R): [column-indexed part, row-indexed part]
    xy_col, xy_row = ctx[0, :c], ctx[0, c:]
    assert torch.all(xy_col[:, :, x0] > 0) and xy_col[:, :, [i for i in range(r) if i != x0]].abs().sum() == 0
    assert xy_row.abs().sum() == 0  # XZ says nothing about y
    yz_col, yz_row = ctx[2, :c], ctx[2, c:]
    assert yz_col.abs().sum() == 0
    assert torch.all(yz_row[:, z0, :] > 0) and yz_row[:, [i for i in range(r) if i != z0], :].abs().sum() == 0
    assert ctx[1].abs().sum() == 0  # the XZ plane's context comes from XY and YZ, which are empty


def test_axis_context_agrees_with_point_projection():
    # Put one 3D point's features on XY and YZ; the context of XZ must peak at that point's XZ texel.
    r = 16
    point = torch.tensor([0.4, -0.3, 0.7])
    x, y, z = (texel(float(v), r) for v in point)
    planes = torch.zeros(1, 3, 1, r, r)
    planes[0, 0, 0, y, x] = 1.0
    planes[0, 2, 0, z, y] = 1.0
    ctx = axis_context(planes)[0, 1].sum(0)  # XZ plane: rows z, cols x
    assert tuple(torch.nonzero(ctx == ctx.max())[0].tolist()) == (z, x)


def test_aware_conv_shapes_and_cross_plane_flow():
    conv = AwareConv3D(4, 6)
    x = torch.zeros(2 * 3, 4, 8, 8)
    x[1, :, 3, 3] = 1.0  # only plane XZ of the first tri-plane is non-zero
    y = conv(x)
    assert y.shape == (6, 6, 8, 8)
    bias = conv.conv.bias.view(1, -1, 1, 1)
    assert (y[0] - bias[0]).abs().sum() > 0  # reached XY of the same tri-plane
    assert torch.allclose(y[3:], bias.expand(3, -1, 8, 8))  # never the other tri-plane


def test_mirror_x_mirrors_the_field():
    planes = torch.randn(1, 3, 2, 8, 8)
    pts = torch.rand(1, 50, 3) * 2 - 1
    flipped = pts * torch.tensor([-1.0, 1.0, 1.0])
    assert torch.allclose(sample_features(mirror_x(planes), flipped), sample_features(planes, pts), atol=1e-6)


def test_resample_round_trip_keeps_smooth_planes():
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    planes = torch.sin(2 * xx + yy).expand(1, 3, 2, 32, 32).contiguous()
    back = resample(resample(planes, 16), 32)
    assert (back - planes).abs().mean() < 0.02


def test_ray_box_and_camera_rays():
    cams = Cameras.orbit([0.0, 90.0], 0.0, 32)
    o, d, depth_to_t = cams.rays(torch.tensor([0, 1]), torch.tensor([16 * 32 + 16, 16 * 32 + 16]))
    # The frontal camera sits on -Y and looks along +Y; the centre pixel's ray hits the box at y = -1.
    assert o[0, 1] < -3 and d[0, 1] > 0.99
    near, far = ray_box(o, d)
    assert torch.allclose(o[0] + near[0] * d[0], torch.tensor([0.0, -1.0, 0.0]), atol=0.05)
    assert torch.allclose(far - near, torch.full((2,), 2.0), atol=0.1)
    assert torch.all(depth_to_t >= 1.0)
    miss = ray_box(torch.tensor([[0.0, -5.0, 3.0]]), torch.tensor([[0.0, 1.0, 0.0]]))
    assert miss[0] == miss[1]


def test_look_at_is_orthonormal_and_faces_the_target():
    c2w = look_at(spherical_eye(30.0, 20.0))
    rot = c2w[:3, :3]
    assert np.allclose(rot.T @ rot, np.eye(3), atol=1e-6)
    forward = -rot[:, 2]
    assert np.allclose(forward, -c2w[:3, 3] / np.linalg.norm(c2w[:3, 3]), atol=1e-6)


def test_composite_of_an_opaque_wall():
    t = torch.linspace(0, 2, 64).expand(1, 64)
    sigma = torch.where(t > 1.0, 1e4, 0.0)
    rgb = torch.tensor([1.0, 0.0, 0.0]).expand(1, 64, 3)
    out = composite(sigma, rgb, t, torch.tensor([2.0]), torch.ones(3))
    assert out["alpha"].item() == pytest.approx(1.0, abs=1e-4)
    assert torch.allclose(out["rgb"], torch.tensor([[1.0, 0.0, 0.0]]), atol=1e-3)
    assert out["depth"].item() == pytest.approx(1.0, abs=0.05)
    empty = composite(torch.zeros(1, 64), rgb, t, torch.tensor([2.0]), torch.tensor([0.2, 0.3, 0.4]))
    assert torch.allclose(empty["rgb"], torch.tensor([[0.2, 0.3, 0.4]]))


def test_importance_sampling_follows_the_weights():
    bins = torch.linspace(0, 1, 11).expand(1, 11)
    weights = torch.zeros(1, 10)
    weights[0, 7] = 1.0
    samples = importance(bins, weights, 200, jitter=True)
    assert ((samples >= 0.7) & (samples <= 0.8)).float().mean() > 0.95


def test_render_rays_finds_a_sphere_without_depth():
    def sphere(points, dirs):
        inside = points.norm(dim=-1) < 0.5
        return torch.where(inside, 200.0, 0.0), torch.full_like(points, 0.5)

    cams = Cameras.orbit([0.0], 0.0, 16)
    pix = torch.arange(256)
    o, d, _ = cams.rays(torch.zeros_like(pix), pix)
    out = render_rays(
        sphere, o[None], d[None], SamplingConfig(uniform=32, importance=32), torch.ones(3), jitter=False
    )
    alpha = out["alpha"].reshape(16, 16)
    assert alpha[8, 8] > 0.99 and alpha[0, 0] < 0.01
    centre_depth = out["depth"].reshape(16, 16)[8, 8]
    assert centre_depth == pytest.approx(3.2 - 0.5, abs=0.05)


def test_plane_bank_lazy_adam_touches_only_the_batch():
    bank = PlaneBank(4, 2, 8, 0.1, lr=0.1)
    before = bank.planes.clone()
    idx = torch.tensor([1, 3])
    bank.step(idx, torch.ones(2, 3, 2, 8, 8))
    assert torch.equal(bank.planes[[0, 2]], before[[0, 2]])
    assert torch.allclose(bank.planes[1], (before[1] - 0.1).clamp(-1, 1), atol=1e-5)  # Adam's first step = lr
    assert bank.steps.tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="shape"):
        bank.load({"planes": torch.zeros(5, 3, 2, 8, 8)})


@pytest.fixture(scope="module")
def tiny_record(tmp_path_factory):
    """A real record written by the generator (needs Blender's bpy module)."""
    pytest.importorskip("bpy")
    from blender_scenes.generate_dataset import main as generate

    root = tmp_path_factory.mktemp("ds")
    assert (
        generate(
            ["--out", str(root), "--count", "2", "--seed", "5", "--views", "6", "--res", "32", "--depth"]
        )
        == 0
    )
    return root


def test_fitting_steps_reduce_the_loss(tiny_record):
    torch.manual_seed(0)
    records = [load_record(p) for p in list_records(tiny_record)]
    cfg = FitConfig(
        resolution=16, avatars_per_step=2, rays_per_avatar=256, warmup_steps=10**6, holdout_views=(5,)
    )
    decoder = TriplaneDecoder(DecoderConfig())
    bank = PlaneBank(2, cfg.channels, cfg.resolution, cfg.init_std, cfg.plane_lr)
    opt = torch.optim.Adam(decoder.parameters(), lr=cfg.decoder_lr)
    gen = random.Random(0)
    views = [0, 1, 2, 3, 4]
    losses = []
    for step in range(60):
        idx = torch.tensor([0, 1])
        planes = bank.gather(idx)
        loss, stats = fit_loss(planes, decoder, records, cfg, step, gen, views)
        opt.zero_grad()
        loss.backward()
        opt.step()
        bank.step(idx, planes.grad)
        losses.append(stats["rgb"])
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])


def test_corrupt_records_are_explained(tiny_record, tmp_path):
    import shutil

    from PIL import Image

    record = tmp_path / "avatar_x"
    shutil.copytree(list_records(tiny_record)[0], record)
    first = record / "images" / "000.png"
    Image.open(first).convert("RGB").save(first)
    with pytest.raises(DatasetError, match="not RGBA"):
        load_record(record)
    (record / "transforms.json").write_text("{ not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_record(record)
    with pytest.raises(DatasetError, match="does not exist"):
        list_records(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no records"):
        list_records(tmp_path / "empty")


def test_render_field_reads_extra_channels_in_the_colour_pass():
    from rodin_core.preview import render_field

    torch.manual_seed(0)
    dec = TriplaneDecoder(DecoderConfig(channels=8)).eval()
    planes = torch.randn(1, 3, 8, 16, 16)
    cams = Cameras.orbit((0.0, 40.0), 0.0, 12)
    sampling = SamplingConfig(uniform=16, importance=16)

    def colour(points, dirs):
        return dec(sample_features(planes, points), dirs)

    def with_extra(points, dirs):
        sigma, rgb = colour(points, dirs)
        return sigma, torch.cat([rgb, torch.full_like(rgb[..., :1], 0.25), points[..., 2:3]], -1)

    with torch.no_grad():
        plain = render_field(colour, cams, 1, sampling)
        both = render_field(with_extra, cams, 1, sampling, extra=2)
    assert "extra" not in plain and both["extra"].shape == (12, 12, 2)
    # The colour and alpha are the plain render's; the extra channels composite over 0, not over white.
    assert torch.allclose(both["rgb"], plain["rgb"], atol=1e-6) and torch.equal(both["alpha"], plain["alpha"])
    assert torch.allclose(both["extra"][..., 0], 0.25 * plain["alpha"], atol=1e-6)
    assert plain["alpha"].max() > 0.1  # the scene shows something, so the comparison means something
