"""Zero123-style novel views on a tiny random Zero123 folder: the pose conditions the output
(and nothing else does), one input is exactly Zero123's single-view condition and sampling,
the pooled condition has a fixed size, known geometry is kept, and more input views of the
demo scene leave fewer holes (geometry only, no weights)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from novel_view_models import WIDTH, build_tiny_zero123, demo_cameras, load_demo, raycast_view

from fathom.engine.diffusion import novel_view as nv
from fathom.engine.geometry.projection import orbit_pose
from fathom.engine.models.families import identify
from fathom.engine.models.zero123 import load_zero123
from fathom.engine.types import Camera, Depth, Image

SIZE = 32
IMG = Image(np.random.default_rng(5).random((SIZE, SIZE, 3)).astype(np.float32))
FAST = nv.Sampling(SIZE, SIZE, steps=3, guidance=3.0, seed=4)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_zero123(tmp_path_factory.mktemp("z123"), aggregator_tokens=3)


@pytest.fixture(scope="module")
def model(folder: Path) -> Any:
    m = load_zero123(folder, "cpu", "float32")
    m.aggregator = None  # the training-free path unless a test asks for the trained one
    return m


def cam(az: float, el: float = 0.0, dist: float = 2.0, size: int = SIZE) -> Camera:
    return Camera.from_fov(size, size, 40.0, orbit_pose(az, el, dist))


def view(az: float, el: float = 0.0) -> nv.InputView:
    return nv.InputView(IMG, cam(az, el))


def test_folder_is_told_and_loaded_from_safetensors(folder: Path, model: Any) -> None:
    info = identify(folder)
    assert info.family == "zero123" and info.kind == "pipeline"
    assert model.cc_projection.in_features == WIDTH + 4
    assert model.cc_projection.out_features == WIDTH
    assert json.loads((folder / "model_index.json").read_text())["cc_projection"][0] == (
        "pipeline_zero1to3"  # named, never imported
    )


def test_both_published_layouts_load_the_same_projection(
    model: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """bennyguo/ashawkey's layout: clip_camera_projection/ (proj.*), an fp16 copy beside the
    full weights (the full ones load), class Zero123Pipeline."""
    other = build_tiny_zero123(tmp_path_factory.mktemp("z123b"), layout="bennyguo")
    assert identify(other).family == "zero123"
    m = load_zero123(other, "cpu", "float32")
    assert torch.equal(m.cc_projection.weight, model.cc_projection.weight)
    assert torch.equal(m.cc_projection.bias, model.cc_projection.bias)


def test_relative_pose_round_trip_and_zero123_features() -> None:
    ref = orbit_pose(20.0, 10.0, 2.0)
    tgt = nv.target_pose(ref, 15.0, -40.0, 0.5)
    d = nv.relative_orbit(ref, tgt)
    assert d == pytest.approx((15.0, -40.0, 0.5), abs=1e-9)
    f = nv.pose_features(*d)
    assert f == pytest.approx(
        [math.radians(-15.0), math.sin(math.radians(-40)), math.cos(math.radians(-40)), 0.5]
    )
    with pytest.raises(ValueError, match="centre"):
        nv.target_pose(ref, 0.0, 0.0, -2.5)


def _zero123_get_t(cond: np.ndarray, target: np.ndarray) -> list[float]:
    """Zero123's relative pose from two camera positions in its z-up world: polar angle from
    +z, azimuth atan2(y, x), radius; [Δpolar, sin Δaz, cos Δaz, Δr]."""

    def sph(p: np.ndarray) -> tuple[float, float, float]:
        polar = math.atan2(math.hypot(p[0], p[1]), p[2])
        return polar, math.atan2(p[1], p[0]), float(np.linalg.norm(p))

    (tc, ac, rc), (tt, at, rt) = sph(cond), sph(target)
    d_az = (at - ac) % (2 * math.pi)
    return [tt - tc, math.sin(d_az), math.cos(d_az), rt - rc]


def test_pose_features_equal_zero123s_in_its_own_world() -> None:
    """The studio's world (OpenCV, up −y) seen as Zero123's z-up world is (x, z, −y)."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        a, b = rng.uniform(-180, 180, 2)
        e1, e2 = rng.uniform(-60, 60, 2)
        r1, r2 = rng.uniform(1.5, 2.5, 2)
        p1, p2 = orbit_pose(a, e1, r1), orbit_pose(b, e2, r2)
        ours = nv.pose_features(*nv.relative_orbit(p1, p2))

        def z_up(pose: np.ndarray) -> np.ndarray:
            x, y, z = pose[:3, 3]
            return np.array([x, z, -y])

        assert ours == pytest.approx(_zero123_get_t(z_up(p1), z_up(p2)), abs=1e-9)


