"""Runs from the studio: cancel, a responsive GUI thread, node errors, live mode, previews."""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

from gui_watchdog import Watchdog
from machine_load import OtherLoad

from fathom.app import warmup
from fathom.app.commands import SetParam
from fathom.app.runner import PROGRESS_INTERVAL


def test_cancel_during_a_run_stops_soon_and_marks_nodes(
    qtbot: Any, window: Any, add: Any, wire: Any
) -> None:
    a = add("image.constant", 0, 0, width=8, height=8)
    slow = add("test.slow", 250, 0, seconds=60.0, steps=3000)
    save = add("image.save", 500, 0, path="late.png")
    wire(a, "image", slow, "image")
    wire(slow, "image", save, "image")
    assert window.runs.run()
    qtbot.waitUntil(lambda: window.scene.nodes[slow].status == "running", timeout=10_000)
    qtbot.waitUntil(lambda: (window.scene.nodes[slow].progress or 0) > 0, timeout=10_000)
    t0 = time.perf_counter()
    with qtbot.waitSignal(window.runner.finished, timeout=5_000) as blocker:
        window.runs.cancel()
    assert time.perf_counter() - t0 < 2.0
    outcome = blocker.args[0]
    assert outcome.cancelled
    assert outcome.result.records[slow].status == "cancelled"
    assert window.scene.nodes[slow].status == "cancelled"
    assert window.scene.nodes[save].status != "done"
    assert not (Path(window.settings.output_dir) / "late.png").exists()
    assert any("cancelled" in m for m in window.log.messages())
    # The window can run again straight away.
    window.doc.undo_stack.push(SetParam(window.doc, slow, "seconds", 0.0))
    with qtbot.waitSignal(window.runner.finished, timeout=10_000) as again:
        assert window.runs.run()
    assert again.args[0].result.ok


def test_gui_thread_never_blocked_over_50ms_during_a_run(
    qtbot: Any, window: Any, add: Any, wire: Any
) -> None:
    """A 2 ms timer on the GUI thread measures the longest gap between its ticks while a run
    does real image work, pure-Python work (the worst case: it holds the GIL), progress events
    and step previews that reach the preview dock.

    Two measures per gap: wall-clock, and the GUI thread's own CPU time. Work our code does on
    the GUI thread shows in both, every time. A machine loaded by other processes can delay any
    thread's wake-up now and then; that shows only in wall-clock and varies between attempts, so
    the wall-clock bound must hold in one of three attempts, the CPU bound in all of them. The
    run needs two cores (its GIL-holding worker and the GUI thread): the 50 ms bound holds on an
    attempt during which other processes kept under half a core busy; beside a busier process
    a wake-up can wait for a core, and the project's 100 ms bound applies
    (``tests/machine_load.py``)."""
    a = add("image.constant", 0, 0, width=1024, height=1024, color=[0.2, 0.5, 0.7, 1.0])
    busy = add("test.busy", 250, 0, seconds=0.6)
    slow = add("test.slow", 500, 0, seconds=0.4, steps=40)
    adj = add("image.adjust", 750, 0, gamma=1.8, saturation=0.6)
    save = add("image.save", 1000, 0, path="big.png")
    wire(a, "image", busy, "image")
    wire(busy, "image", slow, "image")
    wire(slow, "image", adj, "image")
    wire(adj, "image", save, "image")
    window.scene.select_nodes([slow])  # its step previews reach the preview dock
    window.executor.cache.clear()
    # The steady state: in a fresh process the first window starts the studio's warm-up, whose
    # imports on the other core slow the GUI thread's own work too (its CPU time rose from
    # ~20 to ~50 ms in a gap); tests/app/test_warmup.py measures the warm-up itself.
    warmup.done.wait(120.0)
    attempts: list[tuple[float, float, float]] = []  # (wall ms, cpu ms, its wall bound)
    # A full collection over every object the earlier tests in this worker left behind can
    # take 50+ ms on the GUI thread; those objects are not the studio's, so park them.
    gc.collect()
    gc.freeze()
    try:
        _measure(qtbot, window, attempts)
    finally:
        gc.unfreeze()
    met = [w < limit for w, _, limit in attempts]
    assert any(met), f"GUI thread blocked (wall ms, cpu ms, bound): {attempts}"


