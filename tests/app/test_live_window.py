"""A live output window shows the newest frame a worker thread delivered and never queues
frames up; it goes full screen on a chosen screen and Esc leaves; the 3D preview takes a live
point cloud frame after frame into the same GL item without moving the camera."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QGuiApplication, QImage
from xvfb_probe import run_under_xvfb

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


GL_PROBE = """
import json, sys, time
import numpy as np
from PySide6.QtWidgets import QApplication
app = QApplication([])
from fathom.app.preview.mesh_view import MeshPanel
from fathom.engine.types import PointCloud

def wait(panel, n):
    t = time.time()
    while (panel.live_frames < n or not panel.idle) and time.time() - t < 20:
        app.processEvents(); time.sleep(0.01)
    t = time.time()
    while time.time() - t < 0.3: app.processEvents(); time.sleep(0.02)

def centre(panel):
    img = panel.view.grab_image().convertToFormat(panel.view.grab_image().Format.Format_RGBA8888)
    a = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    a = a[:, :img.width() * 4].reshape(img.height(), img.width(), 4)
    return a[a.shape[0] // 2, a.shape[1] // 2, :3].tolist()

g = np.stack(np.meshgrid(np.linspace(-1, 1, 120), np.linspace(-1, 1, 120)), -1).reshape(-1, 2)
pts = np.concatenate([g, np.full((len(g), 1), 3.0)], 1).astype(np.float32)
panel = MeshPanel(backend='gl')
panel.resize(240, 200); panel.show()
panel.set_live_value(PointCloud(pts, np.tile([1.0, 0.0, 0.0], (len(pts), 1))))
wait(panel, 1)
item, first = panel.view._item, centre(panel)
panel.set_live_value(PointCloud(pts, np.tile([0.0, 1.0, 0.0], (len(pts), 1))))
wait(panel, 2)
sys.stdout.write(json.dumps({'backend': panel.backend, 'first': first, 'second': centre(panel),
                             'same_item': panel.view._item is item}))
"""


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run")
def test_the_opengl_view_draws_each_live_frame_with_one_item(tmp_path: Path) -> None:
    """Under a real display: a red cloud, then the same cloud green in the same GL item."""
    script = tmp_path / "gl_live_probe.py"
    script.write_text(GL_PROBE)
    out = run_under_xvfb(script, 420)
    assert out["backend"] == "opengl" and out["same_item"]
    assert out["first"] == [255, 0, 0] and out["second"] == [0, 255, 0]


TWO_SCREENS = {
    "synchronousWindowSystemEvents": True,
    "windowFrameMargins": False,
    "screens": [
        {"name": "studio", "x": 0, "y": 0, "width": 1280, "height": 800, "logicalDpi": 96},
        {"name": "projector", "x": 1280, "y": 0, "width": 1920, "height": 1080, "logicalDpi": 96},
    ],
}
SECOND_SCREEN_PROBE = """
import json, sys, time
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QKeyEvent
from PySide6.QtWidgets import QApplication, QWidget
app = QApplication([])
from fathom.app.live_window import LiveWindow

def settle():
    for _ in range(30):
        app.processEvents(); time.sleep(0.01)

studio = QWidget(); studio.resize(400, 300); studio.show(); settle()
window = LiveWindow("win", "Live Window", studio)
window.show(); settle()
window.full_screen(); settle()
full = [window.isFullScreen(), window.screen().name(), window.geometry().getRect()]
esc = QKeyEvent(QKeyEvent.Type.KeyPress, Qt.Key.Key_Escape, Qt.KeyboardModifier.NoModifier)
QApplication.sendEvent(window, esc); settle()
sys.stdout.write(json.dumps({"studio": studio.screen().name(), "full": full,
                             "after_esc": window.isFullScreen(),
                             "screens": [s.name() for s in QGuiApplication.screens()]}))
"""


def test_full_screen_goes_to_the_second_monitor(tmp_path: Path) -> None:
    """With two screens (Qt's offscreen platform configured with two), the window goes full
    screen on the one the studio is not on, filling it; Esc leaves."""
    config = tmp_path / "screens.json"
    config.write_text(json.dumps(TWO_SCREENS))
    script = tmp_path / "second_screen.py"
    script.write_text(SECOND_SCREEN_PROBE)
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}"}
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(out["screens"]) == ["projector", "studio"]
    full, name = out["full"], out["full"][1]
    assert full[0] and name != out["studio"]
    other = next(s for s in TWO_SCREENS["screens"] if s["name"] == name)
    assert full[2] == [other["x"], other["y"], other["width"], other["height"]]
    assert out["after_esc"] is False
