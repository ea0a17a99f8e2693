"""Optical flow and what it is for: DIS flow, warping, in-between frames, mask propagation, IoU.

Conventions, used by every function here: a flow is float32 H×W×2 (dx, dy) in pixels, and
``flow_ab`` maps a pixel ``x`` of frame a to where it went in frame b, so
``a(x) ≈ b(x + flow_ab(x))``. Pulling b's pixels back onto a's grid (``warp(b, flow_ab)``) is
hole-free, which is why propagation and interpolation sample ("backward warp") rather than push.
Frames are the studio's float [0, 1] arrays; nothing here knows about nodes or contexts.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import partial

import numpy as np

#: OpenCV's three presets, and "sharp": medium's patch search run at full resolution with no
#: variational smoothing, which keeps motion boundaries crisp (what carrying a mask needs; the
#: smoothing step drags the background along with a moving object and the mask with it).
DIS_PRESETS = ("ultrafast", "fast", "medium", "sharp")


def to_gray8(image: np.ndarray) -> np.ndarray:
    """uint8 luma: DIS works on 8-bit single-channel images."""
    a = np.asarray(image, np.float32)
    if a.ndim == 3:
        a = (
            a[..., 0]
            if a.shape[2] == 1
            else a[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
        )
    return np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)


def dis_flow(a: np.ndarray, b: np.ndarray, preset: str = "medium") -> np.ndarray:
    """Dense flow from frame ``a`` to frame ``b`` (OpenCV DIS), float32 H×W×2.

    DIS (Kroeger et al. 2016) is a coarse-to-fine patch search plus variational refinement:
    fast enough on a CPU to run per frame pair, which is what makes propagation cheaper than
    running a network on every frame."""
    import cv2

    if preset not in DIS_PRESETS:
        raise ValueError(f"unknown DIS preset {preset!r}; use one of {', '.join(DIS_PRESETS)}")
    ga, gb = to_gray8(a), to_gray8(b)
    if ga.shape != gb.shape:
        raise ValueError(f"frames differ in size: {ga.shape[::-1]} and {gb.shape[::-1]}")
    code = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    }.get(preset, cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis = cv2.DISOpticalFlow.create(code)
    if preset == "sharp":
        dis.setFinestScale(0)
        dis.setPatchSize(8)
        dis.setPatchStride(4)
        dis.setVariationalRefinementIterations(0)
    return np.asarray(dis.calc(ga, gb, None), np.float32)  # type: ignore[call-overload]


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``out(x) = image(x + flow(x))`` with bilinear sampling; outside the frame the border
    pixel repeats (a square leaving the frame should not drag black in)."""
    import cv2

    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx = gx + flow[..., 0]
    my = gy + flow[..., 1]
    src = np.asarray(image, np.float32)
    out = cv2.remap(src, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if src.ndim == 3 and out.ndim == 2:  # OpenCV drops a single channel axis
        out = out[..., None]
    return out


def occlusion(flow_ab: np.ndarray, flow_ba: np.ndarray, tolerance: float = 0.75) -> np.ndarray:
    """Soft 0..1 map over frame a: 1 where a's pixel has no match in b (forward-backward check:
    going a → b → a should return to the start; it cannot where b covers the pixel)."""
    back = warp(flow_ba, flow_ab)
    err = np.linalg.norm(flow_ab + back, axis=2)
    mag = np.linalg.norm(flow_ab, axis=2) + np.linalg.norm(back, axis=2)
    limit = tolerance + 0.05 * mag
    return np.clip((err - limit) / limit, 0.0, 1.0).astype(np.float32)


def _project(
    flow01: np.ndarray, flow10: np.ndarray, t: float, cost0: np.ndarray, cost1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Flows from time t to frames 0 and 1, by splatting each frame's motion to where its
    pixels are at time t (lowest matching cost wins a contested pixel, so the object in front,
    which matches well, beats the background it covers); the few pixels no one lands on are
    inpainted from their neighbours."""
    import cv2

    h, w = flow01.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    # frame 0's pixels at time t: x0 + t·f, seeing frame 0 at -t·f and frame 1 at (1-t)·f.
    f, g = flow01.reshape(-1, 2), flow10.reshape(-1, 2)
    x = np.concatenate([gx.ravel() + t * f[:, 0], gx.ravel() + (1 - t) * g[:, 0]])
    y = np.concatenate([gy.ravel() + t * f[:, 1], gy.ravel() + (1 - t) * g[:, 1]])
    to0 = np.concatenate([-t * f, t * g])
    to1 = np.concatenate([(1 - t) * f, -(1 - t) * g])
    cost = np.concatenate([cost0.ravel(), cost1.ravel()])
    xi, yi = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
    ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    target = (yi * w + xi)[ok]
    order = np.lexsort((cost[ok], target))  # by target, then cheapest first
    first = np.unique(target[order], return_index=True)[1]
    pick = np.flatnonzero(ok)[order[first]]
    where = target[order[first]]
    ft0 = np.zeros((h * w, 2), np.float32)
    ft1 = np.zeros((h * w, 2), np.float32)
    filled = np.zeros(h * w, np.uint8)
    ft0[where], ft1[where], filled[where] = to0[pick], to1[pick], 1
    ft0, ft1 = ft0.reshape(h, w, 2), ft1.reshape(h, w, 2)
    holes = (filled.reshape(h, w) == 0).astype(np.uint8)
    if holes.any():
        for fl in (ft0, ft1):
            for c in range(2):
                fl[..., c] = cv2.inpaint(
                    np.ascontiguousarray(fl[..., c]), holes, 3, cv2.INPAINT_TELEA
                )
    return ft0, ft1


def interpolate(
    frame0: np.ndarray, frame1: np.ndarray, t: float, flow01: np.ndarray, flow10: np.ndarray
) -> np.ndarray:
    """The frame at time ``t`` in (0, 1) between two frames, from their flows both ways.

    Both neighbours are warped to time t and blended by closeness in time, and each one's weight
    is cut where it cannot see the pixel: where the pixel is newly revealed in frame 1, frame 0
    has only the object that used to cover it, and the other way round."""
    if t <= 0.0:
        return np.asarray(frame0, np.float32)
    if t >= 1.0:
        return np.asarray(frame1, np.float32)
    f0, f1 = np.asarray(frame0, np.float32), np.asarray(frame1, np.float32)
    occ0, occ1 = occlusion(flow01, flow10), occlusion(flow10, flow01)
    err0 = np.abs(f0 - warp(f1, flow01)).reshape(*f0.shape[:2], -1).mean(axis=2)
    err1 = np.abs(f1 - warp(f0, flow10)).reshape(*f1.shape[:2], -1).mean(axis=2)
    ft0, ft1 = _project(flow01, flow10, t, err0 + occ0, err1 + occ1)
    w0 = (1 - t) * (1.0 - warp(occ1, ft1)) + 1e-4
    w1 = t * (1.0 - warp(occ0, ft0)) + 1e-4
    s0, s1 = warp(f0, ft0), warp(f1, ft1)
    if s0.ndim == 3:
        w0, w1 = w0[..., None], w1[..., None]
    return np.clip((w0 * s0 + w1 * s1) / (w0 + w1), 0.0, 1.0).astype(np.float32)


def flow_to_rgb(flow: np.ndarray, max_magnitude: float = 0.0) -> np.ndarray:
    """The usual colour-wheel picture of a flow: hue = direction, brightness = speed (black is
    still). ``max_magnitude`` pixels maps to full brightness; 0 uses this flow's largest."""
    import cv2

    mag, ang = cv2.cartToPolar(flow[..., 0].astype(np.float32), flow[..., 1].astype(np.float32))
    top = float(max_magnitude) if max_magnitude > 0 else float(mag.max())
    hsv = np.empty((*flow.shape[:2], 3), np.float32)
    hsv[..., 0] = ang * (180.0 / np.pi)  # OpenCV float HSV: hue in degrees
    hsv[..., 1] = 1.0
    hsv[..., 2] = np.clip(mag / top, 0.0, 1.0) if top > 1e-6 else 0.0
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0.0, 1.0).astype(np.float32)


def propagate_mask(mask: np.ndarray, flow_back: np.ndarray) -> np.ndarray:
    """Carry frame a's mask to frame b, given ``flow_back`` = flow from b to a: every pixel of b
    looks up where it came from, so the mask moves without holes."""
    return np.clip(warp(np.asarray(mask, np.float32), flow_back), 0.0, 1.0)


def iou(a: np.ndarray, b: np.ndarray, threshold: float = 0.5) -> float:
    """Intersection over union of two masks cut at ``threshold``; two empty masks agree (1.0)."""
    ma, mb = np.asarray(a) > threshold, np.asarray(b) > threshold
    union = int(np.count_nonzero(ma | mb))
    return 1.0 if union == 0 else int(np.count_nonzero(ma & mb)) / union


def keyframes(length: int, interval: int) -> list[int]:
    """Frames that get the full segmentation: every ``interval``-th from 0."""
    if interval < 1:
        raise ValueError(f"keyframe interval must be at least 1; got {interval}")
    return list(range(0, length, interval))


class _Lru:
    """A small thread-safe memo: sequential reads of a lazy video reuse the last few results."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.data: OrderedDict[object, np.ndarray] = OrderedDict()
        self.lock = threading.RLock()

    def has(self, key: object) -> bool:
        with self.lock:
            return key in self.data

    def get(self, key: object, make: Callable[[], np.ndarray]) -> np.ndarray:
        with self.lock:
            if key in self.data:
                self.data.move_to_end(key)
                return self.data[key]
        value = make()
        with self.lock:
            self.data[key] = value
            while len(self.data) > self.size:
                self.data.popitem(last=False)
        return value


class PairFlows:
    """Frames and the flows between them, each computed once while it stays in a small memo: a
    lazy video read in order then decodes every frame once and needs each pair's flow once."""

    def __init__(
        self, frame: Callable[[int], np.ndarray], preset: str = "medium", memo: int = 8
    ) -> None:
        if preset not in DIS_PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; use one of {', '.join(DIS_PRESETS)}")
        self.frame = frame
        self.preset = preset
        self._flows = _Lru(memo)
        self._images = _Lru(4)
        self.computed = 0

    def image(self, index: int) -> np.ndarray:
        """Frame ``index`` as float32, memoised (what flow and the nodes' own reads share)."""
        return self._images.get(index, lambda: np.asarray(self.frame(index), np.float32))

    def flow(self, a: int, b: int) -> np.ndarray:
        """Flow from frame a to frame b (any two frames; neighbours are the usual case)."""

        def make() -> np.ndarray:
            self.computed += 1
            return dis_flow(self.image(a), self.image(b), self.preset)

        return self._flows.get((a, b), make)


class PropagatedMasks:
    """Masks for every frame from masks computed on keyframes only.

    Keyframes (every ``interval``-th frame) get ``keyframe_mask(i)`` (the expensive model);
    frames between are carried from the previous keyframe by flow, one neighbour step at a
    time — the cross-frame redundancy Delta Distillation and ResQ exploit: consecutive frames
    change little, so most of the network's work can be replaced by a cheap update. With
    ``interval`` 1 every frame is a keyframe and nothing is propagated. Thread-safe; masks are
    memoised for a window of frames so a sequential read costs one flow per frame. Pass the
    ``flows`` the keyframe function reads its frames from to decode each frame once.
    """

    def __init__(
        self,
        length: int,
        frame: Callable[[int], np.ndarray],
        keyframe_mask: Callable[[int], np.ndarray],
        interval: int,
        preset: str = "medium",
        memo: int | None = None,
        flows: PairFlows | None = None,
    ) -> None:
        self.length = int(length)
        self.interval = int(interval)
        keyframes(self.length, self.interval)  # validates the interval
        self.flows = flows or PairFlows(frame, preset, memo=4)
        self._key = keyframe_mask
        self._memo = _Lru(memo or 16)
        self.model_calls = 0

    def keyframe_count(self) -> int:
        return len(keyframes(self.length, self.interval))

    def __call__(self, index: int) -> np.ndarray:
        if not 0 <= index < self.length:
            raise IndexError(f"frame {index} is outside 0..{self.length - 1}")
        key = index - index % self.interval
        start = index
        while start > key and not self._memo.has(start):
            start -= 1  # walk back to the keyframe or the nearest mask still memoised
        # If another thread evicted ``start`` since the check, carry it again from the keyframe
        # (never run the keyframe function on a frame between keyframes).
        mask = self._memo.get(
            start, lambda: self._keyframe(start) if start == key else self._carry(key, start)
        )
        for i in range(start + 1, index + 1):
            prev = mask
            mask = self._memo.get(i, partial(self._propagate, prev, i))
        return mask

    def _propagate(self, prev: np.ndarray, i: int) -> np.ndarray:
        return propagate_mask(prev, self.flows.flow(i, i - 1))

    def _carry(self, key: int, index: int) -> np.ndarray:
        mask = self._memo.get(key, lambda: self._keyframe(key))
        for i in range(key + 1, index + 1):
            mask = propagate_mask(mask, self.flows.flow(i, i - 1))
        return mask

    def _keyframe(self, index: int) -> np.ndarray:
        self.model_calls += 1
        return np.asarray(self._key(index), np.float32)
