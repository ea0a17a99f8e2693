"""A run whose graph had a problem (a refused bypass, a missing input) is recorded as "ok" for
the part that ran, but the History list says the problem too: "ok … 0 failed" alone read as if
everything had run."""

from __future__ import annotations

from typing import Any


def test_history_rows_say_a_run_had_problems(
    qtbot: Any, window: Any, add: Any, wire: Any, run_and_wait: Any
) -> None:
    const = add("image.constant", 0, 0, width=4, height=4)
    good = add("image.save", 300, 0, path="good.png")
    wire(const, "image", good, "image")
    lonely = add("image.invert", 0, 200)  # its image input is not connected
    bad = add("image.save", 300, 200, path="bad.png")
    wire(lonely, "image", bad, "image")
    outcome = run_and_wait()
    assert outcome.problems
    history = window.run_docks.history
    qtbot.waitUntil(lambda: len(history.entries) == 1, timeout=10_000)
    row = history.runs.item(0).text()
    assert "1 problem" in row, row
    assert "problem" in history.runs.item(0).toolTip()
