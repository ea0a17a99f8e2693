"""The Queue dock: queued runs in order with their state (pending, running, done, failed,
cancelled), what each changed, and buttons to queue the graph again, remove or cancel a run."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from fathom.app.run_queue import QueueItem, RunQueue

NUMBER_ROLE = Qt.ItemDataRole.UserRole


def row_text(item: QueueItem) -> str:
    text = f"{item.label} — {item.status}"
    if item.summary:
        text += f"\n    {item.summary}"
    return text


class QueuePanel(QDockWidget):
    """Shows the window's run queue and follows its ``changed`` signal."""

    def __init__(self, queue: RunQueue, parent: QWidget | None = None) -> None:
        super().__init__("Queue", parent)
        self.setObjectName("queue")
        self.queue = queue
        body = QWidget()
        self.list = QListWidget()
        self.list.setAlternatingRowColors(True)
        self.list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.queue_button = QPushButton("Queue Run")
        self.queue_button.setToolTip(
            "queue the graph with its current parameters (Ctrl+Shift+Enter)"
        )
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("take the selected pending runs out of the queue")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(
            "cancel the selected runs (a running one stops after its step)"
        )
        self.clear_button = QPushButton("Clear Finished")
        buttons = QHBoxLayout()
        for b in (self.queue_button, self.remove_button, self.cancel_button, self.clear_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        self.setWidget(body)
        self.queue_button.clicked.connect(lambda: queue.enqueue())
        self.remove_button.clicked.connect(self._remove)
        self.cancel_button.clicked.connect(self._cancel)
        self.clear_button.clicked.connect(queue.clear_finished)
        self.list.itemSelectionChanged.connect(self._update_buttons)
        queue.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        chosen = set(self.selected_numbers())
        self.list.clear()
        for item in self.queue.items:
            row = QListWidgetItem(row_text(item))
            row.setData(NUMBER_ROLE, item.number)
            row.setToolTip(item.summary or item.status)
            self.list.addItem(row)
            row.setSelected(item.number in chosen)
        self._update_buttons()

    def selected_numbers(self) -> list[int]:
        return [int(r.data(NUMBER_ROLE)) for r in self.list.selectedItems()]

    def _statuses(self) -> set[str]:
        chosen = set(self.selected_numbers())
        return {i.status for i in self.queue.items if i.number in chosen}

    def _update_buttons(self) -> None:
        statuses = self._statuses()
        self.remove_button.setEnabled("pending" in statuses)
        self.cancel_button.setEnabled(bool(statuses & {"pending", "running"}))
        self.clear_button.setEnabled(
            any(i.status not in ("pending", "running") for i in self.queue.items)
        )

    def _remove(self) -> None:
        for number in self.selected_numbers():
            self.queue.remove(number)

    def _cancel(self) -> None:
        for number in self.selected_numbers():
            self.queue.cancel(number)
