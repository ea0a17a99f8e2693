"""The studio's previews of generative 3D: a textured mesh shows its texture on the right faces
(software view, node thumbnail, 360° viewer, and OpenGL under Xvfb), and a view set shows as a
labelled contact sheet of its tiles in the preview dock and on the node, without stalling the
GUI thread."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from gui_input import shown
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent
from PySide6.QtWidgets import QApplication, QWidget
from textured_cube import colour_of, textured_cube
from xvfb_probe import run_under_xvfb

from fathom.app.editor.thumbnail import thumbnail_array
from fathom.app.preview.dock import PreviewDock
from fathom.app.preview.image_view import ImagePanel
from fathom.app.preview.mesh_view import MeshPanel, SoftwareMeshView
from fathom.app.preview.view_sheet import view_label
from fathom.app.viewer360 import Viewer360
from fathom.engine.geometry.projection import ring_cameras
from fathom.engine.types import Depth, Image, Mesh, Views

pytestmark = pytest.mark.gui
REPO = Path(__file__).resolve().parents[2]
AZIMUTHS = [30.0, 90.0, 150.0, 210.0, 270.0, 330.0]
ELEVATIONS = [20.0, -10.0, 20.0, -10.0, 20.0, -10.0]
#: One colour per view, so each tile of the sheet can be told apart.
TILE_COLOURS = np.array(
    [
        [0.9, 0.1, 0.1],
        [0.1, 0.8, 0.1],
        [0.1, 0.2, 0.9],
        [0.9, 0.9, 0.1],
        [0.8, 0.1, 0.8],
        [0.1, 0.8, 0.8],
    ],
    np.float32,
)


def grab(widget: QWidget) -> np.ndarray:
    """The widget as drawn on screen: H×W×3 uint8."""
    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGBA8888)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    return arr[:, : img.width() * 4].reshape(img.height(), img.width(), 4)[..., :3].astype(int)


def drag(widget: QWidget, start: QPointF, end: QPointF) -> None:
    """A left-button drag from ``start`` to ``end``, as the mouse sends it."""
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    mods = Qt.KeyboardModifier.NoModifier
    for kind, pos, button, buttons in (
        (QEvent.Type.MouseButtonPress, start, left, left),
        (QEvent.Type.MouseMove, (start + end) / 2, none, left),
        (QEvent.Type.MouseMove, end, none, left),
        (QEvent.Type.MouseButtonRelease, end, left, none),
    ):
        ev = QMouseEvent(kind, pos, widget.mapToGlobal(pos), button, buttons, mods)
        QApplication.sendEvent(widget, ev)


def six_views(size: int, depth: bool = False) -> Views:
    cams = ring_cameras(AZIMUTHS, ELEVATIONS, 2.5, 40.0, (size, size))
    images = [Image(np.tile(c, (size, size, 1))) for c in TILE_COLOURS]
    depths = [Depth(np.full((size, size), 2.5, np.float32), kind="metric") for _ in cams]
    return Views(images, cams, depths if depth else None)


def tile_centres(sheet: np.ndarray) -> np.ndarray:
    """The colour at the middle of each of the 2×3 tiles, in view order."""
    h, w = sheet.shape[:2]
    return np.array(
        [sheet[(2 * r + 1) * h // 4, (2 * c + 1) * w // 6, :3] for r in range(2) for c in range(3)]
    )


# --------------------------------------------------------------------------------------------
# textured meshes


def test_mesh_preview_shows_the_texture_on_the_faces_the_user_turns_to(qtbot) -> None:
    panel = shown(qtbot, MeshPanel(), 240, 200)
    view = panel.view
    assert isinstance(view, SoftwareMeshView) and panel.backend == "software"
    panel.set_value(Mesh(textured_cube()))
    assert "48×32 texture" in panel.info.text()
    qtbot.waitUntil(lambda: view.idle and view.frames_shown >= 1, timeout=10000)
    px = grab(view)
    centre = px[view.height() // 2, view.width() // 2]
    assert np.abs(centre - colour_of(2, -1) * 255).max() <= 3  # the front (-z) face: cyan
    # Drag left by 225 px (0.4° a pixel): the camera turns 90° and faces the -x side.
    for x in range(225, 0, -45):
        drag(view, QPointF(x + 5, 100), QPointF(x - 40, 100))
    assert view.orbit.azimuth == pytest.approx(90.0)
    n = view.frames_shown
    qtbot.waitUntil(lambda: view.idle and view.frames_shown > n, timeout=10000)
    centre = grab(view)[view.height() // 2, view.width() // 2]
    assert np.abs(centre - colour_of(0, -1) * 255).max() <= 3  # green
    panel.color_button.setChecked(False)  # colours off: gray and shaded, no texture
    img = view.render_now()
    c = img[img.shape[0] // 2, img.shape[1] // 2]
    assert c[0] == pytest.approx(c[1]) == pytest.approx(c[2])


def test_node_thumbnail_of_a_textured_mesh_shows_three_faces_in_their_colours() -> None:
    """The thumbnail's three-quarter view (30° round, 20° above) sees the front, the left side
    and the top: each in its texture's colour, none gray."""
    thumb = thumbnail_array(Mesh(textured_cube()))
    assert thumb is not None
    flat = thumb.reshape(-1, 3)
    for face in ((2, -1), (0, -1), (1, -1)):
        share = (np.abs(flat - colour_of(*face)).max(1) < 0.01).mean()
        assert share > 0.02, face
    assert (np.abs(flat - 0.8).max(1) < 0.05).mean() == 0.0


