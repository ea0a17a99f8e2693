"""The bounded queue between live threads: when full, the oldest item makes way and is counted."""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class NewestQueue(Generic[T]):
    """A queue of at most ``maxsize`` items where ``put`` never blocks: a full queue drops its
    oldest item (the newest frame wins, as in StreamDiffusion's input queue). ``dropped``
    counts what was pushed out; ``on_drop`` hears about each such item."""

    def __init__(self, maxsize: int = 1) -> None:
        if maxsize < 1:
            raise ValueError("a NewestQueue holds at least one item")
        self.maxsize = int(maxsize)
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0
        self.peak = 0

    def put(self, item: T) -> T | None:
        """Add ``item``; returns the item it pushed out, if any."""
        with self._cond:
            out = None
            if len(self._items) >= self.maxsize:
                out = self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.peak = max(self.peak, len(self._items))
            self._cond.notify()
            return out

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item, waiting up to ``timeout`` seconds; None when there is none (the
        wait ran out, or the queue is closed and empty)."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def close(self) -> None:
        """No more items will come: waiting readers wake up."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

    def drain(self) -> list[T]:
        """Take every item left."""
        with self._cond:
            out = list(self._items)
            self._items.clear()
            return out
