"""Work a user's first actions would otherwise do on the GUI thread, done ahead on a thread.

Opening the first graph imports jsonschema and builds the graph-file validator (60-90 ms of
GUI-thread time in a fresh process, most of a graph's opening). The first run, 3D preview or
360° view imports torch and trimesh, and the first model run transformers and diffusers: on
whichever thread does it, loading their libraries holds the interpreter lock for up to ~200 ms
at a time, freezing the GUI thread although it does no work.

A background thread does all of it while the window appears, so these costs fall in start-up
and the first File → Open, run or viewer costs what every later one does. A user quicker than
the warm-up only waits for the import already under way, as without it.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import threading
from collections.abc import Iterator

from PySide6.QtCore import QCoreApplication

_started = threading.Event()
#: Set when the warm-up has finished (tests wait on it to measure the steady state).
done = threading.Event()


def import_libraries() -> None:
    """Import what rendering and meshing need (torch, trimesh): before a window shows, or on
    a background thread."""
    import cv2  # noqa: F401 - imported for its one-off cost, not used here
    import torch  # noqa: F401
    import trimesh  # noqa: F401
    from PIL import Image

    # The modules the 360° viewer's loader reads its files with (cv2, PIL).
    for name in ("codecs", "depthmath"):
        importlib.import_module(f"fathom.engine.imaging.{name}")
    # PIL loads its format plugins on the first open; cv2's initialisation holds the
    # interpreter lock ~50 ms. On a worker that read the 360° viewer's files they stalled the
    # GUI thread while it opened the window.
    Image.init()


def import_model_libraries() -> None:
    """Import what the first model run needs (transformers, diffusers and their model
    registries). A run's worker thread importing them held the interpreter lock long enough to
    freeze the GUI thread for 130-340 ms on a session's first depth, segmentation, edit or
    image-to-video run."""
    import diffusers
    import transformers

    for lib, names in (
        (transformers, ("AutoModelForDepthEstimation", "AutoModelForSemanticSegmentation")),
        (diffusers, ("DiffusionPipeline", "UNet2DConditionModel", "AutoencoderKL")),
    ):
        for name in names:
            getattr(lib, name)  # the lazy modules load on first access


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No garbage collection while the block imports, and everything it leaves frozen out of
    later ones. Importing the model libraries creates about half a million objects; a full
    collection over them holds the interpreter lock for ~270 ms (a GUI freeze, during the import
    and at every later full collection). Frozen, a full collection skips them (~0 ms)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def _warm() -> None:
    try:
        # A missing library is reported by the feature that needs it, when it is used.
        with contextlib.suppress(ImportError):
            from fathom.engine.graph import Graph
            from fathom.engine.graphfile import check_schema, to_document

            check_schema(to_document(Graph()))  # imports jsonschema, builds the validator
            import_libraries()
        # Anything that fails here fails again, with its message, where a run needs it.
        with contextlib.suppress(Exception), collection_paused():
            import_model_libraries()
    finally:
        done.set()


@atexit.register
def finish() -> None:
    """Let an import under way end before the interpreter tears down: a thread stopped inside
    a C extension's loading can abort the process at exit."""
    if _started.is_set():
        done.wait(30.0)


def wait_until_warm(timeout: float = 120.0) -> None:
    """Hold a worker thread (a run, a live session) until the warm-up's imports are over. Two
    threads importing the same lazy library modules at once fail: diffusers' lazy module can
    hand one of them a half-made module ("cannot import name 'StableVideoDiffusionPipeline'").
    Never call it on the GUI thread; without a warm-up it returns at once."""
    if _started.is_set():
        done.wait(timeout)


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
