"""The gallery and history thumbnails: made off the GUI thread through the engine's readers
(large images and videos never stall the GUI, size bombs are refused). The record format
itself is tested without Qt in tests/engine/test_run_history.py."""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

import numpy as np
from gui_watchdog import Watchdog
from videoclips import make_clip

from fathom.app.thumbnails import SIZE, thumbnail_array
from fathom.engine.errors import FileProblem
from fathom.engine.executor import NodeRecord, RunResult
from fathom.engine.imaging.codecs import write_image
from fathom.engine.run_history import (
    record_run,
    run_report,
)


def _record(out: Path, files: list[Path], graph: str | None, started: float) -> Path:
    rec = NodeRecord("save", "image.save", 1, status="executed", seconds=0.1)
    rec.files = [str(f) for f in files]
    result = RunResult({"save": rec}, {}, seconds=0.1)
    report = run_report(result, {"format": "fathom.graph"}, started, graph_path=graph)
    return record_run(out, {"format": "fathom.graph", "nodes": []}, report)


def _big_image(path: Path, side: int, shade: float) -> Path:
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    data = np.stack([x, y, np.full_like(x, shade)], axis=2)
    write_image(path, data, "png")
    return path


def test_thumbnails_of_images_and_videos_are_small(tmp_path: Path) -> None:
    img = _big_image(tmp_path / "big.png", 1000, 0.5)
    clip = make_clip(tmp_path / "clip.mp4", frames=4, size=(320, 240))
    a = thumbnail_array(img)
    assert a.dtype == np.uint8 and a.shape == (SIZE, SIZE, 3)
    v = thumbnail_array(clip)
    assert v.dtype == np.uint8 and max(v.shape[:2]) == SIZE and v.shape[2] == 3


def test_a_size_bomb_gets_no_thumbnail(
    qtbot: Any, window: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    out = Path(window.settings.output_dir)
    out.mkdir(parents=True)
    bomb = _big_image(out / "bomb.png", 64, 0.2)
    monkeypatch.setenv("FATHOM_MAX_IMAGE_PIXELS", "1000")  # 64² is over this limit
    try:
        thumbnail_array(bomb)
        raise AssertionError("the size limit was not checked")
    except FileProblem as exc:
        assert "decompression bombs" in str(exc)
    _record(out, [bomb], None, time.time())
    gallery_dock = window.run_docks.gallery
    gallery_dock.refresh()
    qtbot.waitUntil(lambda: gallery_dock.grid.count() == 1, timeout=10_000)
    item = gallery_dock.grid.item(0)
    qtbot.waitUntil(lambda: "no thumbnail" in item.toolTip(), timeout=10_000)
    assert item.icon().isNull()


def test_gallery_of_large_images_never_stalls_the_gui(
    qtbot: Any, window: Any, tmp_path: Path
) -> None:
    """Eight 2400² PNGs and a video: listing, thumbnails and a click that shows one image in
    the preview. Wall clock on a shared machine is noisy, so the GUI thread's own CPU time per
    timer gap must stay under 100 ms every time, the wall-clock gap in one of five tries (the
    first also pays for importing the decoders, once per session)."""
    out = Path(window.settings.output_dir)
    out.mkdir(parents=True)
    files = [_big_image(out / f"big{i}.png", 2400, i / 8) for i in range(8)]
    files.append(make_clip(out / "clip.mp4", frames=4, size=(640, 480)))
    for i, f in enumerate(files):
        _record(out, [f], None, 1000.0 + i)
    dock = window.run_docks.gallery
    attempts = []
    gc.collect()
    gc.freeze()
    try:
        for _ in range(5):
            dock.thumbnails._cache.clear()
            wall, cpu = _measure(qtbot, window, dock, len(files))
            attempts.append((round(wall * 1000, 1), round(cpu * 1000, 1)))
            assert cpu < 0.100, f"GUI thread busy (wall, cpu ms): {attempts}"
            if wall < 0.100:
                break
    finally:
        gc.unfreeze()
    assert min(w for w, _ in attempts) < 100, f"GUI thread blocked (wall, cpu ms): {attempts}"


def _measure(qtbot: Any, window: Any, dock: Any, count: int) -> tuple[float, float]:
    shown: list[Any] = []
    show = window.previews.show_value
    window.run_docks.opener.show_value = lambda v, t: (shown.append(v), show(v, t))
    with Watchdog() as dog:
        dock.refresh()
        grid = dock.grid
        qtbot.waitUntil(lambda: grid.count() == count, timeout=30_000)
        grid.chosen.emit(grid.paths()[1])  # a 2400² image, as a click on it does
        qtbot.waitUntil(
            lambda: all(not grid.item(i).icon().isNull() for i in range(count)) and bool(shown),
            timeout=60_000,
        )
    gaps = dog.gaps[1:]
    assert len(gaps) > 20
    return max(g[0] for g in gaps), max(g[1] for g in gaps)
