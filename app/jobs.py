"""A worker thread for the docks' small slow jobs (decoding thumbnails, writing and listing run
records), so none of them stalls the GUI thread.

Jobs run one at a time in the order given. Results come back through a GUI-thread timer that
polls, not a signal emitted by the worker: the worker never touches a Qt object, so a dock can
close while a job still runs. Each poll hands back results for at most ``DELIVER_MS``, so a
burst of finished thumbnails cannot stall the GUI either.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from PySide6.QtCore import QObject, QTimer

#: How often the GUI thread looks for finished jobs while any are outstanding (ms).
POLL_MS = 15
#: Most time one poll spends handing results to their callbacks (ms).
DELIVER_MS = 20

Done = Callable[[Any], None]
Failed = Callable[[str], None]


class JobQueue:
    """One daemon worker; ``submit`` queues a job, its callback runs later on the GUI thread."""

    def __init__(self, parent: QObject, name: str = "studio-jobs") -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], Done, Failed] | None] = queue.Queue()
        self._results: deque[Callable[[], None]] = deque()
        self._lock = threading.Lock()
        self._outstanding = 0
        self._name = name
        self._thread: threading.Thread | None = None
        self._timer = QTimer(parent)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._deliver)

    @property
    def idle(self) -> bool:
        """Nothing queued, running, or waiting to be handed back."""
        with self._lock:
            return self._outstanding == 0

    def submit(self, fn: Callable[[], Any], done: Done, failed: Failed) -> None:
        with self._lock:
            self._outstanding += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
        self._jobs.put((fn, done, failed))
        self._timer.start()

    def drop_pending(self) -> None:
        """Forget queued jobs that have not started (e.g. thumbnails of a list being replaced)."""
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                return
            if item is None:
                self._jobs.put(None)
                return
            with self._lock:
                self._outstanding -= 1

    def stop(self, timeout: float = 5.0, drain: bool = False) -> None:
        """Drop what has not started (``drain``: run it first), let the running job end, and
        stop delivering: callbacks of jobs still unfinished are not called."""
        if not drain:
            self.drop_pending()
        self._timer.stop()
        thread = self._thread
        if thread is not None:
            self._jobs.put(None)
            thread.join(timeout)
            self._thread = None
        self._results.clear()

    def _work(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            fn, done, failed = item
            try:
                value = fn()
            except Exception as exc:  # noqa: BLE001 - reported to the job's own callback
                text = f"{type(exc).__name__}: {exc}"
                self._results.append(partial(failed, text))
            else:
                self._results.append(partial(done, value))
            # Waiting for the next job, the worker must not keep this one alive: a run record's
            # job holds the run's values (a video, the spill file it reads) until then.
            del item, fn, done, failed

    def _deliver(self) -> None:
        end = time.perf_counter() + DELIVER_MS / 1000
        while self._results and time.perf_counter() < end:
            call = self._results.popleft()
            with self._lock:
                self._outstanding -= 1
            call()
        with self._lock:
            if self._outstanding == 0:
                self._timer.stop()
