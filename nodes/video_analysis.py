"""Video analysis nodes: optical flow, flow-based in-between frames, per-frame foreground masks.

Each returns a lazy Video: a frame is computed when a save or preview reads it, from the few
source frames it needs. The flow math lives in ``engine.flow`` (pure functions), so other nodes
reach the raw flow the same way: ``engine.flow.PairFlows(lambda i: video.frame(i).data)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fathom.engine.accel.delta import DELTA_STUDENT
from fathom.engine.accel.resq import RESQ_BITS
from fathom.engine.context import NodeContext
from fathom.engine.errors import Problem
from fathom.engine.imaging import flow as fl
from fathom.engine.models.segmentation import load_transformers_segmentation
from fathom.engine.node import Input, ModelsFor, Node, Output, Param
from fathom.engine.types import Enum, Float, Image, Int, Mask, String, Video

SEGMENT_KIND = "transformers-segmentation"
#: video.segment's ``temporal`` choices: how a frame reuses the previous frame's work.
SEGMENT_TEMPORAL = ("flow", "off", "reuse", "resq", "delta")


def _frames(video: Video) -> Any:
    return lambda i: video.frame(i).data


def _need_frames(ctx: NodeContext, video: Video, least: int) -> None:
    if len(video) < least:
        raise ctx.error(
            f"the video has {len(video)} frame(s); this needs at least {least}",
            port="video",
            fix="connect a longer clip",
        )


class VideoFlow(Node):
    """Dense optical flow (OpenCV DIS) between consecutive frames, shown as a colour wheel:
    hue is the direction of motion, brightness its speed, black is still. Frame i shows the
    motion from frame i − 1 to frame i (frame 0 is black), so it lines up with the source."""

    type_id = "video.flow"
    title = "Optical Flow"
    category = "motion"
    inputs = (Input("video", Video, "clip to analyse"),)
    outputs = (Output("flow", Video, "flow picture per frame"),)
    params = (
        Param(
            "preset",
            Enum,
            "medium",
            "DIS quality/speed; 'sharp' keeps motion edges crisp",
            choices=fl.DIS_PRESETS,
        ),
        Param(
            "max_motion",
            Float,
            0.0,
            "pixels per frame shown at full brightness (0: each frame's fastest)",
            min=0,
            max=1000,
        ),
    )

    def run(self, ctx: NodeContext, video: Video, preset: str, max_motion: float) -> dict[str, Any]:
        _need_frames(ctx, video, 2)
        flows = fl.PairFlows(_frames(video), preset, memo=2)
        w, h = video.size

        def picture(i: int) -> Image:
            if i == 0:
                return Image(np.zeros((h, w, 3), np.float32))
            return Image(fl.flow_to_rgb(flows.flow(i - 1, i), max_motion))

        return {"flow": Video(len(video), video.fps, picture, (w, h), video.source, video.audio)}


class Interpolate(Node):
    """Raise the frame rate with in-between frames made from optical flow both ways (each
    neighbour warped to the in-between time, blended with occlusion-aware weights). The
    duration stays: a factor k makes k frames of every source frame (the last source frame is
    held for its k − 1), a target fps makes round(frames × fps / source fps) frames."""

    type_id = "video.interpolate"
    title = "Interpolate Frames"
    category = "motion"
    inputs = (Input("video", Video, "clip to make smoother"),)
    outputs = (Output("video", Video, "clip at the higher frame rate"),)
    params = (
        Param("factor", Int, 2, "frames per source frame", min=1, max=16),
        Param(
            "fps", Float, 0.0, "target frames per second instead (0: use factor)", min=0, max=1000
        ),
        Param("preset", Enum, "medium", "DIS flow quality/speed", choices=fl.DIS_PRESETS),
    )

    def run(
        self, ctx: NodeContext, video: Video, factor: int, fps: float, preset: str
    ) -> dict[str, Any]:
        _need_frames(ctx, video, 1)
        n = len(video)
        flows = fl.PairFlows(_frames(video), preset, memo=4)  # both ways for two pairs
        if fps > 0:
            out_fps, length = fps, max(1, round(n * fps / video.fps))
            step = video.fps / fps

            def where(j: int) -> tuple[int, float]:
                s = j * step
                i = math.floor(s + 1e-9)
                return i, max(0.0, s - i)
        else:
            out_fps, length = video.fps * factor, n * factor

            def where(j: int) -> tuple[int, float]:
                i, r = divmod(j, factor)
                return i, r / factor

        def frame(j: int) -> Image:
            i, t = where(j)
            if i >= n - 1 or t < 1e-6:
                return Image(flows.image(min(i, n - 1)))
            a, b = flows.image(i), flows.image(i + 1)
            mid = fl.interpolate(a, b, t, flows.flow(i, i + 1), flows.flow(i + 1, i))
            return Image(mid)

        out = Video(length, out_fps, frame, video.size, video.source)
        if video.audio is not None:
            out = out.with_audio(video.audio.fit(out.duration))
        ctx.report(frames=length, fps=out_fps)
        return {"video": out}


# ---- segmentation -----------------------------------------------------------------------------


def _load_segmenter(path: Path, device: str, dtype: str) -> tuple[Any, Any]:
    return load_transformers_segmentation(path, device, dtype)


def label_ids(id2label: dict[Any, str], labels: str) -> tuple[list[int], list[str]]:
    """Class ids for comma-separated names (case-insensitive), and the names not found."""
    by_name: dict[str, list[int]] = {}
    for k, v in id2label.items():
        by_name.setdefault(str(v).strip().lower(), []).append(int(k))
    ids: list[int] = []
    unknown: list[str] = []
    for name in (p.strip() for p in labels.split(",")):
        if not name:
            continue
        if name.lower() in by_name:
            ids += by_name[name.lower()]
        else:
            unknown.append(name)
    return sorted(set(ids)), unknown


def frame_pixels(processor: Any, model: Any, rgb: np.ndarray) -> Any:
    """The model's ``pixel_values`` for an RGB float frame, on the model's device and dtype."""
    rgb8 = (np.clip(rgb[..., :3], 0, 1) * 255).round().astype(np.uint8)
    pixels = processor(images=rgb8, return_tensors="pt")["pixel_values"]
    return pixels.to(next(model.parameters()).device, dtype=model.dtype)


def logits_mask(logits: Any, h: int, w: int, ids: list[int]) -> np.ndarray:
    """1 where the most likely class of ``logits`` (upsampled to h×w) is a foreground class.
    Upsampled channels-last, so the class maximum reduces over contiguous memory (a strided
    argmax over the channel axis costs several times the upsampling)."""
    import torch

    with torch.inference_mode():
        logits = torch.nn.functional.interpolate(
            # NCHW first: a batch-of-one tensor can pass as channels-last with strides the
            # upsampling does not take as such.
            logits.float().contiguous().contiguous(memory_format=torch.channels_last),
            size=(h, w),
            mode="bilinear",
            align_corners=False,
        )
        labels = logits.permute(0, 2, 3, 1).argmax(dim=-1)[0]
        fg = torch.zeros(logits.shape[1], dtype=torch.bool, device=labels.device)
        fg[torch.tensor(ids, device=labels.device)] = True
    return fg[labels].to(torch.float32).cpu().numpy()


def segment_frame(processor: Any, model: Any, rgb: np.ndarray, ids: list[int]) -> np.ndarray:
    """1 where the model's most likely class at the frame's resolution is a foreground class."""
    import torch

    h, w = rgb.shape[:2]
    pixels = frame_pixels(processor, model, rgb)
    with torch.inference_mode():
        logits = model(pixel_values=pixels).logits
    return logits_mask(logits, h, w, ids)


#: What temporal 'reuse' and 'resq' need: a SegFormer, whose layers they run one by one.
SEGFORMER_LAYERS = ModelsFor(("segformer",), "SegFormer", "runs SegFormer models layer by layer")


class Segment(Node):
    """A foreground mask per frame. With a segmentation model (a transformers semantic
    segmentation folder such as SegFormer, safetensors only) the whole model runs on keyframes,
    every `interval`-th frame, and `temporal` says how the frames between are made: `flow`
    carries the keyframe's mask by optical flow; `off` runs the model on every frame; `reuse`
    (SegFormer) recomputes only the tokens whose input changed by more than `threshold` since
    they were last computed, layer by layer, and keeps the previous frame's activations for the
    rest; `resq` (SegFormer) does the same from a low-bit residual (at least `bits`, more when
    much changed); `delta` updates the model's features with a student trained by
    `fathom distill`. Frames stream in order; in a live session the previous frame's work is
    kept from tick to tick. Without a model, a mask drawn for the first frame is carried
    through the whole clip by flow."""

    type_id = "video.segment"
    title = "Segment Video"
    category = "motion"
    #: The model families it runs (``engine.models.families``): what the studio's model
    #: picker offers for ``model``.
    families: ClassVar[tuple[str, ...]] = ("segmentation",)
    inputs = (
        Input("video", Video, "clip to segment"),
        Input("mask", Mask, "first frame's foreground (used without a model)", optional=True),
    )
    outputs = (Output("mask", Video, "one-channel mask per frame"),)
    params = (
        Param(
            "backend",
            Enum,
            "auto",
            "auto: the model if one is set, else the mask",
            choices=("auto", "model", "propagate"),
        ),
        Param(
            "model",
            String,
            "",
            "segmentation model folder or Hugging Face id "
            "(e.g. nvidia/segformer-b0-finetuned-ade-512-512); empty: none",
        ),
        Param("labels", String, "person", "foreground class names, comma-separated"),
        Param(
            "interval",
            Int,
            4,
            "keyframe interval: the whole model every N frames (1: every frame)",
            min=1,
            max=1000,
        ),
        Param("preset", Enum, "sharp", "DIS flow used to carry masks", choices=fl.DIS_PRESETS),
        Param(
            "temporal",
            Enum,
            "flow",
            "frames between keyframes: flow (carry the mask), off (model on every frame), "
            "reuse / resq (recompute only what changed), delta (a distilled student)",
            choices=SEGMENT_TEMPORAL,
        ),
        Param(
            "threshold",
            Float,
            0.05,
            "reuse/resq: relative change of a token that makes it recomputed (0: any change)",
            min=0,
            max=10,
        ),
        Param(
            "edge_slack",
            Float,
            1.0,
            "reuse/resq: how many times `threshold` a token far from the mask's edges may change "
            "before it is recomputed, in proportion to how far the model was from flipping "
            "there (1: the same threshold everywhere; no effect at threshold 0)",
            min=1,
            max=100,
        ),
        RESQ_BITS,
        DELTA_STUDENT,
    )

    #: The settings each temporal mode reads; changing another re-runs nothing.
    mode_param = "temporal"
    mode_reads: ClassVar[dict[str, tuple[str, ...]]] = {
        "flow": ("interval", "preset"),
        "off": (),
        "reuse": ("interval", "threshold", "edge_slack"),
        "resq": ("interval", "threshold", "edge_slack", "bits"),
        "delta": ("interval", "student"),
    }

    #: reuse and resq run SegFormer's layers themselves: the check refuses another model
    #: before the run, and the studio's model picker says so beside each model.
    mode_models: ClassVar[dict[str, ModelsFor]] = dict.fromkeys(("reuse", "resq"), SEGFORMER_LAYERS)

    @classmethod
    def cache_extra(cls, params: dict[str, Any], ctx: NodeContext) -> str:
        from fathom.engine.accel.delta import model_and_student_stamp

        return model_and_student_stamp(params, ctx)

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        from fathom.engine.models import ModelError, locate_model

        if params.get("backend") == "propagate":
            return []
        if not str(params.get("model") or "").strip():
            temporal = str(params.get("temporal", "flow"))
            if params.get("backend") == "model" or temporal != "flow":
                why = "backend 'model'" if temporal == "flow" else f"temporal '{temporal}'"
                return [
                    Problem(
                        f"{why} runs a segmentation model, and `model` is empty",
                        ctx.node_id,
                        "model",
                        "set `model` to a segmentation model folder or hub id, or carry a "
                        "first-frame mask with temporal 'flow'",
                    )
                ]
            return []
        from fathom.engine.accel.delta import student_problems
        from fathom.engine.generation import family_problems

        try:
            path = locate_model(params["model"], ctx.options.base_dir)
        except ModelError as exc:
            return [Problem(str(exc), ctx.node_id, "model")]
        from fathom.engine.models.families import transformers_model_type

        node, base = ctx.node_id, ctx.options.base_dir
        problems = family_problems(cls, path, ctx) + student_problems(params, node, base, path)
        temporal = str(params.get("temporal", "flow"))
        refused = cls.mode_model_problem(temporal, transformers_model_type(path), path.name)
        if not problems and refused is not None:
            problems.append(Problem(refused[0], node, "temporal", refused[1]))
        return problems

    def run(
        self,
        ctx: NodeContext,
        video: Video,
        backend: str,
        model: str,
        labels: str,
        interval: int,
        preset: str,
        mask: Mask | None = None,
        temporal: str = "flow",
        threshold: float = 0.05,
        bits: int = 4,
        student: str = "",
        edge_slack: float = 1.0,
    ) -> dict[str, Any]:
        _need_frames(ctx, video, 1)
        use_model = backend == "model" or (backend == "auto" and bool(model.strip()))
        if temporal != "flow":
            if not use_model:
                raise ctx.error(
                    f"temporal '{temporal}' runs a segmentation model, and none is set",
                    port="temporal" if model.strip() else "model",
                    fix="set `model` to a segmentation model folder, or use temporal 'flow'",
                )
            opts = TemporalOptions(temporal, interval, threshold, bits, student, labels, edge_slack)
            return {"mask": run_temporal(ctx, video, model, opts)}
        w, h = video.size
        flows = fl.PairFlows(_frames(video), preset, memo=4)
        if use_model:
            key = self._model_keyframes(ctx, model, labels, flows)
        else:
            if mask is None:
                raise ctx.error(
                    "there is no model and no first-frame mask to segment with",
                    port="mask" if backend == "propagate" else "model",
                    fix="set `model` to a segmentation model folder, or connect "
                    "a mask of the first frame",
                )
            if (mask.width, mask.height) != (w, h):
                raise ctx.error(
                    f"the mask is {mask.width}×{mask.height} but the video is {w}×{h}",
                    port="mask",
                    fix=f"resize the mask to {w}×{h}",
                )
            first = np.clip(mask.data, 0, 1)
            key, interval = (lambda i: first), len(video)  # one keyframe: the user's mask
        masks = fl.PropagatedMasks(len(video), _frames(video), key, interval, preset, flows=flows)
        ctx.report(
            backend="model" if use_model else "propagate",
            keyframes=masks.keyframe_count(),
            interval=interval,
        )
        out = Video(
            len(video),
            video.fps,
            lambda i: Image(masks(i)[:, :, None]),
            (w, h),
            video.source,
            video.audio,
        )
        return {"mask": out}

    @staticmethod
    def _model_keyframes(ctx: NodeContext, model: str, labels: str, flows: fl.PairFlows) -> Any:
        processor, net, ids = load_segmenter(ctx, model, labels)
        return lambda i: segment_frame(processor, net, Image(flows.image(i)).rgb(), ids)


def load_segmenter(ctx: NodeContext, model: str, labels: str) -> tuple[Any, Any, list[int]]:
    """(processor, model, foreground class ids) through the model manager, with the node's
    errors for a missing model and unknown labels."""
    if not model.strip():
        raise ctx.error(
            "backend 'model' needs a model",
            port="model",
            fix="set `model` to a segmentation model folder or hub id",
        )
    dev, dtype = ctx.device.torch_device, ctx.device.dtype
    processor, net = ctx.load_model(SEGMENT_KIND, model, lambda p: _load_segmenter(p, dev, dtype))
    id2label = dict(getattr(net.config, "id2label", {}) or {})
    ids, unknown = label_ids(id2label, labels)
    if unknown or not ids:
        valid = ", ".join(str(v) for _, v in sorted(id2label.items(), key=lambda kv: int(kv[0])))
        missing = ", ".join(repr(u) for u in unknown)
        what = f"unknown class label(s) {missing}" if missing else "no class label given"
        raise ctx.error(
            f"{what} for this model; it knows: {valid}",
            port="labels",
            fix="use names from the model's list, comma-separated",
        )
    return processor, net, ids


# ---- segmentation on frame differences ------------------------------------------------------


@dataclass(frozen=True)
class TemporalOptions:
    """video.segment's parameters for the model-per-frame modes (all but flow)."""

    temporal: str
    interval: int
    threshold: float
    bits: int
    student: str
    labels: str
    edge_slack: float = 1.0


