"""A spill store for generated frames: frames go to disk as they are made, memory stays flat."""

from __future__ import annotations

import atexit
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from fathom.engine.types import AudioTrack, Image, Video


def _unlink_quietly(path: str | Path) -> None:
    try:
        Path(path).unlink(missing_ok=True)
    except OSError:
        pass  # at exit there is no one left to tell


def remove_spill(path: str | Path) -> None:
    """Delete a spill file; if the system refuses (Windows keeps a file that another handle,
    say a virus scanner's, has open), try once more at exit instead of raising from a
    finaliser, where an error can only be printed."""
    try:
        Path(path).unlink(missing_ok=True)
    except OSError:
        atexit.register(_unlink_quietly, path)


class FrameStore:
    """Frames a long generation makes, written to a temporary file as they come.

    A generated clip has no file to decode from, and holding every frame would grow with its
    length; here each frame goes to disk (raw uint8, lossless) the moment it is made and is read
    back on demand, so memory stays flat however long the generation runs. The file is removed
    when the store (and every Video reading it) is gone, or at exit; the output cache counts it
    (``spilled_nbytes``) against its disk budget."""

    def __init__(
        self, width: int, height: int, channels: int = 3, folder: str | Path | None = None
    ) -> None:
        import weakref

        self.shape = (height, width, channels)
        self.frame_bytes = width * height * channels
        fd, name = tempfile.mkstemp(prefix="fathom-frames-", suffix=".raw", dir=folder)
        self.path = Path(name)
        self._file = os.fdopen(fd, "w+b")
        self._lock = threading.Lock()
        self._count = 0
        self._finalizer = weakref.finalize(self, FrameStore._cleanup, self._file, self.path)

    @staticmethod
    def _cleanup(file: Any, path: Path) -> None:
        try:
            file.close()
        finally:
            remove_spill(path)

    def __len__(self) -> int:
        return self._count

    def spilled_nbytes(self) -> int:
        """Bytes on disk: the output cache counts them against its spill budget."""
        return self._count * self.frame_bytes

    def append(self, frame: np.ndarray) -> None:
        """Add one H×W×C frame: uint8, or float in [0, 1] (rounded to 8 bits)."""
        arr = np.asarray(frame)
        if arr.dtype != np.uint8:
            arr = np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
        if arr.shape != self.shape:
            raise ValueError(f"frame shape {arr.shape} does not match the store's {self.shape}")
        with self._lock:
            self._file.seek(self._count * self.frame_bytes)
            self._file.write(np.ascontiguousarray(arr).tobytes())
            self._file.flush()  # out of this process's memory now, not at some later flush
            self._count += 1

    def array(self, index: int) -> np.ndarray:
        if not 0 <= index < self._count:
            raise IndexError(f"frame {index} is outside 0..{self._count - 1}")
        with self._lock:
            self._file.seek(index * self.frame_bytes)
            data = self._file.read(self.frame_bytes)
        return np.frombuffer(data, np.uint8).reshape(self.shape)

    def frame(self, index: int) -> Image:
        return Image(self.array(index).astype(np.float32) / 255.0)

    def video(self, fps: float, source: str = "", audio: AudioTrack | None = None) -> Video:
        h, w, _ = self.shape
        return Video(self._count, fps, self.frame, (w, h), source, audio)
