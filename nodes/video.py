"""Video files: load (containers, GIF/WebP, image sequences), save, inspect, and frame access.

The decoding and encoding live in ``engine.media``; these nodes only choose, check and report.
"""

from __future__ import annotations

from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from fathom.engine.context import NodeContext
from fathom.engine.errors import MediaError, Problem
from fathom.engine.fileio import atomic_path, writable_dir_problem
from fathom.engine.imaging.codecs import EXR_FIX, exr_backend, read_image, to_uint, write_exr
from fathom.engine.imaging.depthmath import COLORMAPS, colorize
from fathom.engine.media.audio import first_audio
from fathom.engine.media.readers import AVReader, FileVideo, ffmpeg_size_problem, open_reader
from fathom.engine.media.timing import _PATTERN, sequence_pattern
from fathom.engine.media.writers import (
    CONTAINERS,
    X264_PRESETS,
    ContainerWriter,
    SequenceWriter,
    foreign_files,
    prefetch,
)
from fathom.engine.node import Input, Node, Output, Param
from fathom.engine.types import (
    AudioSpan,
    AudioTrack,
    Bool,
    Enum,
    Float,
    Image,
    InputFile,
    Int,
    OutputFile,
    String,
    Video,
)

SEQUENCE_OUT = (".png", ".exr", ".jpg")
FORMATS_HELP = (
    "end the name with .mp4, .mov, .mkv (H.264), .webm (VP9), .gif, .webp, or "
    "write an image sequence with a pattern like frames/%04d.png (or .exr)"
)


# --------------------------------------------------------------------------------------------
# Loading


def _read_float(path: Path) -> np.ndarray:
    return read_image(path)


class LoadVideo(Node):
    """Open a video lazily: frames are decoded only when a node reads them, seeking to the
    keyframe before a jump. Reads video files, animated GIF/WebP, a folder of images or a
    numbered pattern (frames/%04d.png). Frame i is the i-th shown frame, also for
    variable-frame-rate files (fps is then the average). The file's first audio track
    travels with the video."""

    type_id = "video.load"
    title = "Load Video"
    category = "video"
    main_params = ("path",)
    outputs = (
        Output("video", Video),
        Output("fps", Float),
        Output("frames", Int),
        Output("duration", Float, "seconds"),
    )
    params = (
        Param(
            "path",
            InputFile,
            "clip.mp4",
            "video file (mp4, mov, mkv, webm, gif, webp), image folder or pattern",
            suffixes=(".mp4", ".mov", ".mkv", ".webm", ".gif", ".webp"),
            sequence=True,
        ),
        Param("fps", Float, 24.0, "frame rate of image sequences", min=0.001, max=1000),
        Param(
            "width",
            Int,
            0,
            "decode at this width (0: the file's); scaling in the "
            "decoder is the cheap way to make a proxy",
            min=0,
            max=16384,
        ),
        Param("height", Int, 0, "decode at this height (0: the file's)", min=0, max=16384),
    )
    opens = (".mp4", ".mov", ".mkv", ".webm", ".gif")

    def run(
        self, ctx: NodeContext, path: str, fps: float = 24.0, width: int = 0, height: int = 0
    ) -> dict[str, Any]:
        p = ctx.resolve_path(path)
        try:
            reader = open_reader(p, fps, _read_float)
        except MediaError as exc:
            raise ctx.refuse(exc, port="path") from None
        video: Video = FileVideo(reader, source=str(p))
        if reader.audio_stream:
            fmt = first_audio(p)
            if fmt is not None:
                # The sound from the moment frame 0 shows (a stream may start late).
                start = float(getattr(reader, "start_time", 0.0))
                video = video.with_audio(
                    AudioTrack((AudioSpan(str(p), start, video.duration),), *fmt)
                )
        if width or height:
            w0, h0 = reader.size
            w = width or max(1, round(w0 * height / h0))
            h = height or max(1, round(h0 * width / w0))
            problem = ffmpeg_size_problem(w, h)
            if problem is not None:
                raise ctx.error(
                    problem, port="width" if width else "height", fix="decode at a smaller size"
                )
            video = video.scaled(w, h)  # type: ignore[attr-defined]
        return {"video": video, "fps": video.fps, "frames": len(video), "duration": video.duration}


