"""Depth on video: per-frame depth that reuses the previous frame's work, and parallax from it.

``video.depth`` runs the models ``depth.estimate`` runs (loaded the same way, through the model
manager) on every frame of a lazy Video, streaming: frame i is computed when something reads it,
in order, and only the previous frame's activations are kept. Each frame the stream makes goes to
a ``DepthStore`` on disk, so several consumers of one depth output (a save, a colourised save
and a parallax, say) compute each frame once, in flat memory. The ``temporal`` choice picks how
a frame reuses the last one; each choice is one stepper class in ``TEMPORAL_MODES`` (a dict from
the choice to a factory), so a new mode is one entry.

A depth video is a Video of one-channel float Images holding what ``depth.estimate`` gives for
the frame: relative models 0 = near … 1 = far (normalised per frame), metric models metres (0
where the model gives no depth). ``video.save`` writes it as a 16-bit PNG or EXR sequence or,
with a colour map, a colourised MP4; ``video.parallax`` renders a small camera move per frame
from a clip and its depth video.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from fathom.engine.accel.delta import DELTA_STUDENT
from fathom.engine.accel.resq import RESQ_BITS
from fathom.engine.context import NodeContext
from fathom.engine.errors import Problem
from fathom.engine.imaging import depthmath
from fathom.engine.media.framestore import remove_spill
from fathom.engine.models.depth import is_metric_model, load_transformers_depth
from fathom.engine.node import Input, ModelsFor, Node, Output, Param
from fathom.engine.types import Enum, Float, Image, Int, String, Video

DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
TEMPORAL_HELP = (
    "off: every frame through the model; reuse: recompute only changed patches, layer by "
    "layer; resq: the change from a low-bit residual; delta: a distilled student"
)


class Stepper(Protocol):
    """One temporal mode: the model's raw prediction (1 × H × W) for the next frame, in order.
    ``reset(index)`` forgets the caches; the next frame is frame ``index`` of the clip."""

    def step(self, pixel_values: Any) -> Any: ...

    def reset(self, index: int = 0) -> None: ...


@dataclass(frozen=True)
class Settings:
    """The node's temporal parameters, as the modes take them."""

    temporal: str
    keyframe_interval: int
    threshold: float
    bits: int
    student: str


class _Off:
    """Every frame through the model's own forward: exactly what depth.estimate computes."""

    def __init__(self, net: Any, settings: Settings) -> None:
        self.net = net

    def step(self, pixel_values: Any) -> Any:
        return self.net(pixel_values=pixel_values).predicted_depth

    def reset(self, index: int = 0) -> None:
        pass


class _Periodic:
    """Keyframes at fixed clip positions (multiples of ``keyframe_interval``), so reading a
    frame out of order (restart at the keyframe before it) gives what an in-order run gives."""

    def __init__(self, engine: Any, interval: int) -> None:
        self.engine = engine
        self.interval = interval
        self.index = 0

    def step(self, pixel_values: Any) -> Any:
        if self.index % self.interval == 0:
            self.engine.reset()
        self.index += 1
        return self.engine.step(pixel_values)

    def reset(self, index: int = 0) -> None:
        self.engine.reset()
        self.index = index


def _reuse(net: Any, s: Settings) -> Stepper:
    from fathom.engine.accel.temporal_reuse import TemporalReuse

    # The engine's own interval is unused: _Periodic places the keyframes.
    engine = TemporalReuse(net, threshold=s.threshold, keyframe_interval=1 << 30)
    return _Periodic(engine, s.keyframe_interval)


def _resq(net: Any, s: Settings) -> Stepper:
    from fathom.engine.accel.resq import ResQ

    engine = ResQ(net, bits=s.bits, keyframe_interval=1 << 30, change_ref=s.threshold)
    return _Periodic(engine, s.keyframe_interval)


def _delta(net: Any, s: Settings) -> Stepper:
    from fathom.engine.accel.delta import DeltaRunner, StudentError, load_student

    if not s.student.strip():
        raise _ModeError(
            "temporal 'delta' needs a Delta-Distillation student",
            "student",
            "set `student` to a folder made by `fathom distill MODEL CLIPS... --out FOLDER`",
        )
    try:
        runner = DeltaRunner(net, load_student(s.student, net))
    except StudentError as exc:
        raise _ModeError(str(exc), "student", exc.fix) from None
    return _Periodic(runner, s.keyframe_interval)


class _ModeError(Exception):
    def __init__(self, message: str, port: str, fix: str) -> None:
        super().__init__(message)
        self.port, self.fix = port, fix


