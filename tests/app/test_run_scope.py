"""What a run executes, and why: save nodes and what they need, plus the node whose preview is
open; the others are marked as not run, with the reason, and the log's start line says it all.

A node that feeds no save node used to be skipped by F5 and by Live mode without a word, so the
preview the user was looking at went stale until Shift+F5.
"""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import Qt

from fathom.app.commands import SetParam
from fathom.app.preview.image_view import ImagePanel

GREY = (0.2, 0.2, 0.2, 1.0)


@pytest.fixture
def branch(window: Any, add: Any, wire: Any) -> dict[str, str]:
    """Solid Color → Save Image, and beside it Adjust Colors and Invert that feed nothing."""
    ids = {
        "color": add("image.constant", 0, 0, width=8, height=8, color=GREY),
        "save": add("image.save", 300, 0, path="branch.png"),
        "adjust": add("image.adjust", 300, 150),
        "invert": add("image.invert", 300, 300),
    }
    wire(ids["color"], "image", ids["save"], "image")
    wire(ids["color"], "image", ids["adjust"], "image")
    wire(ids["color"], "image", ids["invert"], "image")
    window.doc.set_title(ids["adjust"], "Depth look")
    return ids


def previewed_pixel(window: Any) -> float:
    panel = window.preview.current_panel()
    assert isinstance(panel, ImagePanel), type(panel).__name__
    data = panel.view.image()
    assert data is not None
    return float(data[0, 0, 0])


def press_f5(qtbot: Any, window: Any) -> Any:
    with qtbot.waitSignal(window.runner.finished, timeout=20_000) as blocker:
        qtbot.keyClick(window.view, Qt.Key.Key_F5)
    qtbot.wait(50)
    return blocker.args[0]


def set_brightness(window: Any, node: str, value: float) -> None:
    window.doc.undo_stack.push(SetParam(window.doc, node, "brightness", value))


def test_f5_brings_the_open_preview_up_to_date_and_says_what_it_ran(
    qtbot: Any, window: Any, branch: dict[str, str]
) -> None:
    window.scene.select_nodes([branch["adjust"]])  # its preview is open
    outcome = press_f5(qtbot, window)
    assert branch["adjust"] in outcome.result.executed
    assert previewed_pixel(window) == pytest.approx(0.2, abs=0.01)
    start = [m for m in window.log.messages("info") if "Running 3 nodes" in m]
    assert start, window.log.messages()
    assert "1 save node and what it needs" in start[-1]
    assert f"'Depth look' ({branch['adjust']}) whose preview is open" in start[-1]
    assert "1 not run" in start[-1]
    # The node that was not run says so, and why, on its badge and tooltip.
    invert = window.scene.nodes[branch["invert"]]
    assert invert.status == "skipped"
    assert "feeds no save node" in invert.toolTip()
    assert branch["invert"] not in outcome.result.records
    # A change to the previewed node, then F5: its preview shows the new output.
    set_brightness(window, branch["adjust"], 0.5)
    outcome = press_f5(qtbot, window)
    assert outcome.result.executed == [branch["adjust"]]
    assert previewed_pixel(window) == pytest.approx(0.7, abs=0.01)


def test_the_preview_stays_open_when_the_selection_moves_off(
    qtbot: Any, window: Any, branch: dict[str, str]
) -> None:
    """Clicking empty canvas keeps the preview dock on what it shows: still kept fresh."""
    window.scene.select_nodes([branch["adjust"]])
    press_f5(qtbot, window)
    window.scene.clearSelection()
    set_brightness(window, branch["adjust"], 0.3)
    press_f5(qtbot, window)
    assert previewed_pixel(window) == pytest.approx(0.5, abs=0.01)


