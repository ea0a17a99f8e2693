"""Parameter problems shown as soon as a value is set, not only when a run is refused.

A low percentile typed above the high one is valid on its own, so the widget takes it; the
engine's validation (``check_params``: each value, then the node's declared constraints) is
what finds it. The inspector runs that check whenever a parameter changes (edit, undo, load)
and this puts the message on the node's badge, as a run that stopped on it would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fathom.app.document import Document
from fathom.app.session import CHANGED_SINCE, RunSession
from fathom.engine.errors import Problem
from fathom.engine.graph import Graph
from fathom.engine.validate import check_params


def param_problems(doc: Document, node_id: str) -> list[Problem]:
    """What validation would say about one node's parameters (none for unknown types)."""
    inst = doc.graph.nodes.get(node_id)
    cls = doc.node_class(node_id) if inst is not None else None
    if inst is None or cls is None:
        return []
    return check_params(node_id, cls, inst.params)[1]


def downstream(graph: Graph, node: str) -> set[str]:
    """``node`` and every node that reads from it, directly or not: what an edit of it can
    change."""
    outgoing: dict[str, list[str]] = {}
    for e in graph.edges:
        outgoing.setdefault(e.src, []).append(e.dst)
    seen: set[str] = set()
    todo = [node]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(outgoing.get(n, ()))
    return seen


def problems_text(problems: list[Problem]) -> str:
    """The messages as a run reports them (one per line), so the badge reads the same."""
    return "\n".join(str(p) for p in problems)


class ParamBadges:
    """Marks nodes whose parameters cannot run as failed, with the message, and takes the mark
    back once the values are fixed. A run's own failure (a refusal or an error) stays until an
    edit that can change it: then the badge goes idle and its message says the failure is the
    last run's, so a fixed value is never shown as still wrong.

    Two checks feed it: the parameter check (``show``, quick, run here on every edit) and the
    node's own pre-flight check (``show_checked``, from ``app.preflight_checks``: it may be slow,
    some hash model files, so it runs on a worker and its result arrives later). A node with
    parameter problems shows those, as a run refuses it on them before its pre-flight."""

    def __init__(self, doc: Document, session: RunSession) -> None:
        self.doc = doc
        self.session = session
        #: The message each marked node shows (by its id in the run session).
        self.shown: dict[str, str] = {}
        self._params: dict[str, str] = {}
        self._checked: dict[str, str] = {}
        self._unsubscribe = session.subscribe(self._on_session)
        self._unwatch: Callable[[], None] | None = None
        doc.reset.connect(self._watch)
        doc.level_changed.connect(self._watch)  # edits inside a subgraph count too
        self._watch()

    def close(self) -> None:
        """Let go of the session and the graph (the window is closing); safe to call twice."""
        self._unsubscribe()
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
            self.doc.reset.disconnect(self._watch)
            self.doc.level_changed.disconnect(self._watch)

    def _watch(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
        self._unwatch = self.doc.graph.subscribe(self._on_graph_event)

    def _on_graph_event(self, event: str, payload: dict[str, Any]) -> None:
        if event in ("param_changed", "flags_changed"):
            changed = payload["node"]
        elif event in ("edge_added", "edge_removed"):
            changed = payload["edge"].dst
        else:
            return
        # Inside a subgraph the edit changes what its instance at the top level computes.
        top = self.doc.trail[0][0] if self.doc.trail else changed
        self.outdate(downstream(self.doc.root, top))

    def outdate(self, nodes: set[str]) -> None:
        """The last run's failures at these top-level nodes (and inside them) are history now:
        their inputs or values changed. Their badges go idle, the message kept after
        CHANGED_SINCE; a parameter problem this class shows is current and stays."""
        for nid, state in list(self.session.nodes.items()):
            if state.status != "failed" or nid.split("/")[0] not in nodes:
                continue
            if self.shown.get(nid) == state.message:
                continue
            self.session.set_status(nid, "idle", message=CHANGED_SINCE + state.message)

    def _on_session(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "cleared":  # another graph is open, every badge went back to idle
            self.shown, self._params, self._checked = {}, {}, {}
            for nid in self.doc.graph.nodes:
                self.show(nid, problems_text(param_problems(self.doc, nid)))

    def show(self, node_id: str, text: str) -> None:
        """``node_id``: a node at the level the editor shows; ``text``: its parameter problems,
        empty when there are none."""
        badge = "".join(f"{inst}/" for inst, _ in self.doc.trail) + node_id
        self._params[badge] = text
        self._update(badge)

    def show_checked(self, badge: str, text: str) -> None:
        """``badge``: a node's id in the run session (inner nodes "outer/inner"); ``text``: the
        problems its pre-flight check found for its current values, empty when none."""
        if text:
            self._checked[badge] = text
        else:
            self._checked.pop(badge, None)
        self._update(badge)

    def _update(self, badge: str) -> None:
        text = self._params.get(badge) or self._checked.get(badge, "")
        if text:
            self.shown[badge] = text
            self.session.set_status(badge, "failed", message=text)
            return
        old = self.shown.pop(badge, None)
        state = self.session.status(badge)
        if old is not None and state.status == "failed" and state.message == old:
            self.session.set_status(badge, "idle")
