"""Media decoding and encoding for video nodes: frame-indexed readers, writers, audio tracks.

Readers map frame ``i`` to the i-th *presented* frame, found from packet timestamps without
decoding, so variable-frame-rate files, B-frames and seeking all agree on what frame 7 is.
Writers stream: frames and audio are encoded as they arrive, so memory does not grow with length.
Everything here raises ``MediaError`` (a message and a fix); nodes turn it into a NodeError.
"""

from __future__ import annotations

import bisect
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from engine.types import AudioTrack, Image, Video

#: Container suffixes PyAV writes, with the video codec and (None: no sound) audio codec.
CONTAINERS: dict[str, tuple[str, str | None]] = {
    ".mp4": ("libx264", "aac"), ".mov": ("libx264", "aac"), ".mkv": ("libx264", "aac"),
    ".webm": ("libvpx-vp9", "libopus"), ".gif": ("gif", None), ".webp": ("libwebp_anim", None),
}
SEQUENCE_SUFFIXES = (".png", ".exr", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
#: Suffixes decoded with Pillow rather than FFmpeg (FFmpeg cannot decode animated WebP).
PILLOW_ANIMATED = (".webp",)
INTERPOLATION = {"nearest": "POINT", "bilinear": "BILINEAR", "bicubic": "BICUBIC",
                 "lanczos": "LANCZOS", "area": "AREA"}
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow")
_PATTERN = re.compile(r"%(0?)(\d*)d")


class MediaError(ValueError):
    """A file cannot be read or written; ``fix`` tells the user what to do about it."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


# --------------------------------------------------------------------------------------------
# Pure helpers (unit-tested without files)


def presentation_index(pts: Sequence[int]) -> list[int]:
    """Packet timestamps (decode order) to the sorted presentation timestamps, duplicates
    dropped: entry i is the timestamp of frame i."""
    return sorted(set(pts))


def keyframe_before(keyframes: Sequence[int], index: int) -> int:
    """The last keyframe index at or before ``index`` (0 if none is marked)."""
    k = bisect.bisect_right(keyframes, index) - 1
    return keyframes[k] if k >= 0 else 0


def average_fps(pts: Sequence[int], time_base: Fraction, declared: float | None) -> float:
    """Frames per second over the whole clip: frame i shows at about i / fps even when the
    spacing varies. A declared average within 1% wins, so 30000/1001 stays exact."""
    n = len(pts)
    measured = None
    if n > 1 and pts[-1] > pts[0]:
        measured = (n - 1) / float((pts[-1] - pts[0]) * time_base)
    if declared and declared > 0 and (measured is None or abs(declared - measured) <= 0.01 *
                                      measured):
        return float(declared)
    return float(measured or declared or 24.0)


def declared_seconds(duration: int | None, time_base: Fraction,
                     metadata: dict[str, str]) -> float | None:
    """The stream length the file's header claims (Matroska keeps it as a DURATION tag)."""
    if duration:
        return float(duration * time_base)
    tag = metadata.get("DURATION") or metadata.get("duration")
    m = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d*)?)", tag or "")
    if m is None:
        return None
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def truncated(declared: float | None, held: float, frames: int) -> bool:
    """Whether packets cover clearly less than the header's duration: a cut download. Two
    average frames and 2% of slack absorb last-frame durations a demuxer does not know."""
    if not declared or frames < 2:
        return False
    per_frame = held / max(1, frames - 1)
    return declared - held > 2 * per_frame + 0.02 * declared


def sample_bounds(track_spans: Sequence[float], rate: int) -> list[tuple[int, int]]:
    """Sample ranges of consecutive spans (seconds), rounded on the running total so joined
    spans never drift by a sample per cut."""
    out, t = [], 0.0
    for d in track_spans:
        a, b = round(t * rate), round((t + d) * rate)
        out.append((a, b))
        t += d
    return out


def sequence_pattern(text: str) -> re.Pattern[str] | None:
    """A printf (``%04d``) or glob (``*``) file-name pattern as a regex with one number group,
    or None when ``text`` names a single file."""
    name = Path(text).name
    if _PATTERN.search(name):
        parts = _PATTERN.split(name)
        rx = ""
        for k in range(0, len(parts), 3):
            rx += re.escape(parts[k])
            if k + 2 < len(parts):
                width = parts[k + 2]
                rx += rf"(\d{{{width},}})" if parts[k + 1] == "0" and width else r"(\d+)"
        return re.compile(rx + r"\Z")
    if "*" in name or "?" in name:
        rx = re.escape(name).replace(r"\*", ".*").replace(r"\?", ".")
        return re.compile(rx + r"\Z")
    return None


