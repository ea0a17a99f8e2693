"""Quitting with unsaved changes and answering Discard: the window goes without a traceback.

The studio printed ``RuntimeError … QUndoStack already deleted`` on most such quits: the undo
stack announced its last clean-state change while the window's objects were being destroyed.
The test takes the user's path (an edit, closing the window, the real unsaved-changes question
answered Discard) and then destroys the window the way the end of the process does.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import shiboken6
from PySide6.QtWidgets import QMessageBox

REPO = Path(__file__).resolve().parents[2]


def _discard(*args: Any, **kwargs: Any) -> QMessageBox.StandardButton:
    return QMessageBox.StandardButton.Discard


def test_closing_with_discard_then_destroying_the_window_raises_nothing(
    qtbot: Any, test_registry: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fathom.app.main_window import MainWindow

    errors: list[Any] = []
    monkeypatch.setattr(sys, "excepthook", lambda *exc: errors.append(exc))
    monkeypatch.setattr(sys, "unraisablehook", lambda info: errors.append(info))
    asked: list[Any] = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a) or _discard())
    for attempt in range(4):
        window = MainWindow(registry=test_registry, settings=settings)
        window.files.ask_restore = lambda record: False
        window.show()
        qtbot.waitExposed(window)
        window.editing.add_node("image.invert", (0.0, 0.0))
        assert window.doc.modified
        assert window.close(), "Discard lets the window close"
        assert len(asked) == attempt + 1, "the unsaved-changes question was asked"
        shiboken6.delete(window)  # what the end of the process does to the window
        del window
        gc.collect()
        qtbot.wait(10)
    assert errors == [], errors


def test_quitting_the_studio_with_discard_prints_no_runtime_error(tmp_path: Path) -> None:
    """The whole studio process: edit, close, Discard, the event loop ends, Python exits."""
    script = textwrap.dedent(
        f"""
        import os, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from pathlib import Path
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication, QMessageBox
        app = QApplication([])
        from fathom.app.main_window import MainWindow
        from fathom.app.settings import Settings
        s = Settings(Path({str(tmp_path)!r}) / "settings.ini")
        s.recovery_dir = {str(tmp_path / "recovery")!r}
        QMessageBox.question = lambda *a, **k: QMessageBox.StandardButton.Discard
        w = MainWindow(settings=s)
        w.files.ask_restore = lambda record: False
        w.show()
        w.files.open_example(Path({str(REPO / "assets" / "graphs" / "depth_tools.json")!r}))
        w.editing.add_node("image.invert", (0.0, 0.0))
        QTimer.singleShot(50, w.close)
        sys.exit(app.exec())
        """
    )
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert "RuntimeError" not in done.stderr and "Traceback" not in done.stderr, done.stderr
