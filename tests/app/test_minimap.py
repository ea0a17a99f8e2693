"""The minimap: it appears when the graph is bigger than the view, shows where the view is,
and a click or drag in it moves the view there; View → Minimap (Ctrl+Shift+M) toggles it."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QPointF, QRectF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest


def view_centre(window: Any) -> QPointF:
    view = window.view
    return view.mapToScene(view.viewport().rect().center())


def spread_graph(window: Any, add: Any) -> list[str]:
    ids = [add("image.invert", x, y) for x, y in ((0, 0), (3000, 0), (0, 2000), (3000, 2000))]
    window.view.resetTransform()
    window.view.centerOn(0, 0)
    window.view.minimap.rescan()  # what the refresh timer does a moment after a change
    return ids


def test_minimap_shows_for_a_graph_bigger_than_the_view(qtbot: Any, window: Any, add: Any) -> None:
    mini = window.view.minimap
    add("image.invert", 0, 0)
    window.view.fit_all()
    mini.rescan()
    assert not mini.isVisible() and not window.menus.minimap_action.isChecked()
    spread_graph(window, add)
    assert mini.isVisible() and window.menus.minimap_action.isChecked()
    # In the view's bottom-right corner, above the canvas.
    vp = window.view.viewport().geometry()
    assert vp.contains(mini.geometry()) and mini.geometry().right() > vp.center().x()
    # Every node is drawn inside the map.
    for item in window.scene.nodes.values():
        assert mini.rect().contains(mini.to_map(item.sceneBoundingRect().center()).toPoint())


def test_click_in_the_minimap_moves_the_view_there(qtbot: Any, window: Any, add: Any) -> None:
    spread_graph(window, add)
    mini = window.view.minimap
    target = QPointF(3000, 2000)
    at = mini.to_map(target).toPoint()
    QTest.mouseClick(mini, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at)
    centre = view_centre(window)
    tolerance = 1.5 / mini._scale_and_origin()[0]  # a map pixel, in scene units
    assert abs(centre.x() - mini.to_scene(QPointF(at)).x()) <= tolerance
    assert abs(centre.x() - target.x()) < 30 and abs(centre.y() - target.y()) < 30


def test_drag_in_the_minimap_follows_the_mouse(qtbot: Any, window: Any, add: Any) -> None:
    spread_graph(window, add)
    mini = window.view.minimap
    start, end = mini.to_map(QPointF(0, 0)).toPoint(), mini.to_map(QPointF(3000, 0)).toPoint()
    QTest.mousePress(mini, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    assert abs(view_centre(window).x()) < 30
    QTest.mouseMove(mini, end)
    # QTest.mouseMove carries no button state: send the drag's move as Qt would.
    move = QMouseEvent(
        QEvent.Type.MouseMove,
        QPointF(end),
        mini.mapToGlobal(QPointF(end)),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    mini.mouseMoveEvent(move)
    QTest.mouseRelease(mini, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    assert abs(view_centre(window).x() - 3000) < 30


def test_ctrl_shift_m_turns_the_minimap_off_and_on(qtbot: Any, window: Any, add: Any) -> None:
    spread_graph(window, add)
    mini = window.view.minimap
    assert mini.isVisible()
    window.view.setFocus()
    QTest.keyClick(
        window,
        Qt.Key.Key_M,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert not mini.isVisible() and not window.menus.minimap_action.isChecked()
    window.view.zoom_by(0.9)  # a view change does not bring it back: the user said off
    assert not mini.isVisible()
    window.doc.undo_stack.clear()
    window.files.new()  # a small graph: still the user's choice
    window.menus.minimap_action.trigger()
    assert mini.isVisible() and window.menus.minimap_action.isChecked()


def test_the_minimap_follows_the_view(qtbot: Any, window: Any, add: Any) -> None:
    spread_graph(window, add)
    mini = window.view.minimap
    before = mini.visible_scene_rect()
    window.view.pan_by(400, 0)
    after = mini.visible_scene_rect()
    assert after.left() > before.left() + 300
    img = mini.grab().toImage()
    # The view's rectangle is drawn: its right edge (inside the map here) is a light line.
    edge = mini.to_map(after.topRight())
    assert 2 < edge.x() < mini.width() - 2
    y = round(mini._map_rect(after).intersected(QRectF(mini.rect())).center().y())
    xs = range(round(edge.x()) - 2, round(edge.x()) + 3)
    assert max(img.pixelColor(x, y).lightness() for x in xs) > 150
    assert img.pixelColor(round(edge.x()) + 8, y).lightness() < 100  # outside it: dark


def test_the_minimap_sees_new_nodes_by_itself(qtbot: Any, window: Any, add: Any) -> None:
    spread_graph(window, add)
    mini = window.view.minimap
    add("image.invert", 6000, 0)
    qtbot.waitUntil(lambda: mini.world().right() > 6000, timeout=3000)
