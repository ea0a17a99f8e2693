"""Keep freed memory in the process instead of handing it back to the system at once.

glibc's allocator serves a large request (over ``M_MMAP_THRESHOLD``, which starts at 128 KB
and adapts to at most 32 MB) with a fresh ``mmap`` and returns it on free, and it trims the
heap once more than ``M_TRIM_THRESHOLD`` lies free at its top. A network on the CPU allocates
and frees activations of tens to hundreds of megabytes per frame, so every frame pays again
for zeroing fresh pages: measured here, SegFormer-B0's shape at 512² took 72,000 page faults
and a quarter of its time per frame for it, Depth Anything V2 Small's 7 %, a 512² Stable
Diffusion image 233,000 faults and 6 % (BENCHMARKS.md, "Memory allocator").

``keep_freed_memory`` raises both thresholds to ``FATHOM_MALLOC_KEEP_MB`` (default 256): up to
that size a request comes from the heap and a freed block is reused by the next frame, and up
to that much free memory stays at the heap's top before it is trimmed. It also makes every
thread allocate from the one main arena (``M_ARENA_MAX`` 1): a thread's own arena grows in
64 MB heaps, so a larger block there is mmapped afresh whatever the thresholds say, and the
studio and live sessions run nodes on threads (SegFormer's frame on a thread faulted 38,000
pages with the thresholds alone, 1,000 with one arena). Python threads take turns on the
interpreter lock anyway, so they rarely wait for the allocator's. Peak memory is unchanged;
memory freed after the peak comes back to the system more slowly.
The entry points call it (the CLI, the studio, batch and cluster workers), not an import:
a program that embeds the engine keeps its own allocator settings. Set 0 to keep glibc's.
Elsewhere (macOS, Windows, musl) it does nothing: their allocators are not glibc's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

from fathom.engine.envvars import env_number

KEEP_ENV = "FATHOM_MALLOC_KEEP_MB"
DEFAULT_KEEP_MB = 256
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_applied: int | None = None


def keep_freed_memory() -> int:
    """Apply the thresholds once per process; the bytes kept (0: glibc's defaults are left)."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = 0
    keep = int(env_number(KEEP_ENV, DEFAULT_KEEP_MB, "megabytes of freed memory kept") * 2**20)
    if keep <= 0 or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return 0
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, keep) and libc.mallopt(_M_TRIM_THRESHOLD, keep)
        ok = ok and libc.mallopt(_M_ARENA_MAX, 1)
    except (OSError, AttributeError):
        return 0
    _applied = keep if ok else 0
    return _applied
