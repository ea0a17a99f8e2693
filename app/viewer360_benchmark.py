"""``python -m fathom.app.viewer360 --benchmark``: the 360° viewer's frame rate on a scripted walk.

The walk is what a user does: hold W (forward), turn on the spot, hold D (strafe), stop. Keys
go through the viewer's own walking code (its frame timer moves it), and frames are drawn as
fast as the renderer allows, each waited for to the end (OpenGL: ``glFinish``), so the numbers
are what a user sees: frames per second over the walk, frame time median and 95th percentile,
and which renderer drew them (the OpenGL vendor / renderer string, or the torch fallback).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

#: (phase, share of the walk's time, walking key held). "turn" turns 90° on the spot.
PHASES = (
    ("forward", 0.3, Qt.Key.Key_W),
    ("turn", 0.3, None),
    ("strafe", 0.25, Qt.Key.Key_D),
    ("stop", 0.15, None),
)
#: Frames each phase draws at least, however long they take.
MIN_FRAMES = 3


def walk(viewer: Any, seconds: float = 4.0) -> dict[str, Any]:
    """Run the scripted walk on a shown viewer with a loaded scene; returns the statistics."""
    app = QApplication.instance()
    assert app is not None
    if viewer.uses_opengl:
        viewer.canvas.finish_frames = True
    times: list[float] = []
    per_phase: dict[str, list[float]] = {name: [] for name, _, _ in PHASES}
    ends = np.cumsum([share for _, share, _ in PHASES]) * seconds
    cpu = time.process_time()  # all threads: the GUI's and the renderer's (llvmpipe, torch)
    start = last = turned = time.perf_counter()
    held, i = None, 0
    while True:
        now = time.perf_counter()
        # A phase ends at its share of the time, but not before it has its frames: a slow
        # renderer (the torch fallback on a loaded machine) still walks, turns and strafes.
        done_here = now - start >= ends[i] and len(per_phase[PHASES[i][0]]) >= MIN_FRAMES
        if done_here and i == len(PHASES) - 1:
            break
        if done_here:
            i += 1
        name, share, key = PHASES[i]
        if key != held:
            if held is not None:
                viewer.release_key(held)
            if key is not None:
                viewer.hold_key(key)
            held = key
        if name == "turn":
            viewer.set_view(yaw=viewer.yaw + 90.0 * (now - turned) / (share * seconds))
        turned = now
        shown = viewer.frames_shown
        app.processEvents()  # the walking timer's ticks
        if held is not None:
            # And one now: the torch renderer moves the walker only between frames, and its
            # timer can fall due only while draw_now waits, so a slow machine never walked.
            viewer.walk_tick()
        viewer.draw_now()
        if viewer.frames_shown == shown:
            continue  # nothing new reached the screen: not a frame
        done = time.perf_counter()
        times.append(done - last)
        per_phase[name].append(done - last)
        last = done
    cpu = time.process_time() - cpu
    viewer.release_keys()
    if viewer.uses_opengl:
        viewer.canvas.finish_frames = False
    elapsed = last - start
    ms = np.asarray(times[1:] or times) * 1000  # the first frame includes the start-up
    return {
        "renderer": viewer.renderer_name,
        "size": [viewer.canvas.width(), viewer.canvas.height()],
        "frames": len(times),
        "fps": round(len(times) / elapsed, 1),
        "frame_ms_median": round(float(np.median(ms)), 1),
        "frame_ms_p95": round(float(np.percentile(ms, 95)), 1),
        # CPU time per frame, summed over the process's threads: the cost of a frame however
        # busy the machine is (frames/s also depends on what else runs).
        "cpu_ms_per_frame": round(1000 * cpu / max(1, len(times)), 1),
        "fps_by_phase": {
            k: round(len(v) / sum(v), 1) if v and sum(v) > 0 else 0.0 for k, v in per_phase.items()
        },
        "position": [round(float(v), 3) for v in viewer.position],
    }


def report(stats: dict[str, Any]) -> str:
    """The benchmark's lines for a terminal."""
    phases = ", ".join(f"{k} {v}" for k, v in stats["fps_by_phase"].items())
    w, h = stats["size"]
    return (
        f"renderer: {stats['renderer']}\n"
        f"view: {w}×{h}, {stats['frames']} frames\n"
        f"frames/s: {stats['fps']} (by phase: {phases})\n"
        f"frame time: median {stats['frame_ms_median']} ms, p95 {stats['frame_ms_p95']} ms\n"
        f"CPU per frame (all threads): {stats['cpu_ms_per_frame']} ms"
    )
