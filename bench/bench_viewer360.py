"""360° viewer benchmark: frames/s of the scripted walk on the demo panorama, three renderers.

Run (a display with OpenGL; on a headless machine Mesa's llvmpipe under Xvfb):
    xvfb-run -a -s "-screen 0 1920x1080x24" python bench/bench_viewer360.py [--size 1280x720]

Rows, each measured in this run, in its own process:
- the viewer's OpenGL canvas (coarse mesh while moving, the full one once still 150 ms):
  ``python -m fathom.app.viewer360 --benchmark --renderer gl``;
- the plain baseline: the viewer's torch-rasterizer path, what it drew with before
  (``--renderer software``: coarse mesh at 40 % size while moving, full mesh when still);
- the peer already in the dependencies: pyqtgraph's ``GLViewWidget`` with one ``GLMeshItem`` of
  the same panorama mesh (vertex colours), camera moved along the same walk.
Ratios are frames/s over the baseline's. Every frame is waited for to its end (``glFinish``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def viewer_row(renderer: str, size: str, seconds: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "fathom.app.viewer360", "--benchmark", "--json"]
    cmd += ["--renderer", renderer, "--size", size, "--seconds", str(seconds)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peer_row(size: str, seconds: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--peer", "--size", size, "--seconds", str(seconds)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"peer failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peer_mesh() -> tuple[Any, float]:
    """The demo panorama at the viewer's full grid as pyqtgraph mesh data (vertex colours), and
    the viewer's walking speed there."""
    import pyqtgraph.opengl as gl

    from fathom.app.viewer360 import FULL_GRID, SPEED, load_panorama
    from fathom.engine.geometry.meshing import panorama_trimesh
    from fathom.engine.geometry.viewing import CUT

    image, depth = load_panorama()
    step = max(1, round(image.width / FULL_GRID))
    tm = panorama_trimesh(image.data, depth.data, step, CUT, "vertex")
    v = np.asarray(tm.vertices, np.float32)
    pos = np.stack([v[:, 0], v[:, 2], -v[:, 1]], 1)  # OpenCV (y down) → pyqtgraph (z up)
    rgba = np.asarray(tm.visual.vertex_colors, np.float32) / 255.0
    md = gl.MeshData(vertexes=pos, faces=np.asarray(tm.faces, np.int32), vertexColors=rgba)
    return md, SPEED * float(np.nanmedian(depth.data))


