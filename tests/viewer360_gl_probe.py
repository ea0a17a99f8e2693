"""The 360° viewer's OpenGL path under a real X server, in its own process: which renderer the
viewer picks, what it draws compared with the torch rasterizer, walking frame by frame, and the
longest GUI-thread gap while a viewer window opens on a panorama (``gui_watchdog``).

``tests/app/test_viewer360_gl.py`` runs it under Xvfb (``xvfb_probe.run_under_xvfb``) and checks
the JSON it prints last.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
from gui_watchdog import Watchdog, pump
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

QUADRANTS = {0: (1.0, 0.0, 0.0), 90: (0.0, 1.0, 0.0), 180: (0.0, 0.0, 1.0), 270: (1.0, 1.0, 0.0)}


def quadrant_room(w: int = 256) -> tuple[Any, Any]:
    """Four 90° sectors of longitude (front red, right green, back blue, left yellow), 4 m away,
    with a gray box 1.5 m ahead so moving shows parallax."""
    from fathom.engine.geometry import projection
    from fathom.engine.types import Depth, Image

    h = w // 2
    d = projection.equirect_directions(w, h)
    lon = np.degrees(np.arctan2(d[..., 0], d[..., 2]))
    lat = np.degrees(np.arcsin(-d[..., 1]))
    rgb = np.zeros((h, w, 3), np.float32)
    for centre, colour in QUADRANTS.items():
        rgb[np.abs((lon - centre + 180) % 360 - 180) <= 45] = colour
    dist = np.full((h, w), 4.0, np.float32)
    box = (np.abs(lon) < 10) & (np.abs(lat + 10) < 8)
    rgb[box], dist[box] = 0.5, 1.5
    return Image(rgb), Depth(dist, kind="metric")


def as_array(img: QImage) -> np.ndarray:
    img = img.convertToFormat(QImage.Format.Format_RGB888)
    a = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    return a[:, : img.width() * 3].reshape(img.height(), img.width(), 3) / 255.0


def shown_frame(viewer: Any) -> np.ndarray:
    pump(10.0, lambda: viewer.idle)
    frame = viewer.frame()
    assert frame is not None
    return as_array(frame)


def main() -> dict[str, Any]:
    app = QApplication(sys.argv[:1])
    from fathom.app.viewer360 import Viewer360, use_opengl

    image, depth = quadrant_room()
    out: dict[str, Any] = {"auto_gl": use_opengl()}
    # What the standalone viewer's prepare() does before its window shows: the loader's
    # libraries (trimesh, cv2, PIL; the studio's warm-up imports them too) and PyOpenGL's
    # array handlers (the studio leaves those to the first frames: about 1 ms once imported).
    from fathom.app.viewer360_gl import import_array_handlers
    from fathom.app.warmup import import_libraries

    import_libraries()
    import_array_handlers()
    with Watchdog() as dog:
        viewer = Viewer360.open_window(image, depth)
        viewer.resize(400, 300)
        out["shown"] = pump(30.0, lambda: viewer.idle and viewer.frames_shown > 0)
    out["open_ms"] = dog.longest_ms
    out["uses_gl"], out["renderer"] = viewer.uses_opengl, viewer.renderer_name
    out["centres"] = {}
    for yaw in QUADRANTS:
        viewer.set_view(yaw=yaw + 20)  # off the box, still well inside the sector
        f = shown_frame(viewer)
        out["centres"][yaw] = f[f.shape[0] // 2, f.shape[1] // 2].round(3).tolist()
    # The same view drawn by OpenGL and by the engine's torch rasterizer; OpenGL draws the
    # full mesh progressively, in several slices (the threshold lowered to make sure).
    from fathom.app import viewer360_gl

    chunk, viewer360_gl.CHUNK_TRIANGLES = viewer360_gl.CHUNK_TRIANGLES, 20_000
    budget, viewer360_gl.CHUNK_MS = viewer360_gl.CHUNK_MS, 1e-3  # the smallest slices
    slices = viewer.canvas.slices_drawn
    viewer.set_view(yaw=15.0, pitch=-5.0, position=(0.3, 0.1, 0.4))
    gl_img = shown_frame(viewer)
    out["slices"] = viewer.canvas.slices_drawn - slices
    viewer360_gl.CHUNK_TRIANGLES, viewer360_gl.CHUNK_MS = chunk, budget
    sw_img = viewer.render_image(gl_img.shape[1], gl_img.shape[0])
    out["gl_vs_torch_mean"] = float(np.abs(gl_img - sw_img).mean())
    out["gl_vs_torch_close"] = float((np.abs(gl_img - sw_img).max(2) < 0.1).mean())
    # Walking: held W moves frame by frame in real time; each frame is the view of its moment.
    viewer.reset_view()
    pump(5.0, lambda: viewer.idle)
    before = viewer.frames_shown
    viewer.canvas.setFocus()
    viewer.hold_key(0x57)  # Qt.Key_W
    details = set()
    for _ in range(40):
        pump(0.01)
        details.add(viewer.detail())
    viewer.release_key(0x57)
    stop = viewer.position.copy()
    pump(0.3)
    out["walk_frames"] = viewer.frames_shown - before
    out["walk_details"] = sorted(details)
    out["walked"] = float(stop[2])
    out["still_after_release"] = bool(np.array_equal(stop, viewer.position))
    pump(5.0, lambda: viewer.idle)
    out["detail_when_still"] = viewer.detail()
    viewer.close()
    app.processEvents()
    out["benchmark"] = benchmark(image, depth)
    return out


def benchmark(image: Any, depth: Any) -> dict[str, Any]:
    """``--benchmark`` as the command line runs it, on the room saved as files."""
    import tempfile
    from pathlib import Path

    import cv2

    from fathom.app import viewer360

    with tempfile.TemporaryDirectory() as tmp:
        rgb, dist = Path(tmp) / "rgb.png", Path(tmp) / "distance.npy"
        cv2.imwrite(str(rgb), (image.data[..., ::-1] * 255).round().astype(np.uint8))
        np.save(dist, depth.data)
        args = viewer360.build_parser().parse_args(
            ["--benchmark", "--size", "480x270", "--seconds", "0.8"]
            + ["--rgb", str(rgb), "--distance", str(dist)]
        )
        return viewer360.benchmark(args)


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main()) + "\n")
