"""What the preview dock shows around a run's end: the node's final output, never a step preview
that came due after it (B4), and an earlier run's output marked as such when the latest run
failed or was refused at the node or at a node it needs (R2)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fathom.app.commands import SetParam
from fathom.app.output_previews import EARLIER, PREVIEW_MS
from fathom.app.session import RunOutcome
from fathom.engine.events import Event
from fathom.engine.executor import NodeRecord, RunResult
from fathom.engine.types import Image

pytestmark = pytest.mark.gui


def grey(level: float) -> Image:
    return Image(np.full((8, 8, 3), level, np.float32))


def shown_level(window: Any) -> float:
    """The grey level of the image the dock's image panel holds."""
    arr = window.preview.panel("image").view.image()
    assert arr is not None
    return round(float(arr[..., :3].mean()), 3)


def finish(window: Any, node: str, value: Image) -> None:
    """The end of a run in which ``node`` executed and made ``value``, as the runner feeds it."""
    record = NodeRecord(node, "test.slow", 1, status="executed")
    result = RunResult(records={node: record}, values={node: {"image": value}})
    window.session.finished(RunOutcome(result))


def test_a_step_preview_due_after_the_run_never_replaces_the_final_output(
    qtbot: Any, window: Any, add: Any
) -> None:
    slow = add("test.slow", 0, 0)
    window.scene.select_nodes([slow])
    session, previews = window.session, window.previews
    session.started()
    session.handle(Event("node_started", slow))
    session.handle(Event("node_preview", slow, value=grey(0.2), message="step 1"))
    # A second step within PREVIEW_MS waits for the timer: the newest wins.
    session.handle(Event("node_preview", slow, value=grey(0.4), message="step 2"))
    assert previews._timer.isActive()
    assert window.preview.windowTitle().endswith("step 1") and shown_level(window) == 0.2
    session.handle(Event("node_finished", slow, seconds=0.1))
    finish(window, slow, grey(0.8))  # the run ends before the timer fires
    assert window.preview.windowTitle() == f"Preview — {slow}.image"
    # The timer firing now, as it did in the user test, and any time later: nothing changes.
    previews._timer.timeout.emit()
    qtbot.wait(3 * PREVIEW_MS)
    assert window.preview.windowTitle() == f"Preview — {slow}.image"
    assert shown_level(window) == 0.8
    # A step reported after its node ended (or after the run) is not shown either.
    session.handle(Event("node_preview", slow, value=grey(0.1), message="late"))
    qtbot.wait(3 * PREVIEW_MS)
    assert shown_level(window) == 0.8 and "late" not in window.preview.windowTitle()


def test_the_last_step_shows_while_the_node_waits_for_the_rest_of_the_run(
    qtbot: Any, window: Any, add: Any
) -> None:
    """The guard must not lose the last step: until the run's outputs show, the node's last
    step is what it made, even when the node ended before the timer fired."""
    slow = add("test.slow", 0, 0)
    window.scene.select_nodes([slow])
    session = window.session
    session.started()
    session.handle(Event("node_started", slow))
    session.handle(Event("node_preview", slow, value=grey(0.2), message="step 1"))
    session.handle(Event("node_preview", slow, value=grey(0.6), message="step 2"))
    session.handle(Event("node_finished", slow, seconds=0.1))
    qtbot.waitUntil(lambda: window.preview.windowTitle().endswith("step 2"), timeout=2_000)
    assert shown_level(window) == 0.6
    session.finished(RunOutcome(error="stopped"))


def test_a_step_left_due_by_a_run_does_not_show_once_the_next_has_started(
    qtbot: Any, window: Any, add: Any
) -> None:
    """Live mode starts the next run as soon as one ends: a step the ended run left for the
    timer belongs to it, not to the run now showing its own steps."""
    slow = add("test.slow", 0, 0)
    window.scene.select_nodes([])
    window.previews.forget()  # no preview open: the run's end shows no output over the step
    session, previews = window.session, window.previews
    session.started()
    session.handle(Event("node_started", slow))
    session.handle(Event("node_preview", slow, value=grey(0.2), message="step 1"))
    session.handle(Event("node_preview", slow, value=grey(0.4), message="step 2"))
    session.handle(Event("node_finished", slow, seconds=0.1))
    finish(window, slow, grey(0.8))
    session.started()  # the next run, before the timer fires
    previews._timer.timeout.emit()
    assert window.preview.windowTitle().endswith("step 1") and shown_level(window) == 0.2
    session.finished(RunOutcome(error="stopped"))


