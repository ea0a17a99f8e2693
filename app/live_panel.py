"""The Live panel: start and stop a live session of the open graph, and watch how it keeps up.

It shows what the session reports a few times a second (``app.live_run``): the source's and the
output's frame rates, the latency from capture to output (median and 95th percentile), the
frames in, out and dropped, and the errors each node met. The graph stays editable while the
session runs; the panel's Start/Stop is the Run menu's action, so both always agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDockWidget,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from PySide6.QtGui import QAction

    from fathom.app.live_run import LiveRun


def _fps(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1f} fps"


def _ms(value: Any) -> str:
    return "—" if value is None else f"{float(value):.0f} ms"


def stat(stats: Any, name: str, default: Any = None) -> Any:
    """A field of the session's stats, whether they come as an object or a mapping."""
    if isinstance(stats, dict):
        return stats.get(name, default)
    return getattr(stats, name, default)


def stats_lines(stats: Any) -> dict[str, str]:
    """The panel's rows for one stats report (``None``: a session that has not reported)."""
    if stats is None:
        return {"source": "—", "output": "—", "latency": "—", "frames": "—"}
    latency = stat(stats, "latency_ms") or {}
    return {
        "source": _fps(stat(stats, "fps_in")),
        "output": _fps(stat(stats, "fps_out")),
        "latency": f"median {_ms(latency.get('median'))} · p95 {_ms(latency.get('p95'))}",
        "frames": (
            f"in {stat(stats, 'frames_in', 0)} · out {stat(stats, 'frames_out', 0)} · "
            f"dropped {stat(stats, 'frames_dropped', 0)}"
        ),
    }


class LivePanel(QDockWidget):
    """A dock over one window's ``LiveRun``: its Start/Stop action, its stats and errors."""

    #: An error row was clicked: the node it names (to bring into view).
    node_clicked = Signal(str)

    def __init__(self, live: LiveRun, parent: QWidget | None = None) -> None:
        super().__init__("Live", parent)
        self.setObjectName("live")
        self.live = live
        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(6, 6, 6, 6)
        top = QHBoxLayout()
        self.start_button = QToolButton()
        self.start_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.state = QLabel("Stopped")
        self.windows_button = QPushButton("Show Windows")
        self.windows_button.setToolTip("Bring back the live output windows (F11: full screen)")
        self.windows_button.setEnabled(False)
        self.windows_button.clicked.connect(live.show_windows)
        top.addWidget(self.start_button)
        top.addWidget(self.state, 1)
        top.addWidget(self.windows_button)
        column.addLayout(top)
        form = QFormLayout()
        self.rows: dict[str, QLabel] = {}
        for key, title in (
            ("source", "Source"),
            ("output", "Output"),
            ("latency", "Latency"),
            ("frames", "Frames"),
        ):
            label = QLabel("—")
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.rows[key] = label
            form.addRow(title, label)
        column.addLayout(form)
        column.addWidget(QLabel("Errors"))
        self.errors = QListWidget()
        self.errors.setObjectName("live-errors")
        self.errors.setWordWrap(True)
        self.errors.itemClicked.connect(self._error_clicked)
        column.addWidget(self.errors, 1)
        self.setWidget(body)
        live.stats_changed.connect(self.show_stats)
        live.state_changed.connect(self.show_state)
        live.errors_changed.connect(self.show_errors)

    def set_action(self, action: QAction) -> None:
        """The Run menu's Start/Stop action drives the panel's button (one state for both)."""
        self.start_button.setDefaultAction(action)

    def show_state(self, text: str) -> None:
        """ "Stopped", "Starting…", "Running", "Stopping…" or why it stopped."""
        self.state.setText(text)
        self.state.setToolTip(text)
        self.windows_button.setEnabled(bool(self.live.windows))

    def show_stats(self, stats: Any) -> None:
        for key, text in stats_lines(stats).items():
            self.rows[key].setText(text)
        self.windows_button.setEnabled(bool(self.live.windows))

    def show_errors(self, errors: dict[str, str]) -> None:
        """One row per node: "title: message" (the newest message of each)."""
        self.errors.clear()
        for node, message in errors.items():
            item = QListWidgetItem(f"{self.live.title(node)}: {message}")
            item.setData(Qt.ItemDataRole.UserRole, node)
            item.setToolTip(message)
            self.errors.addItem(item)

    def _error_clicked(self, item: QListWidgetItem) -> None:
        node = item.data(Qt.ItemDataRole.UserRole)
        if isinstance(node, str) and node in self.live.doc.root.nodes:
            self.node_clicked.emit(node)

    def text(self) -> dict[str, str]:
        """What the panel shows (tests, screenshots)."""
        return {key: label.text() for key, label in self.rows.items()} | {
            "state": self.state.text()
        }
