"""Frame sources for live sessions: a file played at its own rate, a camera, a screen, a URL.

Each ``Capture`` hands out H×W×3 float32 frames in [0, 1] from ``read`` (blocking until the next
frame is due; None when the source has ended) and is read by one capture thread. Opening one
that cannot work raises ``MediaError`` naming the parameter and the fix, so the node that owns
it reports a clear error before anything runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from fathom.engine.errors import MediaError


class Capture:
    """A live frame source: ``read`` blocks until the next frame, None at the end."""

    #: Frames per second the source delivers (a file's own rate, a camera's reported one).
    fps: float = 30.0

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def resync(self) -> None:
        """After a pause between reads (the session's warm-up): carry on from now, without
        catching up on what would have been shown meanwhile. A device needs nothing."""

    def close(self) -> None:
        """Release the device or file (called once, from the capture thread's end)."""


def _to_float(rgb: np.ndarray) -> np.ndarray:
    """uint8 H×W×3 → float32 [0, 1]."""
    return np.ascontiguousarray(rgb, dtype=np.float32) * np.float32(1 / 255)


class FileCapture(Capture):
    """A video file or image sequence played in real time at its own frame rate: frame k is
    handed out at ``start + k / fps`` (a slow reader gets the frame due now, never a
    backlog), from the first frame again at the end when ``loop`` is set."""

    def __init__(self, frames: Any, fps: float, loop: bool, clock: Any = time.perf_counter) -> None:
        """``frames`` is a ``Video`` (anything with ``len`` and ``frame(i).data``)."""
        if len(frames) == 0:
            raise MediaError("the file has no frames", "choose a video with frames", "path")
        self.frames, self.fps, self.loop = frames, float(fps), bool(loop)
        self._clock = clock
        self._start: float | None = None
        self._shown = -1  # the last frame number handed out (counting across loops)

    def resync(self) -> None:
        if self._start is not None:
            self._start = self._clock() - (self._shown + 1) / self.fps

    def read(self) -> np.ndarray | None:
        now = self._clock()
        if self._start is None:
            self._start = now
        due = max(self._shown + 1, int((now - self._start) * self.fps))
        n = len(self.frames)
        if not self.loop and due >= n:
            return None
        wait = self._start + due / self.fps - now
        if wait > 0:
            time.sleep(wait)
        self._shown = due
        data = self.frames.frame(due % n).data
        return data[..., :3] if data.ndim == 3 else np.repeat(data[..., None], 3, axis=2)


def camera_target(device: str) -> int | str:
    """OpenCV's name for a camera given as an index ("0"), a device path, or a name that a
    Linux video4linux device reports (matched without case)."""
    text = device.strip()
    if text.isdigit():
        return int(text)
    if Path(text).exists():
        return text
    names = camera_names()
    for index, name in names.items():
        if text.lower() in name.lower():
            return index
    found = ", ".join(f"{i}: {n}" for i, n in names.items()) or "none found"
    raise MediaError(
        f"no camera is called {text!r} (cameras: {found})",
        "give a camera index (0, 1...) or part of a listed name",
        "device",
    )


def camera_names() -> dict[int, str]:
    """Linux video4linux cameras by index; empty elsewhere (OpenCV cannot list cameras)."""
    out: dict[int, str] = {}
    for entry in sorted(Path("/sys/class/video4linux").glob("video*")):
        try:
            out[int(entry.name[5:])] = (entry / "name").read_text().strip()
        except (OSError, ValueError):
            continue
    return out


class CameraCapture(Capture):
    """A camera through OpenCV (an index, a device path or a name)."""

    def __init__(self, device: str, width: int = 0, height: int = 0) -> None:
        import cv2

        target = camera_target(device)
        cap = cv2.VideoCapture(target)
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if not cap.isOpened():
            cap.release()
            names = camera_names()
            found = ", ".join(f"{i}: {n}" for i, n in names.items()) or "none found"
            raise MediaError(
                f"no camera could be opened at {device!r} (cameras: {found})",
                "connect a camera, or use live.file to run the graph from a video",
                "device",
            )
        self._cap = cap
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0) or 30.0

    def read(self) -> np.ndarray | None:
        import cv2

        ok, frame = self._cap.read()
        if not ok:
            return None
        return _to_float(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))

    def close(self) -> None:
        self._cap.release()


def parse_region(text: str) -> tuple[int, int, int, int] | None:
    """A region as x,y,width,height in pixels; None for a whole monitor (empty text)."""
    if not text.strip():
        return None
    try:
        x, y, w, h = (int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise MediaError(
            f"region {text!r} is not x,y,width,height", "e.g. 0,0,1280,720", "region"
        ) from None
    if w <= 0 or h <= 0:
        raise MediaError(
            f"region {text!r} has no area", "give a positive width and height", "region"
        )
    return x, y, w, h


class ScreenCapture(Capture):
    """A screen region (or a whole monitor) through mss, at up to ``fps`` frames a second."""

    def __init__(self, region: str, monitor: int = 1, fps: float = 30.0) -> None:
        box = parse_region(region)
        try:
            import mss
        except ImportError as exc:
            raise MediaError(
                f"screen capture needs the mss package ({exc})",
                "pip install 'fathom-studio[live]' (or pip install mss)",
                "region",
            ) from None
        try:
            self._grabber: Any = mss.mss()
            monitors = self._grabber.monitors
        except Exception as exc:  # noqa: BLE001 - mss raises its own error types per platform
            raise MediaError(
                f"no screen to capture ({type(exc).__name__}: {exc})",
                "run where a display is available (DISPLAY set), or use live.file",
                "region",
            ) from None
        if not 0 <= monitor < len(monitors):
            raise MediaError(
                f"there is no monitor {monitor} (0: all, 1..{len(monitors) - 1})",
                "choose a listed monitor",
                "monitor",
            )
        m = monitors[monitor]
        self._box = (
            {"left": m["left"], "top": m["top"], "width": m["width"], "height": m["height"]}
            if box is None
            else {"left": box[0], "top": box[1], "width": box[2], "height": box[3]}
        )
        self.fps = float(fps)
        self._next = time.perf_counter()

    def read(self) -> np.ndarray | None:
        wait = self._next - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        self._next = max(self._next + 1 / self.fps, time.perf_counter())
        shot = np.asarray(self._grabber.grab(self._box))  # BGRA
        return _to_float(shot[..., 2::-1])

    def close(self) -> None:
        self._grabber.close()


class StreamCapture(Capture):
    """An RTSP/HTTP/RTMP (or any FFmpeg) URL through PyAV; ``timeout`` seconds to open and
    between packets, so a dead URL fails instead of hanging."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        import av

        if not url.strip():
            raise MediaError("no URL given", "e.g. rtsp://camera.local/stream", "url")
        options = {"rtsp_transport": "tcp"} if url.startswith("rtsp") else {}
        try:
            self._container: Any = av.open(url, options=options, timeout=(timeout, timeout))
            stream = self._container.streams.video[0]
        except Exception as exc:  # noqa: BLE001 - FFmpeg reports network failures many ways
            raise MediaError(
                f"cannot open the stream {url!r} within {timeout:g} s "
                f"({type(exc).__name__}: {exc})",
                "check the URL and that the stream is running (try it in ffplay or VLC)",
                "url",
            ) from None
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else 30.0
        self._frames = self._container.decode(stream)

    def read(self) -> np.ndarray | None:
        try:
            frame = next(self._frames)
        except StopIteration:
            return None
        return _to_float(frame.to_ndarray(format="rgb24"))

    def close(self) -> None:
        self._container.close()
