"""The GUI-stall watchdog the studio's tests share: a 2 ms timer on the GUI thread records the
gaps between its ticks, so any work that holds the GUI thread shows as a long gap.

Two measures per gap: wall-clock, and the GUI thread's own CPU time (``time.thread_time``). Work
our code does on the GUI thread shows in both; a machine loaded by other processes delays
wake-ups, which shows in wall-clock only.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QCoreApplication, QTimer


class Watchdog:
    """Records the longest GUI-thread gap while it runs; use as a context manager."""

    def __init__(self, interval_ms: int = 2) -> None:
        self.gaps: list[tuple[float, float]] = []
        self._last = (0.0, 0.0)
        self._timer = QTimer()
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        self.gaps.append((now - self._last[0], cpu - self._last[1]))
        self._last = (now, cpu)

    def __enter__(self) -> Watchdog:
        self.gaps.clear()
        self._last = (time.perf_counter(), time.thread_time())
        self._timer.start()
        pump(0.03)  # ticking before the action, so the action's own time lands in a gap
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.stop()

    @property
    def longest_ms(self) -> tuple[float, float]:
        """(longest wall-clock gap, longest GUI-thread CPU time in one gap), in ms; every gap
        counts, the first too (work left over from before shows there)."""
        gaps = self.gaps or [(0.0, 0.0)]
        return (
            round(max(g[0] for g in gaps) * 1000, 1),
            round(max(g[1] for g in gaps) * 1000, 1),
        )


def pump(seconds: float, until: Callable[[], bool] | None = None, least: float = 0.0) -> bool:
    """Run the event loop for ``seconds`` at most, or until ``until()`` holds after at least
    ``least`` seconds; returns whether ``until`` held (True when there is none)."""
    app = QCoreApplication.instance()
    assert app is not None
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        app.processEvents()
        if until is not None and time.perf_counter() - start >= least and until():
            return True
        time.sleep(0.001)
    return until is None or until()
