"""The run session: what one window's runs are doing and have made, as plain Python with events.

No Qt here, on purpose (napari's model/Qt split): the Qt runner feeds it the engine's events and
outcomes, and the main window, the editor's node items and the log panel subscribe to what it
emits and unsubscribe when they close. So the state of runs can be driven and checked headless.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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

#: Starts the badge message of a failure the graph has changed since (``app.param_checks``):
#: the badge no longer shows it as current, yet it still explains why the node's output is old.
CHANGED_SINCE = "Changed since the last run, which failed here:\n"

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
    """A snapshot of the graph (the user keeps editing the original) and how to run it.

    ``targets`` None runs what the graph saves; ``previewed`` nodes (their preview is open) are
    then brought up to date too, so the picture the user looks at is never stale."""

    graph: Graph
    options: RunOptions
    targets: list[str] | None = None
    previewed: list[str] = field(default_factory=list)
    #: Node titles as the canvas shows them, for the run's start line.
    titles: dict[str, str] = field(default_factory=dict)


@dataclass
class RunScope:
    """What one run executes and why, in the graph's top-level node ids: the log's start line,
    and the reason on the badge of each node the run leaves alone."""

    nodes: list[str]
    line: str
    #: Node id -> why the run does not run it.
    not_run: dict[str, str] = field(default_factory=dict)
    #: The nodes of ``not_run`` that need a node with problems (running them would not help).
    blocked: set[str] = field(default_factory=set)
    #: Node titles as the canvas shows them (the run's summary names nodes the same way).
    titles: dict[str, str] = field(default_factory=dict)


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
        #: Counts the runs started: what a run left pending is told apart from the next's.
        self.run_id = 0
        #: Per node id (inner subgraph nodes as "outer/inner"), the latest run's state.
        self.nodes: dict[str, NodeState] = {}
        #: The latest outputs of each top-level node, by output name (from finished runs).
        self.outputs: dict[str, dict[str, Any]] = {}
        #: The files each top-level node wrote in the latest run that ran it (save nodes).
        self.files: dict[str, list[str]] = {}
        #: The newest step preview of each node: (value, title).
        self.previews: dict[str, tuple[Any, str]] = {}
        #: Error messages since the latest run started.
        self.errors: list[str] = []
        self.last_outcome: RunOutcome | None = None
        #: Wall-clock seconds of the latest finished run.
        self.seconds: float | None = None
        #: What the latest run executes and why (set once it is planned).
        self.scope: RunScope | None = None
        #: Finished nodes whose lazy output is computing for nodes downstream that read it:
        #: the state each ended with, and the readers; it comes back when they are done.
        self._lent: dict[str, tuple[NodeState, set[str]]] = {}
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
        self.run_id += 1
        self.errors = []
        self.nodes = {}
        self._lent = {}
        self._emit("run_started")

    def planned(self, scope: RunScope) -> None:
        """The run is planned: say what it runs and why, and mark what it leaves alone."""
        self.scope = scope
        self.log("info", scope.line)
        for node, why in scope.not_run.items():
            self.set_status(node, "skipped", message=why)

    def left_out(self, node: str) -> bool:
        """Whether the latest run left this node alone though it could have run it (it feeds
        no save node, or the selection did not need it): its output is missing or stale."""
        scope = self.scope
        return scope is not None and node in scope.not_run and node not in scope.blocked

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
        if event.kind == "node_progress" and self._reading(event):
            return
        if event.kind == "node_progress" and self.status(event.node).status in ENDED:
            # Late progress that names no reader (a lazy output read outside any node's run):
            # nothing runs the node again, it stays done.
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
        if status in ENDED:
            self._read_by(event.node)

    def _reading(self, event: Event) -> bool:
        """Progress of a finished node's lazy output (a depth video's frames) computing while
        ``event.reader`` reads it: the node shows that work as running, for that reader, and
        goes back to how it ended once every reader is done. False: not such progress."""
        node, reader = event.node, event.reader
        if node is None or reader is None:
            return False
        lent = self._lent.get(node)
        if lent is None:
            state = self.status(node)
            if state.status not in ENDED:
                return False  # still in its own run: ordinary progress
            lent = self._lent[node] = (replace(state), set())
        lent[1].add(reader)
        by = node_label(reader, self.scope.titles if self.scope is not None else {})
        message = f"{event.message}: read by {by}" if event.message else f"read by {by}"
        self.set_status(node, "running", event.progress, message)
        return True

    def _read_by(self, reader: str | None = None, cancelled: bool = False) -> None:
        """``reader`` ended (None: the run did; ``cancelled``: by a cancel): the nodes whose
        lazy output it was reading, and that no other reader is reading, show how they ended
        again. A run cancelled mid-read says how far the frames got: its output is whole (a
        later read computes the rest), but "done" alone would hide that it stopped."""
        for node, (ended, readers) in list(self._lent.items()):
            if reader is None:
                if cancelled and readers:
                    now = self.status(node).message.split(": read by ")[0]
                    ended = replace(ended, message=f"cancelled while its frames were read ({now})")
                readers.clear()
            else:
                readers.discard(reader)
            if not readers:
                del self._lent[node]
                self.set_status(node, ended.status, ended.progress, ended.message, ended.seconds)

    def finished(self, outcome: RunOutcome) -> None:
        """The run ended (or never started): problems, cancelled nodes, outputs and a summary."""
        self.running = False
        self.last_outcome = outcome
        # A reader cancelled mid-read sends no event of its own.
        self._read_by(None, cancelled=outcome.cancelled)
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
        written: dict[str, list[str]] = {}
        for nid, rec in result.records.items():
            if rec.files:  # a subgraph's inner save nodes write for the node the canvas shows
                written.setdefault(nid.split("/")[0], []).extend(rec.files)
        self.files.update(written)
        for nid, rec in result.records.items():
            if rec.status == "cancelled":
                self.set_status(nid, "cancelled", message=rec.error or "", seconds=rec.seconds)
        self.seconds = result.seconds
        summary = run_summary(result, outcome.problems, self.scope)
        refused = bool(refused_nodes(outcome.problems))
        self.log("error" if result.failed else "warning" if refused else "info", summary)
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

    def failure(self, node: str) -> tuple[str, str] | None:
        """How the latest run ended at ``node`` when it made no output there: (what happened,
        the message), also once the graph has changed since; None otherwise. The preview says
        so above the older output it still shows."""
        state = self.status(node)
        if state.status == "failed":
            return "failed", state.message
        if state.status == "cancelled":
            return "was cancelled", ""
        if state.status == "idle" and state.message.startswith(CHANGED_SINCE):
            return "failed in the last run", state.message.removeprefix(CHANGED_SINCE)
        return None

    def log(self, level: str, message: str, node: str = "") -> None:
        """A message for the log panel; errors are also kept in ``errors``."""
        if level == "error":
            self.errors.append(message)
        self._emit("log", level=level, message=message, node=node)

    def forget(self, node: str) -> None:
        """A node left the graph: its outputs and previews go with it."""
        self.outputs.pop(node, None)
        self.files.pop(node, None)
        self.previews.pop(node, None)
        self.nodes.pop(node, None)
        self._lent.pop(node, None)

    def clear(self) -> None:
        """Another graph is open: nothing of the old one's runs applies any more."""
        self.outputs.clear()
        self.files.clear()
        self.previews.clear()
        self.nodes.clear()
        self._lent.clear()
        self.errors = []
        self.scope = None
        self.last_outcome = None  # its values would keep the old graph's spill files alive
        self._emit("cleared")

    def set_live(self, on: bool) -> None:
        self.live = bool(on)
        self._emit("live_changed", on=self.live)