def _stepper(ctx: NodeContext, net: Any, opts: TemporalOptions, ids: list[int]) -> Any:
    """An object with ``reset()`` and ``(pixel_values, keyframe) -> logits`` for the mode."""
    if opts.temporal in ("reuse", "resq"):
        from fathom.engine.accel.temporal_segment import SegformerTemporal

        # Checked before the run too; a model the check could not read is refused here.
        kind = getattr(net.config, "model_type", "")
        refused = Segment.mode_model_problem(opts.temporal, kind or "unknown", "this")
        if refused is not None:
            raise ctx.error(refused[0], port="temporal", fix=refused[1])
        return SegformerTemporal(
            net, opts.temporal, opts.threshold, opts.bits, opts.edge_slack, labels=ids
        )
    from fathom.engine.accel.delta import DeltaRunner, StudentError, load_student

    if not opts.student.strip():
        raise ctx.error(
            "temporal 'delta' needs a student",
            port="student",
            fix="set `student` to a folder made by `fathom distill MODEL CLIPS... --out FOLDER`",
        )
    try:
        runner = DeltaRunner(net, load_student(ctx.resolve_path(opts.student), net))
    except StudentError as exc:
        raise ctx.error(str(exc), port="student", fix=exc.fix) from None

    def step(pixels: Any, keyframe: bool) -> Any:
        if keyframe:
            runner.reset()
        return runner.step(pixels)

    step.reset = runner.reset  # type: ignore[attr-defined]
    return step


