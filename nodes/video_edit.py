"""Video editing nodes: trim, resize, concat, speed, reverse, loop, transition, overlay, text, map.

Every node returns a new lazy Video whose frames are computed from its inputs' frames when read,
so an edit of a long clip costs nothing until a save or preview pulls frames, and then only the
frames pulled. The index and pixel rules live in ``engine.videoops`` as pure functions.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from fathom.engine.context import NodeContext
from fathom.engine.errors import GraphInvalid, Problem
from fathom.engine.imaging.ops import RESIZE_MODES, resize
from fathom.engine.media import videoops as vo
from fathom.engine.node import Input, Node, Ordered, Output, Param
from fathom.engine.types import (
    AudioTrack,
    Bool,
    Color,
    Enum,
    Float,
    Image,
    InputFile,
    Int,
    Mask,
    String,
    Video,
)

FITS = ("letterbox", "stretch", "fill")


def _rgb(color: tuple[float, ...]) -> tuple[float, float, float]:
    return (float(color[0]), float(color[1]), float(color[2]))


def _resized(data: np.ndarray, width: int, height: int, fit: str, mode: str) -> np.ndarray:
    if fit == "letterbox":
        return vo.pad_center(resize(data, width, height, mode, "fit"), width, height)
    return resize(data, width, height, mode, fit)


class _Recent:
    """Source frames read lately, kept so that a node reading frames twice or backwards (slow
    motion, blends, reverse) does not make the decoder seek back for each: a file decoder only
    reads forward cheaply. Holds at most ``budget`` bytes (and at least two frames)."""

    def __init__(self, video: Video, budget: int = 128 * 1024**2, most: int = 32) -> None:
        self.video = video
        self.budget = budget
        self.most = most
        self.slots = 2
        self.frames: OrderedDict[int, Image] = OrderedDict()
        self.lock = threading.Lock()

    def _keep(self, i: int, img: Image) -> None:
        self.slots = max(2, min(self.most, self.budget // max(1, img.nbytes())))
        self.frames[i] = img
        self.frames.move_to_end(i)
        while len(self.frames) > self.slots:
            self.frames.popitem(last=False)

    def frame(self, i: int) -> Image:
        with self.lock:
            img = self.frames.get(i)
            if img is not None:
                self.frames.move_to_end(i)
                return img
            img = self.video.frame(i)
            self._keep(i, img)
            return img

    def frame_backwards(self, i: int) -> Image:
        """For reading i, i-1, i-2...: a miss reads the block ending at i forwards."""
        with self.lock:
            img = self.frames.get(i)
            if img is not None:
                return img
            for k in range(max(0, i - self.slots + 1), i + 1):
                self._keep(k, self.video.frame(k))
            return self.frames[i]


# --------------------------------------------------------------------------------------------
# Cutting and sizing


class Trim(Node):
    """Keep a part of a video, audio cut along. ``end`` is exclusive (like Python slices): start
    0, end 24 keeps frames 0..23; in seconds, the frames that start inside [start, end)."""

    type_id = "video.trim"
    title = "Trim Video"
    category = "video"
    inputs = (Input("video", Video, "clip to cut"),)
    outputs = (Output("video", Video, "the kept part"),)
    params = (
        Param("start", Float, 0.0, "first kept frame or second", min=0),
        Param("end", Float, None, "end (exclusive); empty: to the end", min=0, optional=True),
        Param("unit", Enum, "frames", "what start and end count", choices=("frames", "seconds")),
    )
    constraints = (Ordered("start", "end", why="the trim would keep no frames"),)

    def run(
        self, ctx: NodeContext, video: Video, start: float, end: float | None, unit: str
    ) -> dict[str, Any]:
        try:
            a, b = vo.trim_range(len(video), video.fps, start, end, unit)
        except ValueError as exc:
            raise ctx.error(
                str(exc),
                port="start" if "start" in str(exc) else "end",
                fix="frames are whole numbers; use unit 'seconds' for times",
            ) from None
        if b <= a:
            stop = "the end" if end is None else f"{end:g}"
            length = len(video) if unit == "frames" else video.duration
            past = a >= len(video)  # the start is beyond the clip, not the end before it
            raise ctx.error(
                f"trimming {start:g}..{stop} {unit} keeps no frames of a "
                f"{len(video)}-frame ({video.duration:.3g} s) video",
                port="start" if past else "end",
                fix=f"start within the clip (below {length:g} {unit})"
                if past
                else "make end larger than start, within the clip",
            )
        return {"video": video.slice(a, b)}


class Resize(Node):
    """Scale every frame. stretch ignores the aspect ratio; fit keeps it inside width×height
    (one side may come out smaller); fill covers and centre-crops; letterbox fits and pads."""

    type_id = "video.resize"
    title = "Resize Video"
    category = "video"
    inputs = (Input("video", Video, "clip to scale"),)
    outputs = (Output("video", Video, "scaled clip"),)
    params = (
        Param("width", Int, 640, "target width", min=1, max=16384),
        Param("height", Int, 360, "target height", min=1, max=16384),
        Param(
            "keep_aspect",
            Enum,
            "stretch",
            "how the aspect ratio is treated",
            choices=("stretch", "fit", "fill", "letterbox"),
        ),
        Param(
            "mode",
            Enum,
            "area",
            "resampling filter (area: best for shrinking)",
            choices=RESIZE_MODES,
        ),
    )

    def run(
        self, ctx: NodeContext, video: Video, width: int, height: int, keep_aspect: str, mode: str
    ) -> dict[str, Any]:
        size: tuple[int, int] | None = (width, height)
        if keep_aspect == "fit" and len(video):
            w, h = video.size
            s = min(width / w, height / h)
            size = (max(1, round(w * s)), max(1, round(h * s)))
        scaled = getattr(video, "scaled", None)
        if scaled is not None and keep_aspect in ("stretch", "fit") and size is not None:
            # A file source scales inside FFmpeg's decoder output, and an encoder can then take
            # its frames without a trip through float RGB: the fast path for long clips.
            return {"video": scaled(size[0], size[1], mode)}

        def get(i: int) -> Image:
            return Image(_resized(video.frame(i).data, width, height, keep_aspect, mode))

        return {"video": Video(len(video), video.fps, get, size, video.source, video.audio)}


class Concat(Node):
    """Join clips end to end, audio too (a clip without audio adds silence of its length).

    Clips must share size and frame rate unless ``conform`` is on: then each is resized to the
    first clip's size (``fit``) and resampled to its frame rate by frame times, keeping each
    clip's duration."""

    type_id = "video.concat"
    title = "Concatenate Videos"
    category = "video"
    inputs = (Input("videos", Video, "clips in order (connect any number)", multi=True),)
    outputs = (Output("video", Video, "the joined clip"),)
    params = (
        Param("conform", Bool, False, "resample size and fps to the first clip's"),
        Param("fit", Enum, "letterbox", "how a conformed clip fills the size", choices=FITS),
        Param("mode", Enum, "bilinear", "resampling filter", choices=RESIZE_MODES),
    )

    def run(
        self, ctx: NodeContext, videos: list[Video], conform: bool, fit: str, mode: str
    ) -> dict[str, Any]:
        clips = [v for v in videos if v is not None]
        if not clips:
            raise ctx.error("no clips to join", port="videos", fix="connect at least one video")
        first = clips[0]
        fps = first.fps
        # Size from the first clip with frames: an empty clip has none to tell.
        w0, h0 = next((v.size for v in clips if len(v)), (1, 1))
        parts: list[Video] = []
        for k, v in enumerate(clips):
            size = v.size if len(v) else (w0, h0)
            if size != (w0, h0) or not vo.same_rate(v.fps, fps):
                if not conform:
                    what = (
                        f"is {size[0]}×{size[1]} but the first is {w0}×{h0}"
                        if size != (w0, h0)
                        else f"runs at {vo.rate_text(v.fps)} fps but the first at "
                        f"{vo.rate_text(fps)} fps"
                    )
                    raise ctx.error(
                        f"clip {k + 1} {what}",
                        port="videos",
                        fix="turn on conform, or resize/retime the clips first",
                    )
                v = self.conformed(v, w0, h0, fps, fit, mode)
            parts.append(v)
        offsets = list(np.cumsum([0] + [len(p) for p in parts[:-1]]))
        total = sum(len(p) for p in parts)

        def get(i: int) -> Image:
            k, j = vo.locate(offsets, i)
            while len(parts[k]) == 0:  # empty parts share an offset with the next one
                k += 1
            return parts[k].frame(j)

        audio = None
        if any(p.audio is not None for p in parts):
            ref = next(p.audio for p in parts if p.audio is not None)
            audio = AudioTrack.join(
                [
                    p.audio.fit(p.duration)
                    if p.audio is not None
                    else AudioTrack.silence(p.duration, ref.sample_rate, ref.channels)
                    for p in parts
                ]
            )
        return {"video": Video(total, fps, get, (w0, h0), first.source, audio)}

    @staticmethod
    def conformed(v: Video, w: int, h: int, fps: float, fit: str, mode: str) -> Video:
        n = vo.conform_length(len(v), v.fps, fps)
        src = _Recent(v)

        def get(j: int) -> Image:
            img = src.frame(vo.conform_index(j, v.fps, fps, len(v)))
            if (img.width, img.height) == (w, h):
                return img
            return Image(_resized(img.data, w, h, fit, mode))

        audio = None if v.audio is None else v.audio.fit(n / fps)
        return Video(n, fps, get, (w, h), v.source, audio)