def node_label(node: str, titles: dict[str, str]) -> str:
    """ "'Save Video' (save_png)": the title the canvas shows and the node id, since two
    nodes often share a title (three Save Video nodes) and the log must tell them apart."""
    title = titles.get(node, node)
    return f"'{title}'" if title == node else f"'{title}' ({node})"


def refused_nodes(problems: Sequence[Problem]) -> list[str]:
    """The top-level nodes validation refused before the run (in the problems' order)."""
    return list(dict.fromkeys(p.node.split("/")[0] for p in problems if p.node))


def _listed(labels: list[str], most: int = 5) -> str:
    more = f" and {len(labels) - most} more" if len(labels) > most else ""
    return ", ".join(labels[:most]) + more


def run_summary(
    result: RunResult, problems: Sequence[Problem] = (), scope: RunScope | None = None
) -> str:
    """The run's one line for the log, the status bar and the queue. Nodes refused before the
    run are counted and named: without them "5 executed, 0 failed" reads as if every output
    had been written, while the refused save node's file is missing (or stale)."""
    counts = {s: len(result.by_status(s)) for s in ("executed", "cached", "failed")}
    word = "cancelled" if result.cancelled else "finished"
    quiet = [(len(result.by_status(s)), s) for s in ("muted", "bypassed")]
    line = (
        f"Run {word} in {result.seconds:.2f} s: {counts['executed']} executed, "
        f"{counts['cached']} cached, {counts['failed']} failed"
        + "".join(f", {n} {s}" for n, s in quiet if n)  # every node is accounted for
    )
    refused = refused_nodes(problems)
    if refused:
        titles = scope.titles if scope is not None else {}
        names = _listed([node_label(n, titles) for n in refused])
        line += f", {len(refused)} blocked (refused before the run): {names}"
        if scope is not None and scope.blocked:
            verb = "needs" if len(scope.blocked) == 1 else "need"
            what = "it" if len(refused) == 1 else "them"
            line += f"; {_count(len(scope.blocked), 'node')} that {verb} {what} did not run"
    return line