def run_peer(size: str, seconds: float) -> dict[str, Any]:
    """pyqtgraph's GL mesh of the demo panorama along the same walk (first-person camera)."""
    from PySide6.QtGui import QSurfaceFormat
    from PySide6.QtWidgets import QApplication

    fmt = QSurfaceFormat.defaultFormat()
    fmt.setSwapInterval(0)
    QSurfaceFormat.setDefaultFormat(fmt)
    app = QApplication(sys.argv[:1])
    import pyqtgraph.opengl as gl
    from OpenGL import GL
    from PySide6.QtGui import QVector3D
    from PySide6.QtWidgets import QVBoxLayout, QWidget

    from fathom.app.viewer360_benchmark import PHASES

    md, speed = peer_mesh()

    window = QWidget()  # as the studio embeds it (a top-level GL widget repaints differently)
    painted = [0]

    class View(gl.GLViewWidget):  # type: ignore[misc, name-defined]
        def paintGL(self, *a: Any, **k: Any) -> None:  # noqa: N802 - Qt override
            super().paintGL(*a, **k)
            painted[0] += 1

    view = View()
    view.addItem(gl.GLMeshItem(meshdata=md, smooth=True, computeNormals=False))
    lay = QVBoxLayout(window)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(view)
    w, h = (int(x) for x in size.split("x"))
    window.resize(w, h)
    window.show()
    deadline = time.perf_counter() + 10.0
    while not painted[0] and time.perf_counter() < deadline:  # shown and drawn once
        app.processEvents()
        time.sleep(0.01)
    eye, yaw = np.zeros(3), 0.0
    ends = np.cumsum([s for _, s, _ in PHASES]) * seconds
    times: list[float] = []
    per_phase: dict[str, list[float]] = {name: [] for name, _, _ in PHASES}
    cpu = time.process_time()
    start = last = time.perf_counter()
    while (now := time.perf_counter()) - start < seconds:
        i = min(int(np.searchsorted(ends, now - start, side="right")), len(PHASES) - 1)
        name, share, _ = PHASES[i]
        dt = now - last
        y = np.radians(yaw)
        if name == "forward":
            eye += speed * dt * np.array([np.sin(y), np.cos(y), 0.0])
        elif name == "strafe":
            eye += speed * dt * np.array([np.cos(y), -np.sin(y), 0.0])
        elif name == "turn":
            yaw += 90.0 * dt / (share * seconds)
        # An orbit camera 5 cm behind its centre is a first-person camera (pyqtgraph clips at
        # distance × 1000, so the room must stay within 50 m).
        d = 0.05
        centre = eye + d * np.array([np.sin(np.radians(yaw)), np.cos(np.radians(yaw)), 0.0])
        view.setCameraPosition(
            pos=QVector3D(*centre.tolist()), distance=d, azimuth=90.0 - yaw, elevation=0.0
        )
        view.opts["fov"] = 75.0 * w / h  # pyqtgraph's fov is horizontal-ish: match the view
        want = painted[0] + 1
        view.update()
        while painted[0] < want:  # the event loop paints it, as in an application
            app.processEvents()
        view.makeCurrent()
        GL.glFinish()
        done = time.perf_counter()
        times.append(done - last)
        per_phase[name].append(done - last)
        last = done
    cpu = time.process_time() - cpu
    if os.environ.get("BENCH_PEER_SHOT"):
        view.grabFramebuffer().save(os.environ["BENCH_PEER_SHOT"])
    if painted[0] < len(times):
        raise RuntimeError(f"pyqtgraph drew {painted[0]} of {len(times)} frames")
    renderer = GL.glGetString(GL.GL_RENDERER)
    ms = np.asarray(times[1:] or times) * 1000
    return {
        "renderer": "pyqtgraph GLMeshItem: "
        + (renderer.decode() if isinstance(renderer, bytes) else str(renderer)),
        "size": [view.width(), view.height()],
        "frames": len(times),
        "fps": round(len(times) / (last - start), 1),
        "frame_ms_median": round(float(np.median(ms)), 1),
        "frame_ms_p95": round(float(np.percentile(ms, 95)), 1),
        "fps_by_phase": {k: round(len(v) / sum(v), 1) if v else 0.0 for k, v in per_phase.items()},
        "cpu_ms_per_frame": round(1000 * cpu / max(1, len(times)), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    if args.peer:
        sys.stdout.write(json.dumps(run_peer(args.size, args.seconds)) + "\n")
        return
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        sys.exit("needs a display with OpenGL: run under xvfb-run (see the docstring)")
    load = os.getloadavg()
    rows = [
        ("viewer, OpenGL canvas", viewer_row("gl", args.size, args.seconds)),
        ("viewer, torch rasterizer (baseline)", viewer_row("software", args.size, args.seconds)),
        ("pyqtgraph GLMeshItem (peer)", peer_row(args.size, args.seconds)),
    ]
    base = rows[1][1]["fps"]
    lines = [
        f"Demo panorama (1024×512, {args.seconds:g} s walk: forward, turn, strafe, stop), view "
        f"{args.size}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on "
        f"{os.cpu_count()} cores",
        "",
        "| renderer | drawn by | frames/s | × baseline | moving (fwd/turn/strafe) | still "
        "| frame ms median | frame ms p95 | CPU ms/frame |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        ratio = r["fps"] / base if base else float("nan")
        ph = r["fps_by_phase"]
        moving = "/".join(str(ph[k]) for k in ("forward", "turn", "strafe"))
        lines.append(
            f"| {name} | {r['renderer']} | {r['fps']} | {ratio:.1f} | {moving} | {ph['stop']} "
            f"| {r['frame_ms_median']} | {r['frame_ms_p95']} | {r['cpu_ms_per_frame']} |"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps({"load": load, "rows": dict(rows)}, indent=2))


if __name__ == "__main__":
    main()