# --------------------------------------------------------------------------------------------
# Time


class Speed(Node):
    """Retime by ``factor`` (2: twice as fast). drop skips or repeats frames; blend averages the
    frames each output frame spans when faster and cross-fades neighbours when slower. The sound
    is retimed along with its pitch kept (FFmpeg's atempo when the file is written)."""

    type_id = "video.speed"
    title = "Change Speed"
    category = "video"
    inputs = (Input("video", Video, "clip to retime"),)
    outputs = (Output("video", Video, "retimed clip"),)
    params = (
        Param("factor", Float, 2.0, "speed multiplier", min=0.01, max=100.0),
        Param("mode", Enum, "drop", "drop/duplicate frames, or blend them", choices=vo.SPEED_MODES),
    )

    def run(self, ctx: NodeContext, video: Video, factor: float, mode: str) -> dict[str, Any]:
        n, length = vo.speed_length(len(video), factor), len(video)
        if factor == 1.0:
            return {"video": video}
        audio = None if video.audio is None else video.audio.retimed(factor).fit(n / video.fps)
        src = _Recent(video)

        def get(j: int) -> Image:
            if mode == "drop":
                return src.frame(vo.speed_index(j, factor, length))
            pairs = vo.speed_weights(j, factor, length)
            if len(pairs) == 1:
                return src.frame(pairs[0][0])
            frames = [src.frame(i).data for i, _ in pairs]
            return Image(vo.weighted_sum(frames, [w for _, w in pairs]))

        return {"video": Video(n, video.fps, get, video.known_size, video.source, audio)}


