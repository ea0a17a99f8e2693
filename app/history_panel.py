"""The History dock: past runs of the output folder, newest first, each with its outputs as
thumbnails and its report (status, timings, per-node records); "Open as Graph" re-opens the
graph that made a run, as an unsaved document. Pin keeps a run whatever the history budget;
Delete and Clear History remove records after asking (``engine.history_prune``: a record's
own files only, never the output folder's).

Records come from ``engine.run_history`` (written by ``app.run_recorder``), read, pinned and
deleted on a worker thread, so a long history never stalls the GUI.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
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
from fathom.engine.history_prune import clear_history, delete_record, set_pinned
from fathom.engine.run_history import HistoryEntry, list_runs

#: Most past runs listed (the newest ones).
HISTORY_RUNS = 500
#: How a pinned run's row starts.
PINNED_MARK = "[pinned] "


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
    #: Records were deleted (the gallery lists from them too).
    deleted = Signal()
    #: Something to tell the user: (level "info" or "error", text).
    message = Signal(str, str)

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
        self.pin_button = QPushButton("Pin")
        self.pin_button.setToolTip("keep this run whatever the history budget (Settings)")
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setToolTip(
            "delete this run's record; the files in the output folder stay"
        )
        self.clear_button = QPushButton("Clear History…")
        self.clear_button.setToolTip("delete every unpinned run's record in this output folder")
        #: confirm(title, question) -> the user agreed (tests answer for the user).
        self.confirm: Callable[[str, str], bool] = self._ask
        self.setWidget(self._layout())
        self.runs.currentRowChanged.connect(self._show_entry)
        self.runs.itemActivated.connect(lambda _: self._open_current())
        self.open_button.clicked.connect(self._open_current)
        self.folder_button.clicked.connect(self._open_folder)
        self.refresh_button.clicked.connect(self.refresh)
        self.pin_button.clicked.connect(self.toggle_pin)
        self.delete_button.clicked.connect(self.delete_current)
        self.clear_button.clicked.connect(self.clear)
        self._list_actions()
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
        for b in (self.open_button, self.folder_button, self.pin_button, self.delete_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        for b in (self.clear_button, self.refresh_button):
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
            text = (PINNED_MARK if entry.pinned else "") + entry.summary()
            problems = len(entry.report.get("problems") or [])
            if problems:  # "ok" is for what ran: say that something could not
                text += f", {problems} problem{'s' if problems != 1 else ''}"
            row = QListWidgetItem(text)
            row.setToolTip(f"{text}\n{entry.folder}")
            self.runs.addItem(row)
        self.runs.blockSignals(False)
        n, pins = len(entries), sum(e.pinned for e in entries)
        pinned = f" ({pins} pinned)" if pins else ""
        self.folder_label.setText(f"{n} run{'s' if n != 1 else ''}{pinned} recorded in {folder}")
        self.clear_button.setEnabled(n > pins)
        rows = [i for i, e in enumerate(entries) if e.folder == keep]
        self.runs.setCurrentRow(rows[0] if rows else (0 if entries else -1))
        self._show_entry(self.runs.currentRow())

    def current(self) -> HistoryEntry | None:
        row = self.runs.currentRow()
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def _show_entry(self, row: int) -> None:
        entry = self.entries[row] if 0 <= row < len(self.entries) else None
        for b in (self.open_button, self.folder_button, self.pin_button, self.delete_button):
            b.setEnabled(entry is not None)
        self.pin_button.setText("Unpin" if entry is not None and entry.pinned else "Pin")
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

    # ---- pin, delete, clear (on the worker; the list is read again after) --------------------

    def _list_actions(self) -> None:
        """The same commands on the list's context menu, and Delete on the keyboard."""
        remove = QAction("Delete…", self.runs)
        remove.setShortcut(QKeySequence.StandardKey.Delete)
        remove.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        remove.triggered.connect(self.delete_current)
        self.runs.addAction(remove)
        self.runs.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.runs.customContextMenuRequested.connect(self._menu)

    def _menu(self, at: QPoint) -> None:
        entry = self.current()
        if entry is None:
            return
        menu = QMenu(self)
        menu.addAction("Open as Graph", self._open_current)
        menu.addAction("Unpin" if entry.pinned else "Pin", self.toggle_pin)
        menu.addAction("Delete…", self.delete_current)
        menu.exec(self.runs.viewport().mapToGlobal(at))

    def _ask(self, title: str, question: str) -> bool:
        answer = QMessageBox.question(
            self,
            title,
            question,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _then_refresh(self, deleted: bool = False) -> Callable[[object], None]:
        def done(_: object) -> None:
            if deleted:
                self.deleted.emit()
            self.refresh()

        return done

    def _failed(self, what: str) -> Callable[[str], None]:
        def failed(why: str) -> None:
            self.message.emit("error", f"The run could not be {what}: {why}")
            self.refresh()

        return failed

    def toggle_pin(self) -> None:
        """Pin the selected run (or unpin it): pruning never removes a pinned run."""
        entry = self.current()
        if entry is None:
            return
        on = not entry.pinned
        self.jobs.submit(
            lambda: set_pinned(entry.folder, on),
            self._then_refresh(),
            self._failed("pinned" if on else "unpinned"),
        )

    def delete_current(self) -> None:
        """Delete the selected run's record, after asking."""
        entry = self.current()
        if entry is None:
            return
        when = entry.summary().split("  ")[0]
        pinned = "It is pinned. " if entry.pinned else ""
        question = (
            f"Delete the record of the run of {when}? {pinned}Its graph, report and kept "
            "outputs are removed; the files in the output folder stay."
        )
        if not self.confirm("Delete Run", question):
            return
        self.jobs.submit(
            lambda: delete_record(entry.folder),
            self._then_refresh(deleted=True),
            self._failed("deleted"),
        )

    def clear(self) -> None:
        """Delete every unpinned run's record in the output folder, after asking."""
        folder = self.output_dir()
        n = sum(not e.pinned for e in self.entries)
        pins = len(self.entries) - n
        kept = f" The {pins} pinned run{'s are' if pins != 1 else ' is'} kept." if pins else ""
        question = (
            f"Delete the records of all {n} unpinned run{'s' if n != 1 else ''} in {folder}?"
            f"{kept} The files in the output folder stay."
        )
        if not self.confirm("Clear History", question):
            return

        def cleared(removed: object) -> None:
            count = len(removed) if isinstance(removed, list) else 0
            self.message.emit("info", f"History: {count} run{'s' if count != 1 else ''} deleted.")
            self._then_refresh(deleted=True)(removed)

        self.jobs.submit(lambda: clear_history(folder), cleared, self._failed("cleared"))

    def close_panel(self) -> None:
        self.jobs.stop()
        self.thumbnails.stop()
