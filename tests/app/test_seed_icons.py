"""The seed's randomize and lock buttons (and the frames-folder button) draw icons that ship with
the app, so they are never empty boxes on a machine without an emoji font."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QImage

from fathom.engine.resources import assets_dir


def image_of(icon: QIcon) -> QImage:
    return icon.pixmap(QSize(16, 16)).toImage().convertToFormat(QImage.Format.Format_ARGB32)


def drawn(image: QImage) -> int:
    """How many pixels are not fully transparent."""
    return sum(
        1
        for y in range(image.height())
        for x in range(image.width())
        if image.pixelColor(x, y).alpha()
    )


def assert_shipped_icon(button: Any, name: str) -> None:
    shipped = assets_dir() / "icons" / f"{name}.svg"
    assert shipped.is_file()
    assert not button.icon().isNull()
    image = image_of(button.icon())
    assert drawn(image) > 20  # really drawn: the SVG plugin read the file
    assert image == image_of(QIcon(str(shipped)))  # that file, not a theme's or a blank one
    assert button.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonIconOnly
    assert all(ord(c) < 0x2000 for c in button.text())  # no emoji to fall back on


def test_seed_buttons_draw_shipped_icons(window: Any, add: Any) -> None:
    nid = add("depth.estimate", 0, 0)
    window.scene.select_nodes([nid])
    seed = window.inspector.widgets["seed"]
    assert_shipped_icon(seed.dice, "dice")
    assert_shipped_icon(seed.lock, "lock")


def test_the_frames_folder_button_draws_a_shipped_icon(window: Any, add: Any) -> None:
    cls = window.registry.types()
    node = next(c for c in cls if any(p.sequence for p in c.params))
    nid = add(node.type_id, 0, 0)
    window.scene.select_nodes([nid])
    widget = next(w for w in window.inspector.widgets.values() if getattr(w, "folder_button", None))
    assert_shipped_icon(widget.folder_button, "folder")
