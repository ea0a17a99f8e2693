"""What a window's runs leave on disk: the spill files of cached videos go when another graph
opens (File → New) and when the window closes, not only when the process exits; a video
still on view keeps its file until it is let go."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fathom.app.commands import SetParam
from fathom.engine.media.framestore import FrameStore
from fathom.engine.node import Node, Output, Param
from fathom.engine.registry import Registry
from fathom.engine.types import Int, Video
from tests.app.conftest import make_window


class SpillClip(Node):
    """A generated clip whose frames wait in a temporary file, as generate.video_edit's do."""

    type_id = "test.spill_clip"
    title = "Spill Clip"
    category = "test"
    outputs = (Output("video", Video),)
    params = (Param("seed", Int, 0),)

    def run(self, ctx: Any, seed: int) -> dict[str, Any]:
        store = FrameStore(16, 8, 3)
        for _ in range(6):
            store.append(np.full((8, 16, 3), seed, np.uint8))
        return {"video": store.video(12.0)}


@pytest.fixture
def spill_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "spill"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def window(qtbot: Any, settings: Any, spill_dir: Path) -> Iterator[Any]:
    reg = Registry()
    reg.load_builtin()
    reg.register_all([SpillClip])
    w = make_window(qtbot, reg, settings)
    yield w
    w.runner.shutdown()
    w.doc.mark_saved()
    w.close()


def spills(folder: Path) -> list[Path]:
    return list(folder.glob("fathom-frames-*"))


def run_seeds(qtbot: Any, window: Any, nid: str, seeds: list[int]) -> None:
    for seed in seeds:  # parameter tweaks: each run a new cache entry and spill file
        window.doc.undo_stack.push(SetParam(window.doc, nid, "seed", seed))
        with qtbot.waitSignal(window.runner.finished, timeout=20_000) as blocker:
            assert window.runs.run()
        assert blocker.args[0].result.ok
        del blocker  # holding the outcome would hold the video


def test_file_new_deletes_the_old_graphs_spill_files(
    qtbot: Any, window: Any, spill_dir: Path
) -> None:
    run_seeds(qtbot, window, window.editing.add_node("test.spill_clip", (0, 0)), [1, 2])
    assert len(spills(spill_dir)) == 2
    assert window.executor.cache.disk_nbytes == 2 * 6 * 8 * 16 * 3
    window.files.new()
    assert len(window.executor.cache) == 0 and window.session.last_outcome is None
    # Previews and thumbnails let go once their workers finish with the video.
    qtbot.waitUntil(lambda: not spills(spill_dir), timeout=5_000)


def test_closing_the_window_lets_go_of_its_cached_results_and_their_spill_files(
    qtbot: Any, window: Any, spill_dir: Path
) -> None:
    nid = window.editing.add_node("test.spill_clip", (0, 0))
    run_seeds(qtbot, window, nid, [3])
    (older,) = spills(spill_dir)
    run_seeds(qtbot, window, nid, [4])  # the latest result is shown: the older is cache-only
    window.doc.mark_saved()
    window.close()
    assert len(window.executor.cache) == 0
    qtbot.waitUntil(lambda: not older.exists(), timeout=5_000)
    # What the window still shows goes with the window, at the latest when the process exits
    # (tests/engine/media/test_framestore.py).
    assert len(spills(spill_dir)) <= 1
