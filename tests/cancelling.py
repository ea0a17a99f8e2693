"""Cancelling a run from its listener after a set number of sampler steps, as a user pressing
Cancel mid-denoise does: the node tests then check it stopped there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fathom.engine.context import CancelToken


def cancel_after_steps(n: int) -> tuple[CancelToken, list[str], Callable[[Any], None]]:
    """(cancel token, the step messages seen, listener): the listener records each
    ``node_progress`` message that names a step and cancels once it has seen ``n``."""
    cancel = CancelToken()
    seen: list[str] = []

    def listener(event: Any) -> None:
        if event.kind == "node_progress" and "step" in event.message:
            seen.append(event.message)
            if len(seen) == n:
                cancel.cancel()

    return cancel, seen, listener
