"""Pure functions behind the video editing nodes: index maps, blends, wipes, keyframes, text.

Everything here works on frame counts, indices and float32 arrays, never on files or nodes, so
each retime or composite rule can be tested with known answers and no video at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

#: Tolerance for turning times into frame indices: 0.1 s at 30 fps must be frame 3, not 2.
_EPS = 1e-6

SPEED_MODES = ("drop", "blend")
TRANSITIONS = ("crossfade", "wipe", "dip")
WIPE_DIRECTIONS = ("left", "right", "up", "down")


# --------------------------------------------------------------------------------------------
# Frame ranges and retiming


def seconds_to_frame(t: float, fps: float) -> int:
    """The first frame showing at or after ``t``: frame i shows from i / fps to (i + 1) / fps."""
    return int(math.ceil(t * fps - _EPS))


def trim_range(
    length: int, fps: float, start: float, end: float | None, unit: str = "frames"
) -> tuple[int, int]:
    """[a, b) frame indices of a trim; ``end`` is exclusive (None: to the end), clamped to the
    clip. Frames must be whole numbers; seconds pick the frames that start inside the span."""
    if unit == "frames":
        for value, name in ((start, "start"), (end, "end")):
            if value is not None and not float(value).is_integer():
                raise ValueError(f"{name} = {value} is not a whole frame number")
        a = int(start)
        b = length if end is None else int(end)
    elif unit == "seconds":
        a = seconds_to_frame(start, fps)
        b = length if end is None else seconds_to_frame(end, fps)
    else:
        raise ValueError(f"unit must be frames or seconds, got {unit!r}")
    return max(0, min(a, length)), max(0, min(b, length))


def speed_length(length: int, factor: float) -> int:
    """Frames after retiming by ``factor`` (2: twice as fast, half the frames)."""
    if length == 0:
        return 0
    return max(1, int(math.ceil(length / factor - _EPS)))


def speed_index(j: int, factor: float, length: int) -> int:
    """Drop/duplicate: output frame j shows the source frame playing at time j * factor."""
    return min(length - 1, int(math.floor(j * factor + _EPS)))


def speed_weights(j: int, factor: float, length: int) -> list[tuple[int, float]]:
    """Blend: (source index, weight) pairs summing to 1 for output frame j.

    Faster (factor >= 1) averages the source frames the output frame's time window covers,
    weighted by coverage (a box filter, i.e. motion blur); slower interpolates linearly between
    the two source frames around its time, so slow motion cross-fades instead of stuttering.
    """
    if factor >= 1:
        t0, t1 = j * factor, min((j + 1) * factor, float(length))
        out = []
        for i in range(int(math.floor(t0 + _EPS)), int(math.ceil(t1 - _EPS))):
            w = min(t1, i + 1) - max(t0, i)
            if w > _EPS:
                out.append((i, w))
        total = sum(w for _, w in out)
        return [(i, w / total) for i, w in out] or [(length - 1, 1.0)]
    p = j * factor
    i0 = min(length - 1, int(math.floor(p + _EPS)))
    t = p - i0
    if t <= _EPS or i0 + 1 >= length:
        return [(i0, 1.0)]
    return [(i0, 1.0 - t), (i0 + 1, t)]


def conform_index(j: int, src_fps: float, dst_fps: float, src_length: int) -> int:
    """Frame-time resampling: output frame j (at ``dst_fps``) shows the source frame on screen
    at its time."""
    return min(src_length - 1, int(math.floor(j * src_fps / dst_fps + _EPS)))


def conform_length(src_length: int, src_fps: float, dst_fps: float) -> int:
    """Frames that keep a clip's duration at another frame rate."""
    return max(1, int(round(src_length * dst_fps / src_fps))) if src_length else 0


def locate(offsets: Sequence[int], index: int) -> tuple[int, int]:
    """(part, index within it) for a frame of concatenated parts starting at ``offsets``."""
    lo, hi = 0, len(offsets) - 1
    while lo < hi:  # the last part whose offset is <= index
        mid = (lo + hi + 1) // 2
        if offsets[mid] <= index:
            lo = mid
        else:
            hi = mid - 1
    return lo, index - offsets[lo]


# --------------------------------------------------------------------------------------------
# Pixels