#: What the temporal modes other than 'off' need: a Depth Anything model (DINOv2 backbone),
#: since they run it layer by layer (the check and the studio's model picker both say so).
LAYER_BY_LAYER = ModelsFor(
    ("depth_anything",), "Depth Anything (V1/V2)", "runs Depth Anything models layer by layer"
)

#: temporal choice → factory(net, settings) of its Stepper.
TEMPORAL_MODES: dict[str, Callable[[Any, Settings], Stepper]] = {
    "off": lambda net, s: _Off(net, s),
    "reuse": _reuse,
    "resq": _resq,
    "delta": _delta,
}


class DepthFrames:
    """Pre- and post-processing of one frame, the same as depth.estimate's: the model's
    processor in, bicubic resize to the frame and per-frame normalisation (relative) out."""

    def __init__(self, processor: Any, net: Any) -> None:
        self.processor = processor
        self.net = net
        self.metric = is_metric_model(net)
        std = getattr(processor, "image_std", None) or (0.229, 0.224, 0.225)
        self.std = tuple(float(v) for v in std)

    def pixels(self, image: Image) -> Any:
        rgb8 = (np.clip(image.rgb(), 0, 1) * 255).astype(np.uint8)
        inputs = self.processor(images=rgb8, return_tensors="pt")
        device = next(self.net.parameters()).device
        return inputs["pixel_values"].to(device, dtype=self.net.dtype)

    def finish(self, pred: Any, height: int, width: int) -> np.ndarray:
        import torch

        out = torch.nn.functional.interpolate(
            pred[:, None].float(), size=(height, width), mode="bicubic", align_corners=False
        )[0, 0]
        arr = out.cpu().numpy().astype(np.float32)
        if self.metric:
            return np.where(arr > 0, arr, 0.0).astype(np.float32)
        return (1.0 - _normalize(arr)).astype(np.float32)


def _normalize(arr: np.ndarray) -> np.ndarray:
    """``depthmath.normalize(arr, positive_only=False)``, the same numbers, without its
    percentile sort when every value is finite (min and max are the 0th and 100th
    percentiles): the sort dominated the per-frame cost of a 1080p clip."""
    if not np.isfinite(arr).all():
        return depthmath.normalize(arr, positive_only=False)
    lo, hi = np.float64(arr.min()), np.float64(arr.max())
    span = hi - lo if hi > lo else 1.0
    return np.clip((arr - lo) / span, 0.0, 1.0).astype(np.float32)


class DepthStore:
    """The depth frames one run has made, spilled to a temporary file as they come (float32,
    exact), so a second reader of the same depth output reads them back instead of restarting
    the stream. Memory stays flat however long the clip: only an index of offsets is kept. The
    file is made on the first frame and removed when the store (and every Video reading it) is
    gone. Disk is bounded too: past ``budget`` bytes (``FATHOM_DEPTH_STORE_MB``, default 2048:
    about 250 frames of 1080p) frames are no longer kept, and a second reader computes those
    again rather than a long clip filling the disk (a 10-minute 1080p clip is ~115 GB of
    float32 depth)."""

    def __init__(self, budget: int | None = None) -> None:
        if budget is None:
            from fathom.engine.envvars import env_number

            mb = env_number("FATHOM_DEPTH_STORE_MB", 2048, "megabytes of depth frames in memory")
            budget = int(mb * 2**20)
        self.budget = budget
        self._file: Any = None
        self._where: dict[int, tuple[int, tuple[int, ...]]] = {}
        self._end = 0
        self._finalizer: Any = None

    @staticmethod
    def _cleanup(file: Any, path: str) -> None:
        try:
            file.close()
        finally:
            remove_spill(path)

    def __contains__(self, index: int) -> bool:
        return index in self._where

    def spilled_nbytes(self) -> int:
        """Bytes on disk: the output cache counts them against its spill budget."""
        return self._end

    def put(self, index: int, depth: np.ndarray) -> None:
        """Keep frame ``index`` (callers hold the stream's lock)."""
        if index in self._where or self._end + depth.size * 4 > self.budget:
            return
        if self._file is None:
            import tempfile
            import weakref

            self._file = tempfile.NamedTemporaryFile(
                prefix="fathom-depth-", suffix=".raw", delete=False
            )
            self._finalizer = weakref.finalize(
                self, DepthStore._cleanup, self._file, self._file.name
            )
        arr = np.ascontiguousarray(depth, dtype=np.float32)
        self._file.seek(self._end)
        self._file.write(arr.tobytes())
        self._file.flush()  # out of this process's memory now
        self._where[index] = (self._end, arr.shape)
        self._end += arr.nbytes

    def get(self, index: int) -> np.ndarray:
        offset, shape = self._where[index]
        self._file.seek(offset)
        data = bytearray(self._file.read(int(np.prod(shape)) * 4))
        return np.frombuffer(data, np.float32).reshape(shape)


