"""Batch rendering on Ray: same manifest and bytes as the local batch, killed workers, failures,
Ctrl-C, and an unreachable cluster. Ray stays on the loopback address throughout."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

# Before Ray starts: a local instance otherwise binds to this machine's network address.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from fathom.engine.batch import read_rows
from fathom.engine.cli import main
from fathom.engine.distributed.scheduler import STAGING_PREFIX, commit, run_batch_ray
from fathom.engine.distributed.worker import render_staged
from fathom.engine.render import RenderJob

ROW_FILES = {"full.png", "crop.png", "run.json"}


def write_graph(folder: Path, side: int = 48) -> Path:
    """constant → adjust → (save full, crop → save crop); a math node the outputs don't need."""
    doc = {
        "format": "fathom.graph",
        "version": 1,
        "nodes": [
            {"id": "c", "type": "image.constant", "params": {"width": side, "height": side}},
            {"id": "adj", "type": "image.adjust", "params": {"hue": 0.0, "saturation": 1.0}},
            {
                "id": "crop",
                "type": "image.crop",
                "params": {"width": side // 2, "height": side // 2},
            },
            {"id": "save_full", "type": "image.save", "params": {"path": "full.png"}},
            {"id": "save_crop", "type": "image.save", "params": {"path": "crop.png"}},
            {"id": "m", "type": "math.binary", "params": {"op": "multiply", "a": 2, "b": 3}},
        ],
        "edges": [
            {"from": ["c", "image"], "to": ["adj", "image"]},
            {"from": ["adj", "image"], "to": ["save_full", "image"]},
            {"from": ["adj", "image"], "to": ["crop", "image"]},
            {"from": ["crop", "image"], "to": ["save_crop", "image"]},
        ],
    }
    path = folder / "sweep.json"
    path.write_text(json.dumps(doc))
    return path


def write_rows(folder: Path, n: int, bad: set[int] = frozenset()) -> Path:
    """A seed sweep: each row its own seed, colour and hue; rows in ``bad`` crop outside."""
    lines = []
    for i in range(n):
        row: dict[str, Any] = {
            "_seed": 1000 + i,
            "c.color": [i / n, 0.5, 1 - i / n, 1.0],
            "adj.hue": -180 + 30 * i,
        }
        if i in bad:
            row["crop.x"] = 60000  # outside the image: fails inside the node, at run time
        lines.append(json.dumps(row))
    path = folder / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def normalized(value: Any, out: Path) -> Any:
    """Timings and the output folder's name removed: what must match between two runs."""
    if isinstance(value, dict):
        return {k: normalized(v, out) for k, v in value.items() if k not in ("seconds", "started")}
    if isinstance(value, list):
        return [normalized(v, out) for v in value]
    if isinstance(value, str):
        return value.replace(str(out), "<out>")
    return value


def tree(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
    }


def assert_clean(out: Path, names: list[str]) -> None:
    """Every row folder complete, nothing half-written, no staging left behind."""
    assert not list(out.glob(f"{STAGING_PREFIX}*"))
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(names)
    for name in names:
        assert {p.name for p in (out / name).iterdir()} == ROW_FILES, name


def cli(*args: Any) -> int:
    return main(["render", *map(str, args), "--quiet"])


@pytest.fixture(scope="class")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="class")
def ray_two_nodes():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    ray.shutdown()
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield ray
    ray.shutdown()
    cluster.shutdown()


