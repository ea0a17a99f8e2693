"""Work a user's first actions would otherwise do on the GUI thread, done ahead on a thread.

Opening the first graph imports jsonschema and builds the graph-file validator (60-90 ms of
GUI-thread time in a fresh process, most of a graph's opening). A background thread does it
while the window appears, so the first File → Open costs what every later one does. If the user
is quicker than the warm-up, the GUI thread only waits for the import already under way.
"""

from __future__ import annotations

import threading

_started = threading.Event()


def _warm() -> None:
    from fathom.engine.graph import Graph
    from fathom.engine.graphfile import check_schema, to_document

    check_schema(to_document(Graph()))  # imports jsonschema and builds the cached validator


def warm_up() -> None:
    """Start the warm-up once per process (later calls do nothing)."""
    if _started.is_set():
        return
    _started.set()
    threading.Thread(target=_warm, name="studio-warm-up", daemon=True).start()
