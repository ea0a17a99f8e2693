"""A guard against PySide6 6.12's lost references to None, True and False (measured here).

On Python 3.11 this PySide6 build returns ``None`` from every void method, and a bool from
``Signal.emit``/``disconnect``, without owning a reference to it: each call takes one reference
away. A fresh process holds ~600 references to ``True`` and a few tens of thousands to ``None``,
so a few hundred progress signals, or a few frames of a 500-node canvas (each node's paint makes
dozens of void calls), abort the interpreter with "none_dealloc"/"bool_dealloc: deallocating".

Python 3.12 made these singletons immortal, which is why the bug is invisible there. The guard
does the same by hand: when a probe shows the leak, it adds a reserve of 2**50 references to
each of the three singletons (decades of leaking at millions of calls a second). Nothing else
changes; where the bug is absent the guard does nothing.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, QPointF, Signal

RESERVE = 2**50
_SINGLETONS = (None, True, False)


class _Probe(QObject):
    ping = Signal()


def _refs() -> tuple[int, int]:
    return sys.getrefcount(None), sys.getrefcount(True) + sys.getrefcount(False)


def leaks_references(calls: int = 64) -> bool:
    """Whether void calls lose a reference to None, or emits one to a bool (probed privately)."""
    probe, point = _Probe(), QPointF()
    none0, bools0 = _refs()
    for _ in range(calls):
        point.setX(1.0)
        probe.ping.emit()
    none1, bools1 = _refs()
    return none0 - none1 >= calls // 2 or bools0 - bools1 >= calls // 2


def _reserve(obj: object) -> None:
    # CPython's object header starts with its reference count (a Py_ssize_t).
    cell = ctypes.c_ssize_t.from_address(id(obj))
    cell.value += RESERVE


def install() -> bool:
    """Give None/True/False their reserve when this PySide6 leaks; True if it did."""
    if sys.version_info >= (3, 12) or hasattr(sys, "gettotalrefcount"):
        return False  # immortal singletons already, or a debug build's different header
    if sys.getrefcount(None) > RESERVE // 2:
        return True  # installed before
    if not leaks_references():
        return False
    for obj in _SINGLETONS:
        _reserve(obj)
    return True