def _measure(qtbot: Any, window: Any, attempts: list[tuple[float, float, float]]) -> None:
    for _ in range(3):
        with OtherLoad() as others:
            wall, cpu = measure_gaps(qtbot, window)
        limit = 50.0 if others.cores < 0.5 else 100.0
        attempts.append((round(wall * 1000, 1), round(cpu * 1000, 1), limit))
        # Showing the 1024² result in the preview costs ~20-30 ms of GUI time, by design the
        # most any handler does (previews are strided down to the quality setting's size).
        assert cpu < 0.040, f"GUI thread busy for {cpu * 1000:.1f} ms in one gap: {attempts}"
        if wall * 1000 < limit:
            break
        window.executor.cache.clear()


def measure_gaps(qtbot: Any, window: Any) -> tuple[float, float]:
    """(longest wall-clock gap, longest GUI-thread CPU time in a gap) during one run."""
    with Watchdog() as dog, qtbot.waitSignal(window.runner.finished, timeout=30_000) as blocker:
        assert window.runs.run()
    assert blocker.args[0].result.ok
    gaps = dog.gaps[1:]
    assert len(gaps) > 100
    return max(g[0] for g in gaps), max(g[1] for g in gaps)


def test_a_failing_node_is_shown_and_the_rest_keeps_its_outputs(
    qtbot: Any, window: Any, add: Any, wire: Any, run_and_wait: Any
) -> None:
    a = add("image.constant", 0, 0, width=8, height=8)
    bad = add("test.fail", 250, 0)
    after = add("image.save", 500, 0, path="never.png")
    ok = add("image.save", 250, 200, path="fine.png")
    wire(a, "image", bad, "image")
    wire(bad, "image", after, "image")
    wire(a, "image", ok, "image")
    outcome = run_and_wait()
    assert outcome.result.failed == [bad]
    item = window.scene.nodes[bad]
    assert item.status == "failed" and "boom" in item.message and "boom" in item.toolTip()
    assert window.scene.nodes[after].status == "skipped"
    assert window.scene.nodes[ok].status == "done"
    assert (Path(window.settings.output_dir) / "fine.png").exists()
    errors = window.log.messages("error")
    assert any("boom" in m and f"[{bad}]" in m for m in errors)
    assert window.session.outputs[a]["image"].data.shape == (8, 8, 3)
    # Clicking the log line selects the failing node.
    window.log.node_clicked.emit(bad)
    assert window.scene.selected_node_ids() == [bad]


def test_an_invalid_node_blocks_only_what_needs_it(
    window: Any, add: Any, wire: Any, run_and_wait: Any
) -> None:
    a = add("image.constant", 0, 0, width=8, height=8)
    lonely = add("image.adjust", 250, 200)  # its required input is not connected
    add_save = add("image.save", 500, 200, path="blocked.png")
    wire(lonely, "image", add_save, "image")
    ok = add("image.save", 250, 0, path="fine.png")
    wire(a, "image", ok, "image")
    outcome = run_and_wait()
    assert outcome.result is not None and ok in outcome.result.executed
    assert any(p.node == lonely and "not connected" in p.message for p in outcome.problems)
    assert window.scene.nodes[lonely].status == "failed"
    assert "not connected" in window.scene.nodes[lonely].message
    assert (Path(window.settings.output_dir) / "fine.png").exists()
    assert not (Path(window.settings.output_dir) / "blocked.png").exists()


