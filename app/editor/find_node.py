"""Find Node (Ctrl+F): a search bar over the editor that finds nodes by title, type or a
parameter value (a prompt word, a file name) and jumps to them; F3 / Shift+F3 step through.

In a big graph the node that writes ``final.png`` or the one whose prompt says "fox" is hard to
spot by eye. The bar is a child of the window, not of the canvas, so keys typed into it never
reach the canvas's shortcuts (Delete, F, Ctrl+D).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QEvent, QObject, QPoint, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fathom.app.document import Document

#: Rank of what a query matched: the node's own title first, then its type, then a value.
BY_TITLE, BY_TYPE, BY_PARAM = 0, 1, 2
SNIPPET_CHARS = 48
WIDTH, MARGIN, MAX_ROWS = 380, 12, 8


@dataclass(frozen=True)
class Match:
    node_id: str
    title: str
    #: What matched, to show beside the title: "type Save Image", "path: out/final.png".
    why: str
    rank: int


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _snippet(text: str, word: str) -> str:
    """The part of ``text`` around ``word`` (one line, at most SNIPPET_CHARS)."""
    text = " ".join(text.split())
    if len(text) <= SNIPPET_CHARS:
        return text
    at = max(0, text.lower().find(word) - SNIPPET_CHARS // 3)
    part = text[at : at + SNIPPET_CHARS]
    return ("…" if at else "") + part + ("…" if at + SNIPPET_CHARS < len(text) else "")


def _fields(doc: Document, node_id: str) -> list[tuple[int, str, str]]:
    """(rank, label, text) of everything a query may match on one node."""
    inst = doc.graph.nodes[node_id]
    cls = doc.node_class(node_id)
    out = [(BY_TITLE, "title", doc.title(node_id)), (BY_TITLE, "id", node_id)]
    if cls is not None and cls.title:
        out.append((BY_TYPE, "type", cls.title))
    out.append((BY_TYPE, "type", inst.type))
    out += [(BY_PARAM, name, _text(v)) for name, v in inst.params.items() if v not in (None, "")]
    return out


def find_nodes(doc: Document, query: str) -> list[Match]:
    """Nodes where every word of ``query`` is in the title, id, type or a parameter value;
    title matches first, then type, then values, each left to right across the canvas."""
    words = query.lower().split()
    if not words:
        return []
    found: list[tuple[int, tuple[float, float], Match]] = []
    for nid in doc.graph.nodes:
        fields = _fields(doc, nid)
        if not all(any(w in text.lower() for _, _, text in fields) for w in words):
            continue
        rank, label, text = min((f for f in fields if words[0] in f[2].lower()), key=lambda f: f[0])
        why = f"{label}: {_snippet(text, words[0])}" if rank == BY_PARAM else ""
        if rank == BY_TYPE:
            why = f"type: {text}"
        pos = doc.node_pos(nid) or (0.0, 0.0)
        found.append((rank, pos, Match(nid, doc.title(nid), why, rank)))
    found.sort(key=lambda f: (f[0], f[1][0], f[1][1]))
    return [m for _, _, m in found]


class FindNode(QFrame):
    """The bar: type to list matches, Enter or a click jumps to one; F3 / Shift+F3 (also with
    the bar closed) go to the next / previous match; Escape closes it."""

    def __init__(
        self,
        doc: Document,
        over: QWidget,
        jump: Callable[[str], None],
        parent: QWidget,
    ) -> None:
        super().__init__(parent)
        self.doc = doc
        #: The canvas the bar floats over (its top-right corner).
        self.over = over
        self.jump = jump
        self.matches: list[Match] = []
        self.index = -1
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.field = QLineEdit()
        self.field.setPlaceholderText("Find node: title, type or a parameter value")
        self.field.setClearButtonEnabled(True)
        self.count = QLabel("")
        self.list = QListWidget()
        row = QHBoxLayout()
        row.addWidget(self.field, 1)
        row.addWidget(self.count)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addLayout(row)
        lay.addWidget(self.list)
        self.field.textChanged.connect(self.refresh)
        self.field.installEventFilter(self)
        self.list.itemClicked.connect(lambda item: self.go(self.list.row(item)))
        over.installEventFilter(self)
        self.hide()

    def open(self) -> None:
        """Show the bar with its last query selected (typing replaces it)."""
        self.refresh()
        self._place()
        self.show()
        self.raise_()
        self.field.setFocus()
        self.field.selectAll()

    def close_bar(self) -> None:
        self.hide()
        self.over.setFocus()

    def refresh(self) -> None:
        self.matches = find_nodes(self.doc, self.field.text())
        self.index = -1
        self.list.clear()
        for m in self.matches:
            item = QListWidgetItem(f"{m.title}    {m.why}" if m.why else m.title)
            item.setToolTip(m.node_id)
            self.list.addItem(item)
        if self.matches:
            self.list.setCurrentRow(0)
        rows = min(len(self.matches), MAX_ROWS)
        self.list.setVisible(rows > 0)
        self.list.setFixedHeight(rows * self.list.sizeHintForRow(0) + 4 if rows else 0)
        self._show_count()
        if self.isVisible():
            self._place()

    def _show_count(self) -> None:
        if not self.field.text().strip():
            self.count.setText("")
        elif not self.matches:
            self.count.setText("no match")
        elif self.index < 0:
            self.count.setText(f"{len(self.matches)} found")
        else:
            self.count.setText(f"{self.index + 1} of {len(self.matches)}")

    def go(self, index: int) -> None:
        """Centre and select match ``index``."""
        if not self.matches:
            return
        self.index = index % len(self.matches)
        self.list.setCurrentRow(self.index)
        self._show_count()
        self.jump(self.matches[self.index].node_id)

    def step(self, forward: bool = True) -> None:
        """F3 / Shift+F3: the next / previous match; with no query yet, open the bar."""
        live = find_nodes(self.doc, self.field.text())
        if [m.node_id for m in live] != [m.node_id for m in self.matches]:
            keep = self.index
            self.refresh()  # the graph changed since: search again, keep the place
            self.index = min(keep, len(self.matches) - 1)
        if not self.matches:
            self.open()
            return
        if self.index < 0:
            self.go(0 if forward else -1)
        else:
            self.go(self.index + (1 if forward else -1))

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if obj is self.over and event.type() == QEvent.Type.Resize and self.isVisible():
            self._place()
        if obj is self.field and isinstance(event, QKeyEvent):
            if event.type() == QEvent.Type.KeyPress:
                return self._key(event)
        return super().eventFilter(obj, event)

    def _key(self, event: QKeyEvent) -> bool:
        key = event.key()
        if key in (Qt.Key.Key_Down, Qt.Key.Key_Up) and self.matches:
            row = self.list.currentRow() + (1 if key == Qt.Key.Key_Down else -1)
            self.list.setCurrentRow(max(0, min(len(self.matches) - 1, row)))
            return True
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if self.matches:
                self.go(max(0, self.list.currentRow()))
                self.close_bar()
            return True
        if key == Qt.Key.Key_Escape:
            self.close_bar()
            return True
        return False

    def _place(self) -> None:
        self.setFixedWidth(WIDTH)
        self.adjustSize()
        corner = self.over.mapTo(self.parentWidget(), QPoint(self.over.width(), 0))
        self.move(corner.x() - WIDTH - MARGIN, corner.y() + MARGIN)
