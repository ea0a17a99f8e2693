"""A live output window shows the newest frame a worker thread delivered and never queues
frames up; it goes full screen on a chosen screen and Esc leaves; the 3D preview takes a live
point cloud frame after frame into the same GL item without moving the camera."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QGuiApplication, QImage

from fathom.app.live_window import LatestFrames, LiveWindow, fitted, other_screen
from fathom.app.preview.mesh_view import MeshPanel
from fathom.engine.types import Image, PointCloud

pytestmark = pytest.mark.gui


def colour(value: float) -> Image:
    return Image(np.full((24, 32, 3), value, np.float32))


def pixel(img: QImage, x: int, y: int) -> tuple[int, int, int]:
    c = img.pixelColor(x, y)
    return c.red(), c.green(), c.blue()


def test_a_fast_worker_only_replaces_the_unread_frame(qtbot: Any) -> None:
    """Frames from a thread faster than the GUI: one signal per unread frame, one frame held
    per node, and what the GUI takes is the newest."""
    frames = LatestFrames()
    told: list[str] = []
    frames.arrived.connect(told.append)

    def produce() -> None:
        for i in range(200):
            frames.put("win", colour(i / 199))

    worker = threading.Thread(target=produce)
    worker.start()
    worker.join()
    assert frames.pending() == 1 and frames.received == 200
    assert frames.replaced == 199  # nobody took one: each replaced the last
    qtbot.waitUntil(lambda: told == ["win"], timeout=2000)  # one queued signal, not 200
    newest = frames.take("win")
    assert newest is not None and pixel(newest, 0, 0) == (255, 255, 255)
    assert frames.take("win") is None and frames.pending() == 0
    frames.put("win", colour(0.0))
    qtbot.waitUntil(lambda: told == ["win", "win"], timeout=2000)  # taken: told again
    frames.close()
    frames.put("win", colour(1.0))
    assert frames.pending() == 0


def test_the_window_draws_the_frame_fitted_and_keeps_its_aspect(qtbot: Any) -> None:
    window = LiveWindow("win", "Live Window")
    qtbot.addWidget(window)
    window.resize(400, 200)
    window.show()
    qtbot.waitExposed(window)
    frame = QImage(100, 100, QImage.Format.Format_RGB32)
    frame.fill(Qt.GlobalColor.red)
    window.show_frame(frame)
    shot = window.grab().toImage()
    assert pixel(shot, 200, 100) == (255, 0, 0)  # the square frame, centred
    assert pixel(shot, 20, 100) == (0, 0, 0)  # black bars left and right
    assert window.frames_shown == 1
    assert fitted(100, 50, QRect(0, 0, 400, 400)) == QRect(0, 100, 400, 200)


def test_full_screen_on_the_chosen_screen_and_esc_leaves(qtbot: Any) -> None:
    window = LiveWindow("win", "Live Window")
    qtbot.addWidget(window)
    window.show()
    screen = QGuiApplication.screens()[-1]
    assert other_screen(None) is QGuiApplication.primaryScreen()
    # One screen here: the "other" screen is the only one; with two it is the second.
    assert other_screen(screen) in QGuiApplication.screens()
    window.full_screen(screen)
    qtbot.waitUntil(window.isFullScreen, timeout=2000)
    assert window.screen() is screen
    names = [a.text() for a in window.screen_actions(window)]
    assert any(screen.name() in n for n in names) and names[-1].startswith("Leave")
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.isFullScreen(), timeout=2000)
    qtbot.keyClick(window, Qt.Key.Key_F11)
    qtbot.waitUntil(window.isFullScreen, timeout=2000)
    window.toggle_full_screen()
    qtbot.waitUntil(lambda: not window.isFullScreen(), timeout=2000)


def cloud(shift: float, n: int = 500) -> PointCloud:
    rng = np.random.default_rng(int(shift * 10))
    pts = rng.random((n, 3), dtype=np.float32) + np.array([shift, 0.0, 2.0], np.float32)
    return PointCloud(pts, rng.random((n, 3), dtype=np.float32))


@pytest.mark.parametrize("backend", ["gl", "software"])
def test_a_live_point_cloud_updates_in_place(qtbot: Any, backend: str) -> None:
    """Frame after frame: the OpenGL view keeps its one scatter item and gets new vertex
    data; both views keep the camera the first frame framed."""
    panel = MeshPanel(backend=backend)
    qtbot.addWidget(panel)
    panel.resize(240, 180)
    panel.show()
    first = cloud(0.0)
    panel.set_live_value(first)
    qtbot.waitUntil(lambda: panel.live_frames == 1 and panel.idle, timeout=10_000)
    view: Any = panel.view
    item = getattr(view, "_item", None)
    camera = (
        view.view.cameraPosition() if backend == "gl" else view.orbit.camera(64, 64).pose.copy()
    )
    for k in range(1, 4):
        latest = cloud(float(k))
        panel.set_live_value(latest)
        qtbot.waitUntil(lambda k=k: panel.live_frames == k + 1 and panel.idle, timeout=10_000)
    assert panel.info.text().startswith("live · point cloud: 500 points")
    if backend == "gl":
        assert view._item is item  # the same GL item, its vertex data replaced
        assert np.allclose(item.pos, view._to_gl(latest.points))
        assert view.view.cameraPosition() == camera
    else:
        assert np.array_equal(view.orbit.camera(64, 64).pose, camera)
        assert view.frames_shown >= 2
    # An ordinary value afterwards is framed and shown as before.
    panel.set_value(cloud(9.0))
    assert panel.info.text().startswith("point cloud: 500 points")