def _natural_key(name: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def list_sequence(path: Path) -> list[Path]:
    """The image files of a folder, or matching a pattern, in frame order."""
    if path.is_dir():
        files = [p for p in path.iterdir() if p.suffix.lower() in SEQUENCE_SUFFIXES
                 and not p.name.startswith(".")]
    else:
        rx = sequence_pattern(str(path))
        if rx is None or not path.parent.is_dir():
            return []
        files = [p for p in path.parent.iterdir() if rx.match(p.name)]
    return sorted(files, key=lambda p: _natural_key(p.name))


def sequence_name(pattern: str, index: int) -> str:
    """The file name for frame ``index`` from a printf pattern (``%04d`` → 0007)."""
    return _PATTERN.sub(lambda m: f"{index:{m.group(1)}{m.group(2)}d}", Path(pattern).name)


def to_uint8(data: np.ndarray) -> np.ndarray:
    """[0, 1] float to uint8, rounded and saturated (OpenCV's pass is ~4× numpy's); negatives
    are clamped first because that pass takes absolute values."""
    import cv2

    positive = np.maximum(np.asarray(data, np.float32), np.float32(0))
    return cv2.convertScaleAbs(positive, alpha=255.0)


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


def _av_errors() -> tuple[type[BaseException], ...]:
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
                    raise MediaError(f"{self.path.name} has no video stream (it holds "
                                     f"{kinds})", "load a file with a video track")
                s = c.streams.video[0]
                self.time_base = Fraction(s.time_base or Fraction(1, 90000))
                self.codec = s.codec_context.name
                self.size = (int(s.codec_context.width), int(s.codec_context.height))
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
        except _av_errors() as exc:
            raise MediaError(f"{self.path.name} cannot be decoded as video: {exc}",
                             "check that the file is complete (re-export or re-download "
                             "it)") from None
        self.pts = presentation_index(pts)
        if not self.pts or self.size[0] <= 0 or self.size[1] <= 0:
            raise MediaError(f"{self.path.name} cannot be decoded as video: its video stream "
                             "holds no frames", "check that the file is complete")
        held = float((max(end, self.pts[-1]) - self.pts[0]) * self.time_base)
        # Some containers (Matroska's DURATION tag) give the stream's end time, not its length:
        # a stream that starts late is cut only if it falls short by both readings.
        ends = float(max(end, self.pts[-1]) * self.time_base)
        short = truncated(declared_s, held, len(self.pts)) and \
            truncated(declared_s, ends, len(self.pts))
        if declared_frames > len(self.pts) + preroll or short:
            said = f"{declared_frames} frames" if declared_frames > len(self.pts) else \
                f"{declared_s:.2f} s"
            raise MediaError(f"{self.path.name} cannot be decoded as video: it is truncated "
                             f"(its header says {said}, the file holds {len(self.pts)} frames, "
                             f"{held:.2f} s)", "re-export or re-download it; to keep what is "
                             "there, remux it: `ffmpeg -i in.mkv -c copy out.mkv`")
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
            raise MediaError(f"{self.path.name}: a decoded frame has no timestamp",
                             "re-encode the file (e.g. `ffmpeg -i in -c:v libx264 out.mp4`)")
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
        except _av_errors() as exc:
            self._frames, self._pos = None, None
            raise MediaError(f"{self.path.name} is damaged: decoding failed ({exc})",
                             "check that the file is complete (re-export or re-download "
                             "it)") from None
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
            live = self._frames is not None and pos is not None
            key: int | None = None
            if not (live and pos < index and keyframe_before(self.keyframes, index) <= pos):
                key = keyframe_before(self.keyframes, index)
                self._seek_to(key)
            fresh, tries = key is not None, 0
            while True:
                fr = self._next()
                if fr is None:
                    raise MediaError(f"frame {index} of {self.path.name} could not be decoded "
                                     "(the stream ends early)", "check that the file is complete")
                if fresh and self._pos > index and tries < 3:
                    # The seek landed after the target (demuxers that seek by dts can):
                    # start from the keyframe before, finally from the first frame.
                    tries += 1
                    earlier = [k for k in self.keyframes if key is not None and k < key]
                    key = earlier[-1] if earlier and tries < 3 else 0
                    self._seek_to(key)
                    continue
                fresh = False
                if self._pos >= index:
                    # Equal, or a stamp gap: the nearest later frame is what plays then.
                    return self._cache.get(index) or fr

    def _seek_to(self, key: int) -> None:
        self._container.seek(self.pts[key], stream=self._stream, backward=True, any_frame=False)
        self._frames = iter(self._container.decode(self._stream))
        self._pos = None

    def array(self, index: int, size: tuple[int, int] | None = None,
              interpolation: str = "area") -> np.ndarray:
        """uint8 H×W×3 RGB, scaled inside FFmpeg when ``size`` differs (cheaper than numpy)."""
        fr = self.av_frame(index)
        w, h = size or self.size
        interp = INTERPOLATION[interpolation] if (w, h) != (fr.width, fr.height) else None
        return reformat(fr, w, h, "rgb24", interp).to_ndarray()


def reformat(frame: Any, width: int, height: int, fmt: str | None = None,
             interpolation: Any = None) -> Any:
    """Convert/scale an ``av.VideoFrame`` with a converter of its own.

    ``VideoFrame.reformat`` reuses one converter per frame object and runs it without the GIL:
    two threads converting the same cached frame (the GUI player's worker and a render) crashed
    the process. A fresh ``VideoReformatter`` per call costs microseconds."""
    from av.video.reformatter import VideoReformatter

    return VideoReformatter().reformat(frame, width, height, fmt, interpolation=interpolation)


class PillowReader:
    """Animated WebP (which FFmpeg cannot decode): Pillow seeks frame by frame."""

    def __init__(self, path: Path) -> None:
        from PIL import Image as PILImage

        self.path = Path(path)
        self.decoded = 0
        self.codec = "webp"
        self.audio_stream = False
        self._lock = threading.Lock()
        try:
            self._im = PILImage.open(self.path)
            self.length = int(getattr(self._im, "n_frames", 1))
            # Timing is known once a frame is loaded; the last frame's end is the total.
            self._im.seek(self.length - 1)
            self._im.load()
            total = float(self._im.info.get("timestamp") or 0) + \
                float(self._im.info.get("duration") or 0)
            self._im.seek(0)
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types on bad files
            raise MediaError(f"{self.path.name} cannot be decoded as an animation: {exc}",
                             "check that the file is complete") from None
        self.size = self._im.size
        self.fps = 1000.0 * self.length / total if total > 0 else 24.0
        self.keyframes = [0]

    def close(self) -> None:
        self._im.close()

    def array(self, index: int, size: tuple[int, int] | None = None,
              interpolation: str = "area") -> np.ndarray:
        with self._lock:
            self._im.seek(index)
            arr = np.asarray(self._im.convert("RGB"), np.uint8)
            self.decoded += 1
        return _scaled(arr, size, interpolation)


class SequenceReader:
    """Numbered image files as frames; ``read`` decodes one file to float [0, 1] (the node
    passes the image loader so EXR and 16-bit PNG read exactly as single images do)."""

    def __init__(self, files: Sequence[Path], fps: float,
                 read: Callable[[Path], np.ndarray]) -> None:
        self.files = list(files)
        self.fps = float(fps)
        self.length = len(self.files)
        self.decoded = 0
        self.codec = self.files[0].suffix.lower().lstrip(".") if self.files else ""
        self.audio_stream = False
        self.keyframes = [0]
        self._read = read
        first = read(self.files[0])
        self.size = (int(first.shape[1]), int(first.shape[0]))

    def close(self) -> None:
        pass

    def image(self, index: int, size: tuple[int, int] | None = None,
              interpolation: str = "area") -> np.ndarray:
        data = self._read(self.files[index])
        self.decoded += 1
        if data.shape[1::-1] != self.size:
            raise MediaError(f"{self.files[index].name} is {data.shape[1]}×{data.shape[0]}, "
                             f"the sequence is {self.size[0]}×{self.size[1]}",
                             "make every image of the sequence the same size")
        return _scaled(data, size, interpolation)


def _scaled(arr: np.ndarray, size: tuple[int, int] | None, interpolation: str) -> np.ndarray:
    if size is None or size == (arr.shape[1], arr.shape[0]):
        return arr
    import cv2

    names = {"nearest": "INTER_NEAREST_EXACT", "bilinear": "INTER_LINEAR",
             "bicubic": "INTER_CUBIC", "lanczos": "INTER_LANCZOS4", "area": "INTER_AREA"}
    out = cv2.resize(arr, size, interpolation=getattr(cv2, names[interpolation]))
    return out if out.ndim == arr.ndim else out[:, :, None]


def open_reader(path: Path, fps: float, read_image: Callable[[Path], np.ndarray]) -> Any:
    """The right reader for a file, a folder of images, or a numbered pattern."""
    if path.is_dir() or sequence_pattern(str(path)) is not None:
        files = list_sequence(path)
        if not files:
            raise MediaError(f"no images match {path}",
                             "point `path` at a folder of images or a pattern like "
                             "frames/%04d.png that matches existing files")
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

    def __init__(self, reader: Any, start: int = 0, length: int | None = None,
                 size: tuple[int, int] | None = None, interpolation: str = "area",
                 audio: AudioTrack | None = None, source: str = "") -> None:
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

    def _view(self, start: int, length: int, size: tuple[int, int] | None,
              interpolation: str, audio: AudioTrack | None) -> FileVideo:
        return FileVideo(self.reader, start, length, size, interpolation, audio, self.source)

    def slice(self, start: int, stop: int) -> Video:
        start, stop = max(0, start), min(self.length, stop)
        n = max(0, stop - start)
        audio = None if self.audio is None else \
            self.audio.slice(start / self.fps, (start + n) / self.fps)
        return self._view(self.start + start, n, self.size, self.interpolation, audio)

    def scaled(self, width: int, height: int, interpolation: str = "area") -> Video:
        """Every frame resized to width×height (aspect not kept), done by FFmpeg's scaler."""
        return self._view(self.start, self.length, (width, height), interpolation, self.audio)

    def with_audio(self, audio: AudioTrack | None) -> Video:
        return self._view(self.start, self.length, self.size, self.interpolation, audio)


# --------------------------------------------------------------------------------------------
# Audio: decode a lazy AudioTrack as a stream of float32 channels×n chunks


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")


def first_audio(path: Path) -> tuple[int, int] | None:
    """(sample rate, channels) of a file's first audio stream, or None."""
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.audio:
                return None
            a = c.streams.audio[0]
            return int(a.rate or a.sample_rate or 48000), int(a.channels or 2)
    except _av_errors():
        return None


def _file_samples(path: str, start: float, count: int, rate: int, channels: int,
                  chunk: int) -> Iterator[np.ndarray]:
    """``count`` samples of ``path``'s first audio stream from ``start`` seconds, resampled;
    silence fills what the file lacks, so a span always has its exact length."""
    import av

    layout = _layout(channels)
    sent = 0
    with av.open(path) as c:
        if not c.streams.audio:
            raise MediaError(f"{Path(path).name} has no audio stream",
                             "take audio from a file that has sound, or choose no audio")
        s = c.streams.audio[0]
        tb = Fraction(s.time_base or Fraction(1, rate))
        if start > 0:
            # Seek 0.1 s early: an AAC/Opus decoder needs a frame of warm-up after a seek (its
            # first samples are garbage, a click at every cut); the extra is skipped below.
            c.seek(int(max(0.0, start - 0.1) / tb), stream=s, backward=True, any_frame=False)
        res = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        origin: float | None = None
        skip = 0
        pending: list[np.ndarray] = []

        def resampled() -> Iterator[np.ndarray]:
            nonlocal origin
            for frame in c.decode(s):
                if origin is None:
                    origin = float(frame.pts * tb) if frame.pts is not None else 0.0
                for out in res.resample(frame):
                    yield out.to_ndarray()
            for out in res.resample(None):
                yield out.to_ndarray()

        started = False
        for arr in resampled():
            if not started:
                started = True
                skip = round((start - (origin or 0.0)) * rate)
                if skip < 0:  # the stream starts after ``start``: lead with silence
                    pending.append(np.zeros((channels, min(-skip, count)), np.float32))
                    skip = 0
            if skip:
                cut = min(skip, arr.shape[1])
                arr, skip = arr[:, cut:], skip - cut
            pending.append(arr)
            have = sum(p.shape[1] for p in pending)
            if have >= chunk or sent + have >= count:
                block = np.concatenate(pending, axis=1)[:, :count - sent]
                pending = []
                sent += block.shape[1]
                if block.shape[1]:
                    yield block
                if sent >= count:
                    return
        if pending:
            block = np.concatenate(pending, axis=1)[:, :count - sent]
            sent += block.shape[1]
            yield block
    while sent < count:
        n = min(chunk, count - sent)
        sent += n
        yield np.zeros((channels, n), np.float32)


def audio_chunks(track: AudioTrack, rate: int | None = None, channels: int | None = None,
                 chunk: int = 4096) -> Iterator[np.ndarray]:
    """The whole track as float32 channels×n chunks at ``rate``/``channels`` (default: the
    track's), exactly round(duration × rate) samples in all."""
    rate = rate or track.sample_rate
    channels = channels or track.channels
    bounds = sample_bounds([s.duration for s in track.spans], rate)
    for span, (a, b) in zip(track.spans, bounds, strict=True):
        count = b - a
        if count <= 0:
            continue
        if span.path is None:
            for k in range(0, count, chunk):
                yield np.zeros((channels, min(chunk, count - k)), np.float32)
        elif span.speed == 1.0 and not span.reverse:
            yield from _file_samples(span.path, span.start, count, rate, channels, chunk)
        else:
            # Retimed or reversed: the span's source stretch in memory (reversal needs all of
            # it; a clip's worth of float audio is small next to its frames).
            n_src = max(1, round(span.source_duration * rate))
            parts = list(_file_samples(span.path, span.start, n_src, rate, channels, chunk))
            pcm = np.concatenate(parts, axis=1) if parts else \
                np.zeros((channels, n_src), np.float32)
            if span.reverse:
                pcm = pcm[:, ::-1]
            if span.speed != 1.0:
                pcm = time_stretch(pcm, rate, span.speed)
            pcm = _fit_samples(pcm, count)
            for k in range(0, count, chunk):
                yield np.ascontiguousarray(pcm[:, k:k + chunk])


def _fit_samples(pcm: np.ndarray, count: int) -> np.ndarray:
    if pcm.shape[1] >= count:
        return pcm[:, :count]
    return np.concatenate([pcm, np.zeros((pcm.shape[0], count - pcm.shape[1]), pcm.dtype)], 1)


def _tempo_chain(factor: float) -> list[float]:
    """FFmpeg's atempo takes 0.5..100 per instance: split slower factors into a chain."""
    steps = []
    while factor < 0.5:
        steps.append(0.5)
        factor /= 0.5
    while factor > 100.0:
        steps.append(100.0)
        factor /= 100.0
    return [*steps, factor]


def time_stretch(pcm: np.ndarray, rate: int, factor: float) -> np.ndarray:
    """float32 channels×n audio played ``factor`` times as fast with its pitch kept (FFmpeg's
    atempo, a waveform-similarity overlap-add): about n / factor samples come back."""
    import av
    import av.filter

    channels = pcm.shape[0]
    layout = _layout(channels)
    graph = av.filter.Graph()
    node = graph.add_abuffer(format="fltp", sample_rate=rate, layout=layout,
                             time_base=Fraction(1, rate))
    for f in _tempo_chain(factor):
        nxt = graph.add("atempo", f"{f:.6f}")
        node.link_to(nxt)
        node = nxt
    fmt = graph.add("aformat", f"sample_fmts=fltp:channel_layouts={layout}")
    node.link_to(fmt)
    sink = graph.add("abuffersink")
    fmt.link_to(sink)
    graph.configure()
    out: list[np.ndarray] = []

    def drain() -> None:
        while True:
            try:
                frame = graph.pull()
            except (BlockingIOError, EOFError):
                return
            out.append(frame.to_ndarray().reshape(channels, -1))

    step = 4096
    for k in range(0, pcm.shape[1], step):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, k:k + step]),
                                           format="fltp", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, k, Fraction(1, rate)
        graph.push(frame)
        drain()
    graph.push(None)
    drain()
    return np.concatenate(out, axis=1) if out else np.zeros((channels, 0), np.float32)


