"""Delta Distillation: a small student predicts how a teacher's features change between frames.

After Habibian et al., "Delta Distillation for Efficient Video Processing" (ECCV 2022): on a
keyframe the full teacher runs; on the frames after it, a cheap student looks at the new frame
and its difference from the previous one and predicts the *change* of the teacher's intermediate
features, which are updated (f_t = f_{t−1} + Δ̂_t) and passed through the rest of the teacher.
The targets are the teacher's own feature changes on consecutive frames of the user's clips, so
no labels are needed.

Where the teacher is cut (``teacher_family``):

* depth (a transformers depth estimator with a DPT-style ``neck`` and ``head``: Depth Anything
  V1/V2, DPT): the features are the neck's fused map the head reads (``head_in_index``); the
  head (three convolutions) is the rest.
* segmentation (SegFormer): the features are the decode head's fused map after its BatchNorm
  and ReLU; the 1×1 classifier is the rest.

A student is a folder: ``student.safetensors`` (weights) and ``student.json`` (its shape, the
teacher it belongs to by a SHA-256 of the teacher's config and weights, and the held-out error
it reached). ``load_student`` refuses a student made for another teacher. ``distill`` trains one
(``fathom distill``): progress lines, cancellable, a held-out error against the "copy the
previous frame's features" baseline, and an atomic save (an interrupted run leaves nothing).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fathom.engine.accel.depth_vit import is_depth_vit
from fathom.engine.errors import LibraryError, Problem
from fathom.engine.node import Param
from fathom.engine.types import PathValue

FORMAT, VERSION = "fathom.delta-student", 1
WEIGHTS, CONFIG = "student.safetensors", "student.json"
#: The ``student`` parameter of the nodes with a ``delta`` mode (video.depth, video.segment).
DELTA_STUDENT = Param(
    "student", PathValue, "", "folder `fathom distill` wrote: the student for delta"
)
FAMILIES = ("depth", "segmentation")


class StudentError(ValueError):
    """A student that cannot be used (missing, malformed, another teacher's), with its fix."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


# ---- where the teacher is cut ----------------------------------------------------------------


def teacher_family(net: Any) -> str:
    """'segmentation' or 'depth' for a model the studio loads; StudentError otherwise."""
    kind = getattr(net.config, "model_type", "?")
    if kind == "segformer" and hasattr(net, "decode_head"):
        return "segmentation"
    if hasattr(net, "neck") and hasattr(net, "head") and hasattr(net.config, "head_in_index"):
        return "depth"
    raise StudentError(
        f"Delta Distillation supports SegFormer segmentation and DPT-style depth models "
        f"(Depth Anything, DPT); this is a {kind} model",
        "use a SegFormer or Depth Anything model as the teacher",
    )


def _cut_module(net: Any, family: str) -> nn.Module:
    return net.decode_head.classifier if family == "segmentation" else net.head


def teacher_features(net: Any, family: str, pixels: torch.Tensor) -> tuple[Any, Any]:
    """The teacher's full forward on ``pixels``: ((features, call), output). ``call`` is what
    ``teacher_rest`` needs to run the part after the features on other features."""
    seen: dict[str, Any] = {}

    def grab(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        seen["args"], seen["kwargs"] = args, kwargs

    handle = _cut_module(net, family).register_forward_pre_hook(grab, with_kwargs=True)
    try:
        out = net(pixel_values=pixels)
    finally:
        handle.remove()
    args, kwargs = seen["args"], seen["kwargs"]
    if family == "segmentation":
        return (args[0], None), out.logits
    index = net.config.head_in_index
    maps = list(args[0])
    feat = maps[index]
    maps = [None] * len(maps)  # the head reads only its input map: hold no others
    return (feat, (maps, index, args[1:], kwargs)), out.predicted_depth


def teacher_rest(net: Any, family: str, feat: torch.Tensor, call: Any) -> torch.Tensor:
    """The teacher's output from (updated) features: logits or predicted depth."""
    if family == "segmentation":
        return net.decode_head.classifier(feat)
    maps, index, args, kwargs = call
    maps = list(maps)
    maps[index] = feat
    return net.head(maps, *args, **kwargs)


# ---- the student -----------------------------------------------------------------------------


class DeltaStudent(nn.Module):
    """Predicts the change of a C-channel feature map from the new frame, its difference from
    the previous frame, and the previous features. Motion moves the features' edges, so the
    change is about (motion) × (spatial derivative of the features): a 3×3 convolution of the
    pixels and their difference gives ``hidden`` motion channels, a 3×3 convolution of the
    previous features ``hidden`` derivative-like channels, and their product (plus the motion
    channels alone) maps to the C channels of the change through a 1×1 convolution. Everything
    runs on a working grid (the feature grid / ``reduce``) and is upsampled to the feature grid;
    the output is scaled per channel by the typical change seen in training."""

    scale: torch.Tensor
    feature_scale: torch.Tensor
    motion_scale: torch.Tensor

    def __init__(self, channels: int, hidden: int = 32, reduce: int = 1) -> None:
        super().__init__()
        self.channels, self.hidden, self.reduce = channels, hidden, reduce
        self.motion = nn.Conv2d(6, hidden, 3, padding=1)
        self.slope = nn.Conv2d(channels, hidden, 3, padding=1)
        self.glob = nn.Linear(hidden, hidden)
        self.out = nn.Conv2d(3 * hidden, channels, 1)
        nn.init.zeros_(self.out.weight)  # starts as "copy the previous features"
        if self.out.bias is not None:
            nn.init.zeros_(self.out.bias)
        self.register_buffer("scale", torch.ones(channels))
        self.register_buffer("feature_scale", torch.ones(channels))
        self.register_buffer("motion_scale", torch.ones(()))

    def forward(self, frame: torch.Tensor, previous: torch.Tensor, features: torch.Tensor) -> Any:
        """The predicted change (B, C, h, w) of ``features`` (B, C, h, w) from ``previous`` to
        ``frame`` (B, 3, H, W pixel values)."""
        h, w = features.shape[2:]
        work = (math.ceil(h / self.reduce), math.ceil(w / self.reduce))
        moved = (frame - previous) / self.motion_scale
        x = F.adaptive_avg_pool2d(torch.cat([frame, moved], 1), work)
        f = features / self.feature_scale.view(1, -1, 1, 1)
        if work != (h, w):
            f = F.adaptive_avg_pool2d(f, work)
        m = self.motion(x)
        g = self.glob(F.relu(m).mean(dim=(2, 3)))[:, :, None, None].expand_as(m)
        y = torch.cat([m * self.slope(f), F.relu(m), g * self.slope(f)], 1)
        if work != (h, w):
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        return self.out(y) * self.scale.view(1, -1, 1, 1)

    def config(self) -> dict[str, int]:
        return {"feature_channels": self.channels, "hidden": self.hidden, "reduce": self.reduce}


def reduce_for(size: Sequence[int], work: int = 64) -> int:
    """The pooling factor that brings a feature grid's long side to about ``work``."""
    return max(1, math.ceil(max(int(size[0]), int(size[1])) / work))


# ---- the teacher's identity ------------------------------------------------------------------

_FINGERPRINTS: dict[tuple[str, int, int], str] = {}


def _file_sha(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FINGERPRINTS:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _FINGERPRINTS[key] = h.hexdigest()
    return _FINGERPRINTS[key]


def fingerprint(folder: Path) -> str:
    """SHA-256 over a model folder's config.json and weights (safetensors), in name order."""
    files = sorted(folder.glob("*.safetensors"))
    if not files or not (folder / "config.json").is_file():
        raise StudentError(
            f"{folder} is not a model folder with config.json and safetensors weights",
            "point at the teacher's folder (the one the node loads)",
        )
    h = hashlib.sha256()
    for f in [folder / "config.json", *files]:
        h.update(f.name.encode())
        h.update(_file_sha(f).encode())
    return h.hexdigest()


def model_folder(net: Any) -> Path:
    """The local folder a loaded model came from (transformers records it)."""
    path = Path(str(getattr(net.config, "_name_or_path", "") or getattr(net, "name_or_path", "")))
    if not path.is_dir():
        raise StudentError(
            f"cannot tell which weights the model came from ({path or 'no folder'}), so a "
            "student cannot be checked against it",
            "load the teacher from a local model folder",
        )
    return path


# ---- saving and loading ----------------------------------------------------------------------


def save_student(folder: Path, student: DeltaStudent, meta: dict[str, Any]) -> None:
    """Write the student folder atomically: a temporary sibling folder renamed into place."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    old = folder.parent / f".{folder.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        tensors = {
            k: v.detach().float().cpu().contiguous() for k, v in student.state_dict().items()
        }
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": FORMAT})
        doc = {"format": FORMAT, "version": VERSION, **student.config(), **meta}
        (tmp / CONFIG).write_text(json.dumps(doc, indent=2))
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_student_config(folder: Path | str) -> dict[str, Any]:
    folder = Path(folder)
    fix = "train one with `fathom distill TEACHER CLIPS... --out STUDENT`"
    if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
        raise StudentError(f"{folder} is not a student folder ({CONFIG} + {WEIGHTS})", fix)
    try:
        doc = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError) as exc:
        raise StudentError(f"{folder / CONFIG} is not readable JSON: {exc}", fix) from None
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise StudentError(f"{folder} is not a {FORMAT} version {VERSION} student", fix)
    return dict(doc)


def student_problems(
    params: dict[str, Any], node: str, base_dir: Path, model: Path | None = None
) -> list[Problem]:
    """A node's ``temporal`` 'delta' without a readable ``student`` folder, or with one made
    for another teacher than the local model folder ``model``, found in its pre-flight check,
    before any model loads (the fingerprint is the one ``load_student`` checks, and its file
    hashes are kept, so the load does not hash the weights again)."""
    if params.get("temporal") != "delta":
        return []
    student = str(params.get("student") or "")
    if not student.strip():
        return [
            Problem(
                "temporal 'delta' needs a Delta-Distillation student",
                node,
                "student",
                "set `student` to a folder made by `fathom distill MODEL CLIPS... --out FOLDER`",
            )
        ]
    path = Path(student).expanduser()
    path = path if path.is_absolute() else base_dir / path
    try:
        doc = read_student_config(path)
        if model is not None and model.is_dir():
            kind = json.loads((model / "config.json").read_text()).get("model_type", "?")
            _check_teacher(path, doc, fingerprint(model), str(kind))
    except StudentError as exc:
        return [Problem(str(exc), node, "student", exc.fix)]
    except (OSError, ValueError):
        return []  # an unreadable model folder is the model check's to report
    return []


def model_and_student_stamp(params: dict[str, Any], ctx: Any) -> str:
    """Cache-key material of a node running ``params["model"]``, with a delta student: the
    files of both by size and modification time, so weights replaced in place, or a student
    distilled again into its folder, re-run the node."""
    from fathom.engine.generation import model_fingerprint

    return model_fingerprint(params, ctx) + student_stamp(params, ctx.options.base_dir)


def student_stamp(params: dict[str, Any], base_dir: Path) -> str:
    """The delta student's files by size and modification time (cache-key material): a
    student distilled again into the same folder re-runs the node. Empty unless 'delta'."""
    if params.get("temporal") != "delta" or not str(params.get("student") or "").strip():
        return ""
    path = Path(str(params["student"])).expanduser()
    path = path if path.is_absolute() else base_dir / path
    parts = []
    for name in (CONFIG, WEIGHTS):
        try:
            st = (path / name).stat()
        except OSError:
            continue
        parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return f"|student {path.resolve()}|" + ";".join(parts)


def _check_teacher(folder: Path, doc: dict[str, Any], have: str, model_type: str) -> None:
    """StudentError unless the student ``doc`` was trained for the teacher fingerprinted
    ``have``."""
    want = doc.get("teacher", {})
    if want.get("fingerprint") != have:
        raise StudentError(
            f"student {folder} was trained for the {want.get('model_type', '?')} model "
            f"{want.get('name', '?')!r} (fingerprint {str(want.get('fingerprint'))[:12]}), not "
            f"for this one ({model_type}, fingerprint {have[:12]})",
            "use the student made for this model, or train one for it with `fathom distill`",
        )


def load_student(folder: Path | str, net: Any) -> DeltaStudent:
    """The student in ``folder`` for the loaded teacher ``net``; StudentError when it was
    trained for another model (its fingerprint differs) or is not a student."""
    from safetensors.torch import load_file

    doc = read_student_config(folder)
    # The fingerprint covers the teacher's config and weights, so it fixes its family too.
    _check_teacher(Path(folder), doc, fingerprint(model_folder(net)), net.config.model_type)
    student = DeltaStudent(
        int(doc["feature_channels"]), int(doc["hidden"]), int(doc["reduce"])
    ).eval()
    student.load_state_dict(load_file(str(Path(folder) / WEIGHTS)))
    p = next(net.parameters())
    return student.to(device=p.device, dtype=p.dtype)


# ---- running ---------------------------------------------------------------------------------


class DeltaRunner:
    """Teacher on the first frame after ``reset``; student-updated features after that.
    ``step(pixel_values)`` returns what the teacher's forward returns for the frame: logits
    (segmentation) or predicted depth."""

    def __init__(self, net: Any, student: DeltaStudent) -> None:
        self.net, self.student = net, student
        self.family = teacher_family(net)
        self.reset()

    def reset(self, index: int = 0) -> None:
        self._feat: torch.Tensor | None = None
        self._call: Any = None
        self._prev: torch.Tensor | None = None

    def step(self, pixel_values: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            prev, feat = self._prev, self._feat
            if prev is None or feat is None or prev.shape != pixel_values.shape:
                (feat, self._call), out = teacher_features(self.net, self.family, pixel_values)
            else:
                feat = feat + self.student(pixel_values, prev, feat)
                out = teacher_rest(self.net, self.family, feat, self._call)
            self._feat, self._prev = feat, pixel_values
            return out


# ---- training --------------------------------------------------------------------------------


@dataclass
class DistillReport:
    """What ``distill`` reached: errors are mean squared feature errors on held-out pairs."""

    family: str
    train_pairs: int
    held_out_pairs: int
    steps: int
    seconds: float
    held_out_error: float
    copy_error: float
    out: str = ""
    losses: list[float] = field(default_factory=list)

    @property
    def relative(self) -> float:
        """The student's held-out error over the copy-previous-features baseline's."""
        return self.held_out_error / max(self.copy_error, 1e-30)


def load_teacher(folder: Path, device: str = "cpu") -> tuple[Any, Any, str]:
    """(processor, model, family) for a teacher folder, loaded as the nodes load it."""
    folder = Path(folder)
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise StudentError(
            f"{folder} has no readable config.json ({exc})",
            "point TEACHER at a transformers model folder",
        ) from None
    archs = " ".join(cfg.get("architectures") or [])
    if "SemanticSegmentation" in archs or cfg.get("model_type") == "segformer":
        from fathom.engine.models.segmentation import load_transformers_segmentation

        processor, net = load_transformers_segmentation(folder, device, "float32")
    elif "DepthEstimation" in archs:
        from fathom.engine.models.depth import load_transformers_depth

        processor, net = load_transformers_depth(folder, device, "float32")
        if not is_depth_vit(net):
            raise StudentError(
                f"{folder} is a {cfg.get('model_type', 'depth')} model; Delta-Distillation "
                "students run a Depth Anything model (DINOv2 backbone) layer by layer",
                "use a Depth Anything model folder as the teacher",
            )
    else:
        raise StudentError(
            f"{folder} is neither a segmentation nor a depth model ({archs or 'no architecture'})",
            "use a SegFormer or Depth Anything model folder",
        )
    return processor, net, teacher_family(net)


def check_settings(steps: int, held_out: float) -> None:
    """Training settings that would write a useless student or no held-out error."""
    if steps < 1:
        raise StudentError(f"--steps is {steps}: nothing would be trained", "use --steps 1 or more")
    if not 0 < held_out < 1:
        raise StudentError(
            f"--held-out is {held_out:g}: it is the share of each clip kept for the held-out "
            "error, so it must lie strictly between 0 and 1",
            "use e.g. --held-out 0.2",
        )


def check_out_folder(out: Path, teacher: Path) -> None:
    """``out`` may be new or an earlier student (it is replaced); anything else is the user's
    data and is never overwritten (the teacher's own folder least of all)."""
    if not out.exists():
        return
    if out.resolve() == teacher.resolve():
        raise StudentError(
            f"--out {out} is the teacher's own folder", "choose a new folder for the student"
        )
    if not out.is_dir():
        raise StudentError(f"--out {out} is a file", "choose a new folder for the student")
    if any(out.iterdir()) and not (out / CONFIG).is_file():
        raise StudentError(
            f"--out {out} exists and holds something other than a student (no {CONFIG})",
            "choose a new folder for the student (an earlier student folder is replaced)",
        )


def _read_clip(path: Path, limit: int) -> list[np.ndarray]:
    try:
        return clip_frames(path, limit)
    except LibraryError as exc:
        raise StudentError(
            f"cannot read clip {path}: {exc}",
            "check the clip's path and that it is a complete video file or image sequence",
        ) from None


def clip_frames(path: Path, limit: int) -> list[np.ndarray]:
    """Up to ``limit`` frames of a clip (video file, animated WebP/GIF, image sequence) as uint8."""
    from fathom.engine.imaging.codecs import read_image
    from fathom.engine.media.readers import FileVideo, open_reader

    video = FileVideo(open_reader(Path(path), 24.0, read_image), source=str(path))
    n = min(len(video), limit) if limit > 0 else len(video)
    return [(np.clip(video.frame(i).rgb(), 0, 1) * 255).round().astype(np.uint8) for i in range(n)]


@dataclass
class _Data:
    pixels: list[torch.Tensor]
    feats: list[torch.Tensor]
    train: list[tuple[int, int]]
    held: list[tuple[int, int]]


def _collect(
    processor: Any,
    net: Any,
    family: str,
    clips: Sequence[Sequence[np.ndarray]],
    held_out: float,
    tick: Callable[[str], None],
) -> _Data:
    """Teacher features of every frame, and the (previous, current) pairs split per clip: the
    last ``held_out`` share of each clip's pairs (at least one) is held out."""
    data = _Data([], [], [], [])
    total = sum(len(c) for c in clips)
    for frames in clips:
        if len(frames) < 3:
            raise StudentError(
                f"a clip has {len(frames)} frame(s); distilling needs at least 3 per clip",
                "pass longer clips",
            )
        first = len(data.pixels)
        for rgb in frames:
            px = processor(images=rgb, return_tensors="pt")["pixel_values"].to(net.device)
            with torch.inference_mode():
                (feat, _), _ = teacher_features(net, family, px.to(net.dtype))
            data.pixels.append(px.float().cpu())
            data.feats.append(feat.float().cpu())
            tick(f"teacher features {len(data.pixels)}/{total}")
        pairs = [(i - 1, i) for i in range(first + 1, len(data.pixels))]
        cut = len(pairs) - max(1, round(len(pairs) * held_out))
        data.train += pairs[:cut]
        data.held += pairs[cut:]
    return data


def _held_out_errors(student: DeltaStudent, data: _Data) -> tuple[float, float]:
    err = base = 0.0
    with torch.inference_mode():
        for p, c in data.held:
            delta = data.feats[c] - data.feats[p]
            pred = student(data.pixels[c], data.pixels[p], data.feats[p])
            err += float((pred - delta).pow(2).mean())
            base += float(delta.pow(2).mean())
    n = max(1, len(data.held))
    return err / n, base / n


def _train(
    student: DeltaStudent,
    data: _Data,
    steps: int,
    batch: int,
    lr: float,
    tick: Callable[[str], None],
) -> list[float]:
    """Adam on the per-channel-normalised squared error of the predicted feature changes."""
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    scale = student.scale.view(1, -1, 1, 1)
    losses = []
    for step in range(steps):
        pick = torch.randint(len(data.train), (min(batch, len(data.train)),), generator=gen)
        pairs = [data.train[int(i)] for i in pick]
        x = torch.cat([data.pixels[c] for _, c in pairs])
        xp = torch.cat([data.pixels[p] for p, _ in pairs])
        target = torch.cat([data.feats[c] - data.feats[p] for p, c in pairs])
        pred = student(x, xp, torch.cat([data.feats[p] for p, _ in pairs]))
        loss = ((pred - target) / scale).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if step % 10 == 0 or step == steps - 1:
            tick(f"step {step + 1}/{steps} loss {losses[-1]:.4f} (per unit of feature change)")
    return losses


def _channel_rms(x: torch.Tensor) -> torch.Tensor:
    """Per-channel RMS over (batch, h, w), floored at 1 % of the largest channel's, so that a
    channel that (nearly) never changes is not divided by (almost) zero."""
    rms = x.pow(2).mean(dim=(0, 2, 3)).sqrt()
    return rms.clamp_min(float(rms.max()) * 0.01 + 1e-30)


def distill(
    teacher: Path,
    clips: Sequence[Path],
    out: Path,
    *,
    steps: int = 300,
    hidden: int = 32,
    batch: int = 4,
    lr: float = 3e-3,
    held_out: float = 0.2,
    max_frames: int = 64,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> DistillReport:
    """Train a Delta-Distillation student for ``teacher`` on ``clips`` and save it to ``out``.
    ``cancelled`` is polled between steps; when it turns true, ``KeyboardInterrupt`` is raised
    and nothing is written."""
    t0 = time.perf_counter()

    def tick(message: str) -> None:
        if cancelled is not None and cancelled():
            raise KeyboardInterrupt("distillation cancelled")
        if log is not None:
            log(message)

    if not clips:
        raise StudentError("no clips given", "pass one or more video files to learn from")
    check_settings(steps, held_out)
    check_out_folder(Path(out), Path(teacher))
    processor, net, family = load_teacher(teacher, device)
    frames = [_read_clip(Path(c), max_frames) for c in clips]
    data = _collect(processor, net, family, frames, held_out, tick)
    c, h, w = data.feats[0].shape[1:]
    student = DeltaStudent(int(c), hidden, reduce_for((h, w)))
    deltas = torch.cat([data.feats[b] - data.feats[a] for a, b in data.train])
    feats = torch.cat([data.feats[a] for a, _ in data.train])
    student.scale.copy_(_channel_rms(deltas))
    student.feature_scale.copy_(_channel_rms(feats))
    moved = torch.cat([data.pixels[b] - data.pixels[a] for a, b in data.train])
    student.motion_scale.fill_(float(moved.pow(2).mean().sqrt()) + 1e-12)
    losses = _train(student, data, steps, batch, lr, tick)
    student.eval()
    err, base = _held_out_errors(student, data)
    report = DistillReport(
        family, len(data.train), len(data.held), steps, 0.0, err, base, str(out), losses
    )
    tick(
        f"held-out error {err:.5g} (mean squared feature error; copying the previous "
        f"frame's features: {base:.5g})"
    )
    meta = {
        "family": family,
        "teacher": {
            "model_type": net.config.model_type,
            "name": Path(teacher).name,
            "fingerprint": fingerprint(Path(teacher)),
        },
        "trained": {
            "clips": [Path(c).name for c in clips],
            **{k: v for k, v in asdict(report).items() if k not in ("losses", "out", "seconds")},
        },
    }
    tick("saving")
    save_student(Path(out), student, meta)
    report.seconds = time.perf_counter() - t0
    return report
