"""When the desktop has no application for a save node's file, Open says so in words the user
can read: the message was squeezed into the file bar beside the buttons, where the preview
dock's default width cut it to "no application t"; it is now whole, and in the log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QDesktopServices


def fully_shown(label: Any) -> bool:
    if not label.isVisible() or not label.text():
        return False
    if label.wordWrap():
        return label.heightForWidth(label.width()) <= label.height()
    return label.fontMetrics().horizontalAdvance(label.text()) <= label.width()


def test_open_without_an_application_is_explained_whole(
    qtbot: Any, window: Any, add: Any, wire: Any, run_and_wait: Any, monkeypatch: Any
) -> None:
    color = add("image.constant", 0, 0, width=12, height=8)
    save = add("image.save", 300, 0, path="written_with_a_long_name.png")
    wire(color, "image", save, "image")
    assert run_and_wait().result.ok
    window.resize(1300, 800)  # the studio's default size, with its narrow preview dock
    window.scene.select_nodes([save])
    bar = window.preview.written
    qtbot.waitUntil(bar.isVisible)
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: False)
    before = len(window.log.messages())
    qtbot.mouseClick(bar.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: fully_shown(bar.status), timeout=2000)
    assert "written_with_a_long_name.png" in bar.status.text()
    (line,) = window.log.messages()[before:]
    written = Path(window.settings.output_dir) / "written_with_a_long_name.png"
    assert str(written) in line
    # Show in folder fails the same way, and says which folder.
    qtbot.mouseClick(bar.folder_button, Qt.MouseButton.LeftButton)
    assert str(written.parent) in window.log.messages()[-1]
    # Another file bar (a new selection) starts clean.
    window.scene.select_nodes([color])
    window.scene.select_nodes([save])
    assert not bar.status.isVisible()
