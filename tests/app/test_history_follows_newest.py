"""The History dock shows the newest run after each run, unless the user picked an older one: it
used to stay on whichever run was newest when the dock first filled, so after a few runs it
showed (and scrolled to) an old report while the run just made sat above, out of view."""

from __future__ import annotations

from typing import Any


def test_history_follows_the_newest_run_until_the_user_picks_one(
    qtbot: Any, window: Any, add: Any, wire: Any, run_and_wait: Any
) -> None:
    const = add("image.constant", 0, 0, width=4, height=4)
    save = add("image.save", 300, 0, path="out.png")
    wire(const, "image", save, "image")
    history = window.run_docks.history
    for n in (1, 2):
        window.executor.cache.clear()
        run_and_wait()
        qtbot.waitUntil(lambda n=n: len(history.entries) == n, timeout=10_000)
    assert history.runs.currentRow() == 0
    assert history.current() is not None and history.current().folder == history.entries[0].folder
    # The user picks the older run: a new run leaves that choice alone.
    history.runs.setCurrentRow(1)
    picked = history.current().folder
    window.executor.cache.clear()
    run_and_wait()
    qtbot.waitUntil(lambda: len(history.entries) == 3, timeout=10_000)
    assert history.current().folder == picked
