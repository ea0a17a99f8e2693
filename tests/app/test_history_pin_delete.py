"""The History dock's Pin, Delete and Clear History, driven as a user drives them (the
confirmation answered as the user would), and the recorder pruning old runs to the settings'
budget: records go, pinned ones stay, and the output folder's files are never touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fathom.app.commands import SetParam
from fathom.app.history_panel import PINNED_MARK
from fathom.engine.imaging.codecs import read_image
from fathom.engine.run_history import list_runs


def _graph(add: Any, wire: Any) -> str:
    const = add("image.constant", 0, 0, width=4, height=4, color=[1.0, 0.0, 0.0, 1.0])
    save = add("image.save", 300, 0, path="kept.png")
    wire(const, "image", save, "image")
    return const


def _runs(window: Any, const: str, run_and_wait: Any, n: int) -> None:
    for i in range(n):
        color = [0.1 * (i + 1), 0.5, 0.0, 1.0]
        window.doc.undo_stack.push(SetParam(window.doc, const, "color", color))
        run_and_wait()


def _wait_rows(qtbot: Any, history: Any, n: int) -> None:
    qtbot.waitUntil(lambda: len(history.entries) == n and history.jobs.idle, timeout=15_000)


def test_pin_then_delete_and_clear_keep_the_pinned_run_and_the_outputs(
    qtbot: Any, window: Any, add: Any, wire: Any, run_and_wait: Any
) -> None:
    const = _graph(add, wire)
    history = window.run_docks.history
    _runs(window, const, run_and_wait, 3)
    _wait_rows(qtbot, history, 3)
    out = window.runs.output_dir()
    asked: list[str] = []

    # Pin the oldest run.
    history.runs.setCurrentRow(2)
    oldest = history.current().folder
    history.pin_button.click()
    qtbot.waitUntil(lambda: history.entries[2].pinned, timeout=10_000)
    assert history.runs.item(2).text().startswith(PINNED_MARK)
    history.runs.setCurrentRow(2)
    assert history.pin_button.text() == "Unpin"
    assert "1 pinned" in history.folder_label.text()

    # Delete asks first; "Cancel" deletes nothing.
    history.runs.setCurrentRow(0)
    newest = history.current().folder
    history.confirm = lambda title, question: asked.append(question) or False
    history.delete_button.click()
    assert len(asked) == 1 and "output folder stay" in asked[0]
    assert newest.exists() and len(history.entries) == 3

    # "Yes" deletes the record, and only the record.
    history.confirm = lambda title, question: asked.append(question) or True
    history.delete_button.click()
    _wait_rows(qtbot, history, 2)
    assert not newest.exists()
    assert newest not in [e.folder for e in history.entries]
    kept = read_image(out / "kept.png")  # the last run's output, untouched
    assert abs(float(kept[0, 0, 0]) - 0.3) < 0.01

    # Clear History removes every unpinned run; the pinned one stays.
    history.clear_button.click()
    assert "1 pinned run is kept" in asked[-1]
    _wait_rows(qtbot, history, 1)
    assert [e.folder for e in list_runs(out)] == [oldest]
    assert history.entries[0].pinned and not history.clear_button.isEnabled()
    assert (out / "kept.png").is_file()
    own = oldest / "files" / "kept.png"
    assert abs(float(read_image(own)[0, 0, 0]) - 0.1) < 0.01  # the pinned run kept its own


def test_the_recorder_prunes_old_runs_to_the_budget(
    qtbot: Any, window: Any, add: Any, wire: Any, run_and_wait: Any
) -> None:
    window.settings.history_max_runs = 2
    const = _graph(add, wire)
    history = window.run_docks.history
    _runs(window, const, run_and_wait, 2)
    _wait_rows(qtbot, history, 2)
    history.runs.setCurrentRow(1)
    pinned = history.current().folder
    history.toggle_pin()
    qtbot.waitUntil(lambda: history.entries[1].pinned, timeout=10_000)
    _runs(window, const, run_and_wait, 3)
    # Two unpinned runs are kept besides the pinned one; the log says what went.
    qtbot.waitUntil(lambda: window.run_docks.recorder.idle, timeout=15_000)
    out: Path = window.runs.output_dir()
    qtbot.waitUntil(lambda: len(list_runs(out)) == 3, timeout=15_000)
    runs = list_runs(out)
    assert pinned in [e.folder for e in runs] and sum(e.pinned for e in runs) == 1
    log = [window.log.list.item(i).text() for i in range(window.log.list.count())]
    assert any("old run" in line and "removed" in line for line in log), log
    assert (out / "kept.png").is_file()