class Reverse(Node):
    """Play backwards, the sound too (mute it downstream with video.save's sound=none)."""

    type_id = "video.reverse"
    title = "Reverse Video"
    category = "video"
    inputs = (Input("video", Video, "clip to reverse"),)
    outputs = (Output("video", Video, "reversed clip"),)

    def run(self, ctx: NodeContext, video: Video) -> dict[str, Any]:
        n = len(video)
        audio = None if video.audio is None else video.audio.reversed()
        src = _Recent(video)
        return {
            "video": Video(
                n,
                video.fps,
                lambda i: src.frame_backwards(n - 1 - i),
                video.known_size,
                video.source,
                audio,
            )
        }


class Loop(Node):
    """Repeat a clip ``count`` times, audio repeated along."""

    type_id = "video.loop"
    title = "Loop Video"
    category = "video"
    inputs = (Input("video", Video, "clip to repeat"),)
    outputs = (Output("video", Video, "repeated clip"),)
    params = (Param("count", Int, 2, "how many times it plays", min=1, max=10000),)

    def run(self, ctx: NodeContext, video: Video, count: int) -> dict[str, Any]:
        n = len(video)
        audio = (
            None
            if video.audio is None
            else AudioTrack.join([video.audio.fit(video.duration)] * count)
        )
        return {
            "video": Video(
                n * count,
                video.fps,
                lambda i: video.frame(i % n),
                video.known_size,
                video.source,
                audio,
            )
        }


# --------------------------------------------------------------------------------------------
# Compositing


