"""The Settings dialog, opened from the File menu at its own size, shows every field's
placeholder text whole."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLineEdit

from fathom.app.settings import SettingsDialog

#: QLineEdit's own space between its frame and the text, on each side (qlineedit_p.h).
LINE_EDIT_MARGIN = 2


def text_room(edit: QLineEdit) -> int:
    """The width the text (and so the placeholder) gets inside the field."""
    margins = edit.textMargins()
    return edit.contentsRect().width() - 2 * LINE_EDIT_MARGIN - margins.left() - margins.right()


def test_each_placeholder_fits_its_field(qtbot: Any, window: Any) -> None:
    window.settings.models_dir = ""
    window.settings.output_dir = ""
    seen: dict[str, tuple[int, int]] = {}

    def look_and_close() -> None:
        dialog = next(
            w
            for w in QApplication.topLevelWidgets()
            if isinstance(w, SettingsDialog) and w.isVisible()
        )
        for edit in dialog.findChildren(QLineEdit):
            text = edit.placeholderText()
            if text and edit.isVisible() and not edit.text():
                seen[text] = (edit.fontMetrics().horizontalAdvance(text), text_room(edit))
        dialog.reject()

    QTimer.singleShot(200, look_and_close)
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&File")
    next(a for a in menu.actions() if a.text() == "Se&ttings…").trigger()  # modal until closed
    assert len(seen) >= 2, seen  # the models and output folders
    for text, (needed, room) in seen.items():
        assert needed <= room, f"{text!r} needs {needed}px, the field gives {room}px"
