"""Editor redraw timings: 500 nodes and 600 wires, panned and zoomed in a 1600×1000 view.

Each step changes the view (scroll or scale) and then repaints the viewport synchronously, so the
time measured is the full redraw Qt does for that frame (background grid, wires, nodes, text).
Runs offscreen (Qt's raster engine, what Xvfb and most Linux desktops use without GL).

    python bench/bench_editor.py [--nodes 500] [--wires 600] [--steps 80]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtWidgets import QApplication

from fathom.app.main_window import MainWindow
from fathom.app.settings import Settings
from fathom.engine.graph import Graph, NodeInstance

TYPES = [
    "image.adjust",
    "image.invert",
    "image.blend",
    "image.resize",
    "image.pad",
    "image.blend",
    "image.crop",
    "image.blend",
]
IMAGE_INPUTS = {
    "image.adjust": ["image"],
    "image.invert": ["image"],
    "image.blend": ["base", "overlay"],
    "image.resize": ["image"],
    "image.pad": ["image"],
    "image.crop": ["image"],
    "image.constant": [],
}


def big_graph(n_nodes: int, n_wires: int, seed: int = 0) -> Graph:
    """A random DAG of image nodes on a grid, wired only to earlier nodes, so it validates."""
    rng = random.Random(seed)
    g = Graph()
    cols = 25
    ids = []
    for i in range(n_nodes):
        t = "image.constant" if i < cols else TYPES[rng.randrange(len(TYPES))]
        nid = f"n{i}"
        g.nodes[nid] = NodeInstance(nid, t)
        g.ui.setdefault("nodes", {})[nid] = {"pos": [(i // 20) * 260.0, (i % 20) * 150.0]}
        ids.append(nid)
    free = [(nid, port) for nid in ids for port in IMAGE_INPUTS[g.nodes[nid].type]]
    rng.shuffle(free)
    wires = 0
    for dst, port in free:
        if wires == n_wires:
            break
        di = int(dst[1:])
        # From the previous three columns, any row: local flow with plenty of crossings, as in
        # real graphs (a wire across the whole canvas is the exception there).
        sources = [s for s in ids[:di] if 1 <= di // 20 - int(s[1:]) // 20 <= 3]
        if not sources:
            continue
        src = sources[rng.randrange(len(sources))]
        g.connect(src, "image", dst, port)
        wires += 1
    return g


def timed_repaints(app: QApplication, view, step, count: int) -> list[float]:
    out = []
    for i in range(count):
        step(i)
        t0 = time.perf_counter()
        view.viewport().repaint()
        out.append((time.perf_counter() - t0) * 1000)
        app.processEvents()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=500)
    p.add_argument("--wires", type=int, default=600)
    p.add_argument("--steps", type=int, default=80)
    args = p.parse_args()
    app = QApplication.instance() or QApplication([])
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(Path(tmp) / "s.ini")
        settings.recovery_dir = str(Path(tmp) / "rec")
        w = MainWindow(settings=settings)
        w.resize(1600, 1000)
        w.show()
        graph = big_graph(args.nodes, args.wires)
        t0 = time.perf_counter()
        w.doc.set_graph(graph)
        build = time.perf_counter() - t0
        app.processEvents()
        view = w.view
        print(
            f"{len(w.scene.nodes)} nodes, {len(w.scene.edges)} wires; scene built in "
            f"{build * 1000:.0f} ms; viewport {view.viewport().width()}×"
            f"{view.viewport().height()}"
        )
        results = {}
        for zoom in (1.0, 0.5, None):
            view.resetTransform()
            if zoom is None:
                view.fit_all()
                label = f"fit all (zoom {view.zoom():.2f})"
            else:
                view.zoom_by(zoom)
                view.centerOn(1500, 1500)
                label = f"zoom {zoom:.2f}"
            app.processEvents()
            view.viewport().repaint()  # warm caches
            results[f"pan, {label}"] = timed_repaints(
                app, view, lambda i: view.pan_by(37 if (i // 20) % 2 == 0 else -37, 23), args.steps
            )
        view.resetTransform()
        view.centerOn(1500, 1500)
        results["zoom 0.25↔2.0 (wheel steps ×1.15)"] = timed_repaints(
            app, view, lambda i: view.zoom_by(1.15 if (i // 15) % 2 == 0 else 1 / 1.15), args.steps
        )
        for zoom in (1.0, None):  # the smooth (antialiased) redraw once the view is still
            view.resetTransform()
            if zoom is None:
                view.fit_all()
            view.centerOn(1500, 1500) if zoom else None
            app.processEvents()
            view._settled()
            label = "fit all" if zoom is None else f"zoom {zoom:.2f}"
            results[f"still, smooth wires, {label}"] = timed_repaints(
                app, view, lambda i: None, max(10, args.steps // 4)
            )
        print(f"{'scenario':42} {'median ms':>10} {'max ms':>8} {'fps@median':>11}")
        for name, times in results.items():
            med = statistics.median(times)
            print(f"{name:42} {med:10.1f} {max(times):8.1f} {1000 / med:11.0f}")
        w.doc.mark_saved()
        w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
