"""Walking inside a panorama: the GPU projection puts points on the engine camera's pixels,
movement is speed × time, and the captured-volume clamp gives the analytic answer in a sphere
room and a box room (no walking through walls, sliding along them, no tunnelling)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fathom.engine.geometry import projection
from fathom.engine.geometry.viewing import (
    CaptureVolume,
    gl_view_projection,
    walk_step,
)
from fathom.engine.types import Camera

W, H = 512, 256


def sphere_room(radius: float = 3.0) -> np.ndarray:
    return np.full((H, W), radius, np.float32)


def box_room(half: float = 2.0) -> np.ndarray:
    """Distance from the centre of a cube of half-size ``half`` to its walls, per direction."""
    d = projection.equirect_directions(W, H)
    return (half / np.abs(d).max(-1)).astype(np.float32)


def test_gl_projection_matches_the_camera_pixels() -> None:
    pose = projection.yaw_pitch_pose(np.array([0.3, -0.2, 0.5]), 30.0, -10.0)
    cam = Camera.from_fov(160, 90, 70.0, pose)
    rng = np.random.default_rng(0)
    local = np.stack([rng.uniform(-1, 1, 50), rng.uniform(-0.5, 0.5, 50), rng.uniform(1, 8, 50)])
    world = (pose[:3, :3] @ local).T + pose[:3, 3]
    clip = gl_view_projection(cam, 0.1, 100.0) @ np.c_[world, np.ones(50)].T
    ndc = clip[:3] / clip[3]
    px = (ndc[0] + 1) / 2 * cam.width
    py = (1 - ndc[1]) / 2 * cam.height  # OpenGL's y is up, image rows go down
    assert np.allclose(px, cam.fx * local[0] / local[2] + cam.cx, atol=1e-6)
    assert np.allclose(py, cam.fy * local[1] / local[2] + cam.cy, atol=1e-6)
    near_far = (
        gl_view_projection(cam, 0.5, 20.0)
        @ np.array([[*(pose[:3, :3] @ [0, 0, z] + pose[:3, 3]), 1.0] for z in (0.5, 20.0)]).T
    )
    assert np.allclose(near_far[2] / near_far[3], [-1.0, 1.0])


def test_walk_step_is_speed_times_time_along_the_view() -> None:
    p = walk_step(np.zeros(3), 90.0, (1, 0, 0), 2.0, 0.25)  # facing +x
    assert np.allclose(p, [0.5, 0, 0])
    p = walk_step(np.zeros(3), 0.0, (1, 1, 0), 1.0, 1.0)  # diagonal: not faster
    assert np.linalg.norm(p) == pytest.approx(1.0)
    assert np.allclose(walk_step(np.zeros(3), 0.0, (0, 0, 1), 1.0, 1.0), [0, -1, 0])  # up: -y
    assert np.allclose(walk_step(np.ones(3), 10.0, (0, 0, 0), 5.0, 1.0), np.ones(3))


def test_sphere_room_clamps_to_radius_minus_margin() -> None:
    vol = CaptureVolume(sphere_room(3.0))
    m = 0.3
    spacing = 3.0 * 2 * math.pi / W
    inside = np.array([0.5, -0.4, 1.0])
    assert np.allclose(vol.clamp(inside, margin=m), inside)  # free space: untouched
    for target in ([2.9, 0, 0], [0, 0, -2.85], [1.7, -1.7, 1.7], [10.0, 4.0, -3.0]):
        t = np.asarray(target, np.float64)
        got = vol.clamp(t, margin=m)
        assert np.linalg.norm(got) == pytest.approx(3.0 - m, abs=spacing)  # analytic
        assert np.allclose(got / np.linalg.norm(got), t / np.linalg.norm(t), atol=0.02)


def test_box_room_keeps_the_margin_from_walls_and_corners() -> None:
    vol = CaptureVolume(box_room(2.0))
    m = 0.25
    tol = 0.03
    assert np.allclose(vol.clamp(np.array([1.9, 0.0, 0.3]), margin=m), [2 - m, 0, 0.3], atol=tol)
    assert np.allclose(
        vol.clamp(np.array([0.2, 1.95, -0.5]), margin=m), [0.2, 2 - m, -0.5], atol=tol
    )
    # A corner: both walls push.
    assert np.allclose(vol.clamp(np.array([1.9, 1.9, 0.0]), margin=m), [2 - m, 2 - m, 0], atol=tol)
    # A long step through the wall from inside stops at it (no tunnelling), sliding along y.
    got = vol.clamp(np.array([6.0, 0.0, 0.0]), current=np.array([1.0, 0.0, 0.0]), margin=m)
    assert np.allclose(got, [2 - m, 0, 0], atol=tol)
    got = vol.clamp(np.array([1.9, 0.0, 1.0]), current=np.array([1.6, 0.0, 0.0]), margin=m)
    assert got[0] == pytest.approx(2 - m, abs=tol) and got[2] > 0.9  # slides along the wall


def test_a_near_object_blocks_and_holes_count_as_far_walls() -> None:
    d = sphere_room(5.0)
    dirs = projection.equirect_directions(W, H)
    ahead = dirs[..., 2] > math.cos(math.radians(10))  # a pillar 1.5 m ahead (+z)
    d[ahead] = 1.5
    d[:10] = np.nan  # no depth at the top: the farthest wall stands in
    vol = CaptureVolume(d)
    got = vol.clamp(np.array([0.0, 0.0, 3.0]), current=np.zeros(3), margin=0.2)
    assert got[2] == pytest.approx(1.3, abs=0.03)  # stopped before the pillar
    assert not vol.inside(np.array([0.0, 0.0, 2.0]))  # behind it: unseen, outside
    assert vol.surface_distance(np.array([0.0, -1.0, 0.0])) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="no valid distance"):
        CaptureVolume(np.full((8, 16), np.nan))


def test_a_meshs_distance_panorama_is_its_walls_seen_from_the_centre() -> None:
    import trimesh

    from fathom.engine.geometry.viewing import mesh_distance_panorama

    # A box of 12 triangles (walls far larger than a pixel) and a fine sphere: every direction
    # finds its wall at the analytic distance, with no gaps to walk through.
    box = trimesh.creation.box(extents=(4.0, 4.0, 4.0))
    d = mesh_distance_panorama(box.vertices, box.faces, W)
    assert np.isfinite(d).all()
    assert np.allclose(d, box_room(2.0), rtol=0.02)
    ball = trimesh.creation.icosphere(subdivisions=5, radius=3.0)
    assert np.allclose(mesh_distance_panorama(ball.vertices, ball.faces, W), 3.0, atol=0.01)
    # A wall in front only: the directions it does not cover have no surface (NaN).
    wall = trimesh.Trimesh([[-1, -1, 2], [1, -1, 2], [1, 1, 2], [-1, 1, 2]], [[0, 1, 2], [0, 2, 3]])
    d = mesh_distance_panorama(wall.vertices, wall.faces, W)
    ahead = projection.direction_to_equirect(np.array([[0.0, 0.0, 1.0]]), W, H)[0].astype(int)
    assert d[ahead[1], ahead[0]] == pytest.approx(2.0, abs=0.01)
    assert np.isnan(d).mean() > 0.8
    # Walking into the box's wall stops a margin short of it, as in a panorama room.
    vol = CaptureVolume(mesh_distance_panorama(box.vertices, box.faces, W))
    stop = vol.clamp(np.array([0.0, 0.0, 10.0]), np.zeros(3), margin=0.2)
    assert stop[2] == pytest.approx(1.8, abs=0.03) and vol.inside(stop)
