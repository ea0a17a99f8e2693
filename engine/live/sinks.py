"""Frame outputs for live sessions: a recording with real timing, a callback, a virtual camera.

A ``Sink`` is written by one output thread, one frame at a time, with the time the frame was
captured (``time.perf_counter`` seconds), so a recording keeps the timing the frames really had.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from fathom.engine.errors import MediaError
from fathom.engine.types import Image

#: Recordings are stamped in milliseconds: the container carries each frame's own time.
RECORD_TIME_BASE = Fraction(1, 1000)


class Sink:
    """A live frame output; ``write`` is called from its output thread only."""

    def write(self, frame: np.ndarray, captured_at: float) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Finish (flush a file, release a device); called once."""


def _uint8_rgb(frame: np.ndarray) -> np.ndarray:
    a = frame if frame.ndim == 3 else frame[..., None]
    a = np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a[..., :3]
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(a)


class RecordSink(Sink):
    """Writes an H.264 file (.mp4, .mov, .mkv) with variable frame timing: each frame's
    timestamp is its capture time after the first frame's, in milliseconds, so playback shows
    the frames actually produced when they happened (dropped frames leave gaps in time, not
    duplicates). The file appears under its name when the recording closes."""

    SUFFIXES = (".mp4", ".mov", ".mkv")

    def __init__(self, path: Path, quality: int = 20) -> None:
        if path.suffix.lower() not in self.SUFFIXES:
            raise MediaError(
                f"cannot record to {path.name!r}", "end the name with .mp4, .mov or .mkv", "path"
            )
        self.path = path
        self.quality = int(quality)
        self.tmp = path.with_name(f".{path.stem}.recording{path.suffix}")
        self._out: Any = None
        self._stream: Any = None
        self._t0: float | None = None
        self._last_pts = -1
        self.frames = 0

    def _open(self, width: int, height: int) -> None:
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._out = av.open(str(self.tmp), mode="w", format=_muxer(self.path.suffix))
        stream: Any = self._out.add_stream("libx264", rate=30)
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = "yuv420p"
        stream.time_base = RECORD_TIME_BASE
        stream.codec_context.time_base = RECORD_TIME_BASE
        stream.options = {"crf": str(self.quality), "preset": "veryfast"}
        self._stream = stream

    def write(self, frame: np.ndarray, captured_at: float) -> None:
        import av

        rgb = _uint8_rgb(frame)
        if self._out is None:
            self._open(rgb.shape[1], rgb.shape[0])
            self._t0 = captured_at
        assert self._t0 is not None
        s = self._stream
        pts = max(self._last_pts + 1, round((captured_at - self._t0) * 1000))
        vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        if (vf.width, vf.height) != (s.width, s.height):
            vf = vf.reformat(width=s.width, height=s.height)
        vf.pts, vf.time_base = pts, RECORD_TIME_BASE
        for packet in s.encode(vf):
            self._out.mux(packet)
        self._last_pts = pts
        self.frames += 1

    def close(self) -> None:
        if self._out is None:
            return
        for packet in self._stream.encode():
            self._out.mux(packet)
        self._out.close()
        self._out = None
        os.replace(self.tmp, self.path)


def _muxer(suffix: str) -> str | None:
    return {".mkv": "matroska"}.get(suffix.lower())


class CallbackSink(Sink):
    """Hands each frame to ``on_frame(node_id, Image)`` (the studio's live window)."""

    def __init__(self, node_id: str, on_frame: Callable[[str, Image], None]) -> None:
        self.node_id = node_id
        self.on_frame = on_frame

    def write(self, frame: np.ndarray, captured_at: float) -> None:
        self.on_frame(self.node_id, Image(frame))


class CountingSink(Sink):
    """Takes frames nobody can see (a window in a headless session) and only counts them; the
    session says so in its log and report, so nothing is dropped silently."""

    def __init__(self) -> None:
        self.frames = 0

    def write(self, frame: np.ndarray, captured_at: float) -> None:
        self.frames += 1


def virtual_camera_problem() -> str | None:
    """Why no virtual camera can be opened here, or None when pyvirtualcam has a backend."""
    try:
        import pyvirtualcam  # noqa: F401
    except ImportError:
        return "the pyvirtualcam package is not installed (pip install 'fathom-studio[live]')"
    if sys.platform.startswith("linux"):
        if not any(Path("/dev").glob("video*")):
            return (
                "no v4l2loopback device exists on this Linux machine "
                "(sudo modprobe v4l2loopback devices=1 creates one)"
            )
        return None
    if sys.platform in ("win32", "darwin"):
        return None  # OBS's virtual camera: pyvirtualcam reports if OBS is missing
    return f"this platform ({sys.platform}) has no virtual camera pyvirtualcam can drive"


class VirtualCameraSink(Sink):
    """Sends frames to a virtual camera (pyvirtualcam: v4l2loopback on Linux, OBS's camera on
    Windows and macOS) that calls and other programs can pick as a webcam."""

    def __init__(self, fps: float, device: str = "") -> None:
        why = virtual_camera_problem()
        if why is not None:
            raise MediaError(
                f"no virtual camera: {why}",
                "install a virtual camera driver, or use live.record / live.window",
                None,
            )
        self.fps = float(fps)
        self.device = device or None
        self._cam: Any = None

    def write(self, frame: np.ndarray, captured_at: float) -> None:
        import pyvirtualcam

        rgb = _uint8_rgb(frame)
        if self._cam is None:
            try:
                self._cam = pyvirtualcam.Camera(
                    width=rgb.shape[1], height=rgb.shape[0], fps=self.fps, device=self.device
                )
            except Exception as exc:  # noqa: BLE001 - each backend raises its own errors
                raise MediaError(
                    f"the virtual camera would not open ({exc})",
                    "check the virtual camera driver (v4l2loopback, OBS)",
                    None,
                ) from None
        self._cam.send(rgb)

    def close(self) -> None:
        if self._cam is not None:
            self._cam.close()
