"""Video writers: containers through PyAV and image sequences, encoding frames as they arrive."""

from __future__ import annotations

import contextvars
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from fathom.engine.errors import MediaError
from fathom.engine.media.audio import audio_chunks, channel_layout
from fathom.engine.media.readers import ffmpeg_size_problem, reformat
from fathom.engine.media.timing import sequence_name, sequence_pattern
from fathom.engine.types import AudioTrack

#: Container suffixes PyAV writes, with the video codec and (None: no sound) audio codec.
CONTAINERS: dict[str, tuple[str, str | None]] = {
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "aac"),
    ".webm": ("libvpx-vp9", "libopus"),
    ".gif": ("gif", None),
    ".webp": ("libwebp_anim", None),
}


X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)


def to_uint8(data: np.ndarray) -> np.ndarray:
    """[0, 1] float to uint8, rounded and saturated (OpenCV's pass is ~4× numpy's); negatives
    are clamped first because that pass takes absolute values."""
    import cv2

    positive = np.maximum(np.asarray(data, np.float32), np.float32(0))
    return cv2.convertScaleAbs(positive, alpha=255.0)


def prefetch(read: Callable[[int], Any], count: int, depth: int = 3) -> Generator[Any, None, None]:
    """``read(0..count-1)`` in order, computed up to ``depth`` items ahead on a worker thread:
    decoding and pixel work (which release the GIL) overlap the encoder, and at most
    ``depth`` frames wait in memory. Errors surface at the item that raised them."""
    import queue

    q: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def work() -> None:
        for i in range(count):
            if stop.is_set():
                return
            try:
                item = (True, read(i))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                item = (False, exc)
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if not item[0]:
                return

    # With the caller's context: frames a lazy video computes here are still the calling
    # node's work (their progress and cancels name it, see engine.context.node_running).
    run_in_context = contextvars.copy_context().run
    worker = threading.Thread(
        target=run_in_context, args=(work,), name="frame-prefetch", daemon=True
    )
    worker.start()
    try:
        for _ in range(count):
            ok, value = q.get()
            if not ok:
                raise value
            yield value
    finally:
        stop.set()
        worker.join()


_STAMP_LOCK = threading.Lock()


