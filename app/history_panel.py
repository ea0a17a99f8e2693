"""The History dock: past runs of the output folder, newest first, each with its outputs as
thumbnails and its report (status, timings, per-node records); "Open as Graph" re-opens the
graph that made a run, as an unsaved document.

Records come from ``engine.run_history`` (written by ``app.run_recorder``), read on a worker
thread, so a long history never stalls the GUI.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from fathom.app.document import Document
from fathom.app.files import FileController
from fathom.app.gallery import FileOpener
from fathom.app.jobs import JobQueue
from fathom.app.thumbnails import ThumbnailGrid, Thumbnails
from fathom.engine.errors import GraphFileError
from fathom.engine.graphfile import from_document
from fathom.engine.run_history import HistoryEntry, list_runs

#: Most past runs listed (the newest ones).
HISTORY_RUNS = 500


def report_text(entry: HistoryEntry) -> str:
    """The run report as the dock shows it: the outcome, then one line per node."""
    r = entry.report
    c = entry.counts
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.started))
    lines = [
        f"{r.get('label') or 'Run'}: {entry.status}, {float(r.get('seconds', 0)):.2f} s, "
        f"started {when}",
        ", ".join(f"{n} {k}" for k, n in c.items() if n) or "no nodes ran",
        f"graph: {r.get('graph') or '(untitled)'}",
    ]
    device = r.get("device") or {}
    if device:
        lines.append(f"device: {device.get('name') or device.get('kind') or device}")
    lines += [f"problem: {p}" for p in r.get("problems", [])]
    lines.append("")
    for node in r.get("nodes", []):
        line = f"{node.get('node')}  {node.get('type')}  {node.get('status')}"
        if node.get("status") in ("executed", "failed", "cancelled"):
            line += f"  {float(node.get('seconds', 0)):.3f} s"
        if node.get("error"):
            line += f"\n    {node['error']}"
        lines.append(line)
    outputs = r.get("outputs", [])
    if outputs:
        lines += ["", "outputs:"] + [f"  {p}" for p in outputs]
    return "\n".join(lines)


def open_entry(files: FileController, doc: Document, entry: HistoryEntry) -> bool:
    """Re-open the graph a run ran, unsaved, reading inputs where that run read them."""
    if not files.keep_or_discard():
        return False
    try:
        graph = from_document(entry.graph_document(), str(entry.folder), doc.registry)
    except GraphFileError as exc:
        files.error.emit(str(exc))
        return False
    base = entry.report.get("base_dir")
    doc.set_graph(graph, None, Path(base) if base else None)
    doc.mark_dirty()  # unsaved: Save asks where, and closing asks first
    files.message.emit(f"Opened the graph of the run of {entry.summary().split('  ')[0]}")
    return True


class HistoryPanel(QDockWidget):
    """Lists the runs recorded in the window's output folder."""

    #: The user asked to re-open a run's graph (its HistoryEntry).
    open_graph = Signal(object)

    def __init__(
        self, output_dir: Callable[[], Path], opener: FileOpener, parent: QWidget | None = None
    ) -> None:
        super().__init__("History", parent)
        self.setObjectName("history")
        self.output_dir = output_dir
        self.opener = opener
        self.entries: list[HistoryEntry] = []
        self.jobs = JobQueue(self, "history-list")
        self.thumbnails = Thumbnails(self)
        self.runs = QListWidget()
        self.runs.setAlternatingRowColors(True)
        self.outputs = ThumbnailGrid(self.thumbnails)
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.folder_label = QLabel()
        self.folder_label.setWordWrap(True)
        self.open_button = QPushButton("Open as Graph")
        self.open_button.setToolTip("re-open the graph that made this run, unsaved")
        self.folder_button = QPushButton("Open Folder")
        self.refresh_button = QPushButton("Refresh")
        self.setWidget(self._layout())
        self.runs.currentRowChanged.connect(self._show_entry)
        self.runs.itemActivated.connect(lambda _: self._open_current())
        self.open_button.clicked.connect(self._open_current)
        self.folder_button.clicked.connect(self._open_folder)
        self.refresh_button.clicked.connect(self.refresh)
        self.outputs.chosen.connect(opener.show)
        self.outputs.activated.connect(opener.open_external)
        self._listing = 0
        self._show_entry(-1)

    def _layout(self) -> QWidget:
        """Side by side (runs, outputs, report): the dock sits under the editor, wide and low."""
        split = QSplitter(Qt.Orientation.Horizontal)
        for part, stretch in ((self.runs, 3), (self.outputs, 3), (self.report, 4)):
            split.addWidget(part)
            split.setStretchFactor(split.count() - 1, stretch)
        buttons = QHBoxLayout()
        for b in (self.open_button, self.folder_button, self.refresh_button):
            buttons.addWidget(b)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.folder_label)
        layout.addWidget(split, 1)
        layout.addLayout(buttons)
        return body

    def refresh(self) -> None:
        """Read the folder's records again (on the worker)."""
        self._listing += 1
        ticket = self._listing
        folder = self.output_dir()
        self.jobs.submit(
            lambda: list_runs(folder, HISTORY_RUNS),
            lambda entries: self._fill(entries, folder, ticket),
            lambda why: self.folder_label.setText(f"The run history cannot be read: {why}"),
        )

    def _fill(self, entries: list[HistoryEntry], folder: Path, ticket: int) -> None:
        if ticket != self._listing:
            return
        current = self.current()
        # An older run the user picked stays chosen; the newest gives way to a newer one.
        picked = current is not None and self.runs.currentRow() > 0
        keep = current.folder if picked and current is not None else None
        self.entries = entries
        self.runs.blockSignals(True)
        self.runs.clear()
        for entry in entries:
            text = entry.summary()
            problems = len(entry.report.get("problems") or [])
            if problems:  # "ok" is for what ran: say that something could not
                text += f", {problems} problem{'s' if problems != 1 else ''}"
            row = QListWidgetItem(text)
            row.setToolTip(f"{text}\n{entry.folder}")
            self.runs.addItem(row)
        self.runs.blockSignals(False)
        n = len(entries)
        self.folder_label.setText(f"{n} run{'s' if n != 1 else ''} recorded in {folder}")
        rows = [i for i, e in enumerate(entries) if e.folder == keep]
        self.runs.setCurrentRow(rows[0] if rows else (0 if entries else -1))
        self._show_entry(self.runs.currentRow())

    def current(self) -> HistoryEntry | None:
        row = self.runs.currentRow()
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def _show_entry(self, row: int) -> None:
        entry = self.entries[row] if 0 <= row < len(self.entries) else None
        for b in (self.open_button, self.folder_button):
            b.setEnabled(entry is not None)
        if entry is None:
            self.outputs.set_files([])
            self.report.setPlainText("No run selected: each finished run is recorded here.")
            return
        self.outputs.set_files([(p, str(p)) for p in entry.outputs()])
        self.report.setPlainText(report_text(entry))

    def _open_current(self) -> None:
        entry = self.current()
        if entry is not None:
            self.open_graph.emit(entry)

    def _open_folder(self) -> None:
        entry = self.current()
        if entry is not None:
            self.opener.open_external(entry.folder)

    def close_panel(self) -> None:
        self.jobs.stop()
        self.thumbnails.stop()
