"""Media decoding and encoding for video nodes: frame-indexed readers, writers, audio tracks.

Readers map frame ``i`` to the i-th *presented* frame, found from packet timestamps without
decoding, so variable-frame-rate files, B-frames and seeking all agree on what frame 7 is.
Writers stream: frames and audio are encoded as they arrive, so memory does not grow with length.
Everything here raises ``MediaError`` (a message and a fix); nodes turn it into a NodeError.
Every reader checks the frame size its file declares against the engine's image size limit
(``codecs.check_pixels``) before it decodes a frame.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from fathom.engine.errors import FileProblem, MediaError
from fathom.engine.imaging.codecs import check_image_file, check_pixels, open_pillow
from fathom.engine.media.timing import (
    average_fps,
    declared_seconds,
    keyframe_before,
    list_sequence,
    presentation_index,
    sequence_pattern,
    truncated,
)
from fathom.engine.types import AudioTrack, Image, Video

#: Suffixes decoded with Pillow rather than FFmpeg (FFmpeg cannot decode animated WebP).
PILLOW_ANIMATED = (".webp",)
INTERPOLATION = {
    "nearest": "POINT",
    "bilinear": "BILINEAR",
    "bicubic": "BICUBIC",
    "lanczos": "LANCZOS",
    "area": "AREA",
}


# --------------------------------------------------------------------------------------------
# Pure helpers (unit-tested without files)


# --------------------------------------------------------------------------------------------
# Readers: each gives length, fps, size, codec, ``decoded`` and ``array(i)`` (uint8/uint16 RGB)


class _LRU:
    """A few recent frames, so scrubbing back one frame or re-reading a seek's target is free
    and memory stays bounded by ``capacity`` frames."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._d: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        v = self._d.get(key)
        if v is not None:
            self._d.move_to_end(key)
        return v

    def put(self, key: Any, value: Any) -> None:
        if self.capacity <= 0:
            return
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.capacity:
            self._d.popitem(last=False)

    def clear(self) -> None:
        self._d.clear()


def av_errors() -> tuple[type[BaseException], ...]:
    import av

    return (av.error.FFmpegError, av.error.InvalidDataError, OSError, EOFError, ValueError)


