"""Parameter problems shown as soon as a value is set, not only when a run is refused.

A low percentile typed above the high one is valid on its own, so the widget takes it; the
engine's validation (``check_params``: each value, then the node's declared constraints) is
what finds it. The inspector runs that check whenever a parameter changes (edit, undo, load)
and this puts the message on the node's badge, as a run that stopped on it would.
"""

from __future__ import annotations

from typing import Any

from fathom.app.document import Document
from fathom.app.session import RunSession
from fathom.engine.errors import Problem
from fathom.engine.validate import check_params


def param_problems(doc: Document, node_id: str) -> list[Problem]:
    """What validation would say about one node's parameters (none for unknown types)."""
    inst = doc.graph.nodes.get(node_id)
    cls = doc.node_class(node_id) if inst is not None else None
    if inst is None or cls is None:
        return []
    return check_params(node_id, cls, inst.params)[1]


def problems_text(problems: list[Problem]) -> str:
    """The messages as a run reports them (one per line), so the badge reads the same."""
    return "\n".join(str(p) for p in problems)


class ParamBadges:
    """Marks nodes whose parameters cannot run as failed, with the message, and takes the mark
    back once the values are fixed (only a mark it set: a run's own failure stays)."""

    def __init__(self, doc: Document, session: RunSession) -> None:
        self.doc = doc
        self.session = session
        #: The message each marked node shows.
        self.shown: dict[str, str] = {}
        self._unsubscribe = session.subscribe(self._on_session)

    def close(self) -> None:
        """Let go of the session (the window is closing); safe to call twice."""
        self._unsubscribe()

    def _on_session(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "cleared":  # another graph is open, every badge went back to idle
            self.shown = {}
            for nid in self.doc.graph.nodes:
                self.show(nid, problems_text(param_problems(self.doc, nid)))

    def show(self, node_id: str, text: str) -> None:
        """``text``: the node's parameter problems, empty when there are none."""
        if text:
            self.shown[node_id] = text
            self.session.set_status(node_id, "failed", message=text)
            return
        old = self.shown.pop(node_id, None)
        state = self.session.status(node_id)
        if old is not None and state.status == "failed" and state.message == old:
            self.session.set_status(node_id, "idle")