class VideoInfo(Node):
    """What a video is: rate, length, size, sound and (for file sources) codec."""

    type_id = "video.info"
    title = "Video Info"
    category = "video"
    inputs = (Input("video", Video),)
    outputs = (
        Output("fps", Float),
        Output("frames", Int),
        Output("duration", Float, "seconds"),
        Output("width", Int),
        Output("height", Int),
        Output("has_audio", Bool),
        Output("codec", String, "the source file's codec; empty for computed video"),
    )

    def run(self, ctx: NodeContext, video: Video) -> dict[str, Any]:
        w, h = video.size if len(video) else (0, 0)
        return {
            "fps": video.fps,
            "frames": len(video),
            "duration": video.duration,
            "width": int(w),
            "height": int(h),
            "has_audio": video.audio is not None,
            "codec": video.codec if isinstance(video, FileVideo) else "",
        }


class VideoFrame(Node):
    """One frame of a video as an image (negative index counts from the end)."""

    type_id = "video.frame"
    title = "Video Frame"
    category = "video"
    inputs = (Input("video", Video),)
    outputs = (Output("image", Image),)
    params = (Param("index", Int, 0, "frame number"),)

    def run(self, ctx: NodeContext, video: Video, index: int) -> dict[str, Any]:
        if len(video) == 0:
            raise ctx.error(
                "the video has no frames",
                port="video",
                fix="check what feeds it (an empty trim or source?)",
            )
        i = index if index >= 0 else len(video) + index
        if not 0 <= i < len(video):
            raise ctx.error(
                f"frame {index} is outside a {len(video)}-frame video",
                port="index",
                fix=f"use 0..{len(video) - 1}",
            )
        try:
            return {"image": video.frame(i)}
        except MediaError as exc:
            raise ctx.refuse(exc, port="video") from None


class FromImages(Node):
    """Images, in the order they are connected, as the frames of a video."""

    type_id = "video.from_images"
    title = "Images to Video"
    category = "video"
    inputs = (Input("images", Image, "frames, in edge order", multi=True),)
    outputs = (Output("video", Video),)
    params = (Param("fps", Float, 24.0, "frames per second", min=0.001, max=1000),)

    def run(self, ctx: NodeContext, images: list[Image], fps: float) -> dict[str, Any]:
        frames = [im for im in (images or []) if im is not None]
        if not frames:
            raise ctx.error(
                "no images are connected", port="images", fix="connect one or more images"
            )
        size = (frames[0].width, frames[0].height)
        for k, im in enumerate(frames):
            if (im.width, im.height) != size:
                raise ctx.error(
                    f"image {k} is {im.width}×{im.height}, image 0 is {size[0]}×{size[1]}",
                    port="images",
                    fix="resize the images to one size first",
                )
        return {"video": Video.from_frames(frames, fps)}


# --------------------------------------------------------------------------------------------
# Saving


def _target_problem(p: Path, node: str, writable: bool = True) -> list[Problem]:
    """Unknown format or (with ``writable``) an unwritable place: found before running (the
    engine checks the folder then, as for every output file) and again while running."""
    out = []
    sequence = sequence_pattern(p.name) is not None
    suffix = p.suffix.lower()
    if sequence and not _PATTERN.search(p.name):
        # A glob names existing files to read; writing needs the number's place.
        out.append(
            Problem(
                f"{p.name} is a pattern for reading (* or ?); a saved sequence "
                "needs a frame number in its name.",
                node,
                "path",
                f"use e.g. {p.stem.replace('*', '').replace('?', '')}%04d{suffix}",
            )
        )
    elif sequence and suffix not in SEQUENCE_OUT:
        out.append(
            Problem(
                f"image sequences are written as {', '.join(SEQUENCE_OUT)}, "
                f"not {suffix or 'no extension'}.",
                node,
                "path",
                FORMATS_HELP,
            )
        )
    elif not sequence and suffix not in CONTAINERS:
        out.append(
            Problem(
                f"unknown video format {suffix or '(no extension)'!r}.", node, "path", FORMATS_HELP
            )
        )
    folder = p.parent.parent if sequence else p.parent
    why = writable_dir_problem(folder) if writable else None
    if why:
        out.append(
            Problem(f"cannot write {p}: {why}.", node, "path", "choose a writable output folder")
        )
    if sequence and suffix == ".exr" and exr_backend() is None:
        out.append(
            Problem(
                "EXR sequences need the OpenEXR library, which is not installed.",
                node,
                "path",
                EXR_FIX,
            )
        )
    if sequence:
        stray = foreign_files(p.parent, p.name)
        if stray:
            out.append(
                Problem(
                    f"{p.parent} holds files this sequence would not write "
                    f"({', '.join(stray[:3])}{'...' if len(stray) > 3 else ''}); "
                    "saving replaces the whole folder.",
                    node,
                    "path",
                    "write the sequence into its own (new or empty) folder, e.g. frames/%04d.png",
                )
            )
    return out


