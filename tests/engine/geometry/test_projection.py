"""Known geometric answers for the depth ↔ points ↔ mesh math."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fathom.engine.geometry import analytic, meshing, projection
from fathom.engine.imaging.ops import psnr
from fathom.engine.types import Camera


def cam(w: int = 64, h: int = 48, fov: float = 60.0, pose: np.ndarray | None = None) -> Camera:
    return Camera.from_fov(w, h, fov, pose)


def test_backprojected_tilted_plane_lies_on_the_plane() -> None:
    c = cam()
    n = np.array([0.2, -0.1, 1.0])
    n /= np.linalg.norm(n)
    depth = analytic.plane_depth(c, n, 3.0)
    pts = projection.backproject(depth, c.fx, c.fy, c.cx, c.cy).reshape(-1, 3)
    assert np.isfinite(pts).all()
    assert np.abs(pts @ n - 3.0).max() < 1e-9


def test_backprojected_sphere_points_are_at_the_radius_with_a_posed_camera() -> None:
    pose = projection.look_at(np.array([0.5, -0.3, -1.0]), np.array([0.0, 0.0, 3.0]))
    c = cam(pose=pose)
    centre, r = np.array([0.0, 0.0, 3.0]), 1.0
    depth = analytic.sphere_depth(c, centre, r)
    hit = np.isfinite(depth)
    assert hit.mean() > 0.05
    pts = projection.backproject(np.where(hit, depth, np.nan), c.fx, c.fy, c.cx, c.cy, pose)
    err = np.abs(np.linalg.norm(pts[hit] - centre, axis=-1) - r)
    assert err.max() < 1e-9


def test_project_inverts_backproject_at_pixel_centres() -> None:
    pose = projection.look_at(np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.2, 4.0]))
    c = cam(pose=pose)
    depth = np.random.default_rng(0).uniform(1, 5, (c.height, c.width))
    pts = projection.backproject(depth, c.fx, c.fy, c.cx, c.cy, pose).reshape(-1, 3)
    uv, z = projection.project(pts, c.fx, c.fy, c.cx, c.cy, pose)
    u, v = projection.pixel_grid(c.width, c.height)
    assert np.allclose(uv[:, 0], u.reshape(-1)) and np.allclose(uv[:, 1], v.reshape(-1))
    assert np.allclose(z, depth.reshape(-1))


def test_parallax_of_a_sideways_move_matches_focal_times_baseline_over_depth() -> None:
    c = cam()
    z, t = 2.5, 0.1
    pts = projection.backproject(np.full((c.height, c.width), z), c.fx, c.fy, c.cx, c.cy)
    moved = np.eye(4)
    moved[0, 3] = t
    uv0, _ = projection.project(pts.reshape(-1, 3), c.fx, c.fy, c.cx, c.cy)
    uv1, _ = projection.project(pts.reshape(-1, 3), c.fx, c.fy, c.cx, c.cy, moved)
    shift = uv0[:, 0] - uv1[:, 0]
    assert np.allclose(shift, c.fx * t / z)


def test_look_at_identity_and_axes() -> None:
    assert np.allclose(projection.look_at(np.zeros(3), np.array([0, 0, 1.0])), np.eye(4))
    p = projection.look_at(np.zeros(3), np.array([1.0, 0, 0]))
    assert np.allclose(p[:3, 2], [1, 0, 0]) and np.allclose(p[:3, 1], [0, 1, 0])
    with pytest.raises(ValueError):
        projection.look_at(np.zeros(3), np.zeros(3))


def test_discontinuity_cut_leaves_no_triangle_across_a_depth_jump() -> None:
    c = cam(32, 32)
    depth = np.full((32, 32), 4.0)
    depth[8:24, 8:24] = 1.0  # a square 3 m in front of the wall
    depth[0, 0] = np.nan
    depth[0, 1] = -1.0
    depth[1, 0] = 0.0
    depth[1, 1] = np.inf
    verts, faces, _ = meshing.depth_grid_mesh(depth, c.fx, c.fy, c.cx, c.cy, max_ratio=0.05)
    z = depth.reshape(-1)[faces]
    assert np.isfinite(z).all() and (z > 0).all()
    spread = (z.max(1) - z.min(1)) / z.min(1)
    assert spread.max() <= 0.05
    # The jump is really there: without the cut, faces would span it.
    uncut = meshing.grid_faces(32, 32)
    zu = depth.reshape(-1)[uncut]
    ok = np.isfinite(zu).all(1) & (zu > 0).all(1)
    assert ((zu[ok].max(1) - zu[ok].min(1)) / zu[ok].min(1)).max() > 1.0
    # Every cell fully inside one surface keeps its two triangles: 2·31·31 minus the cells
    # touching the jump (4·16 boundary cells... counted directly) and the 4 invalid samples.
    assert len(faces) == int(ok.sum()) - int(
        ((zu[ok].max(1) - zu[ok].min(1)) / zu[ok].min(1) > 0.05).sum()
    )


def test_compact_drops_unused_vertices_and_keeps_faces_equal() -> None:
    v = np.arange(30, dtype=float).reshape(10, 3)
    f = np.array([[2, 5, 7], [5, 7, 9]])
    col = np.arange(10, dtype=float)
    v2, f2, c2 = meshing.compact(v, f, col)
    assert len(v2) == 4
    assert np.array_equal(v2[f2], v[f]) and np.array_equal(c2, [2, 5, 7, 9])


def test_equirect_direction_round_trip_and_centre_looks_forward() -> None:
    d = projection.equirect_directions(64, 32)
    assert np.allclose(np.linalg.norm(d, axis=-1), 1)
    uv = projection.direction_to_equirect(d.reshape(-1, 3), 64, 32)
    u, v = projection.pixel_grid(64, 32)
    assert np.allclose(uv[:, 0], u.reshape(-1)) and np.allclose(uv[:, 1], v.reshape(-1))
    centre = projection.direction_to_equirect(np.array([[0, 0, 1.0]]), 64, 32)[0]
    assert np.allclose(centre, [32, 16])
    up = projection.direction_to_equirect(np.array([[0, -1.0, 0]]), 64, 32)[0]
    assert up[1] == pytest.approx(0.0)


def test_panorama_mesh_of_constant_distance_is_a_sphere_with_closed_seam() -> None:
    dist = np.full((32, 64), 2.0)
    verts, faces, uv = meshing.panorama_mesh(dist, step=1)
    assert np.allclose(np.linalg.norm(verts, axis=1), 2.0)
    # Seam closed: faces connect the last column to the first.
    cols = faces % 64
    assert np.any((cols == 63).any(1) & (cols == 0).any(1))
    assert len(faces) == 2 * 31 * 64


def test_depth_normals_of_a_fronto_parallel_plane_face_the_camera() -> None:
    c = cam()
    n = projection.depth_normals(np.full((c.height, c.width), 2.0), c.fx, c.fy, c.cx, c.cy)
    inner = n[1:-1, 1:-1].reshape(-1, 3)
    assert np.allclose(inner, [0, 0, -1], atol=1e-9)


def test_camera_paths_have_the_requested_geometry() -> None:
    target = np.array([0.0, 0.0, 3.0])
    orbit = projection.orbit_path(target, 2.0, 8)
    for p in orbit:
        assert np.linalg.norm(p[:3, 3] - target) == pytest.approx(2.0)
        fwd = (target - p[:3, 3]) / 2.0
        assert np.allclose(p[:3, 2], fwd)
    line = projection.line_path(np.zeros(3), np.array([0, 0, 1.0]), 5)
    assert np.allclose([p[2, 3] for p in line], [0, 0.25, 0.5, 0.75, 1.0])
    walk = projection.walk_path(np.array([[0, 0, 0], [0, 0, 1], [1, 0, 1.0]]), 5)
    assert np.allclose(walk[2][:3, 3], [0, 0, 1]) and np.allclose(walk[-1][:3, 3], [1, 0, 1])
    cube = projection.cube_poses(np.zeros(3))
    fwds = np.array([p[:3, 2] for p in cube])
    assert np.allclose(fwds[:4], [[0, 0, 1], [1, 0, 0], [0, 0, -1], [-1, 0, 0]], atol=1e-9)
    assert fwds[4][1] < -0.99 and fwds[5][1] > 0.99


def test_psnr_is_infinite_for_equal_images_and_known_for_a_constant_error() -> None:
    a = np.zeros((4, 4, 3))
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 0.1) == pytest.approx(20.0)
