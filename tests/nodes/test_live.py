"""Live nodes: clear errors from sources that cannot open (no camera, a dead or silent URL, no
screen), the virtual camera's message where there is none, and sources and outputs in an
ordinary render (a file's whole video, a recording with its frame rate's timing)."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import av
import pytest
from live_nodes import graph_doc, registry, session
from videoclips import decoded_indices, make_clip

from fathom.engine.context import RunOptions
from fathom.engine.errors import GraphInvalid, NodeError
from fathom.engine.executor import Executor
from fathom.engine.graphfile import loads


def _start_error(nodes: list, tmp_path: Path) -> NodeError:
    s = session([*nodes, ("win", "live.window", {})], tmp_path)
    with pytest.raises(NodeError) as info:
        s.start()
    return info.value


def test_no_camera_names_the_node_and_port(tmp_path: Path) -> None:
    err = _start_error([("cam", "live.camera", {"device": "9"})], tmp_path)
    assert err.node == "cam" and err.port == "device"
    assert "no camera could be opened" in str(err) and "live.file" in str(err)
    err = _start_error([("cam", "live.camera", {"device": "no-such-webcam"})], tmp_path)
    assert err.node == "cam" and err.port == "device" and "no camera is called" in str(err)


def test_dead_url_names_the_node_port_and_fix(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = _start_error(
        [("cam", "live.stream", {"url": f"http://127.0.0.1:{port}/live", "timeout": 1.0})],
        tmp_path,
    )
    assert err.node == "cam" and err.port == "url" and "Fix:" in str(err)


def test_silent_url_times_out(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/live"
    t0 = time.perf_counter()
    try:
        err = _start_error([("net", "live.stream", {"url": url, "timeout": 0.5})], tmp_path)
    finally:
        for c in held:
            c.close()
        server.close()
    assert time.perf_counter() - t0 < 10
    assert err.node == "net" and err.port == "url" and "within 0.5 s" in str(err)


def test_no_screen_names_the_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    err = _start_error([("scr", "live.screen", {})], tmp_path)
    assert err.node == "scr" and err.port == "region" and "Fix:" in str(err)


def test_virtual_camera_says_why_there_is_none(tmp_path: Path) -> None:
    if list(Path("/dev").glob("video*")):
        pytest.skip("this machine has a video device; the message is for machines without")
    clip = make_clip(tmp_path / "c.mp4", frames=4, fps=10)
    doc = graph_doc(
        [("src", "live.file", {"path": str(clip)}), ("vcam", "live.virtual_camera", {})]
    )
    reg = registry()
    with pytest.raises(GraphInvalid) as info:
        Executor(registry=reg).plan(loads(json.dumps(doc), registry=reg))
    text = str(info.value)
    assert "vcam" in text and "no virtual camera" in text and "live.record" in text


def test_file_and_record_in_an_ordinary_render(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=12, fps=12)
    doc = graph_doc(
        [
            ("src", "live.file", {"path": str(clip), "loop": True}),
            ("rec", "live.record", {"path": "all.mp4"}),
        ]
    )
    reg = registry()
    result = Executor(registry=reg).run(
        loads(json.dumps(doc), registry=reg), options=RunOptions(output_dir=tmp_path)
    )
    assert result.ok
    assert decoded_indices(tmp_path / "all.mp4") == list(range(12))
    with av.open(str(tmp_path / "all.mp4")) as c:
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    assert times == pytest.approx([i / 12 for i in range(12)], abs=0.002)


def test_fathom_live_reports_a_missing_camera_by_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fathom.engine.cli import main

    doc = graph_doc([("cam", "live.camera", {"device": "9"}), ("win", "live.window", {})])
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps(doc))
    code = main(["live", str(graph), "--seconds", "1", "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "node 'cam'" in err and "port 'device'" in err
