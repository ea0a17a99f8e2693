"""Screenshot of the Live panel running, for the README.

Opens the live depth point-cloud example, points its depth model at ``--depth-model`` (a model
folder; the example's default, Depth Anything V2 Small, when it is in the models folder),
starts the live session as a user does (Run → Start Live Session), lets it run a few seconds
and saves the window: the Live panel's numbers, the 3D view following the point cloud, and
the live window beside it. Run it under a display (``xvfb-run -a``):

    xvfb-run -a python scripts/screenshot_live.py docs/screenshots --depth-model PATH
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from studio_shot import studio_window

from fathom.app.main import _wait


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="where live_panel.png goes")
    p.add_argument("--size", default="1600x1000")
    p.add_argument("--depth-model", default=None, help="depth model folder (default: the graph's)")
    p.add_argument("--seconds", type=float, default=6.0, help="how long it runs before the shot")
    return p.parse_args(argv)


def turn(view: object) -> None:
    """Orbit the 3D view a little off the camera's own viewpoint (either backend)."""
    orbit = getattr(view, "orbit", None)
    if orbit is not None and hasattr(orbit, "orbit"):  # the software view's orbit camera
        orbit.orbit(-35.0, 12.0)
        orbit.zoom(0.8)
        view.request_render(preview=False)  # type: ignore[attr-defined]
    else:  # pyqtgraph's GL view
        view.view.orbit(-35.0, 12.0)  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtGui import QPainter

    from fathom.app.commands import SetParam

    with studio_window(args.size, "live_depth_pointcloud") as (app, window):
        if args.depth_model:
            window.doc.undo_stack.push(SetParam(window.doc, "depth", "model", args.depth_model))
        # The Live panel beside the preview, where its numbers and the 3D view show together.
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, window.live_panel)
        window.splitDockWidget(window.preview, window.live_panel, Qt.Orientation.Vertical)
        window.resizeDocks([window.preview, window.live_panel], [560, 240], Qt.Orientation.Vertical)
        window.menus.live_session_action.trigger()
        live = window.live
        _wait(app, 120, until=lambda: live.phase == "running" and bool(live.windows))
        _wait(app, args.seconds)
        if live.phase != "running" or not live.windows:
            print(f"the session is not running: {window.live_panel.text()}", file=sys.stderr)  # noqa: T201
            return 1
        window.view.fit_all()
        window.resizeDocks([window.log], [110], Qt.Orientation.Vertical)
        turn(window.preview.panel("mesh").view)  # the cloud seen from the side: it is 3D
        _wait(app, 1.0)
        shot = window.grab().toImage()
        # The live window (a window of its own) drawn into the corner of the canvas.
        frame = next(iter(live.windows.values())).grab().toImage()
        frame = frame.scaledToWidth(360, Qt.TransformationMode.SmoothTransformation)
        painter = QPainter(shot)
        painter.drawImage(QPoint(24, shot.height() - frame.height() - 190), frame)
        painter.end()
        window.menus.live_session_action.trigger()
        _wait(app, 30, until=lambda: live.phase == "stopped")
        args.folder.mkdir(parents=True, exist_ok=True)
        ok = shot.save(str(args.folder / "live_panel.png"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
