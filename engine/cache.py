"""Content-addressed output cache with a byte budget and least-recently-used eviction."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from fathom.engine.types import value_nbytes


class OutputCache:
    """Maps a node's cache key to its outputs; evicts the least recently used past ``max_bytes``.

    A single entry larger than the budget is not kept at all, so one huge value cannot flush
    everything else.
    """

    def __init__(self, max_bytes: int = 4 * 1024**3) -> None:
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict[str, tuple[dict[str, Any], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return item[0]

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def put(self, key: str, outputs: dict[str, Any]) -> None:
        size = sum(value_nbytes(v) for v in outputs.values()) + 128
        with self._lock:
            if key in self._data:
                self._bytes -= self._data.pop(key)[1]
            if size > self.max_bytes:
                return
            self._data[key] = (outputs, size)
            self._bytes += size
            while self._bytes > self.max_bytes and self._data:
                _, (_, old) = self._data.popitem(last=False)
                self._bytes -= old
                self.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._data)