def weighted_sum(frames: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    out = np.zeros_like(frames[0], dtype=np.float32)
    for f, w in zip(frames, weights, strict=True):
        out += np.float32(w) * f
    return out


def match_channels(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bring two H×W×C frames to the same channel count (gray → RGB, RGB → RGBA opaque)."""
    ca, cb = a.shape[2], b.shape[2]
    if ca == cb:
        return a, b
    c = max(ca, cb)
    return _to_channels(a, c), _to_channels(b, c)


def _to_channels(x: np.ndarray, c: int) -> np.ndarray:
    if x.shape[2] == c:
        return x
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    if c == 4 and x.shape[2] == 3:
        x = np.concatenate([x, np.ones_like(x[:, :, :1])], axis=2)
    return x


def transition_progress(k: int, n: int) -> float:
    """Mix amount of B for the k-th of n overlapping frames: strictly between 0 and 1, so the
    first overlap frame already moves and the last is not yet all B."""
    return (k + 1) / (n + 1)


def wipe_mask(height: int, width: int, t: float, direction: str) -> np.ndarray:
    """H×W×1 mask, 1 where B shows: the edge moves in ``direction`` as ``t`` goes 0 → 1
    ('left' means B enters from the right edge and the edge travels left)."""
    if direction in ("left", "right"):
        pos = (np.arange(width, dtype=np.float32) + 0.5) / width
        pos = pos if direction == "right" else 1.0 - pos
        m = (pos < t).astype(np.float32)[None, :]
        m = np.broadcast_to(m, (height, width))
    elif direction in ("up", "down"):
        pos = (np.arange(height, dtype=np.float32) + 0.5) / height
        pos = pos if direction == "down" else 1.0 - pos
        m = (pos < t).astype(np.float32)[:, None]
        m = np.broadcast_to(m, (height, width))
    else:
        raise ValueError(f"wipe direction must be one of {WIPE_DIRECTIONS}, got {direction!r}")
    return np.ascontiguousarray(m)[:, :, None]


def transition_frame(
    a: np.ndarray,
    b: np.ndarray,
    t: float,
    kind: str,
    direction: str = "left",
    color: Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """One frame of a transition from ``a`` to ``b`` at progress ``t`` in [0, 1]."""
    a, b = match_channels(a, b)
    if kind == "crossfade":
        return (1.0 - np.float32(t)) * a + np.float32(t) * b
    if kind == "wipe":
        m = wipe_mask(a.shape[0], a.shape[1], t, direction)
        return a * (1.0 - m) + b * m
    if kind == "dip":
        c = np.asarray(color, np.float32)
        col = np.empty_like(a)
        col[:] = c[: a.shape[2]] if a.shape[2] > 1 else c[:3].mean()
        if a.shape[2] == 4:
            col[:, :, 3] = 1.0
        if t < 0.5:
            s = np.float32(2 * t)
            return (1 - s) * a + s * col
        s = np.float32(2 * t - 1)
        return (1 - s) * col + s * b
    raise ValueError(f"transition must be one of {TRANSITIONS}, got {kind!r}")


def pad_center(
    fit: np.ndarray, width: int, height: int, color: Sequence[float] = (0.0, 0.0, 0.0)
) -> np.ndarray:
    """Centre an image that fits inside width×height on a ``color`` canvas (letterboxing)."""
    c = fit.shape[2]
    out = np.empty((height, width, c), np.float32)
    col = np.asarray(color, np.float32)
    out[:] = col[:c] if c > 1 else col[:3].mean()
    if c == 4:
        out[:, :, 3] = 1.0
    fh, fw = min(height, fit.shape[0]), min(width, fit.shape[1])
    y0, x0 = (height - fh) // 2, (width - fw) // 2
    out[y0 : y0 + fh, x0 : x0 + fw] = fit[:fh, :fw]
    return out


def composite(base: np.ndarray, layer: np.ndarray, alpha: np.ndarray, x: int, y: int) -> np.ndarray:
    """``layer`` (h×w×C) over ``base`` with its top-left at (x, y), weighted by ``alpha``
    (h×w×1); parts outside the base are cut off. Returns a new array."""
    out = base.copy()
    bh, bw = base.shape[:2]
    h, w = layer.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(bw, x + w), min(bh, y + h)
    if x1 <= x0 or y1 <= y0:
        return out
    lay = layer[y0 - y : y1 - y, x0 - x : x1 - x]
    a = alpha[y0 - y : y1 - y, x0 - x : x1 - x]
    region = out[y0:y1, x0:x1]
    lay, region = _to_channels(lay, region.shape[2]), region
    if lay.shape[2] != region.shape[2]:  # an RGB layer on a gray base: use its luminance
        lay = lay[:, :, :3].mean(axis=2, keepdims=True)
    if region.shape[2] == 4:
        colour = region[:, :, :3] * (1 - a) + lay[:, :, :3] * a
        out[y0:y1, x0:x1, :3] = colour
        out[y0:y1, x0:x1, 3:] = region[:, :, 3:] * (1 - a) + a
    else:
        out[y0:y1, x0:x1] = region * (1 - a) + lay * a
    return out


# --------------------------------------------------------------------------------------------
# Keyframes: "frame:v1,v2; frame:v1,v2", linear in between, held before the first and after
# the last


def parse_keyframes(text: str, dims: int) -> list[tuple[float, tuple[float, ...]]]:
    """Parse ``"0:0.1,0.1; 48:0.6,0.6"`` into sorted (frame, values); a bare value list (no
    ``frame:``) is a constant. Raises ValueError saying which part is wrong."""
    parts = [p.strip() for p in text.replace("\n", ";").split(";") if p.strip()]
    if not parts:
        raise ValueError("no keyframes given")
    out: dict[float, tuple[float, ...]] = {}
    for part in parts:
        if ":" in part:
            f_text, v_text = part.split(":", 1)
        elif len(parts) == 1:
            f_text, v_text = "0", part
        else:
            raise ValueError(f"keyframe {part!r} needs the form FRAME:VALUES")
        try:
            frame = float(f_text)
            values = tuple(float(v) for v in v_text.replace(" ", ",").split(",") if v)
        except ValueError:
            raise ValueError(f"keyframe {part!r} is not numbers like 12:0.5,0.25") from None
        if len(values) != dims:
            raise ValueError(f"keyframe {part!r} has {len(values)} values, needs {dims}")
        if not all(math.isfinite(v) for v in (frame, *values)):
            raise ValueError(f"keyframe {part!r} is not finite")
        if frame in out:
            raise ValueError(f"frame {f_text.strip()} has two keyframes")
        out[frame] = values
    return sorted(out.items())


def interpolate(keys: Sequence[tuple[float, tuple[float, ...]]], frame: float) -> tuple[float, ...]:
    """Linear between keyframes, held outside them."""
    if frame <= keys[0][0]:
        return keys[0][1]
    if frame >= keys[-1][0]:
        return keys[-1][1]
    for (f0, v0), (f1, v1) in zip(keys, keys[1:], strict=False):
        if f0 <= frame <= f1:
            t = (frame - f0) / (f1 - f0)
            return tuple(a + (b - a) * t for a, b in zip(v0, v1, strict=True))
    return keys[-1][1]  # unreachable: keys are sorted


# --------------------------------------------------------------------------------------------
# Text


def fade_alpha(i: int, start: int, end: int, fade: int) -> float:
    """Opacity of a title at frame ``i`` shown on [start, end): ramps over ``fade`` frames at
    both ends (1 / (fade + 1) steps, so the first shown frame is already visible)."""
    if not start <= i < end:
        return 0.0
    if fade <= 0:
        return 1.0
    k = min(i - start + 1, end - i)
    return min(1.0, k / (fade + 1))


@lru_cache(maxsize=32)
def render_text(text: str, size: int, font: str = "") -> np.ndarray:
    """H×W float32 coverage of ``text`` (multi-line allowed) rendered with PIL: ``font`` is a
    TrueType file or empty for Pillow's bundled font. Cached: a title is the same every frame."""
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont

    face = ImageFont.truetype(font, size) if font else ImageFont.load_default(size=size)
    probe = ImageDraw.Draw(PILImage.new("L", (1, 1)))
    x0, y0, x1, y1 = probe.multiline_textbbox((0, 0), text, font=face)
    w, h = max(1, int(math.ceil(x1 - x0))), max(1, int(math.ceil(y1 - y0)))
    canvas = PILImage.new("L", (w, h), 0)
    ImageDraw.Draw(canvas).multiline_text((-x0, -y0), text, fill=255, font=face)
    cover = np.asarray(canvas, np.float32) / 255.0
    cover.setflags(write=False)
    return cover


def place(
    width: int, height: int, box_w: int, box_h: int, x: float, y: float, anchor: str = "center"
) -> tuple[int, int]:
    """Top-left pixel of a box whose anchor sits at normalised (x, y) of the frame."""
    px, py = x * width, y * height
    if anchor == "center":
        px, py = px - box_w / 2, py - box_h / 2
    return int(round(px)), int(round(py))


def same_rate(a: float, b: float) -> bool:
    """Frame rates equal for editing: 29.97 typed by hand and NTSC's 30000/1001 are one rate
    (a 1e-4 relative tolerance drifts one frame in about three hours)."""
    return abs(a - b) <= 1e-4 * max(a, b)


def rate_text(fps: float) -> str:
    """A frame rate as users know it: 30000/1001 shows as 29.97003 (30000/1001)."""
    from fractions import Fraction

    frac = Fraction(fps).limit_denominator(1001)
    exact = abs(float(frac) - fps) < 1e-9 and frac.denominator > 100
    return f"{fps:.7g} ({frac.numerator}/{frac.denominator})" if exact else f"{fps:.7g}"
