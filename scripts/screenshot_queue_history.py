"""Screenshots of the run queue, run history and gallery docks, for the README.

Opens the Depth Tools example, queues three runs that differ in one colour map (as a user does:
change a parameter, Queue Run, again), waits for them, and saves two pictures of the window:
the Queue and History docks, then the Gallery. Run it under a display (``xvfb-run -a``):

    xvfb-run -a python scripts/screenshot_queue_history.py docs/screenshots
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from fathom.app.main import _app, _wait

NODE, PARAM = "disparity_preview", "colormap"
COLORMAPS = ("inferno", "viridis", "turbo")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="where queue_history.png and gallery.png go")
    p.add_argument("--size", default="1600x1000")
    args = p.parse_args(argv)
    app = _app()
    from PySide6.QtCore import Qt

    from fathom.app.commands import SetParam
    from fathom.app.files import examples
    from fathom.app.main_window import MainWindow
    from fathom.app.settings import Settings
    from fathom.app.theme import apply_theme

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(Path(tmp) / "settings.ini")
        settings.recovery_dir = str(Path(tmp) / "recovery")
        settings.output_dir = str(Path(tmp) / "out")
        apply_theme(app, settings.theme)
        window = MainWindow(settings=settings)
        w, h = (int(v) for v in args.size.lower().split("x"))
        window.resize(w, h)
        window.show()
        graph = next(g for g in examples() if g.stem == "depth_tools")
        window.files.open_example(graph)
        docks = window.run_docks
        for name in COLORMAPS:
            window.doc.undo_stack.push(SetParam(window.doc, NODE, PARAM, name))
            docks.queue_run()
        _wait(app, 900, until=lambda: all(i.record for i in docks.queue.items))
        if not all(i.status == "done" for i in docks.queue.items):
            print([(i.label, i.status, i.summary) for i in docks.queue.items], file=sys.stderr)  # noqa: T201
            return 1
        _wait(app, 1.0)
        # The queue beside the preview, the history under the editor, tall enough to read.
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, docks.queue_dock)
        window.splitDockWidget(window.preview, docks.queue_dock, Qt.Orientation.Vertical)
        docks.history.raise_()
        window.resizeDocks([docks.history], [360], Qt.Orientation.Vertical)
        window.resizeDocks([window.preview, docks.queue_dock], [480, 260], Qt.Orientation.Vertical)
        docks.history.runs.setCurrentRow(1)
        window.scene.select_nodes([NODE])
        _wait(app, 3.0, until=lambda: docks.history.thumbnails.jobs.idle)
        window.view.fit_all()
        _wait(app, 0.5)
        args.folder.mkdir(parents=True, exist_ok=True)
        ok = window.grab().save(str(args.folder / "queue_history.png"))
        docks.gallery.raise_()
        _wait(app, 3.0, until=lambda: docks.gallery.thumbnails.jobs.idle)
        _wait(app, 0.5)
        ok = window.grab().save(str(args.folder / "gallery.png")) and ok
        window.doc.mark_saved()
        window.close()
        _wait(app, 0.1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