class AVReader:
    """A container file's first video stream, by presented-frame index.

    Sequential reads continue the running decoder; a jump backwards, or forward past the next
    keyframe, seeks to the keyframe before the target and decodes forward. ``decoded`` counts
    frames out of the decoder, so a test can prove no frame was decoded twice.
    """

    #: Bytes of decoded frames the per-reader cache may hold (about 20 frames of 1080p).
    CACHE_BYTES = 64 << 20

    def __init__(self, path: Path, cache_frames: int | None = None) -> None:
        import av

        self.path = Path(path)
        self.decoded = 0
        self._lock = threading.Lock()
        try:
            with av.open(str(self.path)) as c:
                if not c.streams.video:
                    kinds = ", ".join(sorted({s.type for s in c.streams})) or "nothing"
                    raise MediaError(
                        f"{self.path.name} has no video stream (it holds {kinds})",
                        "load a file with a video track",
                    )
                s = c.streams.video[0]
                self.time_base = Fraction(s.time_base or Fraction(1, 90000))
                self.codec = s.codec_context.name
                self.size = (int(s.codec_context.width), int(s.codec_context.height))
                # Before any frame is decoded: a tiny file can declare 20000×20000 frames.
                check_pixels(self.path.name, *self.size, error=MediaError)
                declared = float(s.average_rate) if s.average_rate else None
                pts, keys, end, preroll = [], [], 0, 0
                for packet in c.demux(s):
                    stamp = packet.pts if packet.pts is not None else packet.dts
                    # Discard packets are an edit list's pre-roll (an `ffmpeg -ss -c copy` cut,
                    # many camera files): decoded for reference, never shown.
                    if packet.is_discard and packet.size:
                        preroll += 1
                        continue
                    if stamp is None or packet.size == 0:
                        continue
                    pts.append(int(stamp))
                    end = max(end, int(stamp) + int(packet.duration or 0))
                    if packet.is_keyframe:
                        keys.append(int(stamp))
                self.audio_stream = bool(c.streams.audio)
                declared_frames = int(s.frames or 0)
                declared_s = declared_seconds(s.duration, self.time_base, s.metadata)
        except MediaError:
            raise
        except av_errors() as exc:
            raise MediaError(
                f"{self.path.name} cannot be decoded as video: {exc}",
                "check that the file is complete (re-export or re-download it)",
            ) from None
        self.pts = presentation_index(pts)
        if not self.pts or self.size[0] <= 0 or self.size[1] <= 0:
            raise MediaError(
                f"{self.path.name} cannot be decoded as video: its video stream holds no frames",
                "check that the file is complete",
            )
        held = float((max(end, self.pts[-1]) - self.pts[0]) * self.time_base)
        # Some containers (Matroska's DURATION tag) give the stream's end time, not its length:
        # a stream that starts late is cut only if it falls short by both readings.
        ends = float(max(end, self.pts[-1]) * self.time_base)
        short = truncated(declared_s, held, len(self.pts)) and truncated(
            declared_s, ends, len(self.pts)
        )
        if declared_frames > len(self.pts) + preroll or short:
            said = (
                f"{declared_frames} frames"
                if declared_frames > len(self.pts)
                else f"{declared_s:.2f} s"
            )
            raise MediaError(
                f"{self.path.name} cannot be decoded as video: it is truncated "
                f"(its header says {said}, the file holds {len(self.pts)} frames, "
                f"{held:.2f} s)",
                "re-export or re-download it; to keep what is "
                "there, remux it: `ffmpeg -i in.mkv -c copy out.mkv`",
            )
        where = {p: i for i, p in enumerate(self.pts)}
        self._where = where
        self.keyframes = sorted({where[k] for k in keys if k in where}) or [0]
        self.length = len(self.pts)
        #: Seconds on the container's clock where frame 0 shows (sound is aligned to it).
        self.start_time = float(self.pts[0] * self.time_base)
        self.fps = average_fps(self.pts, self.time_base, declared)
        if cache_frames is None:  # 4:2:0 frames: 1.5 bytes a pixel
            per_frame = max(1, self.size[0] * self.size[1] * 3 // 2)
            cache_frames = max(2, min(32, self.CACHE_BYTES // per_frame))
        self._cache = _LRU(cache_frames)
        self._container: Any = None
        self._stream: Any = None
        self._frames: Iterator[Any] | None = None
        self._pos: int | None = None  # index of the last frame the live decoder gave

    def close(self) -> None:
        with self._lock:
            if self._container is not None:
                self._container.close()
            self._container = self._frames = None
            self._pos = None
            self._cache.clear()

    def __del__(self) -> None:
        try:
            if self._container is not None:
                self._container.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _open(self) -> None:
        import av

        self._container = av.open(str(self.path))
        self._stream = self._container.streams.video[0]
        # Slice + frame threads: decoding a 1080p stream is otherwise the pipeline's slowest part.
        self._stream.thread_type = "AUTO"

    def _index_of(self, frame: Any) -> int:
        stamp = frame.pts
        if stamp is None:
            raise MediaError(
                f"{self.path.name}: a decoded frame has no timestamp",
                "re-encode the file (e.g. `ffmpeg -i in -c:v libx264 out.mp4`)",
            )
        j = self._where.get(int(stamp))
        if j is None:  # a stamp the demuxer never announced: place it by time
            j = max(0, bisect.bisect_right(self.pts, int(stamp)) - 1)
        return j

    def _next(self) -> Any:
        assert self._frames is not None
        try:
            fr = next(self._frames)
        except StopIteration:
            return None
        except av_errors() as exc:
            self._frames, self._pos = None, None
            raise MediaError(
                f"{self.path.name} is damaged: decoding failed ({exc})",
                "check that the file is complete (re-export or re-download it)",
            ) from None
        self.decoded += 1
        j = self._index_of(fr)
        self._cache.put(j, fr)
        self._pos = j
        return fr

    def av_frame(self, index: int) -> Any:
        """The decoded ``av.VideoFrame`` of presented frame ``index`` (native pixel format)."""
        if not 0 <= index < self.length:
            raise IndexError(f"frame {index} is outside 0..{self.length - 1}")
        with self._lock:
            hit = self._cache.get(index)
            if hit is not None:
                return hit
            if self._container is None:
                self._open()
            pos = self._pos
            key: int | None = None
            if not (
                self._frames is not None
                and pos is not None
                and pos < index
                and keyframe_before(self.keyframes, index) <= pos
            ):
                key = keyframe_before(self.keyframes, index)
                self._seek_to(key)
            fresh, tries = key is not None, 0
            while True:
                fr = self._next()
                if fr is None:
                    raise MediaError(
                        f"frame {index} of {self.path.name} could not be decoded "
                        "(the stream ends early)",
                        "check that the file is complete",
                    )
                at = self._pos
                assert at is not None  # _next() sets it for every frame it returns
                if fresh and at > index and tries < 3:
                    # The seek landed after the target (demuxers that seek by dts can):
                    # start from the keyframe before, finally from the first frame.
                    tries += 1
                    earlier = [k for k in self.keyframes if key is not None and k < key]
                    key = earlier[-1] if earlier and tries < 3 else 0
                    self._seek_to(key)
                    continue
                fresh = False
                if at >= index:
                    # Equal, or a stamp gap: the nearest later frame is what plays then.
                    return self._cache.get(index) or fr

    def _seek_to(self, key: int) -> None:
        self._container.seek(self.pts[key], stream=self._stream, backward=True, any_frame=False)
        self._frames = iter(self._container.decode(self._stream))
        self._pos = None

    def array(
        self, index: int, size: tuple[int, int] | None = None, interpolation: str = "area"
    ) -> np.ndarray:
        """uint8 H×W×3 RGB, scaled inside FFmpeg when ``size`` differs (cheaper than numpy)."""
        fr = self.av_frame(index)
        w, h = size or self.size
        interp = INTERPOLATION[interpolation] if (w, h) != (fr.width, fr.height) else None
        return reformat(fr, w, h, "rgb24", interp).to_ndarray()


#: FFmpeg refuses a frame unless (width + 128) × (height + 128) < 2³¹ / 8 (its image size check;
#: 16,255² is the largest square).
FFMPEG_MAX_AREA = (1 << 31) // 8


def ffmpeg_size_problem(width: int, height: int) -> str | None:
    """Why FFmpeg cannot hold a ``width`` × ``height`` frame (None: it can)."""
    if (width + 128) * (height + 128) < FFMPEG_MAX_AREA:
        return None
    return (
        f"{width}×{height} is larger than FFmpeg can hold in one frame ((width + 128) × "
        "(height + 128) must stay under 2²⁸; 16255×16255 is the largest square)"
    )


def reformat(
    frame: Any, width: int, height: int, fmt: str | None = None, interpolation: Any = None
) -> Any:
    """Convert/scale an ``av.VideoFrame`` with a converter of its own.

    ``VideoFrame.reformat`` reuses one converter per frame object and runs it without the GIL:
    two threads converting the same cached frame (the GUI player's worker and a render) crashed
    the process. A fresh ``VideoReformatter`` per call costs microseconds."""
    from av.video.reformatter import VideoReformatter

    return VideoReformatter().reformat(frame, width, height, fmt, interpolation=interpolation)


class PillowReader:
    """Animated WebP (which FFmpeg cannot decode): Pillow seeks frame by frame."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.decoded = 0
        self.codec = "webp"
        self.audio_stream = False
        self._lock = threading.Lock()
        try:
            # Lazy open, size checked before the last frame is decoded to find the length.
            self._im = open_pillow(self.path, MediaError)
            self.length = int(getattr(self._im, "n_frames", 1))
            # Timing is known once a frame is loaded; the last frame's end is the total.
            self._im.seek(self.length - 1)
            self._im.load()
            total = float(self._im.info.get("timestamp") or 0) + float(
                self._im.info.get("duration") or 0
            )
            self._im.seek(0)
        except MediaError:
            raise
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types on bad files
            raise MediaError(
                f"{self.path.name} cannot be decoded as an animation: {exc}",
                "check that the file is complete",
            ) from None
        self.size = self._im.size
        self.fps = 1000.0 * self.length / total if total > 0 else 24.0
        self.keyframes = [0]

    def close(self) -> None:
        self._im.close()

    def array(
        self, index: int, size: tuple[int, int] | None = None, interpolation: str = "area"
    ) -> np.ndarray:
        with self._lock:
            self._im.seek(index)
            arr = np.asarray(self._im.convert("RGB"), np.uint8)
            self.decoded += 1
        return _scaled(arr, size, interpolation)


class SequenceReader:
    """Numbered image files as frames; ``read`` decodes one file to float [0, 1] (the node
    passes the image loader so EXR and 16-bit PNG read exactly as single images do)."""

    def __init__(
        self, files: Sequence[Path], fps: float, read: Callable[[Path], np.ndarray]
    ) -> None:
        self.files = list(files)
        self.fps = float(fps)
        self.length = len(self.files)
        self.decoded = 0
        self.codec = self.files[0].suffix.lower().lstrip(".") if self.files else ""
        self.audio_stream = False
        self.keyframes = [0]
        self._read = read
        first = self._decode(self.files[0])
        self.size = (int(first.shape[1]), int(first.shape[0]))

    def close(self) -> None:
        pass

    def _decode(self, path: Path) -> np.ndarray:
        """One file of the sequence, its header's size checked before ``read`` decodes it; a
        codec's FileProblem becomes the MediaError every reader raises."""
        try:
            check_image_file(path, MediaError)
            return self._read(path)
        except FileProblem as exc:
            raise MediaError(str(exc), exc.fix or "check the file", port="path") from None

    def image(
        self, index: int, size: tuple[int, int] | None = None, interpolation: str = "area"
    ) -> np.ndarray:
        data = self._decode(self.files[index])
        self.decoded += 1
        if data.shape[1::-1] != self.size:
            raise MediaError(
                f"{self.files[index].name} is {data.shape[1]}×{data.shape[0]}, "
                f"the sequence is {self.size[0]}×{self.size[1]}",
                "make every image of the sequence the same size",
            )
        return _scaled(data, size, interpolation)


def _scaled(arr: np.ndarray, size: tuple[int, int] | None, interpolation: str) -> np.ndarray:
    if size is None or size == (arr.shape[1], arr.shape[0]):
        return arr
    import cv2

    names = {
        "nearest": "INTER_NEAREST_EXACT",
        "bilinear": "INTER_LINEAR",
        "bicubic": "INTER_CUBIC",
        "lanczos": "INTER_LANCZOS4",
        "area": "INTER_AREA",
    }
    out = cv2.resize(arr, size, interpolation=getattr(cv2, names[interpolation]))
    return out if out.ndim == arr.ndim else out[:, :, None]


def open_reader(path: Path, fps: float, read_image: Callable[[Path], np.ndarray]) -> Any:
    """The right reader for a file, a folder of images, or a numbered pattern."""
    if path.is_dir() or sequence_pattern(str(path)) is not None:
        files = list_sequence(path)
        if not files:
            raise MediaError(
                f"no images match {path}",
                "point `path` at a folder of images or a pattern like "
                "frames/%04d.png that matches existing files",
            )
        return SequenceReader(files, fps, read_image)
    if not path.is_file():
        raise MediaError(f"file {path} does not exist", "point `path` at an existing video file")
    if path.suffix.lower() in PILLOW_ANIMATED:
        return PillowReader(path)
    return AVReader(path)


# --------------------------------------------------------------------------------------------
# The Video a file becomes


class FileVideo(Video):
    """A Video read from a file, keeping the file's fast paths: slicing stays a file view, and
    ``scaled`` resizes inside FFmpeg; a writer can take ``av_frame`` and skip RGB altogether."""

    def __init__(
        self,
        reader: Any,
        start: int = 0,
        length: int | None = None,
        size: tuple[int, int] | None = None,
        interpolation: str = "area",
        audio: AudioTrack | None = None,
        source: str = "",
    ) -> None:
        self.reader = reader
        self.start = start
        self.interpolation = interpolation
        n = reader.length - start if length is None else length
        super().__init__(n, reader.fps, self._read, size or tuple(reader.size), source, audio)

    @property
    def decoded(self) -> int:
        return int(self.reader.decoded)

    @property
    def codec(self) -> str:
        return str(self.reader.codec)

    def _native_size(self) -> bool:
        return self.size == tuple(self.reader.size)

    def _read(self, i: int) -> Image:
        size = None if self._native_size() else self.size
        if isinstance(self.reader, SequenceReader):
            return Image(self.reader.image(self.start + i, size, self.interpolation))
        arr = self.reader.array(self.start + i, size, self.interpolation)
        return Image(np.multiply(arr, np.float32(1 / 255), dtype=np.float32))

    def av_frame(self, i: int) -> Any:
        """The frame as an ``av.VideoFrame`` at this video's size, or None when the source is
        not FFmpeg-decoded (then read ``frame``)."""
        if not isinstance(self.reader, AVReader):
            return None
        if not 0 <= i < self.length:
            raise IndexError(f"frame {i} is outside 0..{self.length - 1}")
        fr = self.reader.av_frame(self.start + i)
        if not self._native_size():
            w, h = self.size
            fr = reformat(fr, w, h, None, INTERPOLATION[self.interpolation])
        return fr

    def _view(
        self,
        start: int,
        length: int,
        size: tuple[int, int] | None,
        interpolation: str,
        audio: AudioTrack | None,
    ) -> FileVideo:
        return FileVideo(self.reader, start, length, size, interpolation, audio, self.source)

    def slice(self, start: int, stop: int) -> Video:
        start, stop = max(0, start), min(self.length, stop)
        n = max(0, stop - start)
        audio = (
            None
            if self.audio is None
            else self.audio.slice(start / self.fps, (start + n) / self.fps)
        )
        return self._view(self.start + start, n, self.size, self.interpolation, audio)

    def scaled(self, width: int, height: int, interpolation: str = "area") -> Video:
        """Every frame resized to width×height (aspect not kept), done by FFmpeg's scaler."""
        return self._view(self.start, self.length, (width, height), interpolation, self.audio)

    def with_audio(self, audio: AudioTrack | None) -> Video:
        return self._view(self.start, self.length, self.size, self.interpolation, audio)


# --------------------------------------------------------------------------------------------
# Audio: decode a lazy AudioTrack as a stream of float32 channels×n chunks


# --------------------------------------------------------------------------------------------
# Writers


# --------------------------------------------------------------------------------------------
# Spill store for generated frames
