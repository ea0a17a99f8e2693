"""The fast RGBD grid mesher equals the plain per-face composition it replaced, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from fathom.engine.geometry import analytic, meshing, projection
from fathom.engine.types import RGBD, Camera, Depth, Image


def scene(w: int, h: int, pose: np.ndarray | None = None) -> RGBD:
    """A sphere in front of a slanted wall (depth jumps to cut), holes and a zero depth."""
    c = Camera.from_fov(w, h, 60.0, pose)
    wall = analytic.plane_depth(c, np.array([0.2, 0.0, 1.0]) / np.hypot(0.2, 1.0), 6.0)
    depth, _ = analytic.composite(wall, analytic.sphere_depth(c, np.array([0.3, 0.1, 3.0]), 0.8))
    depth = depth.astype(np.float32)
    depth[3:7, 2:11] = np.nan
    depth[h // 2, w // 3] = 0.0
    depth[h - 3, w - 4] = np.inf
    img = np.random.default_rng(1).random((h, w, 3)).astype(np.float32) * 1.2 - 0.1
    return RGBD(Image(img), Depth(depth, "metric"), c)


def reference(rgbd: RGBD, cut: float, step: int) -> tuple[np.ndarray, ...]:
    """What ``rgbd_mesh`` computed before: every face gathered, cut, then compacted."""
    c = rgbd.camera
    assert c is not None
    d = rgbd.depth.data
    full_h, full_w = d.shape
    fx, fy, cx, cy = c.fx, c.fy, c.cx, c.cy
    if step > 1:
        d = d[::step, ::step]
        fx, fy = fx / step, fy / step
        cx, cy = (cx + 0.5 * (step - 1)) / step, (cy + 0.5 * (step - 1)) / step
    h, w = d.shape
    pts = projection.backproject(d, fx, fy, cx, cy, c.pose).reshape(-1, 3)
    faces = meshing.cut_discontinuities(
        meshing.grid_faces(h, w), d.reshape(-1).astype(np.float64), cut
    )
    u, v = projection.pixel_grid(full_w, full_h)
    u, v = u[::step, ::step], v[::step, ::step]
    uv = np.stack([u.reshape(-1) / full_w, 1.0 - v.reshape(-1) / full_h], axis=-1)
    cols = rgbd.image.rgb()[::step, ::step].reshape(-1, 3)
    return meshing.compact(pts, faces, uv, cols)


POSE = projection.look_at(np.array([0.4, -0.3, 0.2]), np.array([0.0, 0.0, 4.0]))


@pytest.mark.parametrize(
    ("w", "h", "pose", "cut", "step"),
    [
        (64, 48, None, 0.05, 1),
        (61, 37, POSE, 0.02, 1),
        (64, 48, POSE, 0.05, 3),
        (40, 30, None, 99.0, 2),
    ],
)
def test_rgbd_mesh_equals_the_per_face_composition(
    w: int, h: int, pose: np.ndarray | None, cut: float, step: int
) -> None:
    rgbd = scene(w, h, pose)
    ref_v, ref_f, ref_uv, ref_c = reference(rgbd, cut, step)
    assert rgbd.camera is not None
    mesh = meshing.rgbd_mesh(rgbd, rgbd.camera, cut, step, "vertex")
    assert np.array_equal(np.asarray(mesh.faces), ref_f)  # same faces, same order and winding
    assert np.array_equal(np.asarray(mesh.vertices), ref_v)
    ref_vc = np.concatenate(
        [(np.clip(ref_c, 0, 1) * 255).round(), np.full((len(ref_c), 1), 255)], 1
    )
    assert np.array_equal(np.asarray(mesh.visual.vertex_colors), ref_vc.astype(np.uint8))
    tex = meshing.rgbd_mesh(rgbd, rgbd.camera, cut, step, "texture")
    assert np.array_equal(np.asarray(tex.visual.uv), ref_uv)
    assert np.array_equal(np.asarray(tex.faces), ref_f)


def test_depth_grid_mesh_cuts_like_cut_discontinuities() -> None:
    rgbd = scene(50, 40)
    d = rgbd.depth.data
    c = rgbd.camera
    assert c is not None
    verts, faces, _ = meshing.depth_grid_mesh(d, c.fx, c.fy, c.cx, c.cy, max_ratio=0.03)
    ref = meshing.cut_discontinuities(
        meshing.grid_faces(40, 50), d.reshape(-1).astype(np.float64), 0.03
    )
    assert np.array_equal(faces, ref) and faces.dtype == np.int64
    assert len(faces) < len(meshing.grid_faces(40, 50))  # the jumps and holes were cut
    k1, k2 = meshing.cut_cells(d, 0.03)
    assert k1.shape == k2.shape == (39, 49) and int(k1.sum() + k2.sum()) == len(faces)
    assert np.array_equal(
        verts, projection.backproject(d, c.fx, c.fy, c.cx, c.cy).reshape(-1, 3), equal_nan=True
    )