class Transition(Node):
    """Play ``a`` then ``b``, overlapping the last ``frames`` of a with the first of b in a
    crossfade, a wipe or a dip to a colour; the result has len(a) + len(b) − frames frames.
    Sound cuts from a to b in the middle of the overlap."""

    type_id = "video.transition"
    title = "Transition"
    category = "video"
    inputs = (Input("a", Video, "outgoing clip"), Input("b", Video, "incoming clip"))
    outputs = (Output("video", Video, "a, the transition, then b"),)
    params = (
        Param("kind", Enum, "crossfade", "how b replaces a", choices=vo.TRANSITIONS),
        Param("frames", Int, 12, "overlap length in frames", min=1, max=100000),
        Param("direction", Enum, "left", "wipe direction", choices=vo.WIPE_DIRECTIONS),
        Param("color", Color, "#000000", "dip colour"),
    )

    def run(
        self,
        ctx: NodeContext,
        a: Video,
        b: Video,
        kind: str,
        frames: int,
        direction: str,
        color: tuple[float, ...],
    ) -> dict[str, Any]:
        n = frames
        if n > min(len(a), len(b)):
            raise ctx.error(
                f"a {n}-frame transition needs both clips that long; a has "
                f"{len(a)} and b {len(b)} frames",
                port="frames",
                fix=f"use at most {min(len(a), len(b))} frames",
            )
        if a.size != b.size:
            raise ctx.error(
                f"b is {b.size[0]}×{b.size[1]} but a is {a.size[0]}×{a.size[1]}",
                port="b",
                fix="resize one clip (video.resize) to the other's size",
            )
        if not vo.same_rate(a.fps, b.fps):
            raise ctx.error(
                f"b runs at {vo.rate_text(b.fps)} fps but a at {vo.rate_text(a.fps)} fps",
                port="b",
                fix="conform the frame rates first (video.concat with conform, or video.speed)",
            )
        la, lb, rgb = len(a), len(b), _rgb(color)

        def get(i: int) -> Image:
            if i < la - n:
                return a.frame(i)
            if i >= la:
                return b.frame(i - la + n)
            k = i - (la - n)
            t = vo.transition_progress(k, n)
            return Image(
                vo.transition_frame(a.frame(i).data, b.frame(k).data, t, kind, direction, rgb)
            )

        audio = None
        if a.audio is not None or b.audio is not None:
            ref = a.audio or b.audio
            assert ref is not None
            cut = (la - n + n / 2) / a.fps
            tracks = [
                t.fit(v.duration)
                if t is not None
                else AudioTrack.silence(v.duration, ref.sample_rate, ref.channels)
                for t, v in ((a.audio, a), (b.audio, b))
            ]
            audio = AudioTrack.join(
                [tracks[0].slice(0, cut), tracks[1].slice(n / 2 / b.fps, b.duration)]
            )
        return {"video": Video(la + lb - n, a.fps, get, a.known_size, a.source, audio)}


def _keys(
    ctx: NodeContext, text: str, dims: int, port: str
) -> list[tuple[float, tuple[float, ...]]]:
    try:
        return vo.parse_keyframes(text, dims)
    except ValueError as exc:
        example = "0:0.1,0.1; 48:0.6,0.6" if dims == 2 else "0:0.3; 48:0.5"
        raise ctx.error(
            f"keyframes {text!r}: {exc}", port=port, fix=f"write FRAME:VALUE pairs like {example!r}"
        ) from None