def run_temporal(ctx: NodeContext, video: Video, model: str, opts: TemporalOptions) -> Video:
    """The mask video for temporal off / reuse / resq / delta: lazy and in order, or, in a
    live session, this tick's frames computed now, continuing the previous tick's stream."""
    processor, net, ids = load_segmenter(ctx, model, opts.labels)
    w, h = video.size
    n = len(video)
    if opts.temporal == "off":
        ctx.report(backend="model", temporal="off", keyframes=n)

        def each(i: int) -> Image:
            rgb = video.frame(i).rgb()
            return Image(segment_frame(processor, net, rgb, ids)[:, :, None])

        return Video(n, video.fps, each, (w, h), video.source, video.audio)
    live_key = (model, opts)
    kept = ctx.state.get("segment")
    if ctx.live is not None and kept is not None and kept[0] == live_key:
        stepper, count = kept[1], kept[2]
    else:
        stepper, count = _stepper(ctx, net, opts, ids), 0

    def mask_of(rgb: np.ndarray, keyframe: bool) -> np.ndarray:
        ctx.check_cancelled()
        logits = stepper(frame_pixels(processor, net, rgb), keyframe)
        return logits_mask(logits, rgb.shape[0], rgb.shape[1], ids)

    ctx.report(backend="model", temporal=opts.temporal, keyframes=math.ceil(n / opts.interval))
    if ctx.live is not None:
        frames = []
        for i in range(n):
            key = count % opts.interval == 0
            frames.append(Image(mask_of(video.frame(i).rgb(), key)[:, :, None]))
            count += 1
        ctx.state["segment"] = (live_key, stepper, count)
        return Video.from_frames(frames, video.fps)
    from fathom.engine.accel.temporal_segment import FrameStream

    def step(i: int, keyframe: bool) -> Image:
        out = Image(mask_of(video.frame(i).rgb(), keyframe)[:, :, None])
        ctx.progress((i + 1) / n, f"segment frame {i + 1}/{n}")
        return out

    stream = FrameStream(step, stepper.reset, opts.interval)
    return Video(n, video.fps, stream, (w, h), video.source, video.audio)
