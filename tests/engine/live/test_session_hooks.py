"""What the studio reads from a live session: ``on_tick`` hands over every tick's results in
order (the open preview follows a node's newest value from it), and the stats name each node
that failed with its newest message (the Live panel lists them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from live_nodes import session
from videoclips import make_clip, read_index

from fathom.engine.types import Video


def test_on_tick_gets_each_ticks_results_and_the_stats_name_failing_nodes(
    tmp_path: Path,
) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=24, fps=24)
    s = session(
        [
            ("src", "live.file", {"path": str(clip), "loop": False}),
            ("flaky", "test.flaky", {"period": 3}),
            ("win", "live.window", {}),
        ],
        tmp_path,
    )
    seen: list[tuple[int, int, Any]] = []
    s.on_tick = lambda tick, result: seen.append((tick.tick, tick.frame_index, result))
    s.start()
    assert s.wait(30)
    report = s.stop()
    assert [t for t, _, _ in seen] == list(range(len(seen))) and len(seen) >= 3
    shown = []
    for _, index, result in seen:
        video = result.values["src"]["video"]
        assert isinstance(video, Video) and len(video) == 1
        shown.append(read_index(video.frame(0).data))  # the clip frame this tick cooked
        failed = result.records["flaky"].status == "failed"
        assert failed == (index % 3 == 1)  # the planned failures, and only those
        assert ("flaky" in result.values) != failed
    assert shown == sorted(set(shown))  # each tick a newer frame of the clip, in order
    stats = s.stats()
    assert set(stats.errors) == {"flaky"} and "a planned failure" in stats.errors["flaky"]
    assert report.errors["flaky"]["count"] == sum(1 for _, i, _ in seen if i % 3 == 1)
