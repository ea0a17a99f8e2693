"""Work a user's first actions would otherwise do on the GUI thread, done ahead on a thread.

Opening the first graph imports jsonschema and builds the graph-file validator (60-90 ms of
GUI-thread time in a fresh process, most of a graph's opening). The first run, 3D preview or
360° view imports torch and trimesh: on whichever thread does it, loading torch's libraries
holds the interpreter lock for up to ~200 ms, freezing the GUI thread although it does no work.

A background thread does all of it while the window appears, so these costs fall in start-up
and the first File → Open, run or viewer costs what every later one does. A user quicker than
the warm-up only waits for the import already under way, as without it.
"""

from __future__ import annotations

import atexit
import contextlib
import threading

from PySide6.QtCore import QCoreApplication

_started = threading.Event()
#: Set when the warm-up has finished (tests wait on it to measure the steady state).
done = threading.Event()


def import_libraries() -> None:
    """Import what rendering and meshing need (torch, trimesh): before a window shows, or on
    a background thread."""
    import torch  # noqa: F401 - imported for its one-off cost, not used here
    import trimesh  # noqa: F401


def _warm() -> None:
    try:
        # A missing library is reported by the feature that needs it, when it is used.
        with contextlib.suppress(ImportError):
            from fathom.engine.graph import Graph
            from fathom.engine.graphfile import check_schema, to_document

            check_schema(to_document(Graph()))  # imports jsonschema, builds the validator
            import_libraries()
    finally:
        done.set()


@atexit.register
def finish() -> None:
    """Let an import under way end before the interpreter tears down: a thread stopped inside
    a C extension's loading can abort the process at exit."""
    if _started.is_set():
        done.wait(30.0)


def warm_up() -> None:
    """Start the warm-up once per process (later calls do nothing)."""
    if _started.is_set():
        return
    _started.set()
    threading.Thread(target=_warm, name="studio-warm-up", daemon=True).start()
    app = QCoreApplication.instance()
    if app is not None:
        # Quitting in the first second: let torch's import end while the interpreter is
        # whole. The atexit wait alone runs too late: torch's own exit handlers, registered
        # during the import, run before it and its libraries' finalizers then fail noisily.
        app.aboutToQuit.connect(finish)