def decode_audio(track: AudioTrack, rate: int | None = None,
                 channels: int | None = None) -> np.ndarray:
    """The whole track in memory (channels×samples): for tests and short clips."""
    ch = channels or track.channels
    parts = list(audio_chunks(track, rate, channels))
    return np.concatenate(parts, axis=1) if parts else np.zeros((ch, 0), np.float32)


# --------------------------------------------------------------------------------------------
# Writers


def prefetch(read: Callable[[int], Any], count: int,
             depth: int = 3) -> Generator[Any, None, None]:
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

    worker = threading.Thread(target=work, name="frame-prefetch", daemon=True)
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

    def __init__(self, path: Path, size: tuple[int, int], fps: float, quality: int = 20,
                 preset: str = "medium", audio: AudioTrack | None = None) -> None:
        import av

        suffix = path.suffix.lower()
        vcodec, acodec = CONTAINERS[suffix]
        self.kind = vcodec
        w, h = size
        if vcodec in ("libx264", "libvpx-vp9"):  # 4:2:0 needs even sides
            w, h = max(2, w - w % 2), max(2, h - h % 2)
        self.size = (w, h)
        self._out = av.open(str(path), mode="w", format=_muxer(suffix))
        try:
            self._setup(vcodec, acodec, fps, quality, preset, audio)
        except BaseException:
            self._out.close()  # a bad option must not leave the temp file open
            raise

    def _setup(self, vcodec: str, acodec: str | None, fps: float, quality: int, preset: str,
               audio: AudioTrack | None) -> None:
        w, h = self.size
        rate = Fraction(fps).limit_denominator(1001)
        self._rate = rate
        v = self._out.add_stream(vcodec, rate=rate)
        v.width, v.height = w, h
        v.thread_type = "AUTO"
        if vcodec == "libx264":
            v.pix_fmt = "yuv420p"
            v.options = {"crf": str(quality), "preset": preset}
        elif vcodec == "libvpx-vp9":
            v.pix_fmt = "yuv420p"
            v.options = {"crf": str(quality), "b": "0", "row-mt": "1", "deadline": "good",
                         "cpu-used": "4" if preset in X264_PRESETS[:5] else "2"}
        elif vcodec == "gif":
            v.pix_fmt = "rgb8"
        else:  # animated WebP: quality 0 is lossless, like CRF 0
            v.pix_fmt = "yuv420p" if quality else "bgra"
            v.options = {"lossless": "1"} if quality == 0 else \
                {"quality": str(max(0, 100 - 2 * quality))}
        self._v = v
        self._count = 0
        self._a: Any = None
        self._audio: Iterator[np.ndarray] | None = None
        self.samples = 0
        if audio is not None and acodec is not None:
            self._arate = 48000 if acodec == "libopus" else int(audio.sample_rate)
            self._ach = int(audio.channels)
            a = self._out.add_stream(acodec, rate=self._arate)
            a.layout = _layout(self._ach)
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
            frame = av.VideoFrame.from_ndarray(arr, format="rgba" if arr.shape[2] == 4
                                               else "rgb24")
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
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp",
                                            layout=_layout(self._ach))
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
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.folder.name}.", suffix=".tmp",
                                         dir=self.folder.parent))
        self.count = 0

    def write(self, index: int, data: np.ndarray) -> None:
        self._write(self.tmp / sequence_name(self.name, index), data)
        self.count += 1

    def commit(self) -> None:
        os.chmod(self.tmp, 0o777 & ~_umask())
        old = None
        if self.folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.folder.name}.", suffix=".old",
                                        dir=self.folder.parent))
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


# --------------------------------------------------------------------------------------------
# Spill store for generated frames


class FrameStore:
    """Frames a long generation makes, written to a temporary file as they come.

    A generated clip has no file to decode from, and holding every frame would grow with its
    length; here each frame goes to disk (raw uint8, lossless) the moment it is made and is read
    back on demand, so memory stays flat however long the generation runs. The file is removed
    when the store (and every Video reading it) is gone."""

    def __init__(self, width: int, height: int, channels: int = 3,
                 folder: str | Path | None = None) -> None:
        import tempfile
        import threading
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
            path.unlink(missing_ok=True)

    def __len__(self) -> int:
        return self._count

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
