"""Run events: one listener interface that the terminal progress bar and the GUI both consume."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Event kinds, in the order a node may see them.
KINDS = (
    "run_started",
    "node_queued",
    "node_started",
    "node_progress",
    "node_preview",
    "node_finished",
    "node_cached",
    "node_failed",
    "node_skipped",
    "run_finished",
)


@dataclass(frozen=True)
class Event:
    kind: str
    node: str | None = None
    progress: float | None = None
    message: str = ""
    value: Any = None
    seconds: float | None = None
    #: Progress (or a preview) of work done for another node's run: a lazy output (a video
    #: whose frames compute when read) computing while ``reader``, downstream, reads it. The
    #: work is ``node``'s, done after its own run finished; None for a node's own run.
    reader: str | None = None


Listener = Callable[[Event], None]


class Recorder:
    """Keeps every event; tests and the run report read it."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self, node: str | None = None) -> list[str]:
        return [e.kind for e in self.events if node is None or e.node == node]

    def nodes_with(self, kind: str) -> list[str]:
        return [e.node for e in self.events if e.kind == kind and e.node is not None]


def fan_out(*listeners: Listener | None) -> Listener:
    active = [cb for cb in listeners if cb is not None]

    def emit(event: Event) -> None:
        for cb in active:
            cb(event)

    return emit
