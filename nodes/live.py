"""Live sources and outputs: camera, screen, file, stream in; record, window, virtual camera out.

In a live session (``fathom live``, the studio's Live panel) a source outputs each tick a Video
of one frame, the newest its capture thread took (``ctx.live``), and an output hands its frames
to its own thread; the capture, queues and threads live in ``engine.live``. In an ordinary
render the sources give a whole Video (a file's frames, or ``seconds`` of capture) and the
outputs write or show all of it, so a live graph also renders as a batch job.
"""

from __future__ import annotations

import time
from typing import Any

from fathom.engine.context import NodeContext
from fathom.engine.errors import MediaError, Problem
from fathom.engine.live.capture import (
    CameraCapture,
    Capture,
    FileCapture,
    ScreenCapture,
    StreamCapture,
)
from fathom.engine.live.sinks import RecordSink, VirtualCameraSink, virtual_camera_problem
from fathom.engine.media.readers import FileVideo, open_reader
from fathom.engine.node import Input, Node, Output, Param
from fathom.engine.types import Bool, Float, Image, InputFile, Int, OutputFile, String, Video

SECONDS = Param(
    "seconds", Float, 5.0, "outside a live session: capture this long into a video", min=0.1
)


def _read(path: Any) -> Any:
    from fathom.engine.imaging.codecs import read_image

    return read_image(path)


def live_frame(ctx: NodeContext) -> Video:
    """This source's newest captured frame as a one-frame Video."""
    got = ctx.live.frame(ctx.node_id)
    return Video.from_frames([Image(got.pixels)], fps=got.fps)


def capture_for(ctx: NodeContext, capture: Capture, seconds: float) -> Video:
    """Outside a live session: ``seconds`` of a capture as a Video at the rate measured."""
    frames: list[Image] = []
    t0 = time.perf_counter()
    try:
        while time.perf_counter() - t0 < seconds:
            pixels = capture.read()
            if pixels is None:
                break
            frames.append(Image(pixels))
            ctx.progress(min(1.0, (time.perf_counter() - t0) / seconds), f"{len(frames)} frames")
    finally:
        capture.close()
    if not frames:
        raise ctx.error("the source gave no frames", fix="check that it is running")
    took = time.perf_counter() - t0
    fps = (len(frames) / took) if took > 0 and len(frames) > 1 else capture.fps
    return Video.from_frames(frames, fps=fps)


class _Source(Node):
    """A live source: opens a ``Capture`` for the session; its cache key follows the tick."""

    category = "live"
    live_source = True
    outputs = (Output("video", Video, "live: the newest frame; otherwise the captured video"),)

    @classmethod
    def open_capture(cls, ctx: NodeContext, **params: Any) -> Capture:
        try:
            return cls._capture(ctx, **params)
        except MediaError as exc:
            raise ctx.refuse(exc) from None

    @classmethod
    def _capture(cls, ctx: NodeContext, **params: Any) -> Capture:
        raise NotImplementedError

    @classmethod
    def cache_extra(cls, params: dict[str, Any], ctx: NodeContext) -> str:
        live = ctx.live
        return f"live:{live.session_id}:{live.tick}" if live is not None else ""


class LiveFile(_Source):
    """Play a video file or image sequence as a live source, at its own frame rate (looped
    on request): the way to try and test live graphs without a camera. Outside a live
    session it outputs the whole file as a Video."""

    type_id = "live.file"
    title = "Live File"
    main_params = ("path", "loop")
    params = (
        Param(
            "path",
            InputFile,
            "clip.mp4",
            "video file (mp4, mov, mkv, webm, gif, webp), image folder or pattern",
            suffixes=(".mp4", ".mov", ".mkv", ".webm", ".gif", ".webp"),
            sequence=True,
        ),
        Param("loop", Bool, True, "start again at the end (off: the session ends with the file)"),
        Param("fps", Float, 24.0, "frame rate of image sequences", min=0.001, max=1000),
    )

    @classmethod
    def _video(cls, ctx: NodeContext, path: str, fps: float) -> Video:
        reader = open_reader(ctx.resolve_path(path), fps, _read)
        return FileVideo(reader, source=str(ctx.resolve_path(path)))

    @classmethod
    def _capture(cls, ctx: NodeContext, **params: Any) -> Capture:
        video = cls._video(ctx, params["path"], params["fps"])
        return FileCapture(video, video.fps, params["loop"])

    def run(self, ctx: NodeContext, path: str, loop: bool, fps: float) -> dict[str, Any]:
        if ctx.live is not None:
            return {"video": live_frame(ctx)}
        try:
            return {"video": self._video(ctx, path, fps)}
        except MediaError as exc:
            raise ctx.refuse(exc, port="path") from None


