"""Records the finished runs of a window (F5, run-to-selected, queued) in the run history beside
their outputs (``engine.run_history``).

Outputs are hard-linked into the record the moment the run ends (so the next run cannot
replace them first); the graph and report are written on a worker thread. A run that could not
start is not recorded (its problems are in the log), nor are the re-runs of live mode, which
would add a record at every edit. After each record, the same worker prunes the history to the
budget (``engine.history_prune``: the oldest unpinned records past the settings' limits), as a
job of its own, so a queued run does not wait for it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from fathom.app.document import Document
from fathom.app.jobs import JobQueue
from fathom.app.runner import Runner
from fathom.app.session import RunOutcome, RunRequest
from fathom.engine.history_prune import HistoryBudget, PruneResult, prune_history
from fathom.engine.models.catalog import human_size
from fathom.engine.run_history import finish_record, keep_outputs, run_report, start_record


class RunRecorder(QObject):
    """Follows one runner; ``recorded`` says where each record went."""

    #: (record folder, the RunRequest it records).
    recorded = Signal(object, object)
    #: A record could not be written (the reason).
    failed = Signal(str)
    #: Whatever became of a finished run's record (written, failed, or none needed): the
    #: RunRequest. The queue starts its next run only then, when any copies are complete.
    settled = Signal(object)
    #: Old records were pruned to keep the history within its budget (what was done, in words).
    pruned = Signal(str)

    def __init__(
        self,
        doc: Document,
        runner: Runner,
        live: Callable[[], bool],
        parent: QObject | None = None,
        budget: Callable[[], HistoryBudget] | None = None,
    ) -> None:
        super().__init__(parent)
        self.doc = doc
        self.runner = runner
        self.live = live
        self._closing = False  # queued prunes then do nothing: the next session's catch up
        #: The history's budget now (the settings'); None: keep every record.
        self.budget = budget
        self.jobs = JobQueue(self, "run-history")
        #: Labels for particular requests (the queue names its runs), by ``id(request)``.
        self.labels: dict[int, str] = {}
        self._started: tuple[RunRequest, float, str | None] | None = None
        runner.started.connect(self._on_started)
        runner.finished.connect(self._on_finished)

    @property
    def idle(self) -> bool:
        """No record is being written."""
        return self.jobs.idle

    def _on_started(self) -> None:
        request = self.runner.request
        self._started = None
        if request is not None and not self.live():
            path = str(self.doc.path) if self.doc.path is not None else None
            self._started = (request, time.time(), path)

    def _on_finished(self, outcome: RunOutcome) -> None:
        started, self._started = self._started, None
        if started is None:
            return
        request, when, graph_path = started
        label = self.labels.pop(id(request), "")
        result = outcome.result
        if result is None:
            self.settled.emit(request)
            return
        options = request.options
        try:
            # On this thread, before any next run can replace an output: links cost microseconds.
            folder = start_record(options.output_dir, when)
            kept = keep_outputs(folder, result.files(), copy=False)
        except OSError as exc:
            self.failed.emit(f"The run history could not be written: {exc}")
            self.settled.emit(request)
            return
        problems = [str(p) for p in outcome.problems]

        def write() -> Path:
            document: dict[str, Any] = json.loads(options.graph_json or "{}")
            report = run_report(
                result,
                document,
                when,
                graph_path=graph_path,
                base_dir=str(options.base_dir),
                output_dir=str(options.output_dir),
                label=label,
                problems=problems,
            )
            all_kept = keep_outputs(folder, result.files(), copy=True, kept=kept)
            return finish_record(folder, document, report, all_kept)

        def done(path: Path) -> None:
            self.recorded.emit(path, request)
            self.settled.emit(request)  # a queued run need not wait for the pruning
            self.prune(options.output_dir)

        def failed(why: str) -> None:
            self.failed.emit(f"The run history could not be written: {why}")
            self.settled.emit(request)

        self.jobs.submit(write, done, failed)

    def prune(self, output_dir: Path) -> None:
        """Delete the oldest unpinned records past the budget, on the worker (measuring a long
        history of frame sequences takes a while); ``pruned`` says what went."""
        budget = self.budget() if self.budget is not None else None
        if budget is None or budget.unlimited:
            return

        def done(result: PruneResult) -> None:
            if result.removed:
                self.pruned.emit(pruned_text(result))

        def failed(why: str) -> None:
            self.failed.emit(f"The run history could not be pruned: {why}")

        def work() -> PruneResult | None:
            return None if self._closing else prune_history(output_dir, budget)

        self.jobs.submit(work, lambda r: r is not None and done(r), failed)

    def close(self) -> None:
        """Let a record being written finish (it is small); the window is closing. Prunes
        still queued are skipped: measuring a long history would keep the window waiting."""
        self._closing = True
        self.jobs.stop(timeout=5.0, drain=True)


def pruned_text(result: PruneResult) -> str:
    """'History: 2 old runs removed (1.2 GB freed) to keep within the budget.'"""
    n = len(result.removed)
    freed = f" ({human_size(result.freed_bytes)} freed)" if result.freed_bytes else ""
    return (
        f"History: {n} old run{'s' if n != 1 else ''} removed{freed} to keep within the budget "
        "(Settings → History; pin a run to keep it)."
    )