class DepthStream:
    """Computes depth frames in order with one Stepper; reading frame i out of order restarts
    at the keyframe before it. Frames already in the ``store`` a reader passes are read back,
    and every frame computed (catch-up frames too) goes into it. Thread-safe: readers may
    prefetch from another thread."""

    def __init__(self, frames: DepthFrames, stepper: Stepper, interval: int) -> None:
        self.frames = frames
        self.stepper = stepper
        self.interval = max(1, interval)
        self.next = 0
        self.last: tuple[int, np.ndarray] | None = None
        self.lock = threading.Lock()

    def depth(self, image: Image) -> np.ndarray:
        """The next frame's depth (H × W), as depth.estimate computes it for ``image``."""
        import torch

        with torch.inference_mode():
            pred = self.stepper.step(self.frames.pixels(image))
            return self.frames.finish(pred, image.height, image.width)

    def frame(
        self,
        video: Video,
        i: int,
        check: Callable[[], None],
        store: DepthStore | None = None,
    ) -> np.ndarray:
        with self.lock:
            if self.last is not None and self.last[0] == i:
                return self.last[1]
            if store is not None and i in store:
                return store.get(i)
            if i != self.next:
                start = i - i % self.interval
                self.stepper.reset(start)
                for j in range(start, i):
                    check()
                    image = video.frame(j)
                    if store is None or j in store:
                        import torch

                        with torch.inference_mode():
                            self.stepper.step(self.frames.pixels(image))
                    else:
                        store.put(j, self.depth(image))
            out = self.depth(video.frame(i))
            if store is not None:
                store.put(i, out)
            self.next = i + 1
            self.last = (i, out)
            return out


