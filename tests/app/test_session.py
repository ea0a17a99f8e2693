"""The run session: plain-Python state of runs that the window, the editor's badges and the log
panel follow, and let go of when the window closes."""

from __future__ import annotations

from typing import Any

import numpy as np

from fathom.app.session import (
    NodeState,
    RunOutcome,
    RunRequest,
    RunSession,
    node_label,
    refused_nodes,
    run_scope,
    run_summary,
)
from fathom.engine.context import RunOptions
from fathom.engine.errors import Problem
from fathom.engine.events import Event
from fathom.engine.executor import NodeRecord, RunResult
from fathom.engine.graph import Graph
from fathom.engine.types import Image


def recorded(session: RunSession) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    session.subscribe(lambda kind, payload: events.append((kind, payload)))
    return events


def test_engine_events_become_node_states_previews_and_log_lines() -> None:
    session = RunSession()
    events = recorded(session)
    session.started()
    assert session.running and events[-1][0] == "run_started"
    session.handle(Event("node_queued", "a"))
    assert session.status("a") == NodeState("queued")
    session.handle(Event("node_started", "a"))
    assert session.status("a").progress == 0.0
    session.handle(Event("node_progress", "a", progress=0.5, message="half"))
    assert (session.status("a").status, session.status("a").progress) == ("running", 0.5)
    preview = Image(np.zeros((4, 4, 3), np.float32))
    session.handle(Event("node_preview", "a", value=preview, message="step 2"))
    assert session.previews["a"] == (preview, "a (step preview) step 2")
    assert events[-1] == (
        "node_preview",
        {"node": "a", "value": preview, "title": "a (step preview) step 2"},
    )
    session.handle(Event("node_finished", "a", seconds=1.25))
    assert session.status("a") == NodeState("done", None, "", 1.25)
    session.handle(Event("node_finished", "b", message="bypassed"))
    assert session.status("b").status == "bypassed"
    session.handle(Event("node_failed", "c", message="boom", seconds=0.1))
    session.handle(Event("node_skipped", "d", message="c failed"))
    logs = [p for k, p in events if k == "log"]
    assert logs == [
        {"level": "error", "message": "boom", "node": "c"},
        {"level": "warning", "message": "skipped: c failed", "node": "d"},
    ]
    assert session.errors == ["boom"]
    session.handle(Event("run_finished"))  # not about a node: nothing changes
    assert session.running


def test_a_finished_run_keeps_outputs_marks_cancelled_nodes_and_sums_up() -> None:
    session = RunSession()
    events = recorded(session)
    session.started()
    img = Image(np.zeros((2, 2, 3), np.float32))
    result = RunResult(
        records={
            "a": NodeRecord("a", "t.a", 1, status="executed", seconds=0.2),
            "b": NodeRecord("b", "t.b", 1, status="cancelled", error="stopped"),
        },
        values={"a": {"image": img}, "sub/inner": {"image": img}},
        cancelled=True,
        seconds=0.5,
    )
    outcome = RunOutcome(result, [Problem("not connected", "x/inner")])
    session.finished(outcome)
    assert not session.running and session.last_outcome is outcome
    assert session.outputs == {"a": {"image": img}}  # inner subgraph nodes are not shown
    assert session.status("b") == NodeState("cancelled", None, "stopped", 0.0)
    assert session.status("x/inner").status == "failed"
    assert session.seconds == 0.5
    kind, payload = events[-1]
    assert kind == "run_finished" and payload["outcome"] is outcome
    assert payload["summary"] == (
        "Run cancelled in 0.50 s: 1 executed, 0 cached, 0 failed, "
        "1 blocked (refused before the run): 'x'"
    )
    logs = [p for k, p in events if k == "log"]
    assert logs[0]["node"] == "x" and "not connected" in logs[0]["message"]
    assert logs[-1] == {"level": "warning", "message": payload["summary"], "node": ""}


