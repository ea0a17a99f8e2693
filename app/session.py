"""The run session: what one window's runs are doing and have made, as plain Python with events.

No Qt here, on purpose (napari's model/Qt split): the Qt runner feeds it the engine's events and
outcomes, and the main window, the editor's node items and the log panel subscribe to what it
emits and unsubscribe when they close. So the state of runs can be driven and checked headless.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fathom.engine.context import RunOptions
from fathom.engine.errors import Problem
from fathom.engine.events import Event
from fathom.engine.executor import RunResult
from fathom.engine.graph import Graph

#: What a run's event means for a node's badge.
EVENT_STATUS = {
    "node_queued": "queued",
    "node_started": "running",
    "node_progress": "running",
    "node_finished": "done",
    "node_cached": "cached",
    "node_failed": "failed",
    "node_skipped": "skipped",
}

#: Statuses a node keeps until the next run: nothing it reports later makes it run again.
ENDED = frozenset({"done", "cached", "failed", "skipped", "cancelled", "bypassed"})

#: What a session emits, each with its payload's keys:
#: ``run_started`` {}; ``node_status`` {node, status, progress, message};
#: ``node_preview`` {node, value, title}; ``log`` {level, message, node};
#: ``run_finished`` {outcome, summary: str or None when the run could not start};
#: ``cleared`` {} (statuses, outputs and previews forgotten); ``live_changed`` {on}.
SESSION_EVENTS = (
    "run_started",
    "node_status",
    "node_preview",
    "log",
    "run_finished",
    "cleared",
    "live_changed",
)

SessionListener = Callable[[str, dict[str, Any]], None]


@dataclass
class RunRequest:
    """A snapshot of the graph (the user keeps editing the original) and how to run it."""

    graph: Graph
    options: RunOptions
    targets: list[str] | None = None


@dataclass
class RunOutcome:
    result: RunResult | None = None
    #: Validation problems; with a result, they blocked only the outputs that need them.
    problems: list[Problem] = field(default_factory=list)
    error: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.result is not None and self.result.cancelled


@dataclass
class NodeState:
    """One node's part in the latest run, as its badge shows it."""

    status: str = "idle"
    progress: float | None = None
    message: str = ""
    #: Seconds the node took (set when it finished or failed).
    seconds: float | None = None


class RunSession:
    """The state of runs (running or idle, live mode, per-node status and timing, the latest
    outputs and step previews, errors) and the events that announce each change.

    It is fed on one thread, the GUI's: the Qt runner delivers worker events through queued
    signals before they reach it, so listeners never need locks."""

    def __init__(self) -> None:
        self.running = False
        self.live = False
        #: Per node id (inner subgraph nodes as "outer/inner"), the latest run's state.
        self.nodes: dict[str, NodeState] = {}
        #: The latest outputs of each top-level node, by output name (from finished runs).
        self.outputs: dict[str, dict[str, Any]] = {}
        #: The newest step preview of each node: (value, title).
        self.previews: dict[str, tuple[Any, str]] = {}
        #: Error messages since the latest run started.
        self.errors: list[str] = []
        self.last_outcome: RunOutcome | None = None
        #: Wall-clock seconds of the latest finished run.
        self.seconds: float | None = None
        self._listeners: list[SessionListener] = []

    # ---- listeners ---------------------------------------------------------------------------

    def subscribe(self, listener: SessionListener) -> Callable[[], None]:
        """Returns the function that unsubscribes, so a widget can disconnect when it closes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, kind: str, **payload: Any) -> None:
        for listener in list(self._listeners):
            listener(kind, payload)

    # ---- what the runner feeds ---------------------------------------------------------------

    def started(self) -> None:
        """A run began: every badge goes back to idle until its node hears from the run."""
        self.running = True
        self.errors = []
        self.nodes = {}
        self._emit("run_started")

    def handle(self, event: Event) -> None:
        """One engine event: node badges, progress, step previews and failures."""
        if event.node is None:
            return
        if event.kind == "node_preview":
            title = f"{event.node} (step preview) {event.message}".strip()
            self.previews[event.node] = (event.value, title)
            self._emit("node_preview", node=event.node, value=event.value, title=title)
            return
        status = EVENT_STATUS.get(event.kind)
        if status is None:
            return
        if event.kind == "node_progress" and self.status(event.node).status in ENDED:
            # A lazy output (a mapped video's frames) computes when something downstream reads
            # it, after its node finished: that work is the reader's, the node stays done.
            return
        if event.kind == "node_finished" and event.message == "bypassed":
            status = "bypassed"
        progress = {"node_progress": event.progress, "node_started": 0.0}.get(event.kind)
        seconds = event.seconds if event.kind in ("node_finished", "node_failed") else None
        self.set_status(event.node, status, progress, event.message, seconds)
        if event.kind == "node_failed":
            self.log("error", event.message, event.node)
        elif event.kind == "node_skipped":
            self.log("warning", f"skipped: {event.message}", event.node)

    def finished(self, outcome: RunOutcome) -> None:
        """The run ended (or never started): problems, cancelled nodes, outputs and a summary."""
        self.running = False
        self.last_outcome = outcome
        for p in outcome.problems:
            if p.node:
                self.set_status(p.node, "failed", message=str(p))
            self.log("error", str(p), (p.node or "").split("/")[0])
        result = outcome.result
        if result is None:
            if outcome.error and not outcome.problems:
                self.log("error", outcome.error)
            self._emit("run_finished", outcome=outcome, summary=None)
            return
        for nid, values in result.values.items():
            if "/" not in nid:
                self.outputs[nid] = values
        for nid, rec in result.records.items():
            if rec.status == "cancelled":
                self.set_status(nid, "cancelled", message=rec.error or "", seconds=rec.seconds)
        self.seconds = result.seconds
        summary = run_summary(result)
        self.log("error" if result.failed else "info", summary)
        self._emit("run_finished", outcome=outcome, summary=summary)

    # ---- state changes ------------------------------------------------------------------------

    def set_status(
        self,
        node: str,
        status: str,
        progress: float | None = None,
        message: str = "",
        seconds: float | None = None,
    ) -> None:
        state = self.nodes.setdefault(node, NodeState())
        state.status, state.progress, state.message = status, progress, message
        if seconds is not None:
            state.seconds = seconds
        self._emit("node_status", node=node, status=status, progress=progress, message=message)

    def status(self, node: str) -> NodeState:
        return self.nodes.get(node) or NodeState()

    def log(self, level: str, message: str, node: str = "") -> None:
        """A message for the log panel; errors are also kept in ``errors``."""
        if level == "error":
            self.errors.append(message)
        self._emit("log", level=level, message=message, node=node)

    def forget(self, node: str) -> None:
        """A node left the graph: its outputs and previews go with it."""
        self.outputs.pop(node, None)
        self.previews.pop(node, None)
        self.nodes.pop(node, None)

    def clear(self) -> None:
        """Another graph is open: nothing of the old one's runs applies any more."""
        self.outputs.clear()
        self.previews.clear()
        self.nodes.clear()
        self.errors = []
        self._emit("cleared")

    def set_live(self, on: bool) -> None:
        self.live = bool(on)
        self._emit("live_changed", on=self.live)


def run_summary(result: RunResult) -> str:
    counts = {s: len(result.by_status(s)) for s in ("executed", "cached", "failed")}
    word = "cancelled" if result.cancelled else "finished"
    return (
        f"Run {word} in {result.seconds:.2f} s: {counts['executed']} executed, "
        f"{counts['cached']} cached, {counts['failed']} failed"
    )