def test_360_viewer_shows_a_textured_mesh_from_inside(qtbot) -> None:
    viewer = Viewer360()
    qtbot.addWidget(viewer)
    viewer.set_mesh(Mesh(textured_cube(4.0)))
    img = viewer.render_image(64, 48)
    np.testing.assert_allclose(img[24, 32], colour_of(2, 1), atol=0.01)  # looking +z: magenta


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run")
def test_opengl_preview_draws_the_texture_under_xvfb(tmp_path: Path) -> None:
    """pyqtgraph's GL mesh takes colours per vertex: the texture sampled into them must show
    the face's colour (a real display is needed: a child process under Xvfb)."""
    script = tmp_path / "gl_texture.py"
    script.write_text(
        "import json, sys, time, numpy as np\n"
        f"sys.path.insert(0, {str(REPO / 'tests')!r})\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from fathom.app.preview.mesh_view import MeshPanel\n"
        "from fathom.engine.types import Mesh\n"
        "from textured_cube import textured_cube\n"
        "panel = MeshPanel(backend='gl')\n"
        "panel.resize(240, 200); panel.show(); panel.set_value(Mesh(textured_cube()))\n"
        "t = time.time()\n"
        "while time.time() - t < 1.5: app.processEvents(); time.sleep(0.02)\n"
        "panel.view.view.setCameraPosition(elevation=0, azimuth=-90)\n"  # front (-z) face
        "t = time.time()\n"
        "while time.time() - t < 0.5: app.processEvents(); time.sleep(0.02)\n"
        "img = panel.view.grab_image()\n"
        "img = img.convertToFormat(img.Format.Format_RGBA8888)\n"
        "a = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())\n"
        "a = a[:, :img.width() * 4].reshape(img.height(), img.width(), 4)\n"
        "c = a[a.shape[0] // 2, a.shape[1] // 2, :3].tolist()\n"
        "sys.stdout.write(json.dumps({'backend': panel.backend, 'centre': c}))\n"
    )
    out = run_under_xvfb(script, 500)
    assert out["backend"] == "opengl"
    assert np.abs(np.array(out["centre"]) - colour_of(2, -1) * 255).max() <= 3


# --------------------------------------------------------------------------------------------
# view sets


def test_views_preview_is_a_contact_sheet_of_six_labelled_tiles(qtbot) -> None:
    dock = shown(qtbot, PreviewDock(), 600, 420)
    views = six_views(320, depth=True)
    dock.show_value(views, "gen.views")
    assert dock.kind == "image"
    panel = dock.panel("image")
    assert isinstance(panel, ImagePanel)
    qtbot.waitUntil(lambda: dock.idle and panel.view.image() is not None, timeout=10000)
    sheet = panel.view.image()
    assert sheet is not None and sheet.shape[:2] == (640, 960)
    np.testing.assert_allclose(tile_centres(sheet), TILE_COLOURS, atol=1e-6)
    # Each tile's top-left corner carries its label: white letters drawn over the view.
    for i in range(6):
        r, c = divmod(i, 3)
        corner = sheet[r * 320 : r * 320 + 30, c * 320 : c * 320 + 200]
        assert (corner > 0.95).all(2).any(), i
    assert view_label(views, 1) == "1  az 90 el -10"
    assert panel.info.text() == "6 views with depth, 320×320 each"
    px = grab(panel.view)  # on screen: six colours, in the sheet's order
    seen = [np.abs(px.reshape(-1, 3) - c * 255).max(1).min() for c in TILE_COLOURS]
    assert max(seen) <= 3


def test_a_large_view_set_is_sheeted_off_the_gui_thread(qtbot) -> None:
    """Six 1024² views: selecting them returns at once (the sheet and its QImage are made on
    the worker), and the sheet arrives strided to the preview's size."""
    dock = shown(qtbot, PreviewDock(), 600, 420)
    views = six_views(1024)
    dock.show_value(Image(np.zeros((8, 8, 3), np.float32)))  # the panel exists already
    t = time.perf_counter()
    dock.show_value(views, "gen.views")
    spent = time.perf_counter() - t
    assert spent < 0.1, spent
    panel = dock.panel("image")
    assert isinstance(panel, ImagePanel)
    assert "making the contact sheet" in panel.info.text() and panel.view.image() is None
    qtbot.waitUntil(lambda: dock.idle and panel.view.image() is not None, timeout=20000)
    sheet = panel.view.image()
    assert sheet is not None and sheet.shape[:2] == (1024, 1536)
    np.testing.assert_allclose(tile_centres(sheet), TILE_COLOURS, atol=1e-6)
    dock.show_value(views)  # reselected, then replaced before the sheet is ready: dropped
    dock.show_value("text")
    qtbot.waitUntil(lambda: dock.idle, timeout=20000)
    assert dock.kind == "text"


def test_node_thumbnail_of_views_is_their_contact_sheet() -> None:
    thumb = thumbnail_array(six_views(64))
    assert thumb is not None and thumb.shape[:2] == (64, 96)  # 192×128 strided to ≤ 176
    np.testing.assert_allclose(tile_centres(thumb), TILE_COLOURS, atol=1e-6)
