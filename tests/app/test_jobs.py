"""The docks' job queue lets go of a finished job: its worker, idle until the next one, must
not keep the job's values alive (a run record's job holds the run's outputs, and a video among
them keeps its spill file on disk)."""

from __future__ import annotations

import weakref
from typing import Any

from PySide6.QtCore import QObject

from fathom.app.jobs import JobQueue


class Payload:
    """Stands in for a run's outputs."""


def name_of(payload: Payload) -> Any:
    """A job holding the payload only through its closure, as a run record's job does."""
    return lambda: type(payload).__name__


def test_a_finished_job_is_not_kept_alive_by_the_idle_worker(qtbot: Any) -> None:
    owner = QObject()
    jobs = JobQueue(owner, "test-jobs")
    payload = Payload()
    alive = weakref.ref(payload)
    got: list[str] = []
    jobs.submit(name_of(payload), got.append, got.append)
    del payload
    qtbot.waitUntil(lambda: jobs.idle, timeout=5_000)
    assert got == ["Payload"]
    qtbot.waitUntil(lambda: alive() is None, timeout=2_000)
    jobs.stop()
