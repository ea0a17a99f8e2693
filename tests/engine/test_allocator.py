"""keep_freed_memory: with it, a large buffer freed and allocated again every "frame" reuses
the same memory (no fresh pages to fault in), on the main thread and on a worker thread; with
FATHOM_MALLOC_KEEP_MB=0 glibc's defaults stay, and the same loop faults every page in again.
Each case runs in a fresh process, since the setting is the whole process's."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

LOOP = """
import resource, threading, numpy as np
from fathom.engine.allocator import keep_freed_memory
kept = keep_freed_memory()
faults = []

def frames():
    for i in range(6):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        a = np.ones(96 * 2**20 // 8)  # 96 MB: glibc would mmap it
        del a
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)

frames()  # the main thread
worker = threading.Thread(target=frames)  # a node run on a thread, as in the studio
worker.start()
worker.join()
print(kept, max(min(faults[2:6]), min(faults[8:])))
"""


# One "frame" of a network at 512²: ten 30 MB activations (each below the mmap threshold, so
# from the heap), all freed at the end: 300 MB free at the heap's top at once.
WIDE = """
import resource, numpy as np
from fathom.engine.allocator import keep_freed_memory
kept = keep_freed_memory()
faults = []
for i in range(5):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    acts = [np.ones(30 * 2**20 // 8) for _ in range(10)]
    del acts
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
print(kept, min(faults[2:]))
"""


def _run(keep: str | None, loop: str = LOOP) -> tuple[int, int]:
    env = {k: v for k, v in os.environ.items() if k != "FATHOM_MALLOC_KEEP_MB"}
    if keep is not None:
        env["FATHOM_MALLOC_KEEP_MB"] = keep
    out = subprocess.run(
        [sys.executable, "-c", loop], env=env, capture_output=True, text=True, check=True
    )
    kept, faults = out.stdout.split()
    return int(kept), int(faults)


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_freed_memory_is_reused_instead_of_faulted_in_again() -> None:
    kept, faults = _run(None)
    assert kept == 1024 * 2**20
    assert faults < 10  # none of the 96 MB is touched fresh again
    kept, faults = _run("0")
    assert kept == 0
    # glibc's own thresholds: a fresh mmap every time, so at least one fault per page (per
    # 2 MB page where the kernel backs it with huge pages; 4 KB pages: 24,576 faults).
    assert faults >= 45
    kept, _ = _run("lots")  # refused with a warning: the default
    assert kept == 1024 * 2**20
    # More than a C int holds is capped, not wrapped round (4096 MB used to become 0,
    # "map everything afresh", the opposite of what was asked).
    kept, faults = _run("4096")
    assert kept == 2047 * 2**20 and faults < 10


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_a_frame_freeing_more_than_256_mb_at_once_is_not_trimmed_and_faulted_again() -> None:
    kept, faults = _run(None, WIDE)
    assert kept == 1024 * 2**20 and faults < 10
    # Keeping only 256 MB (the first default) trims the 300 MB on every frame: faulted again.
    kept, faults = _run("256", WIDE)
    assert kept == 256 * 2**20 and faults >= 140  # 300 MB in 2 MB huge pages at the least
