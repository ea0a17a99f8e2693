"""Preview viewers: the right pixels on screen, zoom about the cursor, readouts, A/B split, depth
range, video stepping/playing, the software 3D fallback, the dock's dispatch, and (under Xvfb)
the OpenGL mesh view."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh
from gui_input import send_wheel, shown
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent
from PySide6.QtWidgets import QApplication, QPlainTextEdit, QWidget
from xvfb_probe import run_under_xvfb

from fathom.app.preview.depth_view import DepthPanel, colorize_range, colormap_lut
from fathom.app.preview.dock import PreviewDock
from fathom.app.preview.image_view import ImagePanel, ImageView
from fathom.app.preview.mesh_view import MeshPanel, SoftwareMeshView
from fathom.app.preview.video_player import VideoPlayer
from fathom.engine.geometry.viewing import BACKGROUND
from fathom.engine.types import (
    RGBD,
    AudioTrack,
    Camera,
    CameraPath,
    Depth,
    Image,
    Mask,
    Mesh,
    PointCloud,
    Video,
)

pytestmark = pytest.mark.gui
BG8 = np.array([round(c * 255) for c in BACKGROUND])


# --------------------------------------------------------------------------------------------
# helpers


def grab(widget: QWidget) -> np.ndarray:
    """The widget as drawn on screen: H×W×3 uint8."""
    return qimage_array(widget.grab().toImage())


def qimage_array(img: QImage) -> np.ndarray:
    img = img.convertToFormat(QImage.Format.Format_RGBA8888)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    return arr[:, : img.width() * 4].reshape(img.height(), img.width(), 4)[..., :3].copy()


def to8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(int)


def mouse(
    widget: QWidget,
    kind: QEvent.Type,
    pos: QPointF,
    button: Qt.MouseButton = Qt.MouseButton.LeftButton,
) -> None:
    buttons = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseButtonRelease else button
    ev = QMouseEvent(
        kind,
        pos,
        widget.mapToGlobal(pos),
        button if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton,
        buttons,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, ev)


def drag(
    widget: QWidget,
    start: QPointF,
    end: QPointF,
    button: Qt.MouseButton = Qt.MouseButton.LeftButton,
) -> None:
    mouse(widget, QEvent.Type.MouseButtonPress, start, button)
    mouse(widget, QEvent.Type.MouseMove, (start + end) / 2, button)
    mouse(widget, QEvent.Type.MouseMove, end, button)
    mouse(widget, QEvent.Type.MouseButtonRelease, end, button)


def hover(widget: QWidget, pos: QPointF) -> None:
    ev = QMouseEvent(
        QEvent.Type.MouseMove,
        pos,
        widget.mapToGlobal(pos),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, ev)


@pytest.fixture
def image() -> np.ndarray:
    """10×20 RGB with every pixel different."""
    return np.random.default_rng(3).random((10, 20, 3)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# image viewer


def test_image_view_draws_the_input_pixels(qtbot, image) -> None:
    view = shown(qtbot, ImageView(), 200, 100)
    view.set_image(image)
    assert view.scale == pytest.approx(10.0)  # fit: 20×10 into 200×100
    px = grab(view)
    for x, y in [(0, 0), (3, 4), (19, 9), (11, 2)]:
        got = px[y * 10 + 5, x * 10 + 5]
        assert np.abs(got - to8(image[y, x])).max() <= 1, (x, y)


def test_wheel_zooms_about_the_cursor(qtbot, image) -> None:
    view = shown(qtbot, ImageView(), 200, 100)
    view.set_image(image)
    cursor = QPointF(63.0, 37.0)
    before = view.widget_to_image(cursor)
    colour_before = grab(view)[37, 63]
    send_wheel(view, cursor, 120)
    assert view.scale == pytest.approx(12.5)
    after = view.widget_to_image(cursor)
    assert (after.x(), after.y()) == pytest.approx((before.x(), before.y()), abs=1e-6)
    assert np.array_equal(grab(view)[37, 63], colour_before)
    send_wheel(view, cursor, -240)
    assert view.scale == pytest.approx(12.5 / 1.5625)
    again = view.widget_to_image(cursor)
    assert (again.x(), again.y()) == pytest.approx((before.x(), before.y()), abs=1e-6)


def test_drag_pans_and_fit_or_one_to_one_reset(qtbot, image) -> None:
    view = shown(qtbot, ImageView(), 200, 100)
    view.set_image(image)
    o = view.offset
    drag(view, QPointF(50, 50), QPointF(80, 70))
    assert (view.offset.x() - o.x(), view.offset.y() - o.y()) == pytest.approx((30, 20))
    view.actual_size()
    assert view.scale == 1.0
    assert view.offset.x() == pytest.approx((200 - 20) / 2)
    view.fit()
    assert view.scale == pytest.approx(10.0)


def test_same_size_image_keeps_the_zoom(qtbot, image) -> None:
    view = shown(qtbot, ImageView(), 200, 100)
    view.set_image(image)
    send_wheel(view, QPointF(40, 40), 240)
    scale, off = view.scale, view.offset
    view.set_image(image[::-1].copy())  # a new step preview, same size
    assert view.scale == scale and view.offset == off
    view.set_image(np.zeros((5, 5, 3), np.float32))  # a different size refits
    assert view.scale == pytest.approx(20.0)


def test_pixel_readout_names_the_pixel_and_its_values(qtbot, image) -> None:
    panel = shown(qtbot, ImagePanel(), 300, 200)
    panel.set_image(image)
    v = panel.view
    hover(v, v.image_to_widget(QPointF(3.5, 4.5)))
    r, g, b = image[4, 3]
    assert panel.readout.text() == f"x 3  y 4   R {r:.3f}  G {g:.3f}  B {b:.3f}  A 1.000"
    mask = np.full((6, 8), 0.25, np.float32)
    panel.set_image(Mask(mask).data)
    hover(v, v.image_to_widget(QPointF(7.5, 5.5)))
    assert panel.readout.text() == "x 7  y 5   V 0.250"
    hover(v, QPointF(1, 1))  # outside the image (letterbox)
    assert panel.readout.text() == ""


def test_ab_split_shows_a_left_and_b_right(qtbot) -> None:
    panel = shown(qtbot, ImagePanel(), 300, 200)
    red = np.zeros((20, 40, 3), np.float32)
    red[..., 0] = 1
    blue = np.zeros((20, 40, 3), np.float32)
    blue[..., 2] = 1
    panel.set_image(red)
    panel.pin_a()
    panel.set_image(blue)
    assert panel.compare_button.isChecked() and panel.split_slider.isVisible()
    v = panel.view

    def colour_at(ix: float) -> np.ndarray:
        p = v.image_to_widget(QPointF(ix, 10))
        return grab(v)[int(p.y()), int(p.x())]

    assert list(colour_at(5)) == [255, 0, 0] and list(colour_at(35)) == [0, 0, 255]
    assert list(colour_at(15)) == [255, 0, 0]
    panel.split_slider.setValue(250)  # split at a quarter of the width
    assert list(colour_at(15)) == [0, 0, 255] and list(colour_at(5)) == [255, 0, 0]
    hover(v, v.image_to_widget(QPointF(2.5, 3.5)))
    assert panel.readout.text().startswith("A  x 2  y 3   R 1.000  G 0.000  B 0.000")
    hover(v, v.image_to_widget(QPointF(30.5, 3.5)))
    assert panel.readout.text().startswith("B  x 30  y 3   R 0.000  G 0.000  B 1.000")
    panel.compare_button.setChecked(False)
    assert list(colour_at(5)) == [0, 0, 255]


# --------------------------------------------------------------------------------------------
# depth viewer


def test_depth_colours_follow_the_range_slider(qtbot) -> None:
    panel = shown(qtbot, DepthPanel(), 400, 200)
    d = np.tile(np.linspace(1.0, 5.0, 40, dtype=np.float32), (10, 1))
    d[0, 0] = np.nan
    panel.set_depth(Depth(d, kind="metric"))
    panel.set_near_far(1.0, 5.0)
    v = panel.view
    lut = colormap_lut("turbo")

    def colour_at(x: int, y: int) -> np.ndarray:
        p = v.image_to_widget(QPointF(x + 0.5, y + 0.5))
        return grab(v)[int(p.y()), int(p.x())]

    assert np.abs(colour_at(0, 5) - to8(lut[255])).max() <= 1  # nearest: bright end
    assert np.abs(colour_at(39, 5) - to8(lut[0])).max() <= 1  # farthest: dark end
    assert list(colour_at(0, 0)) == [0, 0, 0]  # no depth: black
    mid_before = colour_at(20, 5)
    assert np.abs(mid_before - to8(colorize_range(d, 1.0, 5.0)[5, 20])).max() <= 1
    low, high = panel.range_slider.values()
    panel.range_slider.set_values(low, (low + high) // 2)  # far clip pulled in: 3 m
    near, far = panel.near_far()
    assert (near, far) == pytest.approx((1.0, 3.0), abs=0.01)
    assert np.abs(colour_at(20, 5) - mid_before).max() > 30
    assert np.abs(colour_at(30, 5) - to8(lut[0])).max() <= 1  # beyond far: clamped
    hover(v, v.image_to_widget(QPointF(10.5, 3.5)))
    assert panel.readout.text() == f"x 10  y 3   depth {d[3, 10]:.3f} m"
    hover(v, v.image_to_widget(QPointF(0.5, 0.5)))
    assert panel.readout.text() == "x 0  y 0   no depth"


def test_range_slider_handles_follow_the_mouse(qtbot) -> None:
    panel = shown(qtbot, DepthPanel(), 400, 200)
    panel.set_depth(Depth(np.tile(np.linspace(1, 2, 16, dtype=np.float32), (4, 1)), "metric"))
    s = panel.range_slider
    y = s.height() / 2
    drag(s, QPointF(s.width() - 9, y), QPointF(s.width() / 2, y))
    assert s.values()[1] == pytest.approx(500, abs=10)
    assert panel.near_far()[1] == pytest.approx(1.5, abs=0.02)


# --------------------------------------------------------------------------------------------
# video player


def colour_video(n: int, fps: float, calls: list[int]) -> Video:
    def frame(i: int) -> Image:
        calls.append(i)
        c = np.array([i / (n - 1), 0.5, 1 - i / (n - 1)], np.float32)
        return Image(np.broadcast_to(c, (12, 16, 3)).copy())

    return Video(n, fps, frame, (16, 12))


def test_video_player_steps_frames_lazily(qtbot) -> None:
    player = shown(qtbot, VideoPlayer(), 320, 240)
    calls: list[int] = []
    player.set_video(colour_video(12, 24.0, calls))
    qtbot.waitUntil(lambda: player.idle, timeout=5000)
    assert player.counter.text() == "1 / 12" and calls == [0]

    def centre() -> np.ndarray:
        qtbot.waitUntil(lambda: player.idle, timeout=5000)
        v = player.view
        return grab(v)[v.height() // 2, v.width() // 2]

    player.next_button.click()
    player.next_button.click()
    assert player.counter.text() == "3 / 12" and player.slider.value() == 2
    assert np.abs(centre() - to8(np.array([2 / 11, 0.5, 9 / 11]))).max() <= 1
    player.back_button.click()
    assert player.counter.text() == "2 / 12"
    player.step(-2)  # wraps
    assert player.counter.text() == "12 / 12"
    assert np.abs(centre() - to8(np.array([1.0, 0.5, 0.0]))).max() <= 1
    player.slider.setValue(6)
    assert player.counter.text() == "7 / 12"
    qtbot.waitUntil(lambda: player.idle, timeout=5000)
    # Decoded on demand, never the whole clip; frames asked for and passed over quickly (1)
    # may be skipped: the latest request wins.
    assert set(calls) <= {0, 1, 2, 6, 11} and {0, 2, 6, 11} <= set(calls)
    assert all(calls.count(i) == 1 for i in set(calls))  # cached frames are never re-decoded


def test_a_slow_frame_does_not_block_the_window(qtbot) -> None:
    """A generated frame can take seconds: the GUI thread only asks; the worker decodes."""
    import threading
    import time as _time

    gate = threading.Event()

    def frame(i: int) -> Image:
        gate.wait(5)
        return Image(np.full((12, 16, 3), i / 3, np.float32))

    player = shown(qtbot, VideoPlayer(), 320, 240)
    t0 = _time.perf_counter()
    player.set_video(Video(4, 24.0, frame, (16, 12)).with_audio(AudioTrack.silence(4 / 24)))
    assert _time.perf_counter() - t0 < 0.5  # returned while the frame is still being made
    assert player.status.text() == "decoding…" and not player.idle
    gate.set()
    qtbot.waitUntil(lambda: player.idle, timeout=5000)
    assert player.status.text() == "♪"  # the clip has sound


def test_a_failing_frame_is_reported_not_raised(qtbot) -> None:
    def frame(i: int) -> Image:
        raise RuntimeError("model ran out of memory")

    player = shown(qtbot, VideoPlayer(), 320, 240)
    player.set_video(Video(3, 24.0, frame, (16, 12)))
    qtbot.waitUntil(lambda: "out of memory" in player.status.text(), timeout=5000)
    assert player.status.text().startswith("frame 1:")


def test_video_play_advances_and_pause_stops(qtbot) -> None:
    player = shown(qtbot, VideoPlayer(), 320, 240)
    player.set_video(colour_video(1000, 100.0, []))
    player.play_button.click()
    assert player.playing
    qtbot.waitUntil(lambda: player.current >= 3, timeout=5000)
    player.play_button.click()
    assert not player.playing
    stopped = player.current
    qtbot.wait(100)
    assert player.current == stopped
    assert player.counter.text() == f"{stopped + 1} / 1000"


# --------------------------------------------------------------------------------------------
# mesh / point cloud viewer (software fallback offscreen)


def sphere(color: tuple[int, int, int] | None = None) -> Mesh:
    tm = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    if color is not None:
        tm.visual.vertex_colors = np.array([*color, 255], np.uint8)
    return Mesh(tm)


def test_mesh_fallback_renders_a_sphere(qtbot) -> None:
    panel = shown(qtbot, MeshPanel(), 200, 180)
    assert panel.backend == "software"  # offscreen Qt has no OpenGL
    view = panel.view
    assert isinstance(view, SoftwareMeshView)
    panel.set_value(sphere())
    img = view.render_now()
    h, w = img.shape[:2]
    assert np.abs(img[h // 2, w // 2] - BACKGROUND).max() > 0.3  # the sphere, shaded gray
    assert np.allclose(img[0, 0], BACKGROUND) and np.allclose(img[-1, -1], BACKGROUND)
    px = grab(view)
    assert np.abs(px[view.height() // 2, view.width() // 2] - BG8).max() > 60
    assert np.abs(px[2, 2] - BG8).max() <= 1
    panel.set_value(sphere((255, 0, 0)))
    img = view.render_now()
    assert np.allclose(img[h // 2, w // 2], [1, 0, 0], atol=0.02)  # vertex colours
    panel.color_button.setChecked(False)
    img = view.render_now()
    c = img[h // 2, w // 2]
    assert c[0] == pytest.approx(c[1]) and c[0] > 0.5  # colours off: gray


def test_mesh_fallback_orbits_zooms_and_draws_wireframes(qtbot) -> None:
    panel = shown(qtbot, MeshPanel(backend="software"), 200, 180)
    view = panel.view
    assert isinstance(view, SoftwareMeshView)
    panel.set_value(sphere())
    qtbot.waitUntil(lambda: view.idle and view.frames_shown >= 1, timeout=10000)
    covered = (np.abs(view.render_now() - BACKGROUND).max(2) > 0.01).mean()
    n = view.frames_shown
    drag(view, QPointF(100, 90), QPointF(60, 90))
    assert view.orbit.azimuth == pytest.approx(16.0)
    send_wheel(view, QPointF(100, 90), 240)
    qtbot.waitUntil(lambda: view.idle and view.frames_shown > n, timeout=10000)
    zoomed = (np.abs(view.render_now() - BACKGROUND).max(2) > 0.01).mean()
    assert zoomed > covered * 1.5  # closer: the sphere fills more of the view
    panel.wire_button.setChecked(True)
    img = view.render_now()
    white = (img > 0.94).all(2)
    assert white.sum() > 100  # edges drawn (the gray shading never gets this bright)
    panel.wire_button.setChecked(False)
    assert not (view.render_now() > 0.94).all(2).any()


def test_point_clouds_and_rgbd_render_with_point_size(qtbot) -> None:
    panel = shown(qtbot, MeshPanel(backend="software"), 160, 120)
    g = np.stack(np.meshgrid(np.linspace(-1, 1, 30), np.linspace(-1, 1, 30)), -1).reshape(-1, 2)
    pts = np.concatenate([g, np.zeros((len(g), 1))], 1)
    panel.set_value(PointCloud(pts, np.tile([[0.0, 1.0, 0.0]], (len(pts), 1))))
    view = panel.view
    assert isinstance(view, SoftwareMeshView)
    panel.point_size.setValue(1)
    small = (view.render_now()[..., 1] > 0.9).sum()
    panel.point_size.setValue(5)
    big = (view.render_now()[..., 1] > 0.9).sum()
    assert small > 100 and big > 2 * small
    rgbd = RGBD(
        Image(np.tile([1.0, 0.0, 0.0], (24, 32, 1))),
        Depth(np.full((24, 32), 2.0, np.float32), kind="metric"),
        Camera.from_fov(32, 24, 60.0),
    )
    panel.set_value(rgbd)
    img = view.render_now()
    h, w = img.shape[:2]
    assert np.allclose(img[h // 2, w // 2], [1, 0, 0], atol=0.02)
    assert "RGBD 32×24" in panel.info.text()


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run")
def test_opengl_mesh_view_draws_under_xvfb(tmp_path: Path) -> None:
    """The GL path needs a real display: run it in a child process under Xvfb."""
    script = tmp_path / "gl_probe.py"
    script.write_text(
        "import json, sys, time, numpy as np, trimesh\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from fathom.app.preview.mesh_view import MeshPanel\n"
        "from fathom.engine.types import Mesh\n"
        "tm = trimesh.creation.icosphere(subdivisions=3)\n"
        "tm.visual.vertex_colors = np.array([255, 0, 0, 255], np.uint8)\n"
        "panel = MeshPanel(backend='gl')\n"  # 'auto' keeps CPU-only OpenGL (Xvfb) off
        "from fathom.engine.geometry import scene\n"
        "egl = scene.opengl_available()\n"  # after the GUI bound PyOpenGL: refused, not broken
        "panel.resize(240, 200); panel.show(); panel.set_value(Mesh(tm))\n"
        "t = time.time()\n"
        "while time.time() - t < 1.0: app.processEvents(); time.sleep(0.02)\n"
        "img = panel.view.grab_image().convertToFormat(panel.view.grab_image().Format.Format_RGBA8888)\n"  # noqa: E501
        "a = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())\n"
        "a = a[:, :img.width() * 4].reshape(img.height(), img.width(), 4)\n"
        "red = (a[..., 0] > 200) & (a[..., 1] < 60) & (a[..., 2] < 60)\n"
        "c = a[a.shape[0] // 2, a.shape[1] // 2, :3].tolist()\n"
        "sys.stdout.write(json.dumps({'backend': panel.backend, 'red': float(red.mean()),\n"
        "                             'egl': egl, 'egl_error': scene.opengl_error(),\n"
        "                             'centre': c, 'size': [img.width(), img.height()]}))\n"
    )
    out = run_under_xvfb(script, 400)
    assert out["backend"] == "opengl"
    assert out["egl"] is False and "torch renderer" in out["egl_error"]
    assert out["centre"] == [255, 0, 0]
    assert 0.1 < out["red"] < 0.9  # a sphere, not a blank or a full-screen fill


# --------------------------------------------------------------------------------------------
# the dock


def test_dock_picks_the_viewer_by_type(qtbot) -> None:
    dock = shown(qtbot, PreviewDock(), 400, 300)
    assert isinstance(dock, PreviewDock) and dock.kind == "empty"
    img = Image(np.random.default_rng(0).random((8, 8, 3)))
    cases = [
        (img, "image"),
        (Mask(np.ones((4, 4))), "image"),
        (Depth(np.ones((4, 4)), kind="metric"), "depth"),
        (Video.from_frames([img, img], 12.0), "video"),
        (sphere(), "mesh"),
        (PointCloud(np.random.default_rng(1).random((50, 3))), "mesh"),
        (RGBD(img, Depth(np.full((8, 8), 2.0), kind="metric")), "mesh"),
        (Camera.from_fov(64, 48, 60.0), "text"),
        (3.5, "text"),
        ("hello", "text"),
    ]
    for value, kind in cases:
        dock.show_value(value, "node.out")
        assert dock.kind == kind, type(value).__name__
        assert dock.current_panel() is dock.panel(kind)
    assert "Preview — node.out" == dock.windowTitle()
    dock.show_value(Camera.from_fov(64, 48, 60.0))
    text = dock.panel("text")
    assert isinstance(text, QPlainTextEdit)
    assert "fx 41.57" in text.toPlainText() and "vertical field of view 60.0°" in text.toPlainText()
    dock.show_value(CameraPath([Camera.from_fov(8, 8, 60.0)] * 3, 24.0))
    assert text.toPlainText().startswith("Camera path: 3 cameras at 24 fps")
    dock.show_value(Mesh(trimesh.Trimesh(np.zeros((3, 3)), np.zeros((0, 3), int))))
    assert dock.kind == "text" and "Cannot preview this Mesh" in text.toPlainText()
    dock.clear()
    assert dock.kind == "empty"


def test_dock_step_previews_are_cheap_and_keep_the_zoom(qtbot) -> None:
    dock = shown(qtbot, PreviewDock(), 400, 300)
    rng = np.random.default_rng(0)
    frames = [Image(rng.random((256, 256, 3), dtype=np.float32)) for _ in range(10)]
    dock.show_value(frames[0], "sampler (step 1)")
    panel = dock.panel("image")
    assert isinstance(panel, ImagePanel)
    send_wheel(panel.view, QPointF(50, 50), 360)
    scale, off = panel.view.scale, panel.view.offset
    t0 = time.perf_counter()
    for f in frames[1:]:
        dock.show_value(f, "sampler")
        QApplication.processEvents()
    per_preview = (time.perf_counter() - t0) / 9
    assert panel.view.scale == scale and panel.view.offset == off
    assert np.array_equal(panel.view.image(), frames[-1].data)
    assert per_preview < 0.1, per_preview


def test_video_player_shows_depth_frames_in_a_colour_map_and_masks_as_they_are(qtbot) -> None:
    """A depth video plays turbo-coloured (the map depth.estimate's preview and the node
    thumbnails use) until Colour is switched off, and the choice stays for the next depth
    video; a mask video (only 0s and 1s) plays as it is, with no Colour switch."""
    from fathom.engine.imaging.depthmath import colorize

    ramp = np.linspace(0, 1, 16, dtype=np.float32)[None, :, None].repeat(12, 0)
    depth = Video.from_frames([Image(ramp), Image(ramp[:, ::-1].copy())], 12.0)
    player = shown(qtbot, VideoPlayer(), 320, 240)
    assert not player.colour_button.isVisible()
    player.set_video(depth)
    qtbot.waitUntil(lambda: player.idle and player.colour_button.isVisible(), timeout=5000)
    want = colorize(ramp[:, :, 0], "turbo", relative=True)
    np.testing.assert_allclose(player.view.image(), want, atol=1e-6)
    assert player.view.image()[:, 0].sum(axis=1).min() > 0.3  # 0, the nearest, is not black
    player.colour_button.setChecked(False)
    qtbot.waitUntil(lambda: player.idle and player.view.image().shape[2] == 1, timeout=5000)
    player.set_video(depth)  # the next depth video: still grey, the switch still offered
    qtbot.waitUntil(lambda: player.idle and player.colour_button.isVisible(), timeout=5000)
    assert player.view.image().shape[2] == 1
    player.colour_button.setChecked(True)
    qtbot.waitUntil(lambda: player.idle and player.view.image().shape[2] == 3, timeout=5000)
    mask = (ramp > 0.5).astype(np.float32)
    player.set_video(Video.from_frames([Image(mask)], 12.0))
    qtbot.waitUntil(lambda: player.idle and player.view.image() is not None, timeout=5000)
    assert player.view.image().shape[2] == 1 and not player.colour_button.isVisible()


def test_video_player_reads_out_the_frames_own_value_under_the_cursor(qtbot) -> None:
    """Under the picture, the value at the pixel under the cursor: for a one-channel video in
    colour the depth panel's readout of the frame's own value (not of the colour it is drawn
    in, nor grey with Colour off), following the frame shown while the cursor stays; RGB
    frames, the image panel's channels."""
    ramp = np.linspace(0.1, 0.9, 16, dtype=np.float32)[None, :, None].repeat(12, 0)
    later = (ramp * 0.5).astype(np.float32)
    depth = Video.from_frames([Image(ramp), Image(later)], 12.0)
    player = shown(qtbot, VideoPlayer(), 320, 240)
    player.set_video(depth)
    qtbot.waitUntil(lambda: player.idle and player.view.image() is not None, timeout=5000)
    v = player.view
    hover(v, v.image_to_widget(QPointF(10.5, 3.5)))
    assert player.readout.text() == f"x 10  y 3   depth {ramp[3, 10, 0]:.3f}"
    player.colour_button.setChecked(False)  # grey is only the drawing: still depth
    qtbot.waitUntil(lambda: player.idle and player.view.image().shape[2] == 1, timeout=5000)
    assert player.readout.text() == f"x 10  y 3   depth {ramp[3, 10, 0]:.3f}"
    player.colour_button.setChecked(True)
    qtbot.waitUntil(lambda: player.idle and player.view.image().shape[2] == 3, timeout=5000)
    player.step(1)  # the cursor stays: the readout follows the frame
    qtbot.waitUntil(lambda: player.idle and player.current == 1, timeout=5000)
    assert player.readout.text() == f"x 10  y 3   depth {later[3, 10, 0]:.3f}"
    hover(v, QPointF(1, 1))  # off the picture (letterbox)
    assert player.readout.text() == ""
    rgb = np.zeros((12, 16, 3), np.float32)
    rgb[..., 1] = 0.5
    player.set_video(Video.from_frames([Image(rgb)], 12.0))  # colour never touches RGB frames
    qtbot.waitUntil(lambda: player.idle and player.view.image() is not None, timeout=5000)
    hover(v, v.image_to_widget(QPointF(2.5, 1.5)))
    assert player.readout.text() == "x 2  y 1   R 0.000  G 0.500  B 0.000  A 1.000"


def test_depth_readout_counts_relative_zero_as_the_nearest_depth() -> None:
    from fathom.app.preview.depth_view import format_depth
    from fathom.engine.types import Depth

    rel = Depth(np.zeros((2, 2), np.float32), "relative")
    metric = Depth(np.zeros((2, 2), np.float32), "metric")
    assert format_depth(1, 0, 0.0, rel) == "x 1  y 0   depth 0.000 (relative)"
    assert format_depth(1, 0, 0.0, metric) == "x 1  y 0   no depth"
    assert format_depth(1, 0, -0.5, rel) == "x 1  y 0   no depth"
    assert format_depth(1, 0, float("nan")) == "x 1  y 0   no depth"
