"""A dropped file no node opens is explained in the log panel, not only in the status bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent


def drop(window: Any, *paths: Path) -> None:
    """Drop files on the canvas as a file manager does."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(
        QPoint(200, 150),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.view.dropEvent(event)


def test_a_dropped_text_file_is_explained_in_the_log(window: Any, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a graph")
    before = len(window.log.messages())
    drop(window, notes)
    assert not window.doc.graph.nodes
    assert "notes.txt" in window.statusBar().currentMessage()
    (line,) = window.log.messages("warning")[-1:]
    assert len(window.log.messages()) == before + 1
    assert "notes.txt" in line and "no node opens .txt files" in line
    # The explanation says what can be dropped instead.
    assert ".json" in line and ".png" in line
