"""Video files: lazy decoding with PyAV, encoding (H.264 MP4, WebM, GIF), and frame access."""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import Problem
from engine.fileio import atomic_path, writable_dir_problem
from engine.node import Input, Node, Output, Param
from engine.types import Enum, Float, Image, Int, PathValue, String, Video

CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9",
          ".gif": "gif"}


class VideoReader:
    """Random access over a video file: sequential reads continue the decoder, jumps seek to
    the nearest keyframe first, so scrubbing and streaming are both cheap."""

    def __init__(self, path: Path) -> None:
        import av

        self.path = path
        self._lock = threading.Lock()
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise ValueError(f"{path.name} has no video stream")
            s = c.streams.video[0]
            self.fps = float(s.average_rate or s.guessed_rate or 24)
            self.time_base = s.time_base
            self.start = s.start_time or 0
            self.size = (s.codec_context.width, s.codec_context.height)
            n = s.frames
            if not n:
                n = sum(1 for _ in c.decode(video=0))
            self.length = int(n)
        self._container: Any = None
        self._iter: Any = None
        self._next = 0

    def _pts(self, index: int) -> int:
        return int(self.start + round(index / self.fps / self.time_base))

    def frame(self, index: int) -> Image:
        import av

        with self._lock:
            if self._container is None or index != self._next:
                if self._container is None:
                    self._container = av.open(str(self.path))
                stream = self._container.streams.video[0]
                self._container.seek(self._pts(index), stream=stream, backward=True,
                                     any_frame=False)
                self._iter = self._container.decode(stream)
                target = self._pts(index)
                for fr in self._iter:
                    if fr.pts is None or fr.pts >= target - 1:
                        return self._emit(fr, index)
                raise IndexError(f"frame {index} could not be decoded from {self.path.name}")
            fr = next(self._iter)
            return self._emit(fr, index)

    def _emit(self, fr: Any, index: int) -> Image:
        self._next = index + 1
        rgb = fr.to_ndarray(format="rgb24").astype(np.float32) / 255.0
        return Image(rgb)


def _missing(cls: type, params: dict[str, Any], ctx: Any) -> list[Problem]:
    p = ctx.resolve_path(params["path"])
    if not p.is_file():
        return [Problem(f"file {p} does not exist.", ctx.node_id, "path",
                        "point `path` at an existing video file")]
    return []


def _key(cls: type, params: dict[str, Any], ctx: Any) -> str:
    p = ctx.resolve_path(params["path"])
    try:
        st = p.stat()
        return f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return ""


class LoadVideo(Node):
    """Open a video file lazily: frames are decoded only when a node reads them."""

    type_id = "video.load"
    title = "Load Video"
    category = "video"
    outputs = (Output("video", Video), Output("fps", Float), Output("frames", Int))
    params = (Param("path", PathValue, "clip.mp4", "video file (mp4, mov, mkv, webm, gif)"),)
    check = classmethod(_missing)  # type: ignore[assignment]
    cache_extra = classmethod(_key)  # type: ignore[assignment]

    def run(self, ctx: Any, path: str) -> dict[str, Any]:
        p = ctx.resolve_path(path)
        try:
            reader = VideoReader(p)
        except Exception as exc:  # noqa: BLE001 - PyAV raises many error types
            raise ctx.error(f"{p.name} cannot be decoded as video: {exc}", port="path",
                            fix="check the file is a complete video") from None
        video = Video(reader.length, reader.fps, reader.frame, reader.size, str(p))
        return {"video": video, "fps": reader.fps, "frames": reader.length}


class VideoFrame(Node):
    """One frame of a video as an image (negative index counts from the end)."""

    type_id = "video.frame"
    title = "Video Frame"
    category = "video"
    inputs = (Input("video", Video),)
    outputs = (Output("image", Image),)
    params = (Param("index", Int, 0, "frame number"),)

    def run(self, ctx: Any, video: Video, index: int) -> dict[str, Any]:
        i = index if index >= 0 else len(video) + index
        if not 0 <= i < len(video):
            raise ctx.error(f"frame {index} is outside a {len(video)}-frame video",
                            port="index", fix=f"use 0..{len(video) - 1}")
        return {"image": video.frame(i)}


def _out_problem(cls: type, params: dict[str, Any], ctx: Any) -> list[Problem]:
    p = Path(params["path"])
    folder = p.parent if p.is_absolute() else ctx.options.output_dir / p.parent
    why = writable_dir_problem(folder)
    out = []
    if why:
        out.append(Problem(f"cannot write here: {why}.", ctx.node_id, "path",
                           "choose a writable output folder"))
    if p.suffix.lower() not in CODECS:
        out.append(Problem(f"unknown video format {p.suffix!r}.", ctx.node_id, "path",
                           f"end the name with one of {', '.join(CODECS)}"))
    return out


def encode(video: Video, target: Path, fps: float, crf: int, frames: range,
           ctx: Any = None) -> int:
    """Encode ``frames`` of a lazy video; even sizes for yuv420p; returns frames written."""
    import av

    codec = CODECS[target.suffix.lower()]
    w, h = video.size
    if codec != "gif":
        w, h = w - w % 2, h - h % 2
    count = 0
    with atomic_path(target) as tmp:
        with av.open(str(tmp), mode="w") as out:
            rate = Fraction(fps).limit_denominator(1001)
            stream = out.add_stream(codec, rate=rate)
            stream.width, stream.height = w, h
            if codec == "gif":
                stream.pix_fmt = "rgb8"
            else:
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf)}
            for n, i in enumerate(frames):
                if ctx is not None:
                    ctx.check_cancelled()
                img = video.frame(i).rgb()[:h, :w]
                u8 = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(u8), format="rgb24")
                for packet in stream.encode(frame):
                    out.mux(packet)
                count += 1
                if ctx is not None:
                    ctx.progress((n + 1) / max(1, len(frames)), f"frame {i}")
            for packet in stream.encode():
                out.mux(packet)
    return count


class SaveVideo(Node):
    """Encode a video: .mp4/.mov/.mkv (H.264), .webm (VP9) or .gif. The render's --frames
    range applies here."""

    type_id = "video.save"
    title = "Save Video"
    category = "video"
    is_output = True
    inputs = (Input("video", Video),)
    outputs = (Output("path", String),)
    params = (Param("path", PathValue, "video.mp4", "file to write (relative: output folder)"),
              Param("fps", Float, 0.0, "frames per second (0: the video's own)", min=0,
                    max=1000),
              Param("quality", Int, 20, "CRF: lower is better and bigger", min=0, max=51),
              Param("frames", Enum, "render", "which frames: the render's --frames, or all",
                    choices=("render", "all")))
    check = classmethod(_out_problem)  # type: ignore[assignment]

    def run(self, ctx: Any, video: Video, path: str, fps: float, quality: int,
            frames: str) -> dict[str, Any]:
        if len(video) == 0:
            raise ctx.error("the video has no frames", port="video", fix="check upstream")
        target = ctx.output_path(path)
        lo, hi = 0, len(video) - 1
        if frames == "render" and ctx.options.frames is not None:
            a, b = ctx.options.frames
            lo, hi = max(lo, a), min(hi, b)
            if lo > hi:
                raise ctx.error(f"--frames {a}-{b} is outside this {len(video)}-frame video",
                                port="video", fix=f"use frames within 0-{len(video) - 1}")
        encode(video, target, fps or video.fps, quality, range(lo, hi + 1), ctx)
        ctx.record_file(target)
        return {"path": str(target)}

