"""The run queue, run history and output gallery, driven as a user drives them: queue runs with
Ctrl+Shift+Enter between parameter changes, read them back from the History dock, re-open one
as the graph that made it, and see the outputs in the Gallery."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from videoclips import make_clip, read_index

from fathom.app.commands import SetParam
from fathom.app.main_window import MainWindow
from fathom.engine.graphfile import to_document
from fathom.engine.imaging.codecs import read_image
from fathom.engine.run_history import HISTORY_DIR, list_runs

COLORS = ([1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0])


def _queue_shortcut(qtbot: Any, window: Any) -> None:
    window.activateWindow()
    window.view.setFocus()
    QTest.keyClick(
        window.view,
        Qt.Key.Key_Return,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )


def _colour_graph(window: Any, add: Any, wire: Any) -> tuple[str, str]:
    const = add("image.constant", 0, 0, width=8, height=8, color=COLORS[0])
    save = add("image.save", 300, 0, path="queued.png")
    wire(const, "image", save, "image")
    return const, save


def _queue_three(qtbot: Any, window: Any, const: str) -> list[dict[str, Any]]:
    """Queue the graph three times, changing the colour between; the snapshots queued."""
    snapshots = []
    for color in COLORS:
        window.doc.undo_stack.push(SetParam(window.doc, const, "color", color))
        snapshots.append(to_document(window.doc.graph.copy(), window.registry))
        _queue_shortcut(qtbot, window)
    return snapshots


def test_three_queued_runs_run_in_order_with_their_own_parameters(
    qtbot: Any, window: Any, add: Any, wire: Any
) -> None:
    const, _ = _colour_graph(window, add, wire)
    queue = window.run_docks.queue
    snapshots = _queue_three(qtbot, window, const)
    assert len(queue.items) == 3
    qtbot.waitUntil(lambda: all(i.record is not None for i in queue.items), timeout=30_000)
    assert [i.status for i in queue.items] == ["done", "done", "done"]
    out = Path(window.settings.output_dir)
    entries = list(reversed(list_runs(out)))  # oldest first
    assert len(entries) == 3
    assert [e.folder for e in entries] == [i.record for i in queue.items]
    assert entries[0].started <= entries[1].started <= entries[2].started
    for entry, color, snap in zip(entries, COLORS, snapshots, strict=True):
        doc = entry.graph_document()
        assert doc["nodes"] == snap["nodes"]
        assert entry.status == "ok"
        (written,) = entry.outputs()
        assert written.parent.name == "files" and written.is_relative_to(entry.folder)
        pixel = read_image(written)[0, 0, :3]
        assert np.allclose(pixel, color[:3], atol=1 / 255), (written, pixel, color)
    # The save path is the same for all three: the file in out/ holds the last run's colour,
    # each record its own.
    assert np.allclose(read_image(out / "queued.png")[0, 0, :3], COLORS[2][:3], atol=1 / 255)
    # The History dock lists the three runs, newest first, with a report of each.
    history = window.run_docks.history
    qtbot.waitUntil(lambda: len(history.entries) == 3, timeout=10_000)
    assert history.runs.count() == 3
    assert "Run 3" in history.runs.item(0).text()
    history.runs.setCurrentRow(2)
    assert "Run 1" in history.report.toPlainText()
    assert f"{const}  image.constant  executed" in history.report.toPlainText()
    assert history.outputs.paths() == entries[0].outputs()


def test_pending_runs_can_be_removed_or_cancelled(
    qtbot: Any, window: Any, add: Any, wire: Any
) -> None:
    slow = add("test.slow", 0, 0, seconds=30.0, steps=3000)
    save = add("image.save", 300, 0, path="slow.png")
    wire(slow, "image", save, "image")
    docks = window.run_docks
    queue = docks.queue
    for _ in range(3):
        window.menus.queue_action.trigger()
    assert [i.status for i in queue.items] == ["running", "pending", "pending"]
    panel = docks.queue_dock
    panel.list.item(1).setSelected(True)
    assert panel.remove_button.isEnabled()
    panel.remove_button.click()
    assert [i.number for i in queue.items] == [1, 3]
    panel.list.clearSelection()
    panel.list.item(1).setSelected(True)
    panel.cancel_button.click()
    assert queue.items[1].status == "cancelled"
    panel.list.clearSelection()
    panel.list.item(0).setSelected(True)
    with qtbot.waitSignal(window.runner.finished, timeout=10_000):
        panel.cancel_button.click()
    assert queue.items[0].status == "cancelled"
    qtbot.wait(200)
    assert not window.runner.running  # the cancelled pending run never started
    assert "cancelled" in panel.list.item(1).text()


def test_open_as_graph_reopens_the_snapshot_unsaved(
    qtbot: Any, window: Any, add: Any, wire: Any
) -> None:
    const, _ = _colour_graph(window, add, wire)
    queue = window.run_docks.queue
    snapshots = _queue_three(qtbot, window, const)
    qtbot.waitUntil(lambda: all(i.record is not None for i in queue.items), timeout=30_000)
    history = window.run_docks.history
    qtbot.waitUntil(lambda: len(history.entries) == 3, timeout=10_000)
    history.runs.setCurrentRow(1)  # the second run (newest first)
    history.open_button.click()
    reopened = to_document(window.doc.graph, window.registry)
    assert reopened["nodes"] == snapshots[1]["nodes"]
    assert reopened["edges"] == snapshots[1]["edges"]
    assert window.doc.graph.nodes[const].params["color"] == COLORS[1]
    assert window.doc.path is None and window.doc.modified
    assert window.windowTitle().startswith("Untitled *")


def test_gallery_lists_the_outputs_newest_first_and_shows_one(
    qtbot: Any, window: Any, add: Any, wire: Any, run_and_wait: Any
) -> None:
    const, _ = _colour_graph(window, add, wire)
    queue = window.run_docks.queue
    _queue_three(qtbot, window, const)
    qtbot.waitUntil(lambda: all(i.record is not None for i in queue.items), timeout=30_000)
    gallery = window.run_docks.gallery
    qtbot.waitUntil(lambda: gallery.grid.count() == 3, timeout=10_000)
    expected = [i.record / "files" / "queued.png" for i in reversed(queue.items)]
    assert gallery.grid.paths() == expected
    # Thumbnails are made off the GUI thread and fill in.
    qtbot.waitUntil(
        lambda: all(not gallery.grid.item(i).icon().isNull() for i in range(3)), timeout=10_000
    )
    # A click shows that run's image in the preview dock.
    shown: list[Any] = []
    window.run_docks.opener.show_value = lambda value, title: shown.append(value)
    rect = gallery.grid.visualItemRect(gallery.grid.item(2))
    QTest.mouseClick(gallery.grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: bool(shown), timeout=10_000)
    assert np.allclose(shown[0].data[0, 0, :3], COLORS[0][:3], atol=1 / 255)
    # A double-click opens the file outside the studio.
    launched: list[Path] = []
    window.run_docks.opener.launch = lambda p: launched.append(p) or True
    QTest.mouseDClick(gallery.grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert launched == [expected[2]]
    # An F5 run is recorded too, and the gallery refreshes after it.
    window.doc.undo_stack.push(SetParam(window.doc, const, "color", [0.5, 0.5, 0.5, 1.0]))
    run_and_wait()
    qtbot.waitUntil(lambda: gallery.grid.count() == 4, timeout=10_000)
    assert len(list_runs(Path(window.settings.output_dir))) == 4


def test_history_survives_a_restart_and_skips_damaged_records(
    qtbot: Any, window: Any, add: Any, wire: Any, run_and_wait: Any
) -> None:
    _colour_graph(window, add, wire)
    run_and_wait()
    out = Path(window.settings.output_dir)
    qtbot.waitUntil(lambda: len(list_runs(out)) == 1, timeout=10_000)
    (out / HISTORY_DIR / "20000101-000000-000").mkdir()  # a record cut off before its report
    (out / HISTORY_DIR / "20000101-000001-000").mkdir()
    (out / HISTORY_DIR / "20000101-000001-000" / "report.json").write_text("{not json")
    (entry,) = list_runs(out)
    report = json.loads((entry.folder / "report.json").read_text())
    assert report["format"] == "fathom.run" and report["counts"]["executed"] == 2
    # A new session: the window closes, another opens on the same settings.
    registry, settings = window.registry, window.settings
    window.doc.mark_saved()
    window.close()
    other = MainWindow(registry=registry, settings=settings)
    qtbot.addWidget(other)
    try:
        qtbot.waitUntil(lambda: len(other.run_docks.history.entries) == 1, timeout=10_000)
        assert other.run_docks.history.entries[0].folder == entry.folder
        assert other.run_docks.history.runs.count() == 1
    finally:
        other.close()


def test_live_runs_are_not_recorded_and_queueing_turns_live_off(
    qtbot: Any, window: Any, add: Any, wire: Any
) -> None:
    _colour_graph(window, add, wire)
    out = Path(window.settings.output_dir)
    with qtbot.waitSignal(window.runner.finished, timeout=10_000) as blocker:
        window.menus.live_action.trigger()
    assert blocker.args[0].result.executed  # live mode ran the graph...
    qtbot.wait(100)
    assert list_runs(out) == []  # ...and did not add a record for it
    queue = window.run_docks.queue
    window.menus.queue_action.trigger()
    # A live re-run at the next edit would cancel the queued run: live mode goes off.
    assert not window.session.live and not window.menus.live_action.isChecked()
    qtbot.waitUntil(lambda: queue.items[0].record is not None, timeout=10_000)
    assert queue.items[0].status == "done"
    assert [e.folder for e in list_runs(out)] == [queue.items[0].record]


def test_a_failing_queued_run_is_marked_and_the_next_one_still_runs(
    qtbot: Any, window: Any, add: Any, wire: Any
) -> None:
    const, save = _colour_graph(window, add, wire)
    bad = add("test.fail", 150, 200)
    wire(const, "image", bad, "image")
    queue = window.run_docks.queue
    window.menus.queue_action.trigger()
    window.doc.undo_stack.push(SetParam(window.doc, const, "color", COLORS[1]))
    window.menus.queue_action.trigger()
    qtbot.waitUntil(lambda: all(i.record is not None for i in queue.items), timeout=20_000)
    assert [i.status for i in queue.items] == ["failed", "failed"]
    assert "1 failed" in queue.items[0].summary
    history = window.run_docks.history
    qtbot.waitUntil(lambda: len(history.entries) == 2, timeout=10_000)
    assert [e.status for e in history.entries] == ["failed", "failed"]
    text = history.report.toPlainText()
    assert f"{bad}  test.fail  failed" in text and "boom" in text
    # The rest of the graph ran: each run kept its own image.
    assert all(len(e.outputs()) == 1 for e in history.entries)


def test_each_queued_run_keeps_its_own_image_sequence(
    qtbot: Any, window: Any, add: Any, wire: Any, tmp_path: Path
) -> None:
    """A sequence save writes a folder that the next run replaces: each record links the
    frames its own run wrote, so older History entries do not show the newest run's frames."""
    clips = [make_clip(tmp_path / f"c{first}.mp4", frames=2, first=first) for first in (0, 300)]
    load = add("video.load", 0, 0, path=str(clips[0]))
    save = add("video.save", 300, 0, path="frames/%04d.png")
    wire(load, "video", save, "video")
    queue = window.run_docks.queue
    for clip in clips:
        window.doc.undo_stack.push(SetParam(window.doc, load, "path", str(clip)))
        _queue_shortcut(qtbot, window)
    qtbot.waitUntil(lambda: all(i.record is not None for i in queue.items), timeout=30_000)
    assert [i.status for i in queue.items] == ["done", "done"], [i.summary for i in queue.items]
    out = Path(window.settings.output_dir)
    for item, first in zip(queue.items, (0, 300), strict=True):
        (entry,) = [e for e in list_runs(out) if e.folder == item.record]
        (frames,) = entry.outputs()
        assert frames == item.record / "files" / "frames"
        shown = [read_index(read_image(f)) for f in sorted(frames.iterdir())]
        assert shown == [first, first + 1]
    # The live folder holds the newest run's frames: the same files as its record, linked.
    newest = queue.items[-1].record / "files" / "frames"
    for live in sorted((out / "frames").iterdir()):
        assert live.samefile(newest / live.name)


def test_a_queued_runs_summary_names_a_node_refused_before_it(
    qtbot: Any, window: Any, add: Any, wire: Any
) -> None:
    _colour_graph(window, add, wire)
    lonely = add("image.adjust", 0, 200)  # its required input is not connected
    wire(lonely, "image", add("image.save", 300, 200, path="blocked.png"), "image")
    window.menus.queue_action.trigger()
    queue = window.run_docks.queue
    qtbot.waitUntil(lambda: queue.items[0].record is not None, timeout=30_000)
    summary = queue.items[0].summary
    assert "2 executed" in summary
    assert f"1 blocked (refused before the run): 'Adjust Colors' ({lonely})" in summary
