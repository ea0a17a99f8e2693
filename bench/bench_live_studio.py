"""The studio's Live panel against headless: the live depth point-cloud example, same frames.

Runs ``assets/graphs/live_depth_pointcloud.json`` (the bundled clip → depth → point cloud, a
depth window) for ``--seconds`` at a time, alternately: headless through ``LiveSession`` with
its window frames taken by a plain callback (the baseline), then in the studio (offscreen Qt)
started from the Run menu with the 3D preview following the point cloud and the live window
showing the depth, with one parameter edit half-way (a 2-second headless session first pays
the one-off costs). Prints the median run of each side: frames per second (whole session) and
latency, the studio's ratio to headless, and the GUI thread's longest stall over all studio
runs under the studio tests' watchdog (``tests/gui_watchdog.py``: wall-clock and the GUI
thread's own CPU time).

    python bench/bench_live_studio.py [--seconds 15] [--repeat 2] [--depth-model PATH]

Without ``--depth-model`` a tiny random Depth Anything (tests/object_models.py) is built.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

GRAPH = ROOT / "assets" / "graphs" / "live_depth_pointcloud.json"


def headless(model: str, seconds: float, out: Path) -> dict[str, Any]:
    """The baseline: the session alone, its window frames taken and dropped by a callback."""
    from fathom.engine import graphfile
    from fathom.engine.context import RunOptions
    from fathom.engine.live.session import LiveOptions, LiveSession
    from fathom.engine.registry import default_registry

    graph = graphfile.load(GRAPH, default_registry())
    graph.set_param("depth", "model", model)
    run = RunOptions(output_dir=out, base_dir=GRAPH.parent, device="cpu")
    session = LiveSession(
        graph, LiveOptions(run=run, seconds=seconds), on_frame=lambda node, image: None
    )
    session.start()
    session.wait()
    return session.stop().as_dict()


def studio(model: str, seconds: float, out: Path) -> tuple[dict[str, Any], list[float], tuple]:
    """The same graph started from the studio's Run menu, under the GUI watchdog."""
    from gui_watchdog import Watchdog, pump
    from PySide6.QtWidgets import QApplication

    from fathom.app.commands import SetParam
    from fathom.app.main_window import MainWindow
    from fathom.app.settings import Settings

    app = QApplication.instance() or QApplication([])
    settings = Settings(out / "settings.ini")
    settings.output_dir, settings.recovery_dir, settings.device = str(out), str(out / "r"), "cpu"
    window = MainWindow(settings=settings)
    window.files.ask_unsaved = lambda: "discard"
    window.show()
    window.files.open_example(GRAPH)
    window.doc.undo_stack.push(SetParam(window.doc, "depth", "model", model))
    pump(1.0)
    live = window.live
    got: dict[str, Any] = {}
    live.stats_changed.connect(lambda stats: got.update(stats=stats))
    with Watchdog() as dog:
        window.menus.live_session_action.trigger()
        pump(seconds / 2)
        window.doc.undo_stack.push(SetParam(window.doc, "points", "step", 3))
        pump(seconds / 2)
        window.menus.live_session_action.trigger()
        pump(60, lambda: live.phase == "stopped")
    gaps = [g[0] * 1000 for g in dog.gaps]
    worst = dog.longest_ms
    frames3d = window.preview.panel("mesh").live_frames
    shown = sum(w.frames_shown for w in live.windows.values())
    window.doc.mark_saved()
    window.close()
    app.processEvents()
    stats = got.get("stats") or {}
    stats = dict(stats) if isinstance(stats, dict) else vars(stats)
    stats.update(frames_3d=frames3d, window_frames=shown)
    return stats, gaps, worst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--depth-model", default=None)
    p.add_argument("--repeat", type=int, default=2, help="alternated runs of each (median)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        model = args.depth_model
        if model is None:
            from object_models import build_tiny_depth

            model = str(build_tiny_depth(out / "tiny_depth"))
        headless(model, 2.0, out / "warm")  # first-time costs (imports, model load) paid once
        # Alternated (headless, studio, headless, studio...): on a shared, loaded machine the
        # load drifts, and the median of each side is what compares.
        bases, studios = [], []
        t0 = time.perf_counter()
        for k in range(args.repeat):
            bases.append(headless(model, args.seconds, out / f"headless{k}"))
            studios.append(studio(model, args.seconds, out / f"studio{k}"))
        took = time.perf_counter() - t0
        base = sorted(bases, key=lambda r: r["fps"])[len(bases) // 2]
        stats, _, _ = sorted(studios, key=lambda r: float(r[0].get("fps_out", 0)))[
            len(studios) // 2
        ]
        gaps = [g for _, run_gaps, _ in studios for g in run_gaps]
        wall = max(w for _, _, (w, _) in studios)
        cpu = max(c for _, _, (_, c) in studios)
    load = os.getloadavg()
    p99 = statistics.quantiles(gaps, n=100)[98] if len(gaps) > 100 else max(gaps, default=0.0)
    fps_h, fps_s = base["fps"], float(stats.get("fps_out", 0.0))
    lat_h, lat_s = base["latency_ms"], stats.get("latency_ms", {})
    rows = [
        "| run | frames out/s | latency median | latency p95 | dropped | GUI stall (wall / cpu) |",
        "|---|---|---|---|---|---|",
        f"| headless LiveSession (baseline) | {fps_h:.1f} | {lat_h['median']:.0f} ms | "
        f"{lat_h['p95']:.0f} ms | {base['frames_dropped']}/{base['frames_in']} | — |",
        f"| studio Live panel (3D preview + live window) | {fps_s:.1f} | "
        f"{lat_s.get('median', 0):.0f} ms | {lat_s.get('p95', 0):.0f} ms | "
        f"{stats.get('frames_dropped')}/{stats.get('frames_in')} | {wall:.0f} ms / {cpu:.0f} ms |",
    ]
    print("\n".join(rows))
    print(
        f"studio/headless fps ratio {fps_s / max(fps_h, 1e-9):.2f}; GUI gap p99 {p99:.1f} ms; "
        f"3D frames shown {stats['frames_3d']}, window frames shown {stats['window_frames']}; "
        f"headless fps {[round(r['fps'], 1) for r in bases]}, studio fps "
        f"{[round(float(r[0].get('fps_out', 0)), 1) for r in studios]}; worst stall over all "
        f"studio runs; {took:.0f} s; {args.seconds:.0f} s each; load {load[0]:.2f} "
        f"{load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
