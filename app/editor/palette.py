"""The node palette: a search popup listing node types by name, category and port type.

Opened by Tab or a double-click on the canvas, and by dropping a wire on empty space (then it
lists only nodes with a port that wire can join).
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent, QObject, QPoint, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QFrame, QLabel, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout

from fathom.engine.node import Node
from fathom.engine.types import can_connect


def _accepts(cls: type[Node], src_type: str) -> bool:
    return any(can_connect(src_type, i.type.type_id) for i in cls.inputs)


def _gives(cls: type[Node], dst_type: str) -> bool:
    return any(can_connect(o.type.type_id, dst_type) for o in cls.outputs)


def _score(cls: type[Node], token: str) -> int | None:
    """Lower is better; None: the token matches nothing about this node."""
    title = (cls.title or cls.type_id).lower()
    if token.startswith("in:"):
        return 4 if any(i.type.type_id == token[3:] for i in cls.inputs) else None
    if token.startswith("out:"):
        return 4 if any(o.type.type_id == token[4:] for o in cls.outputs) else None
    if title.startswith(token):
        return 0
    if token in title:
        return 1
    if token in cls.type_id:
        return 2
    if token in cls.category.lower():
        return 3
    if any(p.type.type_id == token for p in (*cls.inputs, *cls.outputs)):
        return 4
    return None


def search_nodes(
    classes: Sequence[type[Node]], query: str, accepts: str | None = None, gives: str | None = None
) -> list[type[Node]]:
    """Node types matching every word of ``query`` (name, id, category, port type, or
    ``in:TYPE`` / ``out:TYPE``); ``accepts``/``gives`` keep only nodes a dragged wire can join."""
    tokens = query.lower().split()
    ranked: list[tuple[int, str, type[Node]]] = []
    for cls in classes:
        if accepts is not None and not _accepts(cls, accepts):
            continue
        if gives is not None and not _gives(cls, gives):
            continue
        scores = [_score(cls, t) for t in tokens]
        if any(s is None for s in scores):
            continue
        ranked.append((sum(scores), (cls.title or cls.type_id).lower(), cls))  # type: ignore[arg-type]
    ranked.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in ranked]


class NodePalette(QFrame):
    """Type to filter, arrows to move, Enter to add; Escape or a click elsewhere closes it."""

    chosen = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setMinimumSize(340, 380)
        self.classes: list[type[Node]] = []
        self.accepts: str | None = None
        self.gives: str | None = None
        self.hint = QLabel("")
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search nodes: name, category, port type, in:image…")
        self.list = QListWidget()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.hint)
        lay.addWidget(self.search)
        lay.addWidget(self.list)
        self.search.textChanged.connect(self.refresh)
        self.search.installEventFilter(self)
        self.list.itemActivated.connect(lambda item: self._emit(item))

    def open(
        self,
        classes: Sequence[type[Node]],
        at: QPoint | None = None,
        accepts: str | None = None,
        gives: str | None = None,
    ) -> None:
        self.classes = list(classes)
        self.accepts, self.gives = accepts, gives
        if accepts:
            self.hint.setText(f"nodes that take {accepts}")
        elif gives:
            self.hint.setText(f"nodes that give {gives}")
        else:
            self.hint.setText("add a node")
        self.search.clear()
        self.refresh()
        if at is not None:
            self.move(at)
        self.show()
        self.search.setFocus()

    def refresh(self) -> None:
        self.list.clear()
        for cls in search_nodes(self.classes, self.search.text(), self.accepts, self.gives):
            item = QListWidgetItem(f"{cls.title or cls.type_id}    [{cls.category}]")
            item.setData(Qt.ItemDataRole.UserRole, cls.type_id)
            ins = ", ".join(f"{i.name}:{i.type.type_id}" for i in cls.inputs)
            outs = ", ".join(f"{o.name}:{o.type.type_id}" for o in cls.outputs)
            item.setToolTip(f"{cls.type_id} ({ins}) → ({outs})\n\n{cls.doc()}")
            self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)

    def results(self) -> list[str]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def choose(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self._emit(item)

    def _emit(self, item: QListWidgetItem) -> None:
        self.hide()
        self.chosen.emit(item.data(Qt.ItemDataRole.UserRole))

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if (
            obj is self.search
            and isinstance(event, QKeyEvent)
            and event.type() == QEvent.Type.KeyPress
        ):
            key = event.key()
            if key in (Qt.Key.Key_Down, Qt.Key.Key_Up):
                row = self.list.currentRow() + (1 if key == Qt.Key.Key_Down else -1)
                self.list.setCurrentRow(max(0, min(self.list.count() - 1, row)))
                return True
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.choose()
                return True
            if key == Qt.Key.Key_Escape:
                self.hide()
                return True
        return super().eventFilter(obj, event)