class Overlay(Node):
    """Picture-in-picture and masked compositing: ``overlay`` scaled to ``scale`` × the base's
    width (aspect kept), its top-left corner at ``position`` (fractions of the base), both
    animated by keyframes like ``0:0.1,0.1; 48:0.6,0.6`` (linear between, held outside). The
    overlay's alpha, a ``mask`` or a ``mask_video`` (in the overlay's own frame, so scaled and
    moved with it) and ``opacity`` say how much of it shows. It starts at base frame ``start``."""

    type_id = "video.overlay"
    title = "Overlay Video"
    category = "video"
    inputs = (
        Input("base", Video, "background clip"),
        Input("overlay", Video, "clip placed on top"),
        Input("mask", Mask, "where the overlay shows (overlay's frame)", optional=True),
        Input("mask_video", Video, "a mask per overlay frame", optional=True),
    )
    outputs = (Output("video", Video, "the composite, base length and audio"),)
    params = (
        Param("position", String, "0:0.6,0.6", "keyframes FRAME:X,Y of the top-left"),
        Param("scale", String, "0:0.33", "keyframes FRAME:S, width as a fraction of the base's"),
        Param("opacity", Float, 1.0, "overall opacity", min=0.0, max=1.0),
        Param("start", Int, 0, "base frame where the overlay's frame 0 shows", min=0),
        Param("mode", Enum, "area", "resampling filter", choices=RESIZE_MODES),
    )

    def run(
        self,
        ctx: NodeContext,
        base: Video,
        overlay: Video,
        position: str,
        scale: str,
        opacity: float,
        start: int,
        mode: str,
        mask: Mask | None = None,
        mask_video: Video | None = None,
    ) -> dict[str, Any]:
        pos_keys, scale_keys = _keys(ctx, position, 2, "position"), _keys(ctx, scale, 1, "scale")
        if any(v[0] <= 0 for _, v in scale_keys):
            raise ctx.error("scale must be positive", port="scale", fix="use values like 0.3")
        if mask_video is not None and len(mask_video) < len(overlay):
            raise ctx.error(
                f"mask_video has {len(mask_video)} frames, the overlay {len(overlay)}",
                port="mask_video",
                fix="give a mask for every overlay frame",
            )

        src = _Recent(overlay)

        def get(i: int) -> Image:
            frame = base.frame(i)
            j = i - start
            if j < 0 or j / base.fps >= overlay.duration - 1e-9:
                return frame
            k = vo.conform_index(j, overlay.fps, base.fps, len(overlay))
            ov = src.frame(k).data
            bw, bh = frame.width, frame.height
            s = vo.interpolate(scale_keys, i)[0]
            x, y = vo.interpolate(pos_keys, i)
            w = max(1, round(s * bw))
            h = max(1, round(w * ov.shape[0] / ov.shape[1]))
            layer = resize(ov, w, h, mode, "stretch")
            alpha = np.full((h, w, 1), opacity, np.float32)
            if layer.shape[2] == 4:
                alpha *= layer[:, :, 3:]
            for m in (
                mask.data if mask is not None else None,
                mask_video.frame(k).gray() if mask_video is not None else None,
            ):
                if m is not None:
                    alpha *= resize(m[:, :, None] if m.ndim == 2 else m, w, h, mode, "stretch")[
                        :, :, :1
                    ]
            px, py = vo.place(bw, bh, w, h, x, y, anchor="topleft")
            return Image(vo.composite(frame.data, layer, alpha, px, py))

        return {"video": Video(len(base), base.fps, get, base.known_size, base.source, base.audio)}


class Text(Node):
    """A title over a video: ``text`` (several lines allowed) centred at (x, y), fractions of
    the frame, shown on frames [start, end) with a fade of ``fade`` frames in and out. Empty
    ``font`` uses Pillow's bundled font, so renders look the same on every machine."""

    type_id = "video.text"
    title = "Title Text"
    category = "video"
    inputs = (Input("video", Video, "clip to title"),)
    outputs = (Output("video", Video, "titled clip"),)
    params = (
        Param("text", String, "Title", "what to write", multiline=True),
        Param("size", Int, 32, "text height in pixels", min=4, max=2000),
        Param("color", Color, "#ffffff", "text colour (alpha: opacity)"),
        Param("x", Float, 0.5, "centre, fraction of the width", min=-1.0, max=2.0),
        Param("y", Float, 0.5, "centre, fraction of the height", min=-1.0, max=2.0),
        Param("start", Int, 0, "first frame showing the title", min=0),
        Param("end", Int, None, "frame after the last (empty: to the end)", min=0, optional=True),
        Param("fade", Int, 0, "fade in/out length in frames", min=0, max=100000),
        Param(
            "font",
            InputFile,
            "",
            "TrueType/OpenType file (empty: built-in)",
            optional=True,
            suffixes=(".ttf", ".otf"),
        ),
    )
    constraints = (Ordered("start", "end", why="the title would show on no frame"),)

    def run(
        self,
        ctx: NodeContext,
        video: Video,
        text: str,
        size: int,
        color: tuple[float, ...],
        x: float,
        y: float,
        start: int,
        end: int | None,
        fade: int,
        font: str,
    ) -> dict[str, Any]:
        stop = len(video) if end is None else min(end, len(video))
        if stop <= start and text:
            raise ctx.error(
                f"the title would show on no frame ({start}..{stop} of {len(video)})",
                port="end",
                fix="make end larger than start",
            )
        font_path = str(ctx.resolve_path(font)) if font else ""
        try:
            cover = vo.render_text(text, size, font_path) if text else None
        except OSError as exc:
            raise ctx.error(
                f"cannot use font {font}: {exc}", port="font", fix="give a valid .ttf/.otf file"
            ) from None
        rgb = np.asarray(_rgb(color), np.float32)

        def get(i: int) -> Image:
            frame = video.frame(i)
            a = vo.fade_alpha(i, start, stop, fade) * float(color[3])
            if cover is None or a <= 0:
                return frame
            h, w = cover.shape
            layer = np.broadcast_to(rgb, (h, w, 3))
            px, py = vo.place(frame.width, frame.height, w, h, x, y)
            return Image(vo.composite(frame.data, layer, (cover * a)[:, :, None], px, py))

        return {
            "video": Video(len(video), video.fps, get, video.known_size, video.source, video.audio)
        }


