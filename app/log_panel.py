"""The log panel: run messages, node failures and validation problems; click one to select its
node. Run messages come from the window's run session (``follow``); it also collects the
engine's and nodes' Python log records (``fathom.*`` loggers)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from fathom.app.session import RunSession
from fathom.app.theme import text_color

#: The theme's text colour per level (info keeps the list's own text colour).
LEVEL_COLORS = {"error": "error", "warning": "warning", "debug": "help"}


class _Bridge(QObject):
    record = Signal(str, str, str)


class _QtLogHandler(logging.Handler):
    """Forwards log records from any thread; the queued signal lands on the GUI thread."""

    def __init__(self, bridge: _Bridge) -> None:
        super().__init__(logging.INFO)
        self.bridge = bridge

    def emit(self, record: logging.LogRecord) -> None:
        node = (
            record.name.split("fathom.node.", 1)[1]
            if record.name.startswith("fathom.node.")
            else ""
        )
        level = (
            "error"
            if record.levelno >= logging.ERROR
            else ("warning" if record.levelno >= logging.WARNING else "info")
        )
        self.bridge.record.emit(level, self.format(record), node)


class LogPanel(QDockWidget):
    #: The user clicked a message that names a node.
    node_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Log", parent)
        self.setObjectName("log")
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.itemClicked.connect(self._clicked)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.list.clear)
        bar = QHBoxLayout()
        bar.addStretch(1)
        bar.addWidget(clear)
        body = QWidget()
        lay = QVBoxLayout(body)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.list)
        lay.addLayout(bar)
        self.setWidget(body)
        self._bridge = _Bridge()
        self._bridge.record.connect(self.add)
        self._handler = _QtLogHandler(self._bridge)
        logging.getLogger("fathom").addHandler(self._handler)
        self._unfollow: Callable[[], None] | None = None

    def follow(self, session: RunSession) -> None:
        """Show the messages a run session logs (until ``detach``)."""
        if self._unfollow is not None:
            self._unfollow()
        self._unfollow = session.subscribe(self._on_session)

    def _on_session(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "log":
            self.add(payload["level"], payload["message"], payload["node"])

    def add(self, level: str, message: str, node: str = "") -> None:
        stamp = time.strftime("%H:%M:%S")
        where = f"[{node}] " if node else ""
        item = QListWidgetItem(f"{stamp}  {level.upper():7} {where}{message}")
        if level in LEVEL_COLORS:
            item.setForeground(QColor(text_color(LEVEL_COLORS[level])))
        item.setData(Qt.ItemDataRole.UserRole, node)
        item.setToolTip(message)
        self.list.addItem(item)
        self.list.scrollToBottom()

    def messages(self, level: str | None = None) -> list[str]:
        out = []
        for i in range(self.list.count()):
            text = self.list.item(i).text()
            if level is None or f" {level.upper()}" in text:
                out.append(text)
        return out

    def _clicked(self, item: QListWidgetItem) -> None:
        node = item.data(Qt.ItemDataRole.UserRole)
        if node:
            self.node_clicked.emit(node)

    def detach(self) -> None:
        """Stop collecting log records and session messages (the window is closing)."""
        logging.getLogger("fathom").removeHandler(self._handler)
        if self._unfollow is not None:
            self._unfollow()
            self._unfollow = None
