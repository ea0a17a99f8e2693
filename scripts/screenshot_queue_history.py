"""Screenshots of the run queue, run history and gallery docks, for the README.

Opens the Depth Tools example, queues three runs that differ in one colour map (as a user does:
change a parameter, Queue Run, again), waits for them, and saves two pictures of the window:
the Queue and History docks, then the Gallery. Run it under a display (``xvfb-run -a``):

    xvfb-run -a python scripts/screenshot_queue_history.py docs/screenshots
"""

from __future__ import annotations

import sys

from studio_shot import parse_args, studio_window

from fathom.app.main import _wait

NODE, PARAM = "disparity_preview", "colormap"
COLORMAPS = ("inferno", "viridis", "turbo")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, "where queue_history.png and gallery.png go", argv)
    from PySide6.QtCore import Qt

    from fathom.app.commands import SetParam

    with studio_window(args.size, "depth_tools") as (app, window):
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
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
