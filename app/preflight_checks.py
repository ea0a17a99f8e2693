"""Nodes' own pre-flight checks shown as the values are set, not only when F5 is refused.

A node's ``check`` (a model of the wrong family, a mode its model cannot run, a student made
for another model, a missing input file) may be slow: some hash model files. So each edit of a
node that has a pre-flight check (its values, flags, undo, a graph opened) asks for a check
after a short pause (``DELAY_MS``, so typing or dragging a slider checks once), and a worker
thread (``app.jobs``) runs it as a render would: the engine's ``node_preflight`` with the
options a run gets now, so relative paths resolve against the graph's folder. Its problems
come back to the GUI thread and show on the node's badge and the inspector's banner, worded as
F5's refusal words them; a later check that passes takes them off.

Each result belongs to the values it was computed from. An edit takes the node's shown result
off at once and makes any check still under way stale: its result is dropped when it arrives.
Opening another graph drops every check of the old one. One worker runs the checks one at a
time, and a node edited while its check runs is checked again once that one is back, so two
checks of one node never run at once.

A subgraph instance is checked as the run flattens it: its inner nodes, with the values the
instance gives them. An edit inside a subgraph (the level the editor shows) checks the top-level
instance the editor went in through.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from fathom.app.document import Document
from fathom.app.jobs import JobQueue
from fathom.app.param_checks import ParamBadges, problems_text
from fathom.app.session import RunSession
from fathom.app.warmup import wait_until_warm
from fathom.engine.context import RunOptions
from fathom.engine.errors import Problem
from fathom.engine.executor import Executor, SubgraphRunner, node_preflight
from fathom.engine.graph import Graph, NodeInstance
from fathom.engine.subgraph import flatten, is_subgraph_type
from fathom.engine.validate import check_params

#: The pause after the last edit of a node before its check starts (ms).
DELAY_MS = 300

#: What each checked node's problems read, by its id in the run session ("outer/inner").
Found = dict[str, str]


def check_node(executor: Executor, graph: Graph, options: RunOptions) -> Found:
    """The pre-flight problems of ``graph``'s one top-level node (and of the nodes inside it,
    for a subgraph instance), found as a render finds them before it starts. A node whose
    values a run refuses first (parameter problems, an unexposed parameter) is not checked:
    the run never gets to its check either. Runs on a worker thread."""
    wait_until_warm()  # a check may import what the start-up warm-up is importing
    scope = executor.scope(graph)
    flat = flatten(graph, scope)
    if flat.meta["_problems"]:
        return {}
    runner = SubgraphRunner(executor, scope, options)
    found: dict[str, list[Problem]] = {}
    for fid, inst in flat.nodes.items():
        cls = scope.get(inst.type)
        if cls is None or inst.mute or inst.bypass or not cls.has_preflight():
            continue
        params, bad = check_params(fid, cls, inst.params)
        if bad:
            continue
        for problem in node_preflight(fid, cls, params, runner):
            found.setdefault(problem.node or fid, []).append(problem)
    return {node: problems_text(problems) for node, problems in found.items()}


class PreflightChecks(QObject):
    """Runs the document's nodes' pre-flight checks as they are edited and shows what they
    find through the window's ``ParamBadges`` (badges) and ``changed`` (the inspector)."""

    #: The problems shown changed: the inspector's banner reads them again.
    changed = Signal()

    def __init__(
        self,
        doc: Document,
        executor: Executor,
        options: Callable[[], RunOptions],
        badges: ParamBadges,
        session: RunSession,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.doc = doc
        self.executor = executor
        self.options = options
        self.badges = badges
        #: False: nothing is checked until F5 (tests of the run's own refusals).
        self.enabled = True
        #: Per top-level node, what its latest current check found (only nodes with problems).
        self.results: dict[str, Found] = {}
        self._jobs = JobQueue(self, "studio-preflight")
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DELAY_MS)
        self._timer.timeout.connect(self._fire)
        #: Bumped when another graph opens: checks of the one before are dropped.
        self._generation = 0
        #: Per top-level node, how many edits it has had: a check is current while it holds.
        self._edits: dict[str, int] = {}
        self._due: set[str] = set()
        self._running: set[str] = set()
        self._base = doc.base_dir
        self._unwatch: Callable[[], None] | None = None
        self._unsubscribe = session.subscribe(self._on_session)
        doc.reset.connect(self._on_reset)
        doc.level_changed.connect(self._watch)
        doc.path_changed.connect(self._on_path)
        self._watch()
        self.check_all()

    @property
    def idle(self) -> bool:
        """No check waiting, running or being handed back (for tests and tools)."""
        return not self._due and not self._running and self._jobs.idle

    def close(self) -> None:
        """The window closes: nothing more is checked or shown; safe to call twice."""
        self._timer.stop()
        self._generation += 1
        self._jobs.stop(timeout=0.0)  # a running check ends on its own; its result is dropped
        self._unsubscribe()
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
            self.doc.reset.disconnect(self._on_reset)
            self.doc.level_changed.disconnect(self._watch)
            self.doc.path_changed.disconnect(self._on_path)

    # ---- what asks for a check ---------------------------------------------------------------

    def check_all(self) -> None:
        """Check every top-level node again: the graph, its folder or the output folder is
        another one."""
        for node in list(self.doc.root.nodes):
            self.edited(node)

    def edited(self, node: str) -> None:
        """The values of top-level ``node`` (or of what it resolves against) changed: what its
        checks found is no longer shown, and it is checked again after the pause."""
        self._edits[node] = self._edits.get(node, 0) + 1
        self._show(node, {})
        if self.enabled and node in self.doc.root.nodes:
            self._due.add(node)
            self._timer.start()  # restarted by every edit: one check after the last
        else:
            self._due.discard(node)

    def _watch(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
        self._unwatch = self.doc.graph.subscribe(self._on_graph_event)

    def _on_graph_event(self, event: str, payload: dict[str, Any]) -> None:
        if event not in ("param_changed", "flags_changed", "node_added", "node_removed"):
            return  # the checks read a node's values, never what it is wired to
        if not self.doc.trail:
            self.edited(payload["node"])
            return
        # Inside a subgraph the edit changes what every top-level instance using that
        # definition runs (others too, nested deeper): check each subgraph instance again.
        root = self.doc.root
        for node, inst in list(root.nodes.items()):
            if is_subgraph_type(inst.type):
                self.edited(node)

    def _on_reset(self) -> None:
        """Another graph: checks of the old one are dropped, running or not."""
        self._generation += 1
        self._jobs.drop_pending()
        self._timer.stop()
        self._due.clear()
        self._running.clear()
        for node in list(self.results):
            self._show(node, {})
        self._edits.clear()
        self._base = self.doc.base_dir
        self._watch()
        self.check_all()

    def _on_path(self) -> None:
        if self.doc.base_dir != self._base:  # Save As elsewhere: relative paths mean others
            self._base = self.doc.base_dir
            self.check_all()

    def _on_session(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "run_finished":
            # The run checked the same nodes: files may have come or gone since ours ran.
            for node in list(self.results):
                self._due.add(node)
            if self._due:
                self._timer.start()

    # ---- running them --------------------------------------------------------------------------

    def _fire(self) -> None:
        for node in list(self._due):
            if node not in self._running:  # else checked again when that check is back
                self._due.discard(node)
                self._submit(node)

    def _needs_check(self, inst: NodeInstance) -> bool:
        if inst.mute or inst.bypass:
            return False
        if is_subgraph_type(inst.type):
            return True  # its inner nodes may have checks: flattening tells, on the worker
        cls = self.doc.root_scope().get(inst.type)
        return cls is not None and cls.has_preflight()

    def _submit(self, node: str) -> None:
        inst = self.doc.root.nodes.get(node)
        if inst is None or not self._needs_check(inst):
            return
        ticket = (self._generation, self._edits.get(node, 0))
        job = partial(check_node, self.executor, self.doc.node_snapshot(node), self.options())
        self._running.add(node)
        self._jobs.submit(
            job, partial(self._done, node, ticket), partial(self._failed, node, ticket)
        )

    def _done(self, node: str, ticket: tuple[int, int], found: Found) -> None:
        if ticket[0] != self._generation:
            return  # a check of a graph no longer open
        self._running.discard(node)
        if ticket[1] == self._edits.get(node, 0):
            self._show(node, found)
        if node in self._due and not self._timer.isActive():
            self._fire()  # edited while it ran: the newer values' turn

    def _failed(self, node: str, ticket: tuple[int, int], text: str) -> None:
        """The checking itself broke (not a node's check: those are problems): show nothing,
        as before these checks existed; F5 reports whatever it is."""
        self._done(node, ticket, {})

    # ---- what they found ---------------------------------------------------------------------

    def _show(self, node: str, found: Found) -> None:
        old = self.results.pop(node, {})
        for badge in old.keys() - found.keys():
            self.badges.show_checked(badge, "")
        for badge, text in found.items():
            self.badges.show_checked(badge, text)
        if found:
            self.results[node] = found
        if old != found:
            self.changed.emit()

    def text_at_level(self, node_id: str) -> str:
        """What the checks found at ``node_id`` of the level the editor shows (and inside it,
        for a subgraph instance), as F5's refusal reads; empty when nothing."""
        badge = "".join(f"{inst}/" for inst, _ in self.doc.trail) + node_id
        found = self.results.get(badge.split("/")[0], {})
        inside = badge + "/"
        return "\n".join(t for b, t in found.items() if b == badge or b.startswith(inside))