def _save_problems(cls: type[Node], params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
    p = Path(params["path"]).expanduser()
    target = p if p.is_absolute() else ctx.options.output_dir / p
    out = _target_problem(target, ctx.node_id, writable=False)
    suffix = target.suffix.lower()
    deep = sequence_pattern(target.name) is not None and suffix in (".png", ".exr")
    if str(params.get("bits", "8")) == "16" and not deep:
        out.append(
            Problem(
                f"bits 16 applies to PNG sequences; {target.name} is written with 8 bits",
                ctx.node_id,
                "bits",
                "set bits to 8, or save frames/%04d.png (or .exr, which keeps float values)",
            )
        )
    return out


def _frame_writer(suffix: str, bits: str) -> Any:
    import cv2

    def write(path: Path, data: np.ndarray) -> None:
        if suffix == ".exr":
            write_exr(path, data)
            return
        arr = to_uint(data, 16 if bits == "16" and suffix == ".png" else 8)
        if arr.ndim == 3 and arr.shape[2] in (3, 4):
            arr = arr[:, :, [2, 1, 0, 3][: arr.shape[2]]]
        if not cv2.imwrite(str(path), np.ascontiguousarray(arr)):
            raise MediaError(f"OpenCV could not write {path.name}", "check the folder")

    return write


def _colourised(colormap: str, frame: Image) -> Image:
    """A one-channel (depth) frame through a colour map, near (low values) bright. A colour
    frame is refused: the map would do nothing to it, silently."""
    if frame.channels != 1:
        raise MediaError(
            f"colormap {colormap!r} colours one-channel (depth or mask) frames; this video's "
            f"frames have {frame.channels} channels",
            "set colormap to none, or connect a depth video (video.depth)",
            port="colormap",
        )
    return Image(colorize(frame.gray(), colormap, 0.0, 100.0, near_is_bright=True))


class SaveVideo(Node):
    """Encode a video: .mp4/.mov/.mkv (H.264), .webm (VP9), .gif, .webp (animated), or an image
    sequence (frames/%04d.png, 8- or 16-bit, or .exr). Frames are encoded as they are read, so
    long clips stream. Sound comes from the `audio` input when connected, else from the video
    itself, cut to exactly the saved frames (the render's --frames range applies here). A depth
    video (one-channel frames, video.depth) keeps its values in a 16-bit PNG or EXR sequence,
    or becomes a colourised movie with `colormap`."""

    type_id = "video.save"
    title = "Save Video"
    category = "video"
    main_params = ("path", "fps")
    is_output = True
    inputs = (
        Input("video", Video),
        Input("audio", Video, "take the sound from this video instead", optional=True),
    )
    outputs = (Output("path", String),)
    params = (
        Param(
            "path",
            OutputFile,
            "video.mp4",
            "file or frames/%04d.png pattern (relative: output folder)",
        ),
        Param("fps", Float, 0.0, "frames per second (0: the video's own)", min=0, max=1000),
        Param(
            "quality", Int, 20, "CRF: lower is better and bigger (WebP: 0 lossless)", min=0, max=51
        ),
        Param(
            "preset",
            Enum,
            "medium",
            "H.264 speed: faster presets make bigger files",
            choices=X264_PRESETS,
        ),
        Param("bits", Enum, "8", "PNG sequence bit depth", choices=("8", "16")),
        Param(
            "colormap",
            Enum,
            "none",
            "one-channel (depth) frames in colour, near bright (none: as they are)",
            choices=("none", *COLORMAPS),
        ),
        Param(
            "sound",
            Enum,
            "auto",
            "auto: the audio input's, else the video's own",
            choices=("auto", "none"),
        ),
        Param(
            "frames",
            Enum,
            "render",
            "which frames: the render's --frames, or all",
            choices=("render", "all"),
        ),
    )

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        return _save_problems(cls, params, ctx)

    def run(
        self,
        ctx: NodeContext,
        video: Video,
        path: str,
        fps: float,
        quality: int,
        preset: str = "medium",
        bits: str = "8",
        colormap: str = "none",
        sound: str = "auto",
        frames: str = "render",
        audio: Video | None = None,
    ) -> dict[str, Any]:
        if len(video) == 0:
            raise ctx.error("the video has no frames", port="video", fix="check upstream")
        target = ctx.output_path(path)
        problems = _target_problem(target, ctx.node_id)
        if problems:
            raise ctx.error(problems[0].message, port="path", fix=problems[0].fix)
        lo, hi = 0, len(video) - 1
        if frames == "render" and ctx.options.frames is not None:
            a, b = ctx.options.frames
            lo, hi = max(lo, a), min(hi, b)
            if lo > hi:
                raise ctx.error(
                    f"--frames {a}-{b} is outside this {len(video)}-frame video",
                    port="video",
                    fix=f"use frames within 0-{len(video) - 1}",
                )
        out_fps = fps or video.fps
        part = video if (lo, hi) == (0, len(video) - 1) else video.slice(lo, hi + 1)
        if colormap != "none":
            part = part.map(partial(_colourised, colormap), part.known_size)
        track = self._sound(ctx, video, audio, sound, lo, hi)
        if track is not None:
            if abs(out_fps - video.fps) > 1e-9:
                # Frames play faster or slower at the new rate: so does the sound (pitch kept).
                track = track.retimed(out_fps / video.fps)
            track = track.fit(len(part) / out_fps)
        try:
            if sequence_pattern(target.name) is not None:
                self._sequence(ctx, part, target, bits, lo)
            else:
                self._container(ctx, part, target, out_fps, quality, preset, track)
        except MediaError as exc:
            raise ctx.refuse(exc, port=exc.port or "video") from None
        ctx.record_file(target.parent if sequence_pattern(target.name) else target)
        return {"path": str(target)}

    @staticmethod
    def _sound(
        ctx: NodeContext, video: Video, audio: Video | None, sound: str, lo: int, hi: int
    ) -> AudioTrack | None:
        if sound == "none":
            return None
        if audio is None:
            track = video.audio
            return None if track is None else track.slice(lo / video.fps, (hi + 1) / video.fps)
        if audio.audio is None:
            raise ctx.error(
                "the video on `audio` has no sound",
                port="audio",
                fix="connect a video with an audio track, or disconnect `audio`",
            )
        return audio.audio.slice(lo / video.fps, (hi + 1) / video.fps)

    @staticmethod
    def _container(
        ctx: NodeContext,
        part: Video,
        target: Path,
        fps: float,
        quality: int,
        preset: str,
        track: AudioTrack | None,
    ) -> None:
        fast = isinstance(part, FileVideo) and isinstance(part.reader, AVReader)
        if track is not None and CONTAINERS[target.suffix.lower()][1] is None:
            ctx.report(audio=f"dropped: {target.suffix} files carry no sound")
            track = None
        n = len(part)
        with atomic_path(target) as tmp:
            writer = ContainerWriter(tmp, part.size, fps, quality, preset, track)
            if writer.size != part.size:
                w, h = part.size
                note = (
                    f"{w}×{h} written as {writer.size[0]}×{writer.size[1]}: {writer.kind} "
                    "needs even sides (the last row or column dropped)"
                )
                ctx.report(size=note)
                ctx.log.warning(note)
            # A file's own frames go to the encoder in FFmpeg's pixel formats (no RGB).
            read: Any = (
                part.av_frame
                if fast
                # type: ignore[attr-defined]
                else (lambda i: part.frame(i).data)
            )
            try:
                with closing(prefetch(read, n)) as frames:
                    for i, frame in enumerate(frames):
                        ctx.check_cancelled()
                        writer.write(frame)
                        ctx.progress((i + 1) / n, f"frame {i + 1}/{n}")
                writer.close()
            except BaseException:
                writer.abort()
                raise

    @staticmethod
    def _sequence(ctx: NodeContext, part: Video, target: Path, bits: str, first: int) -> None:
        writer = SequenceWriter(target, _frame_writer(target.suffix.lower(), bits))
        n = len(part)
        try:
            with closing(prefetch(lambda k: part.frame(k).data, n)) as frames:
                for i, data in enumerate(frames):
                    ctx.check_cancelled()
                    writer.write(first + i, data)
                    ctx.progress((i + 1) / n, f"frame {i + 1}/{n}")
            writer.commit()
        except BaseException:
            writer.abort()
            raise
