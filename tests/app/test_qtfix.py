"""The PySide6 reference guard: unbounded void calls and signal emits no longer abort Python."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Two hundred thousand void calls and emits drain None/True far below zero when unguarded.
HAMMER = textwrap.dedent("""
    import sys, threading
    import fathom.app
    from PySide6.QtCore import QObject, QPointF, Signal

    class E(QObject):
        value = Signal(object)

    e = E()
    e.value.connect(lambda v: None)
    p = QPointF()
    for i in range(100_000):
        p.setX(float(i))
        e.value.emit(i)
    t = threading.Thread(target=lambda: [e.value.emit(i) for i in range(50_000)])
    t.start(); t.join()
    print("survived", sys.getrefcount(None) > 2**40)
""")


def test_many_void_calls_and_emits_survive() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", HAMMER], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    guarded = sys.version_info < (3, 12)
    assert proc.stdout.strip() == f"survived {guarded}"