def test_pose_conditions_the_output(model: Any, folder: Path) -> None:
    a1, _ = nv.novel_view(model, [view(0)], cam(30), FAST)
    a2, _ = nv.novel_view(model, [view(0)], cam(30), FAST)
    b, _ = nv.novel_view(model, [view(0)], cam(90, 20), FAST)
    assert np.array_equal(a1, a2)  # same pose twice: identical
    assert np.abs(a1 - b).max() > 1e-3  # another pose: another view
    blind = load_zero123(folder, "cpu", "float32")
    with torch.no_grad():
        blind.cc_projection.weight[:, WIDTH:] = 0.0  # the pose's projection zeroed
    c, _ = nv.novel_view(blind, [view(0)], cam(30), FAST)
    d, _ = nv.novel_view(blind, [view(0)], cam(90, 20), FAST)
    assert np.array_equal(c, d)  # without the pose's path the output ignores the pose
    assert np.abs(c - a1).max() > 1e-4


def _zero123_reference(model: Any, image: Image, feats: list[float], s: nv.Sampling) -> Any:
    """Zero123's sampling as its paper's code states it, written out: one token
    cc([CLIP(x), pose]); uncond = zero token and zero latents; latents' mode unscaled."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(model.scheduler.config)
    sched.set_timesteps(s.steps)
    x = torch.from_numpy(image.rgb()).permute(2, 0, 1)[None] * 2 - 1
    with torch.no_grad():
        emb = nv.clip_embeddings(model.image_encoder, x)
        tok = model.cc_projection(torch.cat([emb, torch.tensor([feats])], -1))[:, None]
        cond = torch.cat([torch.zeros_like(tok), tok])
        lat_in = model.vae.encode(x).latent_dist.mode()
        lat_in = torch.cat([torch.zeros_like(lat_in), lat_in])
        g = torch.Generator("cpu").manual_seed(s.seed)
        lat = torch.randn((1, 4, s.height // 8, s.width // 8), generator=g)
        for t in sched.timesteps:
            inp = torch.cat([torch.cat([lat] * 2), lat_in], 1)
            u, c = model.unet(inp, t, encoder_hidden_states=cond).sample.chunk(2)
            lat = sched.step(u + s.guidance * (c - u), t, lat).prev_sample
        out = model.vae.decode(lat / model.vae.config.scaling_factor).sample
    return ((out[0].permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1)


def test_one_input_is_exactly_the_single_view_zero123_condition(model: Any) -> None:
    target = cam(45, 15)
    feats = nv.pose_features(*nv.relative_orbit(cam(0).pose, target.pose))
    for k in (1, 4):
        pooled, nearest = nv.encode_views(model, [view(0)], target, k)
        x = torch.from_numpy(IMG.rgb()).permute(2, 0, 1)[None] * 2 - 1
        with torch.no_grad():
            emb = nv.clip_embeddings(model.image_encoder, x)
            single = model.cc_projection(torch.cat([emb, torch.tensor([feats])], -1))
        assert nearest == 0 and pooled.shape == (k, WIDTH)
        assert torch.equal(pooled, single.expand(k, WIDTH))  # bit for bit
    got, made = nv.novel_view(model, [view(0)], target, FAST, num_tokens=1)
    ref = _zero123_reference(model, IMG, feats, FAST)
    assert np.abs(got - ref).max() < 1e-5
    assert made.min() == 1.0  # no depth: the model made every pixel


def test_transparent_pixels_condition_as_white(model: Any) -> None:
    """Zero123 saw objects over white: an RGBA input is composited over white first."""
    rgba = np.concatenate([IMG.data, np.zeros((SIZE, SIZE, 1), np.float32)], -1)
    clear, _ = nv.novel_view(model, [nv.InputView(Image(rgba), cam(0))], cam(30), FAST)
    white = Image(np.ones((SIZE, SIZE, 3), np.float32))
    ref, _ = nv.novel_view(model, [nv.InputView(white, cam(0))], cam(30), FAST)
    assert np.array_equal(clear, ref)


def test_conditioning_size_is_fixed_however_many_views(model: Any, folder: Path) -> None:
    target = cam(60)
    for n in (1, 2, 5, 8):
        views = [view(az) for az in np.linspace(0, 300, n)]
        pooled, _ = nv.encode_views(model, views, target, 4)
        assert pooled.shape == (4, WIDTH)
    trained = load_zero123(folder, "cpu", "float32")
    assert trained.aggregator is not None
    pooled, _ = nv.encode_views(trained, [view(0), view(90), view(180)], target, 4)
    assert pooled.shape == (3, WIDTH)  # the trained aggregator's own token count


def test_pooling_weighs_the_view_nearest_the_target(model: Any) -> None:
    target = cam(95)
    views = [view(0), view(90), view(200)]
    feats = torch.tensor(
        [nv.pose_features(*nv.relative_orbit(v.camera.pose, target.pose)) for v in views]
    )
    w = nv.pool_weights(feats, 4)
    assert torch.allclose(w.sum(-1), torch.ones(4))
    assert int(w[0].argmax()) == 1 and w[0, 1] > 0.99  # sharpest token: the nearest view
    assert w[-1].max() < 0.6  # broadest token: close to the mean
    _, nearest = nv.encode_views(model, views, target, 4)
    assert nearest == 1
    one, _ = nv.novel_view(model, views[:1], target, FAST)
    three, _ = nv.novel_view(model, views, target, FAST)
    assert np.abs(one - three).max() > 1e-4  # the added views change the condition


def test_known_pixels_are_kept_where_geometry_covers_them(model: Any) -> None:
    """A textured plane seen from the front; the target turned 20° sees part of it (and
    beyond its edge, nothing): covered pixels are the rendered plane, exactly."""
    size = 32
    front = cam(0, size=size)
    depth = Depth(np.full((size, size), 2.0, np.float32), "metric")
    plane = nv.InputView(IMG, front, depth)
    target = cam(20, size=size)
    known = nv.reproject([plane], target)
    assert 0.2 < known.covered.mean() < 0.98
    got, made = nv.novel_view(model, [plane], target, nv.Sampling(size, size, 3, 3.0, 1))
    assert np.array_equal(got[known.covered], known.image[known.covered])
    assert np.array_equal(made, (~known.covered).astype(np.float32))
    free, _ = nv.novel_view(model, [plane], target, nv.Sampling(size, size, 3, 3.0, 1), 4, False)
    assert not np.array_equal(free[known.covered], known.image[known.covered])


def test_more_views_of_the_demo_scene_leave_fewer_holes() -> None:
    demo = load_demo()
    target, cams = demo_cameras()
    inputs = [raycast_view(demo, c) for c in cams]
    holes = [1.0 - nv.reproject(inputs[:n], target).covered.mean() for n in (1, 2, 4)]
    assert holes[0] > 0.01  # one view leaves disocclusions
    assert holes[1] < holes[0] and holes[2] < holes[1], holes