# --------------------------------------------------------------------------------------------
# Any image subgraph, per frame


def _pick(
    ports: Any, types: tuple[type, ...], name: str, what: str, sub: str, ctx: NodeContext, port: str
) -> str:
    if name:
        p = next((p for p in ports if p.name == name), None)
        if p is None or not issubclass(p.type, types):
            raise ctx.error(
                f"subgraph '{sub}' has no image {what} named '{name}'",
                port=port,
                fix=f"use one of: {', '.join(q.name for q in ports) or '(none)'}",
            )
        return name
    found = [p.name for p in ports if issubclass(p.type, types)]
    if len(found) != 1:
        how = "exposes no" if not found else f"exposes several ({', '.join(found)})"
        raise ctx.error(
            f"subgraph '{sub}' {how} Image {what}s",
            port=port if found else "subgraph",
            fix=f"name the {what} in '{port}'"
            if found
            else f"expose one Image {what} of an inner node in the subgraph",
        )
    return found[0]


def _map_problems(cls: type[Node], params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
    name = params.get("subgraph") or ""
    runner = getattr(ctx, "subgraphs", None)
    if not name:
        return [
            Problem(
                "no subgraph named.",
                ctx.node_id,
                "subgraph",
                "name a subgraph of this graph or of your library",
            )
        ]
    if runner is not None and runner.find(name) is None:
        return [
            Problem(
                f"there is no subgraph '{name}'.",
                ctx.node_id,
                "subgraph",
                "make one (select nodes → make subgraph) or fix the name",
            )
        ]
    return []


def _definition_key(cls: type[Node], params: dict[str, Any], ctx: NodeContext) -> str:
    """The subgraph's content: editing the definition must invalidate the mapped video."""
    from fathom.engine.graphfile import subgraph_body
    from fathom.engine.provenance import canonical_json

    runner = getattr(ctx, "subgraphs", None)
    d = runner.find(params.get("subgraph") or "") if runner is not None else None
    if d is None:
        return "missing"
    return hashlib.sha256(canonical_json(subgraph_body(d)).encode()).hexdigest()


class Map(Node):
    """Apply an image subgraph to every frame, lazily: a frame runs the subgraph (through the
    cache, keyed by the frame's identity) only when something reads it, so any image node works
    on video. The subgraph needs one exposed Image input and one Image (or Mask) output; name
    them in ``input``/``output`` when it has several. Progress counts the frames computed."""

    type_id = "video.map"
    title = "Map Frames"
    category = "video"
    main_params = ("subgraph",)
    inputs = (Input("video", Video, "clip whose frames go through the subgraph"),)
    outputs = (Output("video", Video, "the subgraph's output per frame (mask → 1 channel)"),)
    params = (
        Param(
            "subgraph",
            String,
            "",
            "name of the subgraph (this graph's or library)",
            suggest="subgraphs",
        ),
        Param("input", String, "", "exposed Image input fed each frame (empty: the only one)"),
        Param("output", String, "", "exposed Image/Mask output (empty: the only one)"),
        Param(
            "settings",
            String,
            "",
            "the subgraph's exposed parameters as JSON, e.g. "
            '{"brightness": 0.1} (empty: its defaults)',
            multiline=True,
        ),
    )

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        return _map_problems(cls, params, ctx)

    @classmethod
    def cache_extra(cls, params: dict[str, Any], ctx: NodeContext) -> str:
        return _definition_key(cls, params, ctx)

    def run(
        self, ctx: NodeContext, video: Video, subgraph: str, input: str, output: str, settings: str
    ) -> dict[str, Any]:
        runner = ctx.subgraphs
        if runner is None or runner.find(subgraph) is None:
            raise ctx.error(
                f"there is no subgraph '{subgraph}'",
                port="subgraph",
                fix="name a subgraph of this graph or of your library",
            )
        cls = runner.node_class(subgraph)
        in_port = _pick(cls.inputs, (Image,), input, "input", subgraph, ctx, "input")
        out_port = _pick(cls.outputs, (Image, Mask), output, "output", subgraph, ctx, "output")
        needs = [p.name for p in cls.inputs if p.name != in_port and not p.optional]
        if needs:
            raise ctx.error(
                f"subgraph '{subgraph}' also needs inputs {', '.join(needs)}, which "
                "video.map cannot feed",
                port="subgraph",
                fix="set those inside the subgraph instead of exposing them",
            )
        values = _settings(ctx, cls, settings)
        try:
            run = runner.prepare(subgraph, {in_port: Image}, out_port, ctx.node_id, values)
        except GraphInvalid as exc:
            raise ctx.error(
                f"subgraph '{subgraph}' cannot run: {exc}",
                port="subgraph",
                fix="fix the subgraph's problems listed",
            ) from None
        return {
            "video": Video(
                len(video),
                video.fps,
                _FrameMapper(ctx, video, run, in_port),
                None,
                video.source,
                video.audio,
            )
        }


def _settings(ctx: NodeContext, cls: type[Node], text: str) -> dict[str, Any]:
    """Parse and check ``settings`` against the subgraph's exposed parameters."""
    if not text.strip():
        return {}
    names = ", ".join(p.name for p in cls.params) or "(none)"
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ctx.error(
            f"settings are not JSON: {exc}",
            port="settings",
            fix='write an object like {"brightness": 0.1}',
        ) from None
    if not isinstance(raw, dict):
        raise ctx.error(
            "settings must be a JSON object",
            port="settings",
            fix='write an object like {"brightness": 0.1}',
        )
    out = {}
    for key, value in raw.items():
        spec = cls.param(key)
        if spec is None:
            raise ctx.error(
                f"the subgraph exposes no parameter '{key}'",
                port="settings",
                fix=f"use one of: {names}",
            )
        try:
            out[key] = spec.validate(value)
        except ValueError as exc:
            raise ctx.error(
                f"settings '{key}': {exc}", port="settings", fix=f"give {spec.allowed()}"
            ) from None
    return out


class _FrameMapper:
    """get_frame of a mapped video: one subgraph run per frame, keyed by the input port's cache
    identity and the index (or by the frame's pixels when there is no graph around it)."""

    def __init__(
        self, ctx: NodeContext, video: Video, run: Callable[[dict[str, Any]], Any], port: str
    ) -> None:
        self.ctx = ctx
        self.port = port
        self.video = video
        self.run = run
        self.base = ctx.input_keys.get("video", "")
        self.done: set[int] = set()
        self.lock = threading.Lock()

    def key(self, i: int) -> tuple[Any, str]:
        if self.base:
            return (lambda: self.video.frame(i)), f"{self.base}#{i}"
        frame = self.video.frame(i)
        digest = hashlib.blake2b(frame.data.tobytes(), digest_size=20)
        digest.update(repr(frame.data.shape).encode())
        return frame, f"pixels:{digest.hexdigest()}"

    def __call__(self, i: int) -> Image:
        self.ctx.check_cancelled()
        out = self.run({self.port: self.key(i)})
        with self.lock:
            self.done.add(i)
            done = len(self.done)
        self.ctx.progress(done / max(1, len(self.video)), f"frame {i}")
        return out if isinstance(out, Image) else Image(out.data)
