"""The previews' worker thread: decoding and rendering never block the GUI thread."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer

_LIVE: weakref.WeakSet[BackgroundRenderer] = weakref.WeakSet()
#: The nice value of preview workers: less CPU priority than the GUI thread (nice 0).
NICE = 10


@atexit.register
def _stop_all() -> None:
    """Let running jobs finish and the workers exit before the interpreter tears down: a daemon
    thread killed inside a torch kernel aborts the process ("terminate called without an active
    exception") and turns a clean exit into exit code 134."""
    for worker in list(_LIVE):
        worker.stop(timeout=10.0)


def _lower_priority() -> None:
    """Run this thread at a lower CPU priority (Linux: per thread). Previews are background
    work: on a machine with few cores, a render using all of them would otherwise keep the GUI
    thread waiting for a core although it has work to do."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)


class BackgroundRenderer:
    """One worker thread; the latest request wins and older pending ones are dropped.

    Results are handed back by a GUI-thread timer polling a slot, not by a signal emitted from
    the worker: the worker then never touches a Qt object, so a viewer can be deleted while a
    render is still running.
    """

    def __init__(self, on_result: Callable[[Any, Any], None], parent: QObject) -> None:
        self._on_result = on_result
        self._cond = threading.Condition()
        self._job: tuple[Callable[[], Any], Any] | None = None
        self._result: tuple[Any, Any] | None = None
        self._busy = False
        self._thread: threading.Thread | None = None
        self._timer = QTimer(parent)
        self._timer.setInterval(10)
        self._timer.timeout.connect(self._poll)
        self._stopping = False
        _LIVE.add(self)

    def submit(self, fn: Callable[[], Any], tag: Any) -> None:
        with self._cond:
            self._job = (fn, tag)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="preview-render", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        self._timer.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Drop pending work and wait (up to ``timeout``) for the running job to end."""
        with self._cond:
            self._stopping = True
            self._job = None
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def idle(self) -> bool:
        with self._cond:
            return self._job is None and not self._busy and self._result is None

    def superseded(self) -> bool:
        """True while a newer request waits: a long job may check this and give up early."""
        with self._cond:
            return self._job is not None or self._stopping

    def _work(self) -> None:
        _lower_priority()
        while True:
            with self._cond:
                # An idle worker exits after a while; submit() starts a new one.
                if (
                    self._job is None
                    and not self._cond.wait_for(
                        lambda: self._job is not None or self._stopping, timeout=30.0
                    )
                    or self._stopping
                ):
                    self._thread = None
                    return
                assert self._job is not None
                fn, tag = self._job
                self._job = None
                self._busy = True
            try:
                result: Any = fn()
            except Exception as exc:  # noqa: BLE001 - shown in the viewer, never raised
                result = exc
            with self._cond:
                self._result = (tag, result)
                self._busy = False
            # An idle worker waits up to 30 s for the next job: its locals must not keep the
            # finished one's values (a video, the spill file it reads) alive meanwhile.
            del fn, tag, result

    def _poll(self) -> None:
        with self._cond:
            res, self._result = self._result, None
            done = self._job is None and not self._busy
        if res is not None:
            self._on_result(*res)
        if done and res is None:
            self._timer.stop()
