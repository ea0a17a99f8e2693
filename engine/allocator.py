"""Keep freed memory in the process instead of handing it back to the system at once.

glibc's allocator serves a large request (over ``M_MMAP_THRESHOLD``, which starts at 128 KB
and adapts to at most 32 MB) with a fresh ``mmap`` and returns it on free, and it trims the
heap once more than ``M_TRIM_THRESHOLD`` lies free at its top. A network on the CPU allocates
and frees activations of tens to hundreds of megabytes per frame, so every frame pays again
for zeroing fresh pages: measured here, SegFormer-B0's shape at 512² took 72,000 page faults
and a quarter of its time per frame for it, Depth Anything V2 Small's 10 %, a 512² Stable
Diffusion image 233,000 faults and 6 % (BENCHMARKS.md, "Memory allocator").

``keep_freed_memory`` lets up to ``FATHOM_MALLOC_KEEP_MB`` (default 1024) of free memory stay at
the heap's top before it is trimmed, and serves requests up to 256 MB (or that, if less) from
the heap, so a freed block is reused by the next frame. The trim threshold is the larger one
because work interleaves: a lazy video's frames are read between other nodes' work, and one
frame of SegFormer-B0's shape at 512² frees about 290 MB at once; with 256 MB kept that was
trimmed and faulted in again on every frame when rows were read in turn (32 frames: 16.2 s
against 12.9 s with 1024 kept, and 14.4 s with glibc's own settings). It also makes every
thread allocate from the one main arena (``M_ARENA_MAX`` 1): a thread's own arena grows in
64 MB heaps, so a larger block there is mmapped afresh whatever the thresholds say, and the
studio and live sessions run nodes on threads (SegFormer's frame on a thread faulted 38,000
pages with the thresholds alone, 1,000 with one arena). Python threads take turns on the
interpreter lock anyway, so they rarely wait for the allocator's (decoding threads do
allocate without it: a 1080p decode → depth → encode run took 19.4 s against glibc's 19.7 s).
Peak memory is unchanged. Memory freed after a peak comes back to the system more slowly:
blocks of 256 MB and more, and free memory at the heap's top beyond 1 GB, go back at once;
free blocks below a live one stay for the next allocation. ``malloc_trim`` could return them,
but it holds the one arena's lock for ~56 ms per 2 GB of free blocks, which the GUI thread
would wait for, so nothing calls it.

The entry points call it (the CLI, the studio, batch and cluster workers), not an import:
a program that embeds the engine keeps its own allocator settings. Set 0 to keep glibc's.
Elsewhere (macOS, Windows, musl) it does nothing: their allocators are not glibc's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform
from typing import Any

from fathom.engine.envvars import env_number

KEEP_ENV = "FATHOM_MALLOC_KEEP_MB"
DEFAULT_KEEP_MB = 1024
#: Requests up to this size come from the heap (no more than the memory kept): larger ones are
#: mapped afresh and returned on free, as glibc does.
MMAP_CAP_MB = 256
#: mallopt takes a C int: the most a threshold can say (a larger value would wrap around).
MAX_KEEP_MB = 2047
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_applied: int | None = None
_libc: Any = None
log = logging.getLogger("fathom.allocator")


def _glibc() -> Any:
    """glibc with ``mallopt`` typed (a C int: an untyped large value would wrap), or None."""
    global _libc
    if _libc is None:
        if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
            return None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            libc.mallopt.restype = ctypes.c_int
        except (OSError, AttributeError):
            return None
        _libc = libc
    return _libc


def keep_freed_memory() -> int:
    """Apply the settings once per process; the bytes kept (0: glibc's defaults are left).
    A setting this glibc refuses is said in a warning; the others still apply."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = 0
    mb = env_number(KEEP_ENV, DEFAULT_KEEP_MB, "megabytes of freed memory kept")
    if mb > MAX_KEEP_MB:
        log.warning("%s=%g is more than mallopt can take; using %d", KEEP_ENV, mb, MAX_KEEP_MB)
        mb = MAX_KEEP_MB
    keep = int(mb * 2**20)
    libc = _glibc()
    if keep <= 0 or libc is None:
        return 0
    settings = (
        ("M_MMAP_THRESHOLD", _M_MMAP_THRESHOLD, min(keep, MMAP_CAP_MB * 2**20)),
        ("M_TRIM_THRESHOLD", _M_TRIM_THRESHOLD, keep),
        ("M_ARENA_MAX", _M_ARENA_MAX, 1),
    )
    refused = [name for name, param, value in settings if not libc.mallopt(param, value)]
    if refused:
        log.warning(
            "this C library refused mallopt %s; CPU work may fault fresh pages per "
            "frame (set %s=0 to silence)",
            ", ".join(refused),
            KEEP_ENV,
        )
    _applied = 0 if "M_MMAP_THRESHOLD" in refused else keep
    return _applied
