"""Runs graphs on a worker thread (never the GUI thread), with cancel and a debounced live mode.

The worker calls the same engine API as ``fathom render``: ``Executor.plan`` then
``Executor.run`` with a listener and a cancel token. Engine events cross to the GUI thread as
queued Qt signals, which feed the window's run session (``app.session``). One Executor lives as
long as the window, so its cache makes live re-runs execute only what a change affects.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal

from fathom.app.session import RunOutcome, RunRequest, RunScope, run_scope
from fathom.app.warmup import wait_until_warm
from fathom.engine.context import CancelToken
from fathom.engine.errors import GraphFileError, GraphInvalid, Problem
from fathom.engine.events import Event
from fathom.engine.executor import Executor, Plan
from fathom.engine.graph import Graph

LIVE_DELAY_MS = 300
#: How long a Python-bound node may hold the GIL before the GUI thread gets a turn (seconds).
#: Python's default is 5 ms; with a worker thread beside the GUI, 2 ms keeps input snappy.
SWITCH_INTERVAL = 0.002
#: Least time between two progress events of one node that reach the GUI (seconds).
PROGRESS_INTERVAL = 0.033


def _outputs(executor: Executor, graph: Graph) -> list[str]:
    scope = executor.scope(graph)
    outs = [
        n
        for n, inst in graph.nodes.items()
        if (cls := scope.get(inst.type)) is not None and cls.is_output
    ]
    if outs:
        return outs
    sources = {e.src for e in graph.edges}
    return [n for n in graph.nodes if n not in sources]


def plan_runnable(executor: Executor, request: RunRequest) -> tuple[Plan, list[Problem]]:
    """Plan the request; if some nodes are invalid, plan the outputs that do not need them.

    The engine validates a whole graph at once, so an unconnected node in one corner would block
    every output; an editor must keep rendering the rest while the user works on that corner.
    """
    graph, options, targets = request.graph, request.options, request.targets
    try:
        return executor.plan(graph, targets, options), []
    except GraphInvalid as exc:
        problems = exc.problems
        if any(p.node is None for p in problems):
            raise
        bad = {p.node.split("/")[0] for p in problems if p.node}
        wanted = [t.split("/")[0] for t in targets or _outputs(executor, graph) + request.previewed]
        keep = [
            t for t in dict.fromkeys(wanted) if t in graph.nodes and not graph.ancestors([t]) & bad
        ]
        if not keep:
            raise
        needed = graph.ancestors(keep)
        pruned = graph.copy()
        pruned.nodes = {n: i for n, i in pruned.nodes.items() if n in needed}
        pruned.edges = [e for e in pruned.edges if e.src in needed and e.dst in needed]
        try:
            return executor.plan(pruned, keep, options), problems
        except GraphInvalid as again:
            raise GraphInvalid(problems + again.problems, again.title) from None


def with_previewed(executor: Executor, request: RunRequest) -> tuple[RunRequest, list[str]]:
    """A run of what the graph saves, widened to the previewed nodes it would not run (and
    what they need): the preview the user looks at must never be left stale. Plans kept by the
    executor make the extra planning cheap; an invalid graph is left to ``plan_runnable``."""
    if request.targets is not None or not request.previewed:
        return request, []
    try:
        base = executor.plan(request.graph, None, request.options, check=False)
    except GraphInvalid:
        base = None
    graph = request.graph
    ran = (
        {n.split("/")[0] for n in base.needed}
        if base is not None
        else graph.ancestors(_outputs(executor, graph))
    )
    added = [n for n in request.previewed if n in graph.nodes and n not in ran]
    if not added:
        return request, []
    if base is None:  # plan_runnable works out what can run
        return replace(request, previewed=added), added
    return replace(request, targets=base.targets + added), added


def describe(
    request: RunRequest, plan: Plan, problems: list[Problem], added: list[str]
) -> RunScope:
    """What the planned run of ``request`` (as asked, before ``with_previewed``) executes and
    why (see ``app.session.run_scope``)."""
    saves = [t for t in plan.targets if plan.classes[t].is_output]
    return run_scope(request, plan.needed, plan.targets, saves, added, problems)


class _RunThread(QThread):
    event = Signal(object)
    planned = Signal(object)
    done = Signal(object)

    def __init__(self, executor: Executor, request: RunRequest, cancel: CancelToken) -> None:
        super().__init__()
        self.executor = executor
        self.request = request
        self.cancel = cancel
        self._last_progress: dict[str | None, float] = {}

    def listen(self, event: Event) -> None:
        """Forward engine events; a node reporting progress thousands of times a second gets
        through about 30 times a second (a bar cannot show more; the GUI must not drown)."""
        if event.kind == "node_progress" and (event.progress or 0.0) < 1.0:
            now = time.monotonic()
            if now - self._last_progress.get(event.node, 0.0) < PROGRESS_INTERVAL:
                return
            self._last_progress[event.node] = now
        self.event.emit(event)

    def run(self) -> None:
        wait_until_warm()  # the start-up imports end before this thread imports the same
        try:
            request, added = with_previewed(self.executor, self.request)
            plan, problems = plan_runnable(self.executor, request)
            self.planned.emit(describe(self.request, plan, problems, added))
            result = self.executor.run(plan, listener=self.listen, cancel=self.cancel)
            outcome = RunOutcome(result, problems)
        except (GraphInvalid, GraphFileError) as exc:
            outcome = RunOutcome(problems=list(getattr(exc, "problems", [])), error=str(exc))
        except Exception:  # noqa: BLE001 - an engine bug must reach the log, not kill the app
            outcome = RunOutcome(error=traceback.format_exc())
        self.done.emit(outcome)


class Runner(QObject):
    """One run at a time. ``schedule`` is the live mode: debounced, and a newer request cancels
    the run in progress and starts when it has stopped."""

    started = Signal()
    #: A RunScope: what the run executes and why, once it is planned.
    planned = Signal(object)
    #: An engine Event (on the GUI thread).
    event = Signal(object)
    #: A RunOutcome.
    finished = Signal(object)

    def __init__(self, executor: Executor, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.executor = executor
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        self._thread: _RunThread | None = None
        self._cancel: CancelToken | None = None
        self._pending: Callable[[], RunRequest | None] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(LIVE_DELAY_MS)
        self._timer.timeout.connect(self._fire)
        self._factory: Callable[[], RunRequest | None] | None = None
        #: The request of the run in progress (or the latest one): run history records it.
        self.request: RunRequest | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, request: RunRequest) -> bool:
        if self._thread is not None:
            return False
        self._cancel = CancelToken()
        thread = _RunThread(self.executor, request, self._cancel)
        thread.event.connect(self.event)
        thread.planned.connect(self.planned)
        thread.done.connect(self._done)
        self._thread = thread
        self.request = request
        self.started.emit()
        thread.start()
        return True

    def cancel(self) -> None:
        self._pending = None
        self._timer.stop()
        if self._cancel is not None:
            self._cancel.cancel()

    def schedule(
        self, factory: Callable[[], RunRequest | None], delay_ms: int = LIVE_DELAY_MS
    ) -> None:
        """Run ``factory()`` after a quiet spell of ``delay_ms``; restarts on every call."""
        self._factory = factory
        self._timer.start(delay_ms)

    def _fire(self) -> None:
        factory = self._factory
        if factory is None:
            return
        if self._thread is not None:
            # The running result is already stale: stop it and run again once it has stopped.
            self._pending = factory
            if self._cancel is not None:
                self._cancel.cancel()
            return
        request = factory()
        if request is not None:
            self.start(request)

    def _done(self, outcome: RunOutcome) -> None:
        thread = self._thread
        self._thread = None
        self._cancel = None
        if thread is not None:
            thread.wait()
            thread.deleteLater()
        self.finished.emit(outcome)
        pending, self._pending = self._pending, None
        if pending is not None:
            request = pending()
            if request is not None:
                self.start(request)

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Cancel and wait: a QThread destroyed while running takes the process down."""
        self.cancel()
        if self._thread is not None:
            self._thread.wait(timeout_ms)


class Task(QThread):
    """Any slow call off the GUI thread (e.g. making a mesh for the 360° viewer)."""

    succeeded = Signal(object)
    failed = Signal(str)

    def __init__(self, fn: Callable[[], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.fn = fn

    def run(self) -> None:
        try:
            value = self.fn()
        except Exception as exc:  # noqa: BLE001 - reported to the log panel
            self.failed.emit(f"{type(exc).__name__}: {exc}")
            return
        self.succeeded.emit(value)