def test_live_mode_keeps_the_open_preview_up_to_date(
    qtbot: Any, window: Any, branch: dict[str, str]
) -> None:
    window.scene.select_nodes([branch["adjust"]])
    with qtbot.waitSignal(window.runner.finished, timeout=20_000) as first:
        window.menus.live_action.trigger()
    assert branch["adjust"] in first.args[0].result.executed
    qtbot.waitUntil(lambda: previewed_pixel(window) == pytest.approx(0.2, abs=0.01))
    with qtbot.waitSignal(window.runner.finished, timeout=20_000) as again:
        set_brightness(window, branch["adjust"], 0.4)
    assert again.args[0].result.executed == [branch["adjust"]]
    qtbot.waitUntil(lambda: previewed_pixel(window) == pytest.approx(0.6, abs=0.01))
    window.menus.live_action.trigger()
    assert not window.session.live


def test_run_to_selected_says_what_it_runs(qtbot: Any, window: Any, branch: dict[str, str]) -> None:
    window.scene.select_nodes([branch["invert"]])
    with qtbot.waitSignal(window.runner.finished, timeout=20_000) as blocker:
        qtbot.keyClick(window.view, Qt.Key.Key_F5, Qt.KeyboardModifier.ShiftModifier)
    assert set(blocker.args[0].result.executed) == {branch["color"], branch["invert"]}
    start = [m for m in window.log.messages("info") if "Running 2 nodes" in m]
    assert start and "the 1 selected node and what it needs" in start[-1], window.log.messages()
    save = window.scene.nodes[branch["save"]]
    assert save.status == "skipped" and "the selected nodes do not need it" in save.toolTip()


def test_in_live_mode_opening_a_stale_preview_brings_it_up_to_date(
    qtbot: Any, window: Any, branch: dict[str, str]
) -> None:
    """Live mode ran what the graph saves; selecting a node it did not run opens its preview,
    and Live mode runs it without a key press."""
    window.scene.select_nodes([branch["save"]])  # the save node's preview is open
    with qtbot.waitSignal(window.runner.finished, timeout=20_000):
        window.menus.live_action.trigger()
    assert window.scene.nodes[branch["invert"]].status == "skipped", window.log.messages()
    with qtbot.waitSignal(window.runner.finished, timeout=20_000) as blocker:
        window.scene.select_nodes([branch["invert"]])
    assert branch["invert"] in blocker.args[0].result.executed
    qtbot.waitUntil(lambda: previewed_pixel(window) == pytest.approx(0.8, abs=0.01))
    # Selecting a node that is up to date runs nothing.
    runs: list[Any] = []
    window.runner.finished.connect(runs.append)
    window.scene.select_nodes([branch["color"]])
    qtbot.wait(600)
    assert runs == []
    window.menus.live_action.trigger()


def test_a_node_blocked_by_an_invalid_one_says_which(
    qtbot: Any, window: Any, add: Any, wire: Any
) -> None:
    color = add("image.constant", 0, 0, width=8, height=8)
    ok = add("image.save", 300, 0, path="fine.png")
    lonely = add("image.adjust", 0, 200)  # its required input is not connected
    blocked = add("image.save", 300, 200, path="blocked.png")
    wire(color, "image", ok, "image")
    wire(lonely, "image", blocked, "image")
    window.scene.select_nodes([ok])
    outcome = press_f5(qtbot, window)
    assert ok in outcome.result.executed
    assert window.scene.nodes[lonely].status == "failed"
    item = window.scene.nodes[blocked]
    assert item.status == "skipped"
    assert f"it needs 'Adjust Colors' ({lonely}), which has a problem" in item.toolTip()
    assert not window.session.left_out(blocked)  # running it again would not help
    # The log's lines count and name the refused node, the summary as a warning.
    start = [m for m in window.log.messages("info") if "Running" in m]
    assert f"1 blocked: 'Adjust Colors' ({lonely}) (see the errors)" in start[-1]
    summary = [m for m in window.log.messages("warning") if "Run finished" in m]
    assert summary, window.log.messages()
    assert f"1 blocked (refused before the run): 'Adjust Colors' ({lonely})" in summary[-1]
    assert "1 node that needs it did not run" in summary[-1]
