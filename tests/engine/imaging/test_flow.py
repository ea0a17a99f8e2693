"""Flow math on synthetic clips with known motion: a textured square sliding over a textured
background by a known number of pixels per frame (sub-pixel positions drawn by resampling)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fathom.engine.imaging import flow as fl

H, W, S = 64, 96, 24


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    t = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 1.5)
    t = (t - t.min()) / (t.max() - t.min())
    return np.stack([t, 1 - t, 0.5 * t + 0.25], -1).astype(np.float32)


class Square:
    """Frame i shows the square's top-left corner at start + i·step (pixels, may be fractional)."""

    def __init__(
        self, step: tuple[float, float], start: tuple[float, float] = (8, 20), seed: int = 0
    ) -> None:
        rng = np.random.default_rng(seed)
        self.bg = _texture(rng, H, W) * 0.6
        self.sq = _texture(rng, S, S) * 0.6 + 0.4
        self.step, self.start = step, start

    def at(self, x: float, y: float) -> tuple[np.ndarray, np.ndarray]:
        m = np.float32([[1, 0, x], [0, 1, y]])
        alpha = cv2.warpAffine(np.ones((S, S), np.float32), m, (W, H), flags=cv2.INTER_LINEAR)
        img = self.bg * (1 - alpha[..., None]) + cv2.warpAffine(
            self.sq, m, (W, H), flags=cv2.INTER_LINEAR
        )
        return np.clip(img, 0, 1).astype(np.float32), alpha

    def pos(self, t: float) -> tuple[float, float]:
        return self.start[0] + self.step[0] * t, self.start[1] + self.step[1] * t

    def frame(self, t: float) -> np.ndarray:
        return self.at(*self.pos(t))[0]

    def mask(self, t: float) -> np.ndarray:
        return self.at(*self.pos(t))[1]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


# The fast presets stop at a quarter of the resolution: on a 96×64 frame they are coarser.
@pytest.mark.parametrize(
    ("preset", "tol"), [("ultrafast", 1.0), ("fast", 1.0), ("medium", 0.5), ("sharp", 0.1)]
)
def test_dis_flow_inside_the_square_is_its_displacement(preset: str, tol: float) -> None:
    clip = Square((3, 1))
    f0, f1 = clip.frame(2), clip.frame(3)
    flow = fl.dis_flow(f0, f1, preset)
    assert flow.shape == (H, W, 2) and flow.dtype == np.float32
    x, y = (int(v) for v in clip.pos(2))
    inner = flow[y + 6 : y + S - 6, x + 6 : x + S - 6].reshape(-1, 2)
    assert np.allclose(np.median(inner, axis=0), [3, 1], atol=tol)
    back = fl.dis_flow(f1, f0, preset)
    x, y = (int(v) for v in clip.pos(3))
    assert np.allclose(
        np.median(back[y + 6 : y + S - 6, x + 6 : x + S - 6].reshape(-1, 2), axis=0),
        [-3, -1],
        atol=tol,
    )
    # the background far from the square stays still
    assert np.abs(np.median(flow[:, 75:].reshape(-1, 2), axis=0)).max() < 0.3