def test_a_run_that_cannot_start_reports_why_and_forget_and_clear_drop_state() -> None:
    session = RunSession()
    events = recorded(session)
    session.finished(RunOutcome(error="the graph has a cycle"))
    assert events[-2][1]["message"] == "the graph has a cycle"
    assert events[-1] == ("run_finished", {"outcome": session.last_outcome, "summary": None})
    session.outputs["a"] = {"x": 1}
    session.set_status("a", "done")
    session.forget("a")
    assert "a" not in session.outputs and session.status("a") == NodeState()
    session.outputs["b"] = {"x": 1}
    session.clear()
    assert not session.outputs and events[-1] == ("cleared", {})
    session.set_live(True)
    assert session.live and events[-1] == ("live_changed", {"on": True})


def test_unsubscribed_listeners_hear_nothing() -> None:
    session = RunSession()
    heard: list[str] = []
    stop = session.subscribe(lambda kind, payload: heard.append(kind))
    session.started()
    stop()
    stop()  # twice is harmless
    session.log("info", "after")
    assert heard == ["run_started"]


def test_window_badges_and_log_follow_the_session_until_the_window_closes(window: Any) -> None:
    nid = window.editing.add_node("image.invert", (0, 0))
    session = window.session
    session.set_status(nid, "running", 0.3, "working")
    assert window.scene.nodes[nid].status == "running"
    assert window.scene.nodes[nid].progress == 0.3
    session.log("warning", "from the session", nid)
    assert any("from the session" in m for m in window.log.messages("warning"))
    session.set_live(True)
    assert window.menus.live_action.isChecked()
    session.set_live(False)
    window.doc.mark_saved()
    window.close()
    assert session._listeners == []  # window, scene and log panel all let go
    session.set_status(nid, "failed", message="late")
    assert window.scene.nodes[nid].status == "running"


def _saves_graph() -> tuple[RunRequest, list[Problem]]:
    """Solid Color → three Save Video nodes (one refused: bits 16 on .mp4), and a refused
    Adjust Colors feeding a fourth; every save has the same title, as on the canvas."""
    graph = Graph()
    graph.add_node("image.constant", "color")
    titles = {"color": "Solid Color", "adjust": "Adjust Colors"}
    for save in ("save_png", "save_exr", "save_mp4", "save_adj"):
        graph.add_node("image.save", save)
        titles[save] = "Save Video"
        if save != "save_adj":
            graph.connect("color", "image", save, "image")
    graph.add_node("image.adjust", "adjust")
    graph.connect("adjust", "image", "save_adj", "image")
    problems = [
        Problem("bits 16 applies to PNG sequences", "save_mp4", "bits"),
        Problem("input 'image' is not connected", "adjust", "image"),
    ]
    return RunRequest(graph, RunOptions(), titles=titles), problems


def test_the_run_lines_count_and_name_nodes_refused_before_the_run() -> None:
    """A save refused by validation used to be missing from both lines: "Run finished: 3
    executed, 0 failed" at info level read as if every output had been written."""
    request, problems = _saves_graph()
    done = ["color", "save_png", "save_exr"]
    scope = run_scope(request, done, done[1:], done[1:], [], problems)
    assert scope.line == (
        "Running 3 nodes: 2 save nodes and what they need; "
        "2 blocked: 'Save Video' (save_mp4), 'Adjust Colors' (adjust) (see the errors); "
        "1 not run: 'Save Video' (save_adj) (it needs 'Adjust Colors' (adjust), "
        "which has a problem)"
    )
    session = RunSession()
    events = recorded(session)
    session.started()
    session.planned(scope)
    records = {n: NodeRecord(n, "t", 1, status="executed", seconds=0.1) for n in done}
    session.finished(RunOutcome(RunResult(records, {}, seconds=3.24), problems))
    summary = events[-1][1]["summary"]
    assert summary == (
        "Run finished in 3.24 s: 3 executed, 0 cached, 0 failed, 2 blocked (refused before the "
        "run): 'Save Video' (save_mp4), 'Adjust Colors' (adjust); 1 node that needs them did "
        "not run"
    )
    logs = [p for k, p in events if k == "log"]
    assert logs[-1] == {"level": "warning", "message": summary, "node": ""}
    assert session.status("save_mp4").status == "failed"
    # Without refused nodes the summary stays an info line with nothing added.
    session.started()
    session.planned(run_scope(request, done, done[1:], done[1:], [], []))
    session.finished(RunOutcome(RunResult(records, {}, seconds=1.0)))
    assert [p for k, p in events if k == "log"][-1] == {
        "level": "info",
        "message": "Run finished in 1.00 s: 3 executed, 0 cached, 0 failed",
        "node": "",
    }