FEEDS_NO_SAVE = "not run: it feeds no save node; select it to open its preview, or Run to Selected"
NOT_SELECTED = "not run: the selected nodes do not need it"
NOT_AN_END = "not run: the nodes this run ends at do not need it"


def run_scope(
    request: RunRequest,
    needed: list[str],
    targets: list[str],
    saves: list[str],
    added: list[str],
    problems: list[Problem],
) -> RunScope:
    """Describe a planned run. ``needed``/``targets`` may name inner subgraph nodes ("sub/x");
    ``saves`` are the targets that are save nodes, ``added`` the previewed nodes the run
    brings up to date on top of what the graph saves."""
    graph = request.graph

    def title(node: str) -> str:
        return node_label(node, request.titles)

    run = _top_level(needed, graph)
    if request.targets is not None:
        why = [_and_what(_top_level(targets, graph), "selected node", "the ")]
        reason = NOT_SELECTED
    else:
        ends = _top_level(saves, graph) or [t for t in _top_level(targets, graph) if t not in added]
        noun, note = ("save node", "") if saves else ("end node", " (nothing saves)")
        why = [_and_what(ends, noun, note=note)]
        why += [f"+ {title(n)} whose preview is open" for n in added if n in run]
        reason = FEEDS_NO_SAVE if saves else NOT_AN_END
    bad = {p.node.split("/")[0] for p in problems if p.node}
    not_run: dict[str, str] = {}
    for nid in graph.nodes:
        if nid in run or nid in bad:
            continue
        blocked = sorted(graph.ancestors([nid]) & bad)
        not_run[nid] = (
            f"not run: it needs {title(blocked[0])}, which has a problem" if blocked else reason
        )
    line = f"Running {_count(len(run), 'node')}: " + ", ".join(why)
    refused = [n for n in graph.nodes if n in bad]
    if refused:  # each has its own error line; the start line must not read as if all is well
        line += f"; {len(refused)} blocked: {_listed([title(n) for n in refused])} (see the errors)"
    if not_run:
        listed = _listed([title(n) for n in not_run])
        reasons = set(not_run.values())
        because = reasons.pop().removeprefix("not run: ") if len(reasons) == 1 else "hover for why"
        line += f"; {len(not_run)} not run: {listed} ({because})"
    muted = [title(n) for n in run if graph.nodes[n].mute]  # in the plan, but they do nothing
    if muted:
        line += f"; {len(muted)} muted: {_listed(muted)}"
    blocked = {n for n in not_run if graph.ancestors([n]) & bad}
    return RunScope(run, line, not_run, blocked, dict(request.titles))


def _top_level(ids: list[str], graph: Graph) -> list[str]:
    """Inner subgraph ids ("sub/x") as the node the canvas shows ("sub"), once each, in order."""
    return [n for n in dict.fromkeys(i.split("/")[0] for i in ids) if n in graph.nodes]


def _count(n: int, noun: str) -> str:
    """ "1 save node", "3 save nodes" (the noun's last word takes the plural)."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _and_what(ids: list[str], noun: str, article: str = "", note: str = "") -> str:
    needs = "it needs" if len(ids) == 1 else "they need"
    return f"{article}{_count(len(ids), noun)}{note} and what {needs}"