class VideoDepth(Node):
    """Depth for every frame of a clip, streaming, with the same models as depth.estimate.
    temporal: off (each frame through the model), reuse (keyframes run the whole model; between
    them only the patches that changed beyond `threshold` are recomputed, layer by layer, and the
    depth head only over their tiles), resq (each frame's change computed from a `bits`-bit
    residual of the activations, more bits for larger changes), delta (a student trained with
    `fathom distill`). reuse and resq need a Depth Anything model. The output is a video of
    one-channel frames: relative depth 0 = near … 1 = far, or metres for metric models. In a live
    session frame t reuses frame t−1 across ticks."""

    type_id = "video.depth"
    title = "Video Depth"
    category = "motion"  # beside video.flow and video.segment: analysis of a clip
    main_params = ("model", "temporal")
    families: ClassVar[tuple[str, ...]] = ("depth",)
    inputs = (Input("video", Video, "clip to estimate depth for"),)
    outputs = (Output("depth", Video, "one-channel depth frames"),)
    params = (
        Param("model", String, DEFAULT_DEPTH_MODEL, "model folder or Hugging Face id (cached)"),
        Param("temporal", Enum, "off", TEMPORAL_HELP, choices=tuple(TEMPORAL_MODES)),
        Param("keyframe_interval", Int, 30, "frames between full keyframes", min=1, max=100000),
        Param(
            "threshold",
            Float,
            0.02,
            "mean pixel change (0..1) that makes a patch recompute (reuse) or adds bits (resq)",
            min=0.0,
            max=1.0,
        ),
        RESQ_BITS,
        DELTA_STUDENT,
    )

    #: The settings each temporal mode reads; changing another re-runs nothing.
    mode_param = "temporal"
    mode_reads: ClassVar[dict[str, tuple[str, ...]]] = {
        "off": (),
        "reuse": ("keyframe_interval", "threshold"),
        "resq": ("keyframe_interval", "threshold", "bits"),
        "delta": ("keyframe_interval", "student"),
    }
    mode_models: ClassVar[dict[str, ModelsFor]] = dict.fromkeys(
        ("reuse", "resq", "delta"), LAYER_BY_LAYER
    )

    @classmethod
    def cache_extra(cls, params: dict[str, Any], ctx: NodeContext) -> str:
        from fathom.engine.accel.delta import model_and_student_stamp

        return model_and_student_stamp(params, ctx)

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        from fathom.engine.accel.delta import student_problems
        from fathom.engine.generation import family_problems
        from fathom.engine.models import ModelError, locate_model
        from fathom.engine.models.families import transformers_model_type

        try:
            path = locate_model(params["model"], ctx.options.base_dir)
        except ModelError as exc:
            # The locator's message says what to do when it knows ("... Fix: ..."): one fix.
            message, _, fix = str(exc).partition("Fix:")
            fix = fix.strip() or (
                "point it at a depth model folder (config.json + model.safetensors) or a "
                "downloaded Hugging Face id, e.g. " + DEFAULT_DEPTH_MODEL
            )
            return [Problem(message.strip(), ctx.node_id, "model", fix)]
        problems = family_problems(cls, path, ctx)
        kind = transformers_model_type(path)
        temporal = str(params.get("temporal", "off"))
        problems += student_problems(params, ctx.node_id, ctx.options.base_dir, path)
        refused = cls.mode_model_problem(temporal, kind, path.name)
        if not problems and refused is not None:
            problems.append(Problem(refused[0], ctx.node_id, "temporal", refused[1]))
        return problems

    def run(
        self,
        ctx: NodeContext,
        video: Video,
        model: str,
        temporal: str,
        keyframe_interval: int,
        threshold: float,
        bits: int,
        student: str,
    ) -> dict[str, Any]:
        if len(video) == 0:
            raise ctx.error("the video has no frames", port="video", fix="check what feeds it")
        student = str(ctx.resolve_path(student)) if student.strip() else ""
        settings = Settings(temporal, keyframe_interval, threshold, bits, student)
        stream = self._stream(ctx, model, settings)
        store = DepthStore()  # per run: every consumer of this output shares its frames
        n = len(video)

        def get(i: int) -> Image:
            ctx.check_cancelled()
            out = Image(stream.frame(video, i, ctx.check_cancelled, store))
            ctx.progress((i + 1) / n, f"depth frame {i + 1}/{n}")
            return out

        return {
            "depth": Video(n, video.fps, get, video.known_size, video.source, video.audio),
        }

    @staticmethod
    def _stream(ctx: NodeContext, model: str, s: Settings) -> DepthStream:
        """A fresh stream, or in a live session the one the previous tick left in ctx.state,
        so that frame t continues from frame t−1."""
        key = (model, s)
        kept = ctx.state.get("stream")
        if ctx.live is not None and kept is not None and kept[0] == key:
            stream: DepthStream = kept[1]
            stream.next, stream.last = 0, None  # each tick's video is one new frame 0
            return stream
        dev, dtype = ctx.device.torch_device, ctx.device.dtype
        ctx.progress(0.0, "loading the depth model")  # seconds, before any frame is asked for
        processor, net = ctx.load_model(
            "transformers-depth", model, lambda p: load_transformers_depth(p, dev, dtype)
        )
        if s.temporal != "off":
            from fathom.engine.accel.depth_vit import is_depth_vit

            if not is_depth_vit(net):
                raise ctx.error(
                    f"temporal '{s.temporal}' runs Depth Anything models layer by layer; "
                    f"{model} is a {net.config.model_type} model",
                    port="temporal",
                    fix="use temporal 'off', or a Depth Anything (V1/V2) model",
                )
        try:
            stepper = TEMPORAL_MODES[s.temporal](net, s)
        except _ModeError as exc:
            raise ctx.error(str(exc), port=exc.port, fix=exc.fix) from None
        # 'off' keeps nothing between frames: an out-of-order read needs no catch-up.
        interval = 1 if s.temporal == "off" else s.keyframe_interval
        stream = DepthStream(DepthFrames(processor, net), stepper, interval)
        if ctx.live is not None:
            ctx.state["stream"] = (key, stream)
        return stream


# ---- parallax ----------------------------------------------------------------------------


