"""The Live panel runs the open graph live from the studio: refused without a live source; on
the live depth point-cloud example (tiny depth model) it shows the session's numbers, the
window node's frames in a window of its own, the point cloud updating in the 3D view, takes a
parameter edit on a later tick, lists each node's errors, and stops; all the while the GUI
thread never stalls over 50 ms (the studio tests' watchdog, ``tests/gui_watchdog.py``)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path
from typing import Any

import pytest
from gui_watchdog import Watchdog, pump
from machine_load import OtherLoad
from object_models import build_tiny_depth
from PySide6.QtCore import Qt

from fathom.app.commands import SetParam
from fathom.engine.resources import example_graphs

pytestmark = pytest.mark.gui
LIMIT_MS = 50.0
EXAMPLE = "live_depth_pointcloud"


@pytest.fixture(scope="module")
def tiny_depth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_depth(tmp_path_factory.mktemp("live_depth"))


def open_live_example(window: Any, model: str) -> None:
    window.files.open_example(example_graphs()[EXAMPLE])
    window.doc.undo_stack.push(SetParam(window.doc, "depth", "model", model))


def mesh_panel(window: Any) -> Any:
    return window.preview.panel("mesh")


def test_starting_without_a_live_source_is_refused(qtbot: Any, window: Any, add: Any) -> None:
    assert not window.live.start()  # an empty graph
    add("image.constant")
    window.activateWindow()
    qtbot.keyClick(window.view, Qt.Key.Key_F6)  # Run → Start Live Session's shortcut
    state = window.live_panel.text()["state"]
    assert "no live source" in state and "Live File" in state and "Live Camera" in state
    assert window.live.session is None and window.live.phase == "stopped"
    assert window.menus.live_session_action.text().startswith("Start")


def test_a_live_session_runs_in_the_studio_and_never_stalls_it(
    qtbot: Any, window: Any, tiny_depth: Path
) -> None:
    live, panel = window.live, window.live_panel
    open_live_example(window, str(tiny_depth))
    with Watchdog() as dog, OtherLoad() as others:
        window.menus.live_session_action.trigger()  # the Run menu's Start (F6)
        assert live.phase == "starting"
        assert pump(60, lambda: live.phase == "running" and mesh_panel(window).live_frames >= 3)
        assert window.menus.live_session_action.text().startswith("Stop")
        # The display node's preview follows the session: the 3D view, frame after frame.
        assert window.previews.node == "view3d" and window.preview.kind == "mesh"
        info = mesh_panel(window).info.text()
        assert info.startswith("live · point cloud: 12,288 points"), info  # 256×192 / 2²
        assert pump(20, lambda: live.windows and live.windows["depth_window"].frames_shown >= 3)
        assert pump(10, lambda: panel.text()["frames"].startswith("in ") and live.stats_seen)
        rows = panel.text()
        assert "dropped" in rows["frames"] and rows["latency"].startswith("median ")
        assert rows["source"].endswith("fps") and rows["state"] == "Running"
        # An edit while it runs reaches the session and shows on a later tick.
        window.doc.undo_stack.push(SetParam(window.doc, "points", "step", 4))
        assert pump(20, lambda: "3,072 points" in mesh_panel(window).info.text())
        assert live.updates_sent >= 1
        # The window: closed, it stays closed; Show Windows brings it back; full screen, Esc.
        win = live.windows["depth_window"]
        win.close()
        pump(0.3)
        closed_at = win.frames_shown
        pump(0.5)
        assert win.frames_shown == closed_at and not win.isVisible()
        panel.windows_button.click()
        assert pump(10, lambda: win.isVisible() and win.frames_shown > closed_at)
        win.full_screen()
        assert pump(5, win.isFullScreen)
        qtbot.keyClick(win, Qt.Key.Key_Escape)
        assert pump(5, lambda: not win.isFullScreen())
        window.menus.live_session_action.trigger()  # Stop
        assert live.phase == "stopping"
        assert pump(30, lambda: live.phase == "stopped")
    assert panel.text()["state"].startswith("Stopped: ")
    assert window.menus.live_session_action.text().startswith("Start")
    assert live.frames.pending() <= 1 and live.values.pending() <= 1  # never a backlog
    wall, cpu = dog.longest_ms
    load = f"other processes busy {others.cores:.1f} cores, load {os.getloadavg()[0]:.1f}"
    print(f"live session GUI stall: worst wall {wall} ms, GUI-thread cpu {cpu} ms, {load}")
    assert cpu < LIMIT_MS, (wall, cpu, load)
    if others.quiet:
        assert wall < LIMIT_MS, (wall, cpu, load)


def test_start_problems_and_each_nodes_errors_are_listed(
    window: Any, tmp_path: Path, tiny_depth: Path
) -> None:
    """A model that is not there stops the start with the planner's message naming the node;
    a node that fails on every tick is listed with its message, and the session goes on."""
    live, panel = window.live, window.live_panel
    open_live_example(window, str(tmp_path / "no-such-model"))
    assert live.start()
    assert pump(30, lambda: live.phase == "stopped")
    assert panel.text()["state"].startswith("Could not start: ")
    row = panel.errors.item(0).text()
    assert row.startswith("Could not start: ") and "node 'depth', port 'model'" in row
    window.doc.undo_stack.push(SetParam(window.doc, "depth", "model", str(tiny_depth)))
    window.doc.undo_stack.push(SetParam(window.doc, "rgbd", "index", 5))
    window.doc.undo_stack.push(SetParam(window.doc, "depth_window", "fullscreen", True))
    window.menus.live_action.trigger()  # Live mode on: the session turns it off
    assert window.session.live
    assert live.start()
    assert pump(60, lambda: panel.errors.count() >= 1 and "rgbd" in live.errors)
    rows = [panel.errors.item(i).text() for i in range(panel.errors.count())]
    title = window.doc.title("rgbd")
    assert any(r.startswith(f"{title}: ") and "frame 5 is outside" in r for r in rows), rows
    assert live.phase == "running"
    assert not window.session.live and not window.menus.live_action.isChecked()
    # The window node asks for full screen on screen 0: the studio's own screen.
    assert pump(20, lambda: "depth_window" in live.windows)
    win = live.windows["depth_window"]
    assert pump(5, win.isFullScreen) and win.screen() is live.screen_for(0) is window.screen()
    # Clicking the row brings the node into view, selected.
    row = next(i for i in range(panel.errors.count()) if "frame 5" in panel.errors.item(i).text())
    panel.errors.itemClicked.emit(panel.errors.item(row))
    assert window.scene.selected_node_ids() == ["rgbd"]
    live.stop()
    assert pump(30, lambda: live.phase == "stopped")
    assert "rgbd" in live.errors
    # Closing the window while a session runs stops it and closes its windows.
    assert live.start() and pump(30, lambda: live.phase == "running")
    session = live.session
    window.close()
    assert session is not None and not session.running and not live.windows