class ContainerWriter:
    """Streams frames (and audio in step with them) into one container file."""

    def __init__(
        self,
        path: Path,
        size: tuple[int, int],
        fps: float,
        quality: int = 20,
        preset: str = "medium",
        audio: AudioTrack | None = None,
    ) -> None:
        import av

        suffix = path.suffix.lower()
        vcodec, acodec = CONTAINERS[suffix]
        self.kind = vcodec
        w, h = size
        if vcodec in ("libx264", "libvpx-vp9"):  # 4:2:0 needs even sides
            w, h = max(2, w - w % 2), max(2, h - h % 2)
        self.size = (w, h)
        problem = ffmpeg_size_problem(w, h)
        if problem is not None:
            raise MediaError(
                problem, "make the video smaller (video.resize), or save a PNG or EXR sequence"
            )
        self._out = av.open(str(path), mode="w", format=_muxer(suffix))
        try:
            self._setup(vcodec, acodec, fps, quality, preset, audio)
        except BaseException:
            self._out.close()  # a bad option must not leave the temp file open
            raise

    def _setup(
        self,
        vcodec: str,
        acodec: str | None,
        fps: float,
        quality: int,
        preset: str,
        audio: AudioTrack | None,
    ) -> None:
        w, h = self.size
        rate = Fraction(fps).limit_denominator(1001)
        self._rate = rate
        v: Any = self._out.add_stream(vcodec, rate=rate)  # a VideoStream (PyAV types a union)
        v.width, v.height = w, h
        v.thread_type = "AUTO"
        if vcodec == "libx264":
            v.pix_fmt = "yuv420p"
            v.options = {"crf": str(quality), "preset": preset}
        elif vcodec == "libvpx-vp9":
            v.pix_fmt = "yuv420p"
            v.options = {
                "crf": str(quality),
                "b": "0",
                "row-mt": "1",
                "deadline": "good",
                "cpu-used": "4" if preset in X264_PRESETS[:5] else "2",
            }
        elif vcodec == "gif":
            v.pix_fmt = "rgb8"
        else:  # animated WebP: quality 0 is lossless, like CRF 0
            v.pix_fmt = "yuv420p" if quality else "bgra"
            v.options = (
                {"lossless": "1"} if quality == 0 else {"quality": str(max(0, 100 - 2 * quality))}
            )
        self._v = v
        self._count = 0
        self._a: Any = None
        self._audio: Iterator[np.ndarray] | None = None
        self.samples = 0
        if audio is not None and acodec is not None:
            self._arate = 48000 if acodec == "libopus" else int(audio.sample_rate)
            self._ach = int(audio.channels)
            a: Any = self._out.add_stream(acodec, rate=self._arate)  # an AudioStream
            a.layout = channel_layout(self._ach)
            self._a = a
            self._audio = audio_chunks(audio, self._arate, self._ach)
            self._abuf: list[np.ndarray] = []

    def write(self, frame: Any) -> None:
        """An ``av.VideoFrame`` (any format or size: the encoder converts) or a float [0, 1]
        or uint8 H×W×C array."""
        import av

        if not isinstance(frame, av.VideoFrame):
            arr = frame if frame.dtype == np.uint8 else to_uint8(frame)
            if arr.ndim == 2 or arr.shape[2] == 1:
                arr = np.repeat(arr.reshape(arr.shape[0], arr.shape[1], 1), 3, axis=2)
            w, h = self.size
            arr = np.ascontiguousarray(arr[:h, :w, :4])
            frame = av.VideoFrame.from_ndarray(arr, format="rgba" if arr.shape[2] == 4 else "rgb24")
        w, h = self.size
        if (frame.width, frame.height) != (w, h) or frame.format.name != self._v.pix_fmt:
            frame = reformat(frame, w, h, self._v.pix_fmt)
        with _STAMP_LOCK:  # a cached decoder frame may be stamped by two writers at once
            frame.pts = self._count
            frame.time_base = 1 / self._rate
            packets = self._v.encode(frame)
        for packet in packets:
            self._out.mux(packet)
        self._count += 1
        self._feed_audio(round(self._count / self._rate * self._arate) if self._a else 0)

    def _feed_audio(self, upto: int) -> None:
        import av

        if self._a is None or self._audio is None:
            return
        while self.samples < upto:
            try:
                block = next(self._audio)
            except StopIteration:
                self._audio = None
                return
            af = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(block), format="fltp", layout=channel_layout(self._ach)
            )
            af.sample_rate = self._arate
            af.pts = self.samples
            af.time_base = Fraction(1, self._arate)
            self.samples += block.shape[1]
            for packet in self._a.encode(af):
                self._out.mux(packet)

    def close(self) -> None:
        for packet in self._v.encode():
            self._out.mux(packet)
        if self._a is not None:
            self._feed_audio(1 << 62)
            for packet in self._a.encode():
                self._out.mux(packet)
        self._out.close()

    def abort(self) -> None:
        try:
            self._out.close()
        except Exception:  # noqa: BLE001 - the file is thrown away anyway
            pass


def _muxer(suffix: str) -> str | None:
    return {".mkv": "matroska", ".webp": "webp", ".gif": "gif"}.get(suffix)


class SequenceWriter:
    """Numbered images into a fresh temporary folder; ``commit`` swaps it in for the target
    folder, so the target never holds a half-written sequence."""

    def __init__(self, pattern: Path, write: Callable[[Path, np.ndarray], None]) -> None:
        pattern = Path(os.path.abspath(pattern))  # "f_%04d.png" alone still has a folder
        self.folder = pattern.parent
        self.name = pattern.name
        self._write = write
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(
            tempfile.mkdtemp(prefix=f".{self.folder.name}.", suffix=".tmp", dir=self.folder.parent)
        )
        self.count = 0

    def write(self, index: int, data: np.ndarray) -> None:
        self._write(self.tmp / sequence_name(self.name, index), data)
        self.count += 1

    def commit(self) -> None:
        os.chmod(self.tmp, 0o777 & ~_umask())
        old = None
        if self.folder.exists():
            old = Path(
                tempfile.mkdtemp(
                    prefix=f".{self.folder.name}.", suffix=".old", dir=self.folder.parent
                )
            )
            os.replace(self.folder, old / "x")
        os.replace(self.tmp, self.folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def foreign_files(folder: Path, pattern: str) -> list[str]:
    """Files in an existing output folder that a sequence render did not make: replacing the
    folder would delete them, so the node refuses instead."""
    if not folder.is_dir():
        return []
    rx = sequence_pattern(pattern)
    return sorted(p.name for p in folder.iterdir() if rx is None or not rx.match(p.name))