def test_live_mode_reruns_only_what_a_change_affects(
    qtbot: Any, window: Any, add: Any, wire: Any
) -> None:
    a = add("image.constant", 0, 0, width=16, height=16)
    inv = add("image.invert", 250, 0)
    adj = add("image.adjust", 500, 0)
    wire(a, "image", inv, "image")
    wire(inv, "image", adj, "image")
    with qtbot.waitSignal(window.runner.finished, timeout=10_000) as first:
        window.runs.set_live(True)
    assert set(first.args[0].result.executed) == {a, inv, adj}
    # Several quick edits (a slider drag) are debounced into one run of the affected part.
    runs: list[Any] = []
    window.runner.finished.connect(runs.append)
    for g in (1.2, 1.4, 1.6):
        window.doc.undo_stack.push(SetParam(window.doc, adj, "gamma", g, merge=True))
    qtbot.waitUntil(lambda: len(runs) >= 1 and not window.runner.running, timeout=10_000)
    qtbot.wait(500)
    assert len(runs) == 1
    assert runs[0].result.executed == [adj]
    assert set(runs[0].result.cached) >= {inv}
    window.runs.set_live(False)


def test_step_previews_reach_the_preview_dock(
    qtbot: Any, window: Any, add: Any, run_and_wait: Any
) -> None:
    shown: list[str] = []
    original = window.preview.show_value
    window.preview.show_value = lambda value, title="": (
        shown.append(title),
        original(value, title),
    )
    slow = add("test.slow", 0, 0, seconds=1.0, steps=5)
    run_and_wait([slow])
    qtbot.wait(100)
    steps = [t for t in shown if "step preview" in t]
    assert len(steps) == 5 and steps[-1].endswith("step 5")
    # A flood of previews is coalesced: the newest shows. At the run's end the node's output
    # shows, and the step still due then is dropped: nothing is shown after the output (the
    # last step shows when nothing replaces it: tests/app/test_output_previews.py).
    shown.clear()
    fast = add("test.slow", 0, 200, seconds=0.2, steps=200)
    run_and_wait([fast])
    qtbot.wait(100)
    steps = [t for t in shown if "step preview" in t]
    assert 1 <= len(steps) < 40 and shown[-1] == f"{fast}.image"


def test_progress_floods_are_thinned_before_the_gui(
    qtbot: Any, window: Any, add: Any, run_and_wait: Any
) -> None:
    slow = add("test.slow", 0, 0, seconds=0.3, steps=3000)
    seen: list[Any] = []
    window.runner.event.connect(lambda ev: seen.append(ev.kind))
    outcome = run_and_wait([slow])
    assert outcome.result.ok
    progress = seen.count("node_progress")
    seconds = outcome.result.records[slow].seconds
    # 3000 reported; about 30 a second of them reach the GUI, however long the node took.
    assert 1 <= progress <= seconds / PROGRESS_INTERVAL + 2 and progress < 300
    assert seen.count("node_preview") == 3000  # every step preview still arrives


def test_the_video_demo_runs_in_the_studio_and_plays_in_the_player(
    qtbot: Any, window: Any, run_and_wait: Any
) -> None:
    """Open the video example, run up to the picture-in-picture node, select it: the preview
    dock's player shows the edited clip (lazy: frames decode on the player's worker)."""
    from fathom.app.preview.video_player import VideoPlayer

    root = Path(__file__).resolve().parents[2]
    assert window.files.open_example(root / "assets" / "graphs" / "video_edit_demo.json")
    outcome = run_and_wait(["pip"], timeout=60_000)
    assert outcome.result.ok, outcome.result.records
    window.scene.select_nodes(["pip"])
    qtbot.waitUntil(lambda: isinstance(window.preview.current_panel(), VideoPlayer), timeout=10_000)
    player = window.preview.current_panel()
    qtbot.waitUntil(lambda: player.video is not None and player.idle, timeout=20_000)
    assert len(player.video) == 68 and player.video.size == (256, 192)
    assert player.status.text() == "♪"  # the soundtrack came through the edit
    player.set_frame(40)
    qtbot.waitUntil(lambda: player.idle or "frame" in player.status.text(), timeout=20_000)
    assert player.idle, player.status.toolTip()
    assert player.counter.text() == "41 / 68"
