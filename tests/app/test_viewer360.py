"""360° viewer: looking around shows the right part of the panorama, moving shows parallax, the
depth-scale and field-of-view sliders act, renders go preview → full, screenshots are written."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import math
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent
from PySide6.QtWidgets import QApplication, QWidget

from fathom.app import viewer360
from fathom.app.viewer360 import Viewer360
from fathom.engine.geometry import projection
from fathom.engine.geometry.meshing import panorama_trimesh
from fathom.engine.types import Depth, Image, Mesh

pytestmark = pytest.mark.gui
REPO = Path(__file__).resolve().parents[2]
QUADRANTS = {
    "front": (1.0, 0.0, 0.0),
    "right": (0.0, 1.0, 0.0),
    "back": (0.0, 0.0, 1.0),
    "left": (1.0, 1.0, 0.0),
}
MAGENTA = np.array([1.0, 0.0, 1.0])


def quadrant_panorama(w: int = 128, distance: float = 4.0) -> tuple[Image, Depth]:
    """Four 90° sectors of longitude, each its own colour: front (+z) red, right (+x) green,
    back blue, left yellow; every pixel at the same distance."""
    h = w // 2
    d = projection.equirect_directions(w, h)
    lon = np.degrees(np.arctan2(d[..., 0], d[..., 2]))
    rgb = np.zeros((h, w, 3), np.float32)
    for name, centre in (("front", 0), ("right", 90), ("back", 180), ("left", -90)):
        sel = np.abs((lon - centre + 180) % 360 - 180) < 45
        rgb[sel] = QUADRANTS[name]
    return Image(rgb), Depth(np.full((h, w), distance, np.float32), kind="metric")


def object_panorama(w: int = 256) -> tuple[Image, Depth]:
    """Gray room 5 m away with a magenta patch 1.5 m ahead (±12° around the forward axis)."""
    h = w // 2
    d = projection.equirect_directions(w, h)
    lon = np.degrees(np.arctan2(d[..., 0], d[..., 2]))
    lat = np.degrees(np.arcsin(-d[..., 1]))
    rgb = np.full((h, w, 3), 0.5, np.float32)
    dist = np.full((h, w), 5.0, np.float32)
    patch = (np.abs(lon) < 12) & (np.abs(lat) < 12)
    rgb[patch] = MAGENTA
    dist[patch] = 1.5
    return Image(rgb), Depth(dist, kind="metric")


def magenta(img: np.ndarray) -> int:
    return int((np.abs(img - MAGENTA).max(2) < 0.1).sum())


def centre(img: np.ndarray) -> np.ndarray:
    return img[img.shape[0] // 2, img.shape[1] // 2]


def grab_canvas(v: Viewer360) -> np.ndarray:
    img = v.canvas.grab().toImage().convertToFormat(QImage.Format.Format_RGBA8888)
    a = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    return a[:, : img.width() * 4].reshape(img.height(), img.width(), 4)[..., :3] / 255.0


def drag(widget: QWidget, start: QPointF, end: QPointF) -> None:
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    mods = Qt.KeyboardModifier.NoModifier
    for kind, pos, button, buttons in (
        (QEvent.Type.MouseButtonPress, start, left, left),
        (QEvent.Type.MouseMove, end, none, left),
        (QEvent.Type.MouseButtonRelease, end, left, none),
    ):
        QApplication.sendEvent(
            widget, QMouseEvent(kind, pos, widget.mapToGlobal(pos), button, buttons, mods)
        )


@pytest.fixture
def viewer(qtbot) -> Viewer360:
    v = Viewer360()
    qtbot.addWidget(v)
    v.resize(360, 300)
    v.show()
    qtbot.waitExposed(v)
    return v


def test_yaw_turns_to_the_right_hand_quadrant(viewer: Viewer360) -> None:
    viewer.set_panorama(*quadrant_panorama())
    for yaw, name in ((0, "front"), (90, "right"), (180, "back"), (270, "left")):
        viewer.set_view(yaw=yaw)
        img = viewer.render_image(64, 48)
        assert np.allclose(centre(img), QUADRANTS[name], atol=0.05), (yaw, centre(img))
    viewer.set_view(yaw=90)
    viewer.refresh(sync=True)  # what is on screen, not just the renderer
    shown = grab_canvas(viewer)
    assert np.allclose(centre(shown), QUADRANTS["right"], atol=0.05)
    # A 75° view at yaw 90 spans lon 90±~45·aspect: left edge shows front, right edge back.
    row = shown[shown.shape[0] // 2]
    assert np.allclose(row[2], QUADRANTS["front"], atol=0.05)
    assert np.allclose(row[-3], QUADRANTS["back"], atol=0.05)


def test_dragging_left_looks_right(viewer: Viewer360) -> None:
    viewer.set_panorama(*quadrant_panorama())
    c = viewer.canvas
    px = 90.0 / (viewer.fov / c.height())  # pixels for a quarter turn
    y = c.height() / 2
    drag(c, QPointF(c.width() - 5, y), QPointF(c.width() - 5 - px, y))
    assert viewer.yaw == pytest.approx(90.0, abs=0.5)
    assert np.allclose(centre(viewer.render_image(64, 48)), QUADRANTS["right"], atol=0.05)
    drag(c, QPointF(50, y), QPointF(50, y + 20))  # drag down: look up
    assert viewer.pitch > 0


def test_moving_forward_shows_parallax(qtbot, viewer: Viewer360) -> None:
    viewer.set_panorama(*object_panorama())
    at_centre = viewer.render_image(96, 72)
    n0 = magenta(at_centre)
    assert n0 > 100
    viewer.canvas.setFocus()
    qtbot.keyPress(viewer.canvas, Qt.Key.Key_W)  # held: walks at viewer.speed per second
    viewer.advance(5 * viewer.step / viewer.speed)  # a frame tick of that many seconds
    qtbot.keyRelease(viewer.canvas, Qt.Key.Key_W)
    assert viewer.position[2] == pytest.approx(5 * viewer.step)
    assert viewer.position[0] == pytest.approx(0.0) and viewer.position[1] == pytest.approx(0.0)
    moved = viewer.render_image(96, 72)
    assert magenta(moved) > 1.3 * n0  # the near object grows...
    assert np.abs(moved - at_centre).max() > 0.3
    viewer.set_view(yaw=90)
    qtbot.keyPress(viewer.canvas, Qt.Key.Key_S)  # backwards while facing +x
    viewer.advance(viewer.step / viewer.speed)
    qtbot.keyRelease(viewer.canvas, Qt.Key.Key_S)
    assert viewer.position[0] == pytest.approx(-viewer.step)
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_R)
    assert np.allclose(viewer.position, 0) and viewer.yaw == 0


def test_sideways_motion_moves_near_things_more(viewer: Viewer360) -> None:
    viewer.set_panorama(*object_panorama(), fill_holes=False)

    def patch_x() -> float:  # the mesh alone: no hole filling to blur the patch's edges
        sc = viewer.scene("full")
        assert sc is not None
        img = viewer360.render_view(sc, viewer.camera(96, 72))
        return float(np.nonzero((np.abs(img - MAGENTA).max(2) < 0.1).any(0))[0].mean())

    x0 = patch_x()
    viewer.set_view(position=(0.3, 0.0, 0.0))  # step right: the near patch slides left
    x1 = patch_x()
    f = 0.5 * 72 / math.tan(math.radians(viewer.fov) / 2)
    # Analytic parallax of a point 1.5 m ahead for a 0.3 m step: f·0.3/1.5 pixels (the far
    # room, 5 m away, would move only f·0.3/5).
    assert x0 - x1 == pytest.approx(f * 0.3 / 1.5, rel=0.25)


def test_depth_scale_and_fov_sliders_act(viewer: Viewer360) -> None:
    viewer.set_panorama(*object_panorama())
    viewer.set_view(position=(0.0, 0.0, 0.6))
    base = magenta(viewer.render_image(96, 72))
    full = viewer.scene("full")
    assert viewer.scene("full") is full  # cached while the scale is unchanged
    viewer.scale_slider.setValue(100)  # log2 ×100: depth ×2
    assert viewer.depth_scale == pytest.approx(2.0)
    scaled = viewer.scene("full")
    assert scaled is not full
    assert np.abs(scaled.vertices).max() == pytest.approx(2 * np.abs(full.vertices).max(), rel=1e-5)
    farther = magenta(viewer.render_image(96, 72))
    assert farther < 0.7 * base  # the object is now 3 m away, we are still 0.6 m out
    assert viewer.scale_label.text() == "×2.00"
    viewer.fov_slider.setValue(40)
    assert viewer.fov == 40.0
    narrow = magenta(viewer.render_image(96, 72))
    assert narrow > 2 * farther  # a narrower field of view magnifies
    viewer.set_view(fov=100)
    assert viewer.fov_slider.value() == 100  # sliders follow programmatic changes


def test_renders_preview_then_full_size_on_the_worker(qtbot, viewer: Viewer360) -> None:
    viewer.set_panorama(*quadrant_panorama())
    qtbot.waitUntil(lambda: viewer.idle and viewer.frames_shown >= 2, timeout=15000)
    frame = viewer.frame()
    assert frame is not None
    assert (frame.width(), frame.height()) == viewer.render_size(preview=False)
    n = viewer.frames_shown
    viewer.set_view(yaw=90)
    qtbot.waitUntil(lambda: viewer.frames_shown > n, timeout=15000)
    first = viewer.frame()
    assert first is not None and first.width() < viewer.render_size(preview=False)[0]
    qtbot.waitUntil(lambda: viewer.idle, timeout=15000)
    final = viewer.frame()
    assert final is not None and final.width() == viewer.render_size(preview=False)[0]
    assert np.allclose(centre(grab_canvas(viewer)), QUADRANTS["right"], atol=0.05)
    assert "yaw 90°" in viewer.status.text()


def test_mesh_input_and_fullscreen_toggle(qtbot, viewer: Viewer360) -> None:
    img, depth = quadrant_panorama()
    viewer.set_mesh(Mesh(panorama_trimesh(img.data, depth.data, 2, 0.08, "vertex")))
    viewer.set_view(yaw=270)
    assert np.allclose(centre(viewer.render_image(64, 48)), QUADRANTS["left"], atol=0.05)
    assert not viewer.isFullScreen()
    viewer.activateWindow()
    qtbot.waitUntil(viewer.isActiveWindow, timeout=5000)
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_F11)  # the window-wide shortcut
    assert viewer.isFullScreen()
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_Escape)
    assert not viewer.isFullScreen()
    viewer.fullscreen_button.click()
    assert viewer.isFullScreen()
    viewer.toggle_fullscreen()
    assert not viewer.isFullScreen()


def test_a_large_mesh_moves_with_a_decimated_copy(viewer: Viewer360) -> None:
    """While moving, a mesh over PREVIEW_FACES triangles is drawn decimated: the same view."""
    img, depth = quadrant_panorama(320)
    tm = panorama_trimesh(img.data, depth.data, 1, 0.08, "vertex")
    assert len(tm.faces) > viewer360.PREVIEW_FACES
    content = viewer360.mesh_content(Mesh(tm))
    full, preview = content.base["full"], content.base["preview"]
    assert full.faces is not None and len(full.faces) == len(tm.faces)
    assert preview.faces is not None and len(preview.faces) <= viewer360.PREVIEW_FACES
    viewer.set_mesh(Mesh(tm))
    for yaw, quadrant in ((0, "front"), (270, "left")):
        viewer.set_view(yaw=yaw + 20)
        still = viewer.render_image(64, 48)
        moving = viewer.render_image(64, 48, preview=True)
        assert np.allclose(centre(moving), QUADRANTS[quadrant], atol=0.05)
        assert np.abs(moving - still).mean() < 0.02


def test_bad_panorama_is_refused(viewer: Viewer360) -> None:
    img, depth = quadrant_panorama()
    with pytest.raises(ValueError, match="2:1"):
        viewer.set_panorama(Image(img.data[:, :100]), Depth(depth.data[:, :100], "metric"))
    with pytest.raises(ValueError, match="resize"):
        viewer.set_panorama(img, Depth(depth.data[:32, :64], "metric"))


def test_open_window_keeps_an_unparented_viewer(qtbot) -> None:
    v = Viewer360.open_window(*quadrant_panorama())  # deletes itself on close
    try:
        assert v.isWindow() and v.isVisible() and v in viewer360._OPEN_WINDOWS
    finally:
        v.close()
    qtbot.waitUntil(lambda: v not in viewer360._OPEN_WINDOWS, timeout=5000)


def test_screenshot_of_the_demo_panorama(tmp_path: Path, qtbot) -> None:
    out = tmp_path / "shot.png"
    assert viewer360.main(["--screenshot", str(out), "--size", "480x300"]) == 0
    shot = QImage(str(out))
    assert (shot.width(), shot.height()) == (480, 300)
    a = np.frombuffer(shot.convertToFormat(QImage.Format.Format_RGB888).constBits(), np.uint8)
    assert a.std() > 20  # a rendered room, not a blank window


def test_banded_full_render_matches_and_can_be_abandoned(viewer: Viewer360) -> None:
    viewer.set_panorama(*object_panorama(128))
    viewer.set_view(yaw=10, pitch=5, position=(0.1, 0.0, 0.3))
    sc = viewer.scene("full")
    assert sc is not None
    cam = viewer.camera(80, 61)
    whole = viewer360.render_view(sc, cam)
    banded = viewer360.render_bands(sc, cam, 4)
    assert banded is not None and banded.shape == whole.shape
    assert np.abs(banded - whole).max() < 1e-5
    calls = []
    assert (
        viewer360.render_bands(sc, cam, 4, lambda: bool(calls.append(1)) or len(calls) > 2) is None
    )
    assert len(calls) == 3  # gave up before the third band


def test_cracks_and_disocclusions_show_background(viewer: Viewer360) -> None:
    img, depth = object_panorama()
    viewer.set_panorama(img, depth, fill_holes=False)
    sc = viewer.scene("full")
    assert sc is not None
    bare = viewer360.render_view(sc, viewer.camera(96, 72))
    black = (bare.max(2) < 0.05).sum()
    assert black > 0  # the mesh is cut around the near patch: cracks...
    closed = viewer.render_image(96, 72)
    assert (closed.max(2) < 0.05).sum() == 0  # ...closed per frame without a backdrop
    viewer.set_panorama(img, depth)
    filled = viewer.render_image(96, 72)
    assert (filled.max(2) < 0.05).sum() == 0
    assert magenta(filled) == pytest.approx(magenta(bare), abs=int(black))
    # From the capture point a crack shows the panorama's own colours there (gray, magenta or
    # a blend of the two: R = B and G = 1 - R), nothing painted in from elsewhere.
    cracks = filled[bare.max(2) < 0.05]
    assert np.allclose(cracks[:, 0], cracks[:, 2], atol=0.02)
    assert np.allclose(cracks[:, 1], 1 - cracks[:, 0], atol=0.02)
    # Step sideways: what the patch uncovers is background gray, not a ghost of the patch.
    viewer.set_view(position=(0.4, 0.0, 0.0))
    moved = viewer.render_image(96, 72)
    viewer.set_panorama(img, depth, fill_holes=False)
    viewer.set_view(position=(0.4, 0.0, 0.0))
    sc = viewer.scene("full")
    assert sc is not None
    moved_bare = viewer360.render_view(sc, viewer.camera(96, 72))
    holes = moved_bare.max(2) < 0.05
    assert holes.sum() > 20
    assert (moved.max(2) >= 0.05).all()  # no black
    gray = (np.abs(moved[holes] - 0.5).max(1) < 0.1).mean()
    # A ghost (the panorama itself as backdrop) would be all magenta here; only a rim one mesh
    # cell wide, kept for the cracks, shows the patch's colour.
    assert gray > 0.5


def test_background_texture_paints_out_objects_but_keeps_their_rims() -> None:
    img, depth = object_panorama(256)
    patch = np.abs(img.data - MAGENTA).max(2) < 0.01
    bg = viewer360.background_texture(img.data, depth.data, rim=2)
    rows, cols = np.nonzero(patch)
    inner = np.zeros_like(patch)
    inner[rows.min() + 4 : rows.max() - 3, cols.min() + 4 : cols.max() - 3] = True
    assert np.allclose(bg[inner], 0.5, atol=0.02)  # the object's inside: background gray
    assert np.allclose(bg[~patch], 0.5)  # the room is untouched
    edge = np.zeros_like(patch)
    edge[rows.min() : rows.max() + 1, cols.min()] = True  # the patch's left column
    assert np.allclose(bg[edge], MAGENTA)  # the rim keeps its colour for the cracks