def test_a_refused_node_marks_the_output_it_keeps_as_an_earlier_runs(
    qtbot: Any, window: Any, add: Any, wire: Any, run_and_wait: Any
) -> None:
    slow = add("test.slow", 0, 0, seconds=0.0, steps=1)
    save = add("image.save", 300, 0, path="kept.png")
    wire(slow, "image", save, "image")
    assert run_and_wait().result.ok
    window.scene.select_nodes([slow])
    assert window.preview.windowTitle() == f"Preview — {slow}.image"
    assert window.preview.note.isHidden()
    # A value the node's own checks refuse: F5 does not run it.
    window.doc.undo_stack.push(SetParam(window.doc, slow, "seconds", -1.0))
    outcome = run_and_wait()
    assert outcome.problems and window.scene.nodes[slow].status == "failed"
    window.scene.select_nodes([])
    window.scene.select_nodes([slow])
    assert window.preview.windowTitle() == f"Preview — {slow}.image{EARLIER}"
    note = window.preview.note
    assert not note.isHidden() and note.text().startswith("From an earlier run: this node failed")
    assert "seconds" in note.text()
    # The save node did not write in that run: its file is the earlier run's, and it says why.
    window.scene.select_nodes([save])
    qtbot.waitUntil(lambda: window.previews._reading is None, timeout=10_000)
    assert window.preview.windowTitle() == f"Preview — {save}: wrote kept.png{EARLIER}"
    assert "'Slow', which this node needs, failed" in window.preview.note.text()
    # Fixed and run again: the outputs are current, nothing is marked.
    window.doc.undo_stack.undo()
    assert run_and_wait().result.ok
    qtbot.waitUntil(lambda: window.previews._reading is None, timeout=10_000)
    assert window.preview.windowTitle() == f"Preview — {save}: wrote kept.png"
    assert window.preview.note.isHidden()


def test_a_failure_upstream_marks_what_downstream_nodes_keep_but_not_upstream_ones(
    qtbot: Any, window: Any, add: Any, wire: Any, run_and_wait: Any
) -> None:
    slow = add("test.slow", 0, 0, seconds=0.0, steps=1)
    fail = add("test.fail", 200, 0)
    save = add("image.save", 400, 0, path="kept.png")
    wire(slow, "image", save, "image")
    assert run_and_wait().result.ok
    wire(slow, "image", fail, "image")
    wire(fail, "image", save, "image")  # the run now fails at 'fail', before the save
    outcome = run_and_wait()
    assert outcome.result.failed == [fail]
    window.scene.select_nodes([save])
    qtbot.waitUntil(lambda: window.previews._reading is None, timeout=10_000)
    assert window.preview.windowTitle().endswith(EARLIER)
    assert "'Fail', which this node needs, failed" in window.preview.note.text()
    assert "boom" in window.preview.note.text()
    window.scene.select_nodes([slow])  # it ran fine in that run: its output is current
    assert window.preview.windowTitle() == f"Preview — {slow}.image"
    assert window.preview.note.isHidden()
    window.scene.select_nodes([fail])  # never made an output: it says why, no old picture
    assert window.preview.kind == "empty" and "boom" in window.preview.message()


@pytest.mark.parametrize(("pattern", "bits"), [("d16/%04d.png", "16"), ("dexr/%04d.exr", "8")])
def test_a_written_frame_folder_reads_back_as_the_clip_it_holds(
    tmp_path: Any, pattern: str, bits: str
) -> None:
    """A save node that wrote a PNG or EXR sequence previews the folder read back (the node
    that opens video files also opens folders of frames), not 'no node opens' it."""
    from fathom.app.output_previews import read_back
    from fathom.engine.context import RunOptions
    from fathom.engine.executor import Executor
    from fathom.engine.registry import Registry
    from fathom.engine.types import Video

    reg = Registry()
    reg.load_builtin()
    ex = Executor(reg)
    frames = [Image(np.full((16, 24, 1), i / 5, np.float32)) for i in range(4)]
    clip = Video.from_frames(frames, 12.0)
    opts = RunOptions(device="cpu", output_dir=tmp_path)
    ex.call("video.save", {"video": clip}, {"path": pattern, "bits": bits}, opts)
    back = read_back(ex, reg, str(tmp_path / pattern.split("/")[0]))
    assert len(back) == 4
    for i in range(4):
        np.testing.assert_allclose(back.frame(i).data, frames[i].data, atol=1e-4)
