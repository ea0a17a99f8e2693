"""360° viewer walking: a held key moves at a constant speed per second and the walk stops the
moment it is released (auto-repeat ignored, focus loss too); walking never leaves the captured
room; offscreen the torch fallback draws; ``--benchmark`` prints a frame rate."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from gui_input import shown
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication

from fathom.app.viewer360 import Viewer360, use_opengl
from fathom.engine.geometry import projection
from fathom.engine.types import Depth, Image

pytestmark = pytest.mark.gui
ROOM = 4.0


def room(w: int = 128) -> tuple[Image, Depth]:
    """A sphere room of radius ROOM, coloured by direction so frames differ as one walks."""
    d = projection.equirect_directions(w, w // 2)
    return Image(((d + 1) / 2).astype(np.float32)), Depth(np.full((w // 2, w), ROOM), "metric")


def key_event(kind: QEvent.Type, key: Qt.Key, repeat: bool = False) -> QKeyEvent:
    return QKeyEvent(kind, key, Qt.KeyboardModifier.NoModifier, "", repeat)


@pytest.fixture
def viewer(qtbot) -> Viewer360:
    v = shown(qtbot, Viewer360(), 320, 240)
    v.set_panorama(*room())
    v.canvas.setFocus()
    return v


def test_offscreen_uses_the_torch_fallback(viewer: Viewer360) -> None:
    assert not use_opengl() and not viewer.uses_opengl
    assert viewer.renderer_name.startswith("torch rasterizer")
    with pytest.raises(ValueError, match="'auto', 'gl' or 'software'"):
        Viewer360(renderer="vulkan")


def test_held_key_moves_by_speed_times_time_and_release_stops(qtbot, viewer: Viewer360) -> None:
    c = viewer.canvas
    qtbot.keyPress(c, Qt.Key.Key_W)
    assert viewer.walking and viewer.walk_direction() == (1.0, 0.0, 0.0)
    viewer.advance(0.25)  # one frame tick of 0.25 s
    assert np.allclose(viewer.position, [0, 0, 0.25 * viewer.speed])
    # Auto-repeat sends release/press pairs while a key is held: they change nothing.
    QApplication.sendEvent(c, key_event(QEvent.Type.KeyRelease, Qt.Key.Key_W, repeat=True))
    QApplication.sendEvent(c, key_event(QEvent.Type.KeyPress, Qt.Key.Key_W, repeat=True))
    assert viewer.walking
    viewer.advance(0.25)
    assert np.allclose(viewer.position, [0, 0, 0.5 * viewer.speed])
    qtbot.keyRelease(c, Qt.Key.Key_W)
    assert not viewer.walking and not viewer._walk.isActive()
    at = viewer.position.copy()
    viewer.advance(1.0)  # a tick that was already due: nothing moves
    assert np.allclose(viewer.position, at)
    # Two keys: a diagonal at the same speed; losing focus stops like a release.
    viewer.set_view(position=np.zeros(3))
    qtbot.keyPress(c, Qt.Key.Key_W)
    qtbot.keyPress(c, Qt.Key.Key_D)
    viewer.advance(0.5)
    assert np.linalg.norm(viewer.position) == pytest.approx(0.5 * viewer.speed)
    assert viewer.position[0] > 0 and viewer.position[2] > 0
    viewer.release_keys()  # what the canvas's focus-out does
    assert not viewer.walking


def test_walking_in_real_time_stops_when_released(qtbot, viewer: Viewer360) -> None:
    c = viewer.canvas
    qtbot.waitUntil(lambda: viewer.idle, timeout=15_000)  # the first frames are shown
    t0 = time.perf_counter()
    qtbot.keyPress(c, Qt.Key.Key_W)
    qtbot.waitUntil(lambda: viewer.position[2] > 0, timeout=5_000)
    qtbot.keyRelease(c, Qt.Key.Key_W)
    held = time.perf_counter() - t0
    moved = float(viewer.position[2])
    assert 0 < moved <= viewer.speed * held * 1.01  # the frame timer moved it, never faster
    qtbot.wait(300)
    assert viewer.position[2] == moved  # nothing after the release
    qtbot.waitUntil(lambda: viewer.idle, timeout=15_000)


def test_walking_stays_inside_the_room(viewer: Viewer360) -> None:
    viewer.hold_key(Qt.Key.Key_W)
    for _ in range(50):  # 5 s at full speed: far more than the room is wide
        viewer.advance(0.1)
    assert np.linalg.norm(viewer.position) == pytest.approx(ROOM - viewer.margin, abs=0.05)
    viewer.set_view(yaw=90)  # and sideways along the wall
    viewer.hold_key(Qt.Key.Key_D)
    for _ in range(50):
        viewer.advance(0.1)
    viewer.release_keys()
    assert np.linalg.norm(viewer.position) <= ROOM - viewer.margin + 0.05
    viewer.move(forward=100)  # scrolling is clamped too
    assert np.linalg.norm(viewer.position) <= ROOM - viewer.margin + 0.05
    viewer.reset_view()
    viewer.set_view(depth_scale=2.0)  # a bigger room: farther to walk
    viewer.hold_key(Qt.Key.Key_S)
    for _ in range(50):
        viewer.advance(0.1)
    viewer.release_keys()
    assert np.linalg.norm(viewer.position) == pytest.approx(2 * ROOM - viewer.margin, abs=0.1)


def test_a_mesh_has_walls_too(viewer: Viewer360) -> None:
    """A mesh opened in the viewer (a closed box here) stops the walker a margin from its
    walls, as a panorama does."""
    import trimesh

    from fathom.engine.types import Mesh

    viewer.set_mesh(Mesh(trimesh.creation.box(extents=(4.0, 4.0, 4.0))))
    viewer.hold_key(Qt.Key.Key_W)
    for _ in range(50):  # 5 s at full speed towards the wall 2 units ahead
        viewer.advance(0.1)
    viewer.release_keys()
    assert viewer.position[2] == pytest.approx(2.0 - viewer.margin, abs=0.05)
    assert np.abs(viewer.position).max() < 2.0


def test_benchmark_offscreen_prints_a_frame_rate(tmp_path: Path, capsys, qtbot) -> None:
    import cv2

    from fathom.app import viewer360

    image, depth = room()
    rgb, dist = tmp_path / "rgb.png", tmp_path / "distance.npy"
    cv2.imwrite(str(rgb), (image.data[..., ::-1] * 255).round().astype(np.uint8))
    np.save(dist, depth.data)
    argv = ["--benchmark", "--size", "480x270", "--seconds", "0.6", "--json"]
    assert viewer360.main([*argv, "--rgb", str(rgb), "--distance", str(dist)]) == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert stats["renderer"].startswith("torch rasterizer")
    assert stats["size"] == [480, 270] and stats["frames"] >= 2
    assert stats["fps"] > 0 and 0 < stats["frame_ms_median"] <= stats["frame_ms_p95"]
    assert stats["cpu_ms_per_frame"] > 0
    assert set(stats["fps_by_phase"]) == {"forward", "turn", "strafe", "stop"}
    assert np.linalg.norm(stats["position"]) > 0  # it walked
