"""What node badges say after a run: every node ends done, cached, failed or skipped.

A lazy output (Map Frames' video computes its frames when something downstream reads them)
reports progress after its node has finished: the badge shows that work as running, for the
node reading it, and ends as the node ended once the reading is done.
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
    seen: list[tuple[str, str]] = []

    def note(kind: str, payload: dict[str, Any]) -> None:
        if kind == "node_status" and payload["node"] == map_frames:
            seen.append((payload["status"], payload["message"]))

    stop = window.session.subscribe(note)
    outcome = run_and_wait(timeout=120_000)
    assert outcome.result.ok, outcome.result.records
    qtbot.wait(200)  # any late event from the worker has arrived
    stop()
    # Done, then running again while the saves read its frames (saying for which), then done.
    first_done = seen.index(("done", ""))
    read = [m for s, m in seen[first_done:] if s == "running"]
    assert read and all(": read by '" in m for m in read), seen
    assert seen[-1] == ("done", "")
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
