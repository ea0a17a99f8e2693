"""What node badges say after a run: every node ends done, cached, failed or skipped.

A lazy output (Map Frames' video computes its frames when something downstream reads them)
reports progress after its node has finished; that must not turn the badge back to running.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VIDEO_DEMO = REPO / "assets" / "graphs" / "video_edit_demo.json"


def test_after_the_video_demo_no_node_is_left_running(
    qtbot: Any, window: Any, run_and_wait: Any
) -> None:
    assert window.files.open_example(VIDEO_DEMO)
    map_frames = next(nid for nid, item in window.scene.nodes.items() if item.title == "Map Frames")
    outcome = run_and_wait(timeout=120_000)
    assert outcome.result.ok, outcome.result.records
    qtbot.wait(200)  # any late event from the worker has arrived
    item = window.scene.nodes[map_frames]
    assert item.status in ("done", "cached"), (item.status, item.progress, item.message)
    assert "running" not in item.toolTip()
    assert window.session.status(map_frames).status in ("done", "cached")
    left = {nid: i.status for nid, i in window.scene.nodes.items() if i.status == "running"}
    assert left == {}
    # Running again finds everything cached; the badge says so too.
    run_and_wait(timeout=120_000)
    qtbot.wait(200)
    assert window.scene.nodes[map_frames].status in ("done", "cached")
