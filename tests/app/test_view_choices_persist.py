"""View → Minimap and View → Node Thumbnails are remembered in the settings: a new window
starts with the user's last choice (the minimap automatic when never chosen)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from tests.app.conftest import make_window


def second_window(qtbot: Any, test_registry: Any, settings: Any) -> Any:
    from fathom.app.settings import Settings

    # A fresh Settings on the same file: what the next session reads.
    return make_window(qtbot, test_registry, Settings(settings.path()))


def close(w: Any) -> None:
    w.runner.shutdown()
    w.doc.mark_saved()
    w.close()


def test_the_minimap_starts_automatic_when_never_chosen(window: Any, settings: Any) -> None:
    assert settings.minimap is None
    assert window.view.minimap.forced is None


def test_the_minimap_choice_lasts_into_a_new_window(
    qtbot: Any, window: Any, settings: Any, test_registry: Any
) -> None:
    window.view.setFocus()
    QTest.keyClick(
        window,
        Qt.Key.Key_M,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert window.view.minimap.forced is True  # an empty graph: the key turned it on
    assert settings.minimap is True
    window.menus.minimap_action.trigger()  # and off again
    assert window.view.minimap.forced is False
    w2 = second_window(qtbot, test_registry, settings)
    try:
        assert w2.view.minimap.forced is False
        assert not w2.view.minimap.isVisible()
        assert not w2.menus.minimap_action.isChecked()
        w2.menus.minimap_action.trigger()
        assert w2.view.minimap.isVisible()
    finally:
        close(w2)
    w3 = second_window(qtbot, test_registry, settings)
    try:
        assert w3.view.minimap.forced is True
        assert w3.view.minimap.isVisible() and w3.menus.minimap_action.isChecked()
    finally:
        close(w3)


def test_node_thumbnails_choice_lasts_into_a_new_window(
    qtbot: Any, window: Any, settings: Any, test_registry: Any
) -> None:
    assert settings.node_thumbnails is True  # shown by default
    assert window.menus.thumbnails_action.isChecked()
    window.menus.thumbnails_action.trigger()
    assert window.scene.bodies.thumbnails_on is False
    assert settings.node_thumbnails is False
    w2 = second_window(qtbot, test_registry, settings)
    try:
        assert w2.scene.bodies.thumbnails_on is False
        assert not w2.menus.thumbnails_action.isChecked()
        w2.menus.thumbnails_action.trigger()
    finally:
        close(w2)
    w3 = second_window(qtbot, test_registry, settings)
    try:
        assert w3.scene.bodies.thumbnails_on is True
        assert w3.menus.thumbnails_action.isChecked()
    finally:
        close(w3)