class LiveCamera(_Source):
    """A camera through OpenCV, by index (0, 1...), device path or part of its name."""

    type_id = "live.camera"
    title = "Live Camera"
    cacheable = False  # reads the world
    main_params = ("device",)
    params = (
        Param("device", String, "0", "camera index, device path (/dev/video0) or name"),
        Param("width", Int, 0, "ask the camera for this width (0: its default)", min=0),
        Param("height", Int, 0, "ask the camera for this height (0: its default)", min=0),
        SECONDS,
    )

    @classmethod
    def _capture(cls, ctx: NodeContext, **params: Any) -> Capture:
        return CameraCapture(params["device"], params["width"], params["height"])

    def run(
        self, ctx: NodeContext, device: str, width: int, height: int, seconds: float
    ) -> dict[str, Any]:
        if ctx.live is not None:
            return {"video": live_frame(ctx)}
        cap = self.open_capture(ctx, device=device, width=width, height=height)
        return {"video": capture_for(ctx, cap, seconds)}


class LiveScreen(_Source):
    """A region of the screen (or a whole monitor) through mss."""

    type_id = "live.screen"
    title = "Live Screen"
    cacheable = False
    main_params = ("region",)
    params = (
        Param("region", String, "", "x,y,width,height in pixels (empty: the whole monitor)"),
        Param("monitor", Int, 1, "monitor number (0: all monitors together)", min=0),
        Param("fps", Float, 30.0, "captures per second", min=1, max=240),
        SECONDS,
    )

    @classmethod
    def _capture(cls, ctx: NodeContext, **params: Any) -> Capture:
        return ScreenCapture(params["region"], params["monitor"], params["fps"])

    def run(
        self, ctx: NodeContext, region: str, monitor: int, fps: float, seconds: float
    ) -> dict[str, Any]:
        if ctx.live is not None:
            return {"video": live_frame(ctx)}
        cap = self.open_capture(ctx, region=region, monitor=monitor, fps=fps)
        return {"video": capture_for(ctx, cap, seconds)}


class LiveStream(_Source):
    """A network stream (RTSP, HTTP, RTMP...) through PyAV, with a timeout so a dead URL
    fails with a clear error instead of hanging."""

    type_id = "live.stream"
    title = "Live Stream"
    cacheable = False
    main_params = ("url",)
    params = (
        Param("url", String, "rtsp://127.0.0.1:8554/stream", "stream URL"),
        Param("timeout", Float, 5.0, "seconds to wait for the stream", min=0.1, max=120),
        SECONDS,
    )

    @classmethod
    def _capture(cls, ctx: NodeContext, **params: Any) -> Capture:
        return StreamCapture(params["url"], params["timeout"])

    def run(self, ctx: NodeContext, url: str, timeout: float, seconds: float) -> dict[str, Any]:
        if ctx.live is not None:
            return {"video": live_frame(ctx)}
        cap = self.open_capture(ctx, url=url, timeout=timeout)
        return {"video": capture_for(ctx, cap, seconds)}


