"""Content-addressed output cache with byte budgets (memory and spill files) and LRU eviction."""

from __future__ import annotations

import functools
import threading
import types
from collections import OrderedDict
from typing import Any, NamedTuple, Protocol

import numpy as np

from fathom.engine.envvars import env_number
from fathom.engine.types import RGBD, Depth, Image, Mask, Mesh, PointCloud, PortType, value_nbytes

SPILL_ENV = "FATHOM_SPILL_MB"
#: Values whose data is all in memory (``value_nbytes`` counts it): nothing lazy to follow, and
#: a Video made from a list of thousands of frames stays cheap to walk.
_IN_MEMORY = (Image, Mask, Depth, RGBD, PointCloud, Mesh, np.ndarray, str, bytes, int, float)


class Spilled(Protocol):
    """A store that keeps a lazy value's data in a temporary file (a depth or frame store).

    It deletes its file itself when the last reference to it goes (a finaliser), so the cache
    frees disk by dropping its references, never by deleting a file a preview still reads."""

    def spilled_nbytes(self) -> int:
        """Bytes its file holds now: a store fills as readers pull frames, after the put."""
        ...


def _contents(cell: Any) -> list[Any]:
    try:
        return [cell.cell_contents]
    except ValueError:  # a closure variable not assigned yet
        return []


def _held(obj: Any) -> list[Any]:
    """What a lazy value reads from: a Video is a closure over its source (an upstream Video, a
    store), so the walk follows closures, bound methods, partials and port values only; any
    other object (a node context, a model) is a leaf, which keeps the walk small."""
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [x for x in obj if not isinstance(x, _IN_MEMORY)]
    if isinstance(obj, dict):
        return [x for x in obj.values() if not isinstance(x, _IN_MEMORY)]
    if isinstance(obj, types.FunctionType):
        return [c for cell in obj.__closure__ or () for c in _contents(cell)]
    if isinstance(obj, (types.MethodType, types.BuiltinMethodType)):
        return [obj.__self__, getattr(obj, "__func__", None)]
    if isinstance(obj, functools.partial):
        return [obj.func, *obj.args, *obj.keywords.values()]
    if isinstance(obj, PortType) and not isinstance(obj, _IN_MEMORY):
        return list(getattr(obj, "__dict__", {}).values())
    if callable(obj) and not isinstance(obj, type):
        wrapped = getattr(obj, "__wrapped__", None)  # an lru_cache'd frame function
        return [wrapped] if callable(wrapped) else []
    return []


def value_spills(value: Any, limit: int = 10_000) -> list[Spilled]:
    """The spill stores a cached value keeps alive, found when it is put. ``limit`` bounds
    the walk (a Video of 10 000 in-memory frames is all leaves), so a put stays cheap."""
    found: dict[int, Spilled] = {}
    seen: set[int] = set()
    stack = [value]
    while stack and len(seen) < limit:
        obj = stack.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        if callable(getattr(type(obj), "spilled_nbytes", None)):  # cheaper than the Protocol
            found[id(obj)] = obj
        else:
            stack.extend(_held(obj))
    return list(found.values())


def _default_disk_budget() -> int:
    return int(env_number(SPILL_ENV, 4096, "megabytes of temporary video files") * 2**20)


class _Entry(NamedTuple):
    outputs: dict[str, Any]
    size: int  # bytes in memory, measured once at the put
    spills: tuple[Spilled, ...]  # on disk: measured when asked, since stores fill later


class OutputCache:
    """Maps a node's cache key to its outputs; evicts the least recently used past a budget.

    Two budgets, because they guard different things: ``max_bytes`` for what entries hold in
    memory (the studio's memory budget setting) and ``max_disk_bytes`` for the temporary files
    their lazy videos spill to (``FATHOM_SPILL_MB``, default 4096: two 1080p depth runs at
    their 2 GB cap). A spill file is another resource than RAM, so it must not flush cached
    images, yet without a budget of its own every parameter tweak left one more file behind.
    ``nbytes`` counts both. Evicting an entry only drops the cache's reference: the store's
    file goes when nothing else (a preview, a run still reading) holds the value either.

    A single entry larger than a budget is not kept at all, so one huge value cannot flush
    everything else.
    """

    def __init__(self, max_bytes: int = 4 * 1024**3, max_disk_bytes: int | None = None) -> None:
        self.max_bytes = int(max_bytes)
        self.max_disk_bytes = (
            _default_disk_budget() if max_disk_bytes is None else int(max_disk_bytes)
        )
        self._data: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        #: Keys of the entries holding spill stores: most hold none, and a put stays O(these).
        self._spilling: set[str] = set()
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
            return item.outputs

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def put(self, key: str, outputs: dict[str, Any]) -> None:
        size = sum(value_nbytes(v) for v in outputs.values()) + 128
        spills = tuple(value_spills(list(outputs.values())))
        with self._lock:
            if key in self._data:
                self._drop(key)
            if size > self.max_bytes or _spilled(spills) > self.max_disk_bytes:
                return
            self._data[key] = _Entry(outputs, size, spills)
            self._bytes += size
            if spills:
                self._spilling.add(key)
            self._trim()

    def trim(self) -> None:
        """Evict down to the budgets now: spill files grow after their put, as readers pull
        frames, so the end of a run checks again."""
        with self._lock:
            self._trim()

    def _trim(self) -> None:
        # An entry whose files alone outgrew the disk budget goes first, so it cannot flush
        # everything older. Past the disk budget only entries holding files are evicted: the
        # results held in memory have a budget of their own.
        for key in [
            k for k in self._spilling if _spilled(self._data[k].spills) > self.max_disk_bytes
        ]:
            self._evict(key)
        while self._data and self._bytes > self.max_bytes:
            self._evict(next(iter(self._data)))
        while self._spilling and self._disk_nbytes() > self.max_disk_bytes:
            self._evict(next(k for k in self._data if k in self._spilling))

    def _drop(self, key: str) -> None:
        """Forget an entry; its files go with the last reference to its values."""
        self._bytes -= self._data.pop(key).size
        self._spilling.discard(key)

    def _evict(self, key: str) -> None:
        self._drop(key)
        self.evictions += 1

    def _evict_oldest(self) -> None:
        """For subclasses with budgets of their own (callers hold the lock)."""
        self._evict(next(iter(self._data)))

    def _disk_nbytes(self) -> int:
        # Stores shared by entries (a depth video and the colourised video read from it)
        # count once.
        unique = {id(s): s for k in self._spilling for s in self._data[k].spills}
        return _spilled(tuple(unique.values()))

    def clear(self) -> None:
        """Drop every entry (File → New, a closed document): their spill files go with the
        last reference."""
        with self._lock:
            self._data.clear()
            self._spilling.clear()
            self._bytes = 0

    @property
    def disk_nbytes(self) -> int:
        """Bytes the entries' spill files hold on disk now."""
        with self._lock:
            return self._disk_nbytes()

    @property
    def nbytes(self) -> int:
        """Everything the entries keep: in memory and in spill files."""
        with self._lock:
            return self._bytes + self._disk_nbytes()

    def __len__(self) -> int:
        return len(self._data)


def _spilled(spills: tuple[Spilled, ...]) -> int:
    return sum(int(s.spilled_nbytes()) for s in spills)