class VideoParallax(Node):
    """A 3D parallax video: each frame, with its depth, becomes a mesh seen from a camera that
    moves a little around the original viewpoint (a circle, a sideways sway or a push in), so
    the clip gains depth. Relative depth is given a scale with `near`/`far` first. Holes opened
    behind foreground edges show the background colour."""

    type_id = "video.parallax"
    title = "Parallax Video"
    category = "video"
    main_params = ("motion", "amount")
    inputs = (
        Input("video", Video, "colour frames"),
        Input("depth", Video, "depth frames (video.depth's output), one per colour frame"),
    )
    outputs = (Output("video", Video, "frames seen from the moving camera"),)
    params = (
        Param("motion", Enum, "circle", "camera move", choices=("circle", "sway", "push")),
        Param("amount", Float, 0.05, "camera travel as a fraction of `near`", min=0.0, max=2.0),
        Param("period", Int, 48, "frames per cycle of the move", min=2, max=100000),
        Param(
            "depth_kind",
            Enum,
            "relative",
            "relative (0 = near … 1 = far) or metric (metres) frames",
            choices=("relative", "metric"),
        ),
        Param("near", Float, 1.0, "relative depth: metres at 0", min=1e-3, max=1e5),
        Param("far", Float, 4.0, "relative depth: metres at 1", min=1e-3, max=1e5),
        Param("fov", Float, 60.0, "vertical field of view of the clip", min=1, max=179),
        Param("cut", Float, 0.05, "relative depth jump that splits surfaces", min=0.0, max=100.0),
    )

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        """near/far scale relative depth only, so they are ordered only then (before the run:
        found mid-run, it came after the depth saves had spent their time)."""
        near, far = params.get("near", 1.0), params.get("far", 4.0)
        if params.get("depth_kind", "relative") == "relative" and near >= far:
            msg = f"near ({near}) must be less than far ({far})"
            return [Problem(msg, ctx.node_id, "near", "swap them")]
        return []

    def run(
        self,
        ctx: NodeContext,
        video: Video,
        depth: Video,
        motion: str,
        amount: float,
        period: int,
        depth_kind: str,
        near: float,
        far: float,
        fov: float,
        cut: float,
    ) -> dict[str, Any]:
        if len(video) == 0:
            raise ctx.error("the video has no frames", port="video", fix="check what feeds it")
        if len(depth) != len(video):
            raise ctx.error(
                f"depth has {len(depth)} frames but the video has {len(video)}",
                port="depth",
                fix="connect the depth video made from this clip (video.depth)",
            )
        if depth_kind == "relative" and near >= far:
            raise ctx.error(
                f"near ({near}) must be less than far ({far})", port="near", fix="swap them"
            )
        # A colour video wired in as depth would render as nonsense, not fail: refuse it. (A
        # depth video from video.depth keeps its frames, so reading frame 0 here costs nothing
        # later; another lazy source computes it once more.)
        channels = depth.frame(0).channels
        if channels != 1:
            raise ctx.error(
                f"the depth input's frames have {channels} channels; a depth video has one",
                port="depth",
                fix="connect video.depth's output here (a colour video is not depth)",
            )
        device = ctx.device.torch_device if ctx.device.kind == "cuda" else "cpu"
        n = len(video)

        def get(i: int) -> Image:
            ctx.check_cancelled()
            out = _parallax_frame(
                video.frame(i), depth.frame(i).gray(), i, motion, amount, period,
                depth_kind, near, far, fov, cut, device,
            )  # fmt: skip
            ctx.progress((i + 1) / n, f"parallax frame {i + 1}/{n}")
            return out

        return {"video": Video(n, video.fps, get, video.known_size, video.source, video.audio)}


def _parallax_frame(
    image: Image,
    d: np.ndarray,
    i: int,
    motion: str,
    amount: float,
    period: int,
    depth_kind: str,
    near: float,
    far: float,
    fov: float,
    cut: float,
    device: str,
) -> Image:
    from fathom.engine.geometry import projection, scene
    from fathom.engine.types import RGBD, Camera, Depth

    if d.shape != (image.height, image.width):
        import cv2

        d = cv2.resize(d, (image.width, image.height), interpolation=cv2.INTER_LINEAR)
    metres = depthmath.relative_to_metric(d, near, far) if depth_kind == "relative" else d
    cam = Camera.from_fov(image.width, image.height, fov)
    sc = scene.scene_from_rgbd(RGBD(image, Depth(metres, "metric")), cam, cut)
    a = 2 * math.pi * i / period
    step = amount * near
    if motion == "circle":
        eye = np.array([math.cos(a) - 1.0, math.sin(a), 0.0]) * step
    elif motion == "sway":
        eye = np.array([math.sin(a), 0.0, 0.0]) * step
    else:
        eye = np.array([0.0, 0.0, (1 - math.cos(a)) / 2]) * step
    target = np.array([0.0, 0.0, float(np.nanmedian(metres))])
    view = Camera(cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height,
                  projection.look_at(eye, target))  # fmt: skip
    out, _ = scene.render(sc, view, "torch", device)
    return Image(out.image)
