"""The run queue, run history and output gallery of one window, built and wired in one place:
the recorder writes each finished run's record, and the History and Gallery docks re-read
theirs when a record is written or another graph opens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt

from fathom.app.gallery import FileOpener, GalleryPanel
from fathom.app.history_panel import HistoryPanel, open_entry
from fathom.app.queue_panel import QueuePanel
from fathom.app.run_queue import RunQueue
from fathom.app.run_recorder import RunRecorder
from fathom.engine.run_history import HistoryEntry

if TYPE_CHECKING:
    from fathom.app.main_window import MainWindow


class RunDocks(QObject):
    """Owns the queue, the recorder and the Queue, History and Gallery docks of a window."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        runs = window.runs
        self.recorder = RunRecorder(
            window.doc,
            runs.runner,
            lambda: window.session.live,
            self,
            budget=window.settings.history_budget,
        )
        self.queue = RunQueue(runs, self.recorder, self)
        self.opener = FileOpener(window.previews.show_value, self)
        self.queue_dock = QueuePanel(self.queue, window)
        self.history = HistoryPanel(runs.output_dir, self.opener, window)
        self.gallery = GalleryPanel(runs.output_dir, self._graph_path, self.opener, window)
        docks = (self.queue_dock, self.history, self.gallery)
        for dock in docks:
            window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
            window.tabifyDockWidget(window.log, dock)
        window.log.raise_()  # the log stays in front; the others are a tab away
        self.recorder.recorded.connect(lambda *_: self.refresh())
        self.recorder.failed.connect(lambda text: window.log.add("error", text))
        self.recorder.pruned.connect(lambda text: window.log.add("info", text))
        self.recorder.pruned.connect(lambda _: self.refresh())
        self.history.deleted.connect(self.gallery.refresh)
        self.history.message.connect(window.log.add)
        self.opener.error.connect(lambda text: window.log.add("error", text))
        self.history.open_graph.connect(self.open_entry)
        window.doc.reset.connect(self.refresh)
        window.doc.path_changed.connect(self.refresh)
        self.refresh()

    def _graph_path(self) -> str | None:
        path = self.window.doc.path
        return str(path) if path is not None else None

    def queue_run(self) -> bool:
        """Queue the graph as it is now and bring the Queue dock to the front."""
        if self.queue.enqueue() is None:
            return False
        if self.queue_dock.isVisible():
            self.queue_dock.raise_()
        return True

    def refresh(self) -> None:
        self.history.refresh()
        self.gallery.refresh()

    def open_entry(self, entry: HistoryEntry) -> bool:
        return open_entry(self.window.files, self.window.doc, entry)

    def close(self) -> None:
        """The window is closing: finish writing records, stop the workers."""
        self.recorder.close()
        self.opener.close()
        self.history.close_panel()
        self.gallery.close_panel()