def test_warp_moves_by_the_flow_exactly_for_whole_pixels() -> None:
    img = np.random.default_rng(1).random((H, W, 3)).astype(np.float32)
    flow = np.zeros((H, W, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2, -1
    out = fl.warp(img, flow)
    assert np.allclose(out[1:, :-2], img[:-1, 2:], atol=1e-6)
    one = fl.warp(img[..., :1], flow)
    assert one.shape == (H, W, 1)
    assert fl.warp(img[..., 0], flow).shape == (H, W)


def test_interpolated_frame_matches_the_analytic_midpoint() -> None:
    clip = Square((4, 2))
    f0, f1 = clip.frame(3), clip.frame(4)
    f01, f10 = fl.dis_flow(f0, f1), fl.dis_flow(f1, f0)
    for t in (0.25, 0.5, 0.75):
        truth = clip.frame(3 + t)
        mid = fl.interpolate(f0, f1, t, f01, f10)
        assert mid.shape == f0.shape
        # well above a cross-fade (≈ 31 dB here) or holding the nearer frame (≈ 26 dB)
        assert psnr(mid, truth) > 36, t
        assert psnr(mid, truth) > psnr((1 - t) * f0 + t * f1, truth) + 5
    assert np.array_equal(fl.interpolate(f0, f1, 0.0, f01, f10), f0)
    assert np.array_equal(fl.interpolate(f0, f1, 1.0, f01, f10), f1)


def test_occlusion_marks_the_covered_background_only() -> None:
    clip = Square((4, 0))
    f0, f1 = clip.frame(0), clip.frame(1)
    occ = fl.occlusion(fl.dis_flow(f0, f1, "sharp"), fl.dis_flow(f1, f0, "sharp"))
    x, y = (int(v) for v in clip.pos(0))
    # the 4 columns ahead of the square are covered in frame 1
    assert occ[y + 4 : y + S - 4, x + S : x + S + 4].mean() > 0.5
    assert occ[y + 4 : y + S - 4, x + 4 : x + S - 4].mean() < 0.1
    assert occ[:, 70:].mean() < 0.05


@pytest.mark.parametrize("step", [(3, 1), (2.5, -1.5)])
def test_mask_propagation_follows_the_square(step: tuple[float, float]) -> None:
    clip = Square(step)
    masks = fl.PropagatedMasks(14, clip.frame, lambda i: clip.mask(i), 1000, "sharp")
    assert masks.keyframe_count() == 1
    for i in range(14):
        assert fl.iou(masks(i), clip.mask(i)) > 0.9, i
    assert masks.model_calls == 1
    assert masks.flows.computed == 13  # one flow per step, read in order


def test_keyframes_run_the_expensive_mask_ceil_n_over_k_times() -> None:
    clip = Square((2, 1))
    for n, k in [(10, 1), (10, 3), (10, 4), (9, 9), (5, 8)]:
        calls: list[int] = []

        def key(i: int, calls: list[int] = calls) -> np.ndarray:
            calls.append(i)
            return clip.mask(i)

        masks = fl.PropagatedMasks(n, clip.frame, key, k, "sharp")
        out = [masks(i) for i in range(n)]
        assert calls == list(range(0, n, k)) == fl.keyframes(n, k)
        assert masks.keyframe_count() == -(-n // k)
        for i in calls:  # keyframes are the expensive mask itself, untouched
            assert np.array_equal(out[i], clip.mask(i))


def test_threads_sharing_propagated_masks_run_the_model_on_keyframes_only() -> None:
    """Two readers at once (a save and the GUI player) with a tiny memo evict each other's
    masks; a frame between keyframes must then be carried again, never sent to the model."""
    import threading

    clip = Square((2, 1))
    calls: list[int] = []
    lock = threading.Lock()

    def key(i: int) -> np.ndarray:
        with lock:
            calls.append(i)
        return clip.mask(i)

    masks = fl.PropagatedMasks(12, clip.frame, key, 4, "sharp", memo=2)
    want = [fl.PropagatedMasks(12, clip.frame, clip.mask, 4, "sharp")(i) for i in range(12)]
    got: dict[int, list[tuple[int, np.ndarray]]] = {0: [], 1: []}

    def read(t: int) -> None:
        for i in range(12) if t == 0 else reversed(range(12)):
            got[t].append((i, masks(i)))

    threads = [threading.Thread(target=read, args=(t,)) for t in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(calls) <= {0, 4, 8}
    for pairs in got.values():
        for i, m in pairs:
            assert fl.iou(m, want[i]) > 0.99, i


def test_random_access_walks_from_the_keyframe_without_deep_recursion() -> None:
    clip = Square((0, 0))
    still = clip.frame(0)
    masks = fl.PropagatedMasks(
        1500, lambda i: still, lambda i: clip.mask(0), 1500, "ultrafast", memo=2
    )
    # nothing memoised near frame 1400: an iterative walk, not 1400 nested calls
    assert fl.iou(masks(1400), clip.mask(0)) > 0.99
    assert masks.model_calls == 1 and masks.flows.computed == 1400


def test_iou_and_flow_picture() -> None:
    a = np.zeros((4, 4), np.float32)
    b = a.copy()
    assert fl.iou(a, b) == 1.0
    a[:2], b[1:3] = 1, 1
    assert fl.iou(a, b) == pytest.approx(1 / 3)
    flow = np.zeros((8, 8, 2), np.float32)
    flow[:, :4, 0] = 2.0  # moving right: hue 0, red
    flow[:, 4:, 1] = 1.0  # moving down, half as fast
    pic = fl.flow_to_rgb(flow)
    assert pic.shape == (8, 8, 3) and pic.min() >= 0 and pic.max() <= 1
    assert np.allclose(pic[0, 0], [1, 0, 0], atol=1e-3)
    assert pic[0, 7].max() == pytest.approx(0.5, abs=1e-3)
    assert fl.flow_to_rgb(np.zeros((4, 4, 2), np.float32)).max() == 0
    with pytest.raises(ValueError, match="preset"):
        fl.dis_flow(a, b, "slow")
    with pytest.raises(ValueError, match="interval"):
        fl.keyframes(5, 0)