def test_node_labels_tell_nodes_of_one_title_apart() -> None:
    titles = {"save_png": "Save Video", "save_mp4": "Save Video", "plain": "plain"}
    assert node_label("save_png", titles) == "'Save Video' (save_png)"
    assert node_label("save_mp4", titles) == "'Save Video' (save_mp4)"
    assert node_label("plain", titles) == "'plain'"  # the title is the id: said once
    assert node_label("untitled", {}) == "'untitled'"
    many = [Problem("bad", f"n{i}") for i in range(7)] + [Problem("bad", "n0/inner")]
    assert refused_nodes(many) == [f"n{i}" for i in range(7)]  # inner nodes: the outer one
    result = RunResult({}, {}, seconds=0.0)
    assert run_summary(result, many).endswith(
        "7 blocked (refused before the run): 'n0', 'n1', 'n2', 'n3', 'n4' and 2 more"
    )


def test_a_finished_nodes_lazy_output_shows_as_running_while_a_node_reads_it() -> None:
    """A depth video's frames compute while the save node reads them, after the depth node
    finished: the depth node shows that work (for the save), then how it ended again."""
    session = RunSession()
    events = recorded(session)
    session.started()
    session.planned(
        run_scope(RunRequest(Graph(), RunOptions(), titles={"png": "Save PNG"}), [], [], [], [], [])
    )
    session.handle(Event("node_started", "depth"))
    session.handle(Event("node_progress", "depth", 0.0, "loading the depth model"))
    assert session.status("depth") == NodeState("running", 0.0, "loading the depth model")
    session.handle(Event("node_finished", "depth", seconds=2.5))
    session.handle(Event("node_started", "png"))
    session.handle(Event("node_progress", "depth", 0.25, "depth frame 1/4", reader="png"))
    session.handle(Event("node_progress", "png", 0.25, "frame 1/4"))
    depth = session.status("depth")
    assert (depth.status, depth.progress) == ("running", 0.25)
    assert depth.message == "depth frame 1/4: read by 'Save PNG' (png)"
    assert depth.seconds == 2.5
    assert session.status("png") == NodeState("running", 0.25, "frame 1/4")
    # Late progress that names no reader still leaves a finished node as it ended.
    session.handle(Event("node_finished", "other"))
    session.handle(Event("node_progress", "other", 0.5, "late"))
    assert session.status("other").status == "done"
    session.handle(Event("node_progress", "depth", 1.0, "depth frame 4/4", reader="png"))
    session.handle(Event("node_finished", "png", seconds=1.0))
    assert session.status("depth") == NodeState("done", None, "", 2.5)
    statuses = [(p["node"], p["status"]) for k, p in events if k == "node_status"]
    assert statuses[-2:] == [("png", "done"), ("depth", "done")]


def test_a_reader_cancelled_mid_read_gives_the_lazy_node_back_its_end() -> None:
    session = RunSession()
    session.started()
    session.handle(Event("node_finished", "depth", seconds=2.0))
    for reader in ("a", "b"):  # two readers at once (parallel branches)
        session.handle(Event("node_started", reader))
        session.handle(Event("node_progress", "depth", 0.5, "depth frame 2/4", reader=reader))
    session.handle(Event("node_finished", "a"))
    assert session.status("depth").message == "depth frame 2/4: read by 'b'"  # b still reads
    error = "cancelled while running node 'b' (reading the output of node 'depth')"
    result = RunResult(
        records={
            "depth": NodeRecord("depth", "t.depth", 1, status="executed", seconds=2.0),
            "a": NodeRecord("a", "t.save", 1, status="executed"),
            "b": NodeRecord("b", "t.save", 1, status="cancelled", error=error),
        },
        values={},
        cancelled=True,
    )
    session.finished(RunOutcome(result))
    # Done (its output is whole: a later read computes the rest), saying how far it got.
    said = "cancelled while its frames were read (depth frame 2/4)"
    assert session.status("depth") == NodeState("done", None, said, 2.0)
    assert session.status("b") == NodeState("cancelled", None, error, 0.0)