class LiveRecord(Node):
    """Record what a live graph produces to an H.264 file (.mp4, .mov, .mkv) while it runs:
    the frames actually produced, each stamped with its capture time (variable frame timing,
    so dropped frames show as gaps in time). Outside a live session, writes the video with
    its own frame rate's timing."""

    type_id = "live.record"
    title = "Live Record"
    category = "live"
    is_output = True
    live_output = True
    main_params = ("path",)
    inputs = (Input("video", Video, "frames to record"),)
    outputs = (Output("path", String, "the file (complete when the session stops)"),)
    params = (
        Param("path", OutputFile, "live.mp4", "file (relative: the output folder)"),
        Param("quality", Int, 20, "CRF: lower is better and bigger", min=0, max=51),
    )

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        suffix = str(params["path"]).lower().rsplit(".", 1)[-1]
        if f".{suffix}" not in RecordSink.SUFFIXES:
            return [Problem("cannot record to this file type", ctx.node_id, "path", "end it .mp4")]
        return []

    def run(self, ctx: NodeContext, video: Video, path: str, quality: int) -> dict[str, Any]:
        target = ctx.output_path(path)
        if ctx.live is not None:
            ctx.live.emit(
                ctx.node_id, video, (str(target), quality), lambda: RecordSink(target, quality)
            )
            return {"path": str(target)}
        if len(video) == 0:
            raise ctx.error("the video has no frames", port="video", fix="check upstream")
        sink = RecordSink(target, quality)
        for i in range(len(video)):
            ctx.check_cancelled()
            sink.write(video.frame(i).data, i / video.fps)
            ctx.progress((i + 1) / len(video), f"frame {i + 1}/{len(video)}")
        sink.close()
        ctx.record_file(target)
        return {"path": str(target)}


class LiveWindow(Node):
    """Show a live graph's frames in a preview window (the studio's live window; full screen
    on another monitor on request). Headless ``fathom live`` shows no window: it records
    these frames under --out, or says in its log and report that nobody saw them. Outside a
    live session, each frame goes to the run's preview."""

    type_id = "live.window"
    title = "Live Window"
    category = "live"
    is_output = True
    live_output = True
    inputs = (Input("video", Video, "frames to show"),)
    params = (
        Param("fullscreen", Bool, False, "fill the chosen screen"),
        Param("screen", Int, 0, "which monitor shows it (0: the studio's)", min=0),
    )

    def run(self, ctx: NodeContext, video: Video, fullscreen: bool, screen: int) -> dict[str, Any]:
        if ctx.live is not None:
            ctx.live.show(ctx.node_id, video)
            return {}
        for i in range(len(video)):
            ctx.preview(video.frame(i), f"frame {i + 1}/{len(video)}")
        ctx.report(shown=len(video))
        return {}


class LiveVirtualCamera(Node):
    """Send frames to a virtual camera (pyvirtualcam: v4l2loopback on Linux, OBS's camera on
    Windows and macOS) so a call or another program can use the output as a webcam."""

    type_id = "live.virtual_camera"
    title = "Virtual Camera"
    category = "live"
    is_output = True
    live_output = True
    inputs = (Input("video", Video, "frames to send"),)
    params = (
        Param("fps", Float, 30.0, "the rate the camera announces", min=1, max=240),
        Param("device", String, "", "device (e.g. /dev/video2; empty: the first free one)"),
    )

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        why = virtual_camera_problem()
        if why is None:
            return []
        fix = "install a virtual camera driver, or use live.record / live.window"
        return [Problem(f"no virtual camera: {why}", ctx.node_id, None, fix)]

    def run(self, ctx: NodeContext, video: Video, fps: float, device: str) -> dict[str, Any]:
        if ctx.live is not None:
            ctx.live.emit(ctx.node_id, video, (fps, device), lambda: VirtualCameraSink(fps, device))
            return {}
        try:
            sink = VirtualCameraSink(fps, device)
            t0 = time.perf_counter()
            for i in range(len(video)):
                ctx.check_cancelled()
                time.sleep(max(0.0, t0 + i / fps - time.perf_counter()))
                sink.write(video.frame(i).data, time.perf_counter())
            sink.close()
        except MediaError as exc:
            raise ctx.refuse(exc) from None
        return {}
