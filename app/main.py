"""The ``fathom-studio`` entry point: the desktop app, a self-test, and window screenshots.

``--self-test`` opens the main window offscreen, loads an example graph, closes and exits 0:
a packaged build can prove it starts without a display. ``--screenshot OUT --open GRAPH``
saves a PNG of the window (used by the screenshot test under Xvfb and for the README);
``--select NODE --pick PARAM`` shows that node's model picker open in it.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

APP_NAME = "Fathom Studio"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fathom-studio", description="Fathom Studio desktop app.")
    p.add_argument("graph", nargs="?", type=Path, help="graph file (or Fathom PNG) to open")
    p.add_argument("--open", dest="open_path", type=Path, help="same as GRAPH")
    p.add_argument(
        "--self-test",
        action="store_true",
        help="open the window offscreen with an example graph, close, exit 0",
    )
    p.add_argument(
        "--screenshot", type=Path, metavar="OUT.png", help="save a PNG of the main window and exit"
    )
    p.add_argument("--run", action="store_true", help="with --screenshot: run the graph first")
    p.add_argument("--select", metavar="NODE", help="with --screenshot: select this node")
    p.add_argument(
        "--pick",
        metavar="PARAM",
        help="with --screenshot and --select: open the model picker of this parameter",
    )
    p.add_argument(
        "--find",
        metavar="TEXT",
        help="with --screenshot: Find Node (Ctrl+F) for TEXT, at 100%% zoom on the first match",
    )
    p.add_argument("--size", default="1600x1000", help="window size for --screenshot")
    p.add_argument("--settings", type=Path, help="use this ini file for settings")
    return p


def _app(offscreen: bool = False) -> QApplication:  # Qt is imported only once needed
    if offscreen and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName("Fathom")
    # Bind PyOpenGL to Qt's windowed GL now, before a node run can bind it to EGL for pyrender:
    # the 3D previews need the former; the engine then renders with torch in this process.
    from fathom.app.preview.gl_probe import gl_available

    gl_available()
    return app


def _wait(app, seconds: float, until=None) -> None:  # noqa: ANN001 - Qt types imported lazily
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        if until is not None and until():
            return
        time.sleep(0.01)


def self_test(settings_path: Path | None) -> int:
    """Open, load every example, close: exit 0 only if each loaded with nodes on the canvas."""
    import tempfile

    app = _app(offscreen=True)
    from fathom.app.files import examples
    from fathom.app.main_window import MainWindow
    from fathom.app.settings import Settings
    from fathom.app.theme import apply_theme

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(settings_path or Path(tmp) / "settings.ini")
        settings.recovery_dir = str(Path(tmp) / "recovery")
        apply_theme(app, settings.theme)
        window = MainWindow(settings=settings)
        window.show()
        ok = True
        for path in examples():
            loaded = window.files.open_example(path)
            _wait(app, 0.05)
            count = len(window.scene.nodes)
            ok = ok and loaded and count == len(window.doc.graph.nodes) > 0
            print(f"{path.name}: {'ok' if loaded else 'FAILED'} ({count} nodes)")  # noqa: T201
        window.close()
        _wait(app, 0.05)
    print("self-test", "passed" if ok else "FAILED")  # noqa: T201
    return 0 if ok else 1


def screenshot(args: argparse.Namespace) -> int:
    import tempfile

    app = _app()
    from fathom.app.main_window import MainWindow
    from fathom.app.settings import Settings
    from fathom.app.theme import apply_theme

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(args.settings or Path(tmp) / "settings.ini")
        settings.recovery_dir = str(Path(tmp) / "recovery")
        if not settings.output_dir:
            settings.output_dir = str(Path(tmp) / "out")
        apply_theme(app, settings.theme)
        window = MainWindow(settings=settings)
        w, h = (int(v) for v in args.size.lower().split("x"))
        window.resize(w, h)
        window.show()
        graph = args.open_path or args.graph
        if graph is not None and not window.files.open(graph, ask=False):
            print(f"could not open {graph}", file=sys.stderr)  # noqa: T201
            return 2
        _wait(app, 0.3)
        window.view.fit_to_open()  # the zoom a user sees the graph open at
        if args.run:
            window.runs.run()
            _wait(app, 600, until=lambda: not window.runner.running)
            _wait(app, 60, until=lambda: window.scene.bodies.thumbs.idle)
        if args.select:
            window.scene.select_nodes([args.select])
        _wait(app, 0.5)
        window.view.fit_to_open()
        if args.pick and not _open_picker(app, window, args.pick):
            return 2
        if args.find:
            _find(app, window, args.find)
        _wait(app, 0.2)
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        saved = window.grab().save(str(args.screenshot))
        window.doc.mark_saved()  # nothing to ask about on close
        window.close()
        _wait(app, 0.1)
    return 0 if saved else 1


def _find(app: QApplication, window: Any, text: str) -> None:
    """Type ``text`` into Find Node and jump to the first match at 100% zoom (in a graph
    bigger than the window, the minimap shows where that is)."""
    window.view.zoom_by(1.0 / window.view.zoom())
    window.find_node.open()
    window.find_node.field.setText(text)
    window.find_node.go(0)
    _wait(app, 0.4)  # the minimap reads the scene a moment after the view moved


def _open_picker(app: QApplication, window: Any, param: str) -> bool:
    """Open the selected node's picker for ``param`` once the models are listed, scrolled
    into view; False (after saying why) when that parameter has no picker."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QScrollArea

    widget = window.inspector.widgets.get(param)
    if widget is None or not hasattr(widget, "set_open"):
        print(f"the selected node has no model picker for {param!r}", file=sys.stderr)  # noqa: T201
        return False
    window.missing_models.ask = lambda missing: None  # the picture is of the picker
    window.models.ensure()
    _wait(app, 60, until=lambda: window.models.entries is not None and not window.models.loading)
    docks = [window.inspector_dock, window.preview]
    window.resizeDocks(docks, [560, 560], Qt.Orientation.Horizontal)
    window.resizeDocks(
        docks, [window.height() * 2 // 3, window.height() // 3], Qt.Orientation.Vertical
    )
    widget.set_open(True)
    _wait(app, 0.3)
    scroll = window.inspector.findChild(QScrollArea)
    if scroll is not None:  # the whole picker in view, its field at the top
        scroll.ensureWidgetVisible(widget.list, 0, 0)
        scroll.ensureWidgetVisible(widget, 0, 0)
    return True


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.self_test:
            return self_test(args.settings)
        if args.screenshot is not None:
            return screenshot(args)
        return studio(args)
    finally:
        from fathom.app import warmup

        warmup.finish()  # a start-up import still under way ends before Python tears down


def studio(args: argparse.Namespace) -> int:
    """The desktop studio until its window closes."""
    from fathom.engine.allocator import keep_freed_memory

    keep_freed_memory()  # frames' activations reuse freed memory: no page faults per frame
    app = _app()
    from fathom.app.main_window import MainWindow
    from fathom.app.settings import Settings
    from fathom.app.theme import apply_theme

    settings = Settings(args.settings)
    if args.settings is not None:  # the engine reads the models folder from the same file
        os.environ["FATHOM_SETTINGS"] = str(args.settings)
    apply_theme(app, settings.theme)
    window = MainWindow(settings=settings)
    window.show()
    # Everything built so far (Qt wrappers, imported modules) lives as long as the app: keep it
    # out of the collector's full passes, which otherwise pause the GUI thread for tens of ms.
    # Before any graph opens, so a closed graph's objects stay collectable.
    gc.collect()
    gc.freeze()
    graph = args.open_path or args.graph
    if graph is not None:
        window.files.open(graph, ask=False)
    else:
        window.files.offer_restore()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
