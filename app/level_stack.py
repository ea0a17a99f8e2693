"""The undo stack of a document whose editor can show a subgraph's inside.

Commands edit ``doc.graph``, the level the editor shows. A step made inside a subgraph must be
undone there, so the stack remembers each step's level and takes the editor there before
undoing or redoing it (as Blender and Houdini do): undo never edits a graph the user cannot see.
"""

from __future__ import annotations

from typing import Any, Protocol

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QUndoCommand, QUndoStack


class _Levels(Protocol):
    trail: list[tuple[str, str]]

    def go_to(self, trail: list[tuple[str, str]]) -> bool: ...


class LevelStack(QUndoStack):
    """A QUndoStack whose undo and redo first show the level each step was made at."""

    def __init__(self, doc: Any) -> None:
        super().__init__(doc)
        self._doc: _Levels = doc

    def push(self, cmd: QUndoCommand) -> None:
        cmd.undo_level = list(self._doc.trail)  # type: ignore[attr-defined]
        super().push(cmd)

    def undo(self) -> None:
        if self.canUndo():
            self._go(self.command(self.index() - 1))
        super().undo()

    def redo(self) -> None:
        if self.canRedo():
            self._go(self.command(self.index()))
        super().redo()

    def _go(self, cmd: QUndoCommand | None) -> None:
        # A macro is made by Qt and carries no level: its first step says where it was made.
        while cmd is not None and not hasattr(cmd, "undo_level") and cmd.childCount():
            cmd = cmd.child(0)
        level = getattr(cmd, "undo_level", None)
        if level is not None:
            self._doc.go_to(level)

    # Qt's own actions call the C++ undo()/redo(), which would skip the level change above.
    def createUndoAction(self, parent: QObject, prefix: str = "") -> QAction:  # noqa: N802
        action = _StackAction(prefix or "&Undo", parent)
        action.show_text(self.undoText())
        action.setEnabled(self.canUndo())
        self.undoTextChanged.connect(action.show_text)
        self.canUndoChanged.connect(action.setEnabled)
        action.triggered.connect(self._undo_clicked)
        return action

    def createRedoAction(self, parent: QObject, prefix: str = "") -> QAction:  # noqa: N802
        action = _StackAction(prefix or "&Redo", parent)
        action.show_text(self.redoText())
        action.setEnabled(self.canRedo())
        self.redoTextChanged.connect(action.show_text)
        self.canRedoChanged.connect(action.setEnabled)
        action.triggered.connect(self._redo_clicked)
        return action

    def _undo_clicked(self, _checked: bool = False) -> None:
        self.undo()

    def _redo_clicked(self, _checked: bool = False) -> None:
        self.redo()


class _StackAction(QAction):
    """Undo or Redo, titled like Qt's own ("Undo Set blur1.radius")."""

    def __init__(self, prefix: str, parent: QObject) -> None:
        super().__init__(prefix, parent)
        self._prefix = prefix

    def show_text(self, text: str) -> None:
        # The text Qt passes, not a query of the stack: it may be mid-destruction.
        self.setText(f"{self._prefix} {text}" if text else self._prefix)
