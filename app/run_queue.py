"""The run queue: snapshots of the graph, each with the parameters it had when queued, run one
after another on the window's runner (the same worker as F5).

Queueing takes the snapshot at once, so the user can change a parameter and queue again while
earlier runs wait or run. Live mode is turned off when a run is queued: a live re-run would
otherwise cancel the queued run in progress at the next edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from fathom.app.run_controller import RunController
from fathom.app.run_recorder import RunRecorder
from fathom.app.session import RunOutcome, RunRequest, run_summary
from fathom.engine.graph import Graph

#: Parameter changes named in a queued run's label (the rest are counted).
SHOWN_CHANGES = 3


@dataclass
class QueueItem:
    number: int
    request: RunRequest
    #: What differs from the run queued before it ("blur.radius 2 → 4"), or "".
    changes: str = ""
    #: pending, running, done, failed or cancelled.
    status: str = "pending"
    #: The run's one-line outcome once it ended.
    summary: str = ""
    #: The run's history record, once written.
    record: Path | None = None

    @property
    def label(self) -> str:
        return f"Run {self.number}" + (f": {self.changes}" if self.changes else "")


def param_changes(before: Graph | None, after: Graph) -> str:
    """The parameter values that differ between two snapshots, as ``node.param old → new``."""
    if before is None:
        return ""
    out = []
    for nid, inst in after.nodes.items():
        old = before.nodes.get(nid)
        if old is None:
            out.append(f"{nid} added")
            continue
        for name, value in inst.params.items():
            if old.params.get(name) != value:
                out.append(f"{nid}.{name} {old.params.get(name)!r} → {value!r}")
    out += [f"{nid} removed" for nid in before.nodes if nid not in after.nodes]
    if len(out) > SHOWN_CHANGES:
        out = out[:SHOWN_CHANGES] + [f"{len(out) - SHOWN_CHANGES} more"]
    return ", ".join(out)


class RunQueue(QObject):
    """Queued runs in order; the first pending one starts whenever the runner is free."""

    changed = Signal()

    def __init__(
        self, runs: RunController, recorder: RunRecorder, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.runs = runs
        self.recorder = recorder
        self.items: list[QueueItem] = []
        self._current: QueueItem | None = None
        self._count = 0
        runs.runner.finished.connect(self._on_finished)
        recorder.recorded.connect(self._on_recorded)
        # The next run starts once the last one's outputs are kept in its record.
        recorder.settled.connect(lambda _: self._start_next())

    def pending(self) -> list[QueueItem]:
        return [i for i in self.items if i.status == "pending"]

    def enqueue(self) -> QueueItem | None:
        """Queue the graph as it is now; it starts at once if nothing else runs."""
        if not self.runs.doc.root.nodes:  # the whole graph, whichever level is shown
            self.runs.notice.emit("Nothing to queue: add nodes first", 3000)
            return None
        if self.runs.session.live:
            self.runs.set_live(False)
            self.runs.notice.emit("Live mode is off while queued runs go", 4000)
        request = self.runs.make_request()
        before = self.items[-1].request.graph if self.items else None
        self._count += 1
        item = QueueItem(self._count, request, param_changes(before, request.graph))
        self.recorder.labels[id(request)] = item.label
        self.items.append(item)
        self.changed.emit()
        self._start_next()
        return item

    def remove(self, number: int) -> bool:
        """Take a pending run out of the queue (a running one is cancelled instead)."""
        item = self._find(number)
        if item is None or item.status != "pending":
            return False
        self.items.remove(item)
        self.recorder.labels.pop(id(item.request), None)
        self.changed.emit()
        return True

    def cancel(self, number: int) -> bool:
        """Cancel a run: a pending one never starts, a running one stops after its step."""
        item = self._find(number)
        if item is None:
            return False
        if item.status == "pending":
            item.status = "cancelled"
            item.summary = "cancelled before it started"
            self.recorder.labels.pop(id(item.request), None)
            self.changed.emit()
            return True
        if item is self._current:
            self.runs.cancel()
            return True
        return False

    def clear_finished(self) -> None:
        self.items = [i for i in self.items if i.status in ("pending", "running")]
        self.changed.emit()

    def _find(self, number: int) -> QueueItem | None:
        return next((i for i in self.items if i.number == number), None)

    def _start_next(self) -> None:
        if self._current is not None or self.runs.runner.running or not self.recorder.idle:
            return  # the recorder's next ``settled`` tries again
        item = next(iter(self.pending()), None)
        if item is None:
            return
        if self.runs.runner.start(item.request):
            item.status = "running"
            self._current = item
            self.changed.emit()

    def _on_finished(self, outcome: RunOutcome) -> None:
        item, self._current = self._current, None
        if item is not None:
            result = outcome.result
            if result is None:
                item.status = "failed"
                item.summary = (outcome.error or "the run could not start").splitlines()[0]
            else:
                item.status = (
                    "cancelled" if result.cancelled else "failed" if result.failed else "done"
                )
                # The session planned this run: its scope names the nodes as the canvas does.
                item.summary = run_summary(result, outcome.problems, self.runs.session.scope)
            self.changed.emit()
        self._start_next()

    def _on_recorded(self, folder: object, request: object) -> None:
        for item in self.items:
            if item.request is request and isinstance(folder, Path):
                item.record = folder
                self.changed.emit()
