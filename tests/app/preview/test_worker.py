"""The previews' worker lets go of a finished render: idle for up to 30 s before it exits, it
must not keep the job's values alive meanwhile (a video there keeps its spill file on disk)."""

from __future__ import annotations

import weakref
from typing import Any

from PySide6.QtCore import QObject

from fathom.app.preview.worker import BackgroundRenderer


class Payload:
    """Stands in for a video a preview decodes a frame of."""


def name_of(payload: Payload) -> Any:
    """A job holding the payload only through its closure, as a run record's job does."""
    return lambda: type(payload).__name__


def test_a_finished_render_is_not_kept_alive_by_the_idle_worker(qtbot: Any) -> None:
    owner = QObject()
    results: list[Any] = []
    worker = BackgroundRenderer(lambda tag, result: results.append(result), owner)
    payload = Payload()
    alive = weakref.ref(payload)
    worker.submit(name_of(payload), "tag")
    del payload
    qtbot.waitUntil(lambda: results == ["Payload"], timeout=5_000)
    qtbot.waitUntil(lambda: alive() is None, timeout=2_000)
    worker.stop()