class TestLocalInstance:
    def test_seed_sweep_matches_the_local_batch(self, ray_local, tmp_path: Path) -> None:
        graph, rows = write_graph(tmp_path), write_rows(tmp_path, 12)
        local, remote = tmp_path / "local", tmp_path / "ray"
        assert cli(graph, "--batch", rows, "--out", local, "--workers", "1") == 0
        assert cli(graph, "--batch", rows, "--out", remote, "--cluster", "local") == 0
        m_local = json.loads((local / "manifest.json").read_text())
        m_ray = json.loads((remote / "manifest.json").read_text())
        assert m_ray["counts"]["ok"] == 12
        assert normalized(m_ray, remote) == normalized(m_local, local)
        names = [e["name"] for e in m_ray["rows"]]
        assert_clean(remote, names)
        a, b = tree(local), tree(remote)
        assert a.keys() == b.keys()
        for rel in a:
            if rel.endswith("run.json"):
                ra, rb = json.loads(a[rel]), json.loads(b[rel])
                assert normalized(rb, remote) == normalized(ra, local), rel
            elif rel != "manifest.json":
                assert a[rel] == b[rel], f"{rel} differs between the local and the Ray run"
        seeds = [json.loads(b[f"{n}/run.json"])["seed"] for n in names]
        assert seeds == [1000 + i for i in range(12)]

    def test_a_failing_row_is_reported_and_the_rest_finish(self, ray_local, tmp_path: Path) -> None:
        graph, rows = write_graph(tmp_path), write_rows(tmp_path, 5, bad={2})
        out = tmp_path / "out"
        assert cli(graph, "--batch", rows, "--out", out, "--cluster", "local") == 1
        m = json.loads((out / "manifest.json").read_text())
        assert [e["status"] for e in m["rows"]] == ["ok", "ok", "failed", "ok", "ok"]
        assert "crop" in m["rows"][2]["errors"][0]
        failed = out / m["rows"][2]["name"]
        assert {p.name for p in failed.iterdir()} == {"full.png", "run.json"}  # like local
        assert not list(out.glob(f"{STAGING_PREFIX}*"))

    def test_ctrl_c_cancels_rows_not_started(self, ray_local, tmp_path: Path) -> None:
        graph, rows_path = write_graph(tmp_path, side=1024), write_rows(tmp_path, 10)
        out = tmp_path / "out"
        base = RenderJob(graph, out, [], True, "cpu")
        inside = threading.Event()

        def on_sigint(signum: int, frame: Any) -> None:
            if inside.is_set():  # never outside the batch: that would stop pytest itself
                raise KeyboardInterrupt

        def first_row(entry: dict[str, Any], done: int, total: int) -> None:
            if done == 1:
                threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()

        messages: list[str] = []
        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            inside.set()
            m = run_batch_ray(
                ray_local, base, read_rows(rows_path), progress=first_row, log=messages.append
            )
            inside.clear()
        finally:
            inside.clear()
            signal.signal(signal.SIGINT, previous)
        assert m["interrupted"] and m["counts"]["cancelled"] > 0
        assert len(m["rows"]) == 10 and len({e["name"] for e in m["rows"]}) == 10
        assert any("cancelling" in t or "stopped" in t for t in messages)
        assert any(t.startswith("finished ") for t in messages)
        finished = [e["name"] for e in m["rows"] if e["status"] == "ok"]
        assert finished
        assert_clean(out, finished)  # cancelled rows left no folder, finished ones are whole


class TestTwoNodeCluster:
    def test_killed_worker_still_renders_every_row_once(
        self, ray_two_nodes, tmp_path: Path
    ) -> None:
        import psutil

        graph, rows_path = write_graph(tmp_path, side=768), write_rows(tmp_path, 12)
        out = tmp_path / "out"
        killed: list[int] = []

        def kill_a_busy_worker(entry: dict[str, Any], done: int, total: int) -> None:
            if done != 3 or killed:
                return
            procs = [
                p
                for p in psutil.process_iter(["pid", "cmdline"])
                if " ".join(p.info["cmdline"] or []).startswith("ray::RowWorker")
            ]
            busy = [p for p in procs if "render" in " ".join(p.info["cmdline"])] or procs
            busy[0].kill()
            killed.append(busy[0].info["pid"])

        messages: list[str] = []
        m = run_batch_ray(
            ray_two_nodes,
            RenderJob(graph, out, [], True, "cpu"),
            read_rows(rows_path),
            progress=kill_a_busy_worker,
            log=messages.append,
        )
        assert killed and any("worker died" in t for t in messages), messages
        assert m["counts"]["ok"] == 12 and not m["interrupted"]
        names = [e["name"] for e in m["rows"]]
        assert len(names) == len(set(names)) == 12
        assert_clean(out, names)
        from PIL import Image

        for name in names:  # complete files: they decode
            Image.open(out / name / "full.png").load()


def test_rows_come_back_to_the_driver_without_a_shared_folder(tmp_path: Path) -> None:
    """A worker that cannot see the output folder returns the files; the driver commits them."""
    graph, rows_path = write_graph(tmp_path), write_rows(tmp_path, 1)
    (row,) = read_rows(rows_path)
    staging = tmp_path / "out" / f"{STAGING_PREFIX}x"
    staging.mkdir(parents=True)
    job = RenderJob(graph, tmp_path / "out" / row.name, row.overrides, False, "cpu")
    result = render_staged(job, 0, row.name, str(staging), "no-such-token", "a1")
    assert "staged" not in result and set(result["files"]) == ROW_FILES
    assert result["entry"]["outputs"] == [
        str(job.out_dir / "full.png"),
        str(job.out_dir / "crop.png"),
    ]
    (job.out_dir).mkdir()
    (job.out_dir / "stale.txt").write_text("from an earlier batch")
    commit(result, job.out_dir, staging, "a1")
    assert {p.name for p in job.out_dir.iterdir()} == ROW_FILES
    report = json.loads((job.out_dir / "run.json").read_text())
    assert str(staging) not in json.dumps(report) and report["status"] == "ok"


def test_unreachable_cluster_is_exit_2_before_any_work(tmp_path: Path, capsys) -> None:
    graph, rows = write_graph(tmp_path), write_rows(tmp_path, 3)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    assert cli(graph, "--batch", rows, "--out", out, "--cluster", f"ray://127.0.0.1:{port}") == 2
    err = capsys.readouterr().err
    assert "cannot be reached" in err and f"127.0.0.1:{port}" in err
    assert not out.exists()
    assert cli(graph, "--batch", rows, "--out", out, "--cluster", "tcp://x") == 2
    assert cli(graph, "--out", out, "--cluster", "local") == 2  # --cluster needs --batch
    assert not out.exists()
