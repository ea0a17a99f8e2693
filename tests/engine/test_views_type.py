"""The view-set type and the ring of cameras multi-view generators share."""

from __future__ import annotations

import numpy as np
import pytest

from fathom.engine.geometry.projection import project, ring_cameras
from fathom.engine.types import ALL_TYPES, Depth, Image, Views


def test_ring_cameras_look_at_the_origin_from_their_distance() -> None:
    cams = ring_cameras([0, 90, 180, 270], [0, 0, 20, -10], 2.5, 40, (32, 24))
    for cam in cams:
        assert np.linalg.norm(cam.pose[:3, 3]) == pytest.approx(2.5)
        uv, z = project(np.zeros((1, 3)), cam.fx, cam.fy, cam.cx, cam.cy, cam.pose)
        assert uv[0] == pytest.approx([16.0, 12.0])  # the origin is in the image centre
        assert z[0] == pytest.approx(2.5)
    # azimuth 0 is the front (on -z), positive elevation is above (up is -y)
    assert cams[0].pose[:3, 3] == pytest.approx([0, 0, -2.5])
    assert cams[2].pose[1, 3] < 0


def test_views_check_their_parts_and_tile_a_contact_sheet() -> None:
    cams = ring_cameras([0, 60, 120, 180], [0] * 4, 2.0, 40, (8, 6))
    images = [Image(np.full((6, 8, 3), k / 4, np.float32)) for k in range(4)]
    views = Views(images, cams)
    sheet = views.contact_sheet(columns=3).data
    assert sheet.shape == (12, 24, 3)
    assert sheet[0, 8, 0] == pytest.approx(0.25) and sheet[6, 0, 0] == pytest.approx(0.75)
    assert sheet[6, 8:].max() == 0  # the short row is black
    assert ALL_TYPES["views"] is Views
    with pytest.raises(ValueError, match="cameras"):
        Views(images, cams[:3])
    with pytest.raises(ValueError, match="no depth"):
        views.rgbd(0)
    depths = [Depth(np.ones((6, 8), np.float32), kind="metric") for _ in range(4)]
    rgbd = Views(images, cams, depths).rgbd(1)
    assert rgbd.camera is cams[1]
