"""Pure depth-map math: normalising, metric mapping, edge-aware smoothing, hole filling, colours.

Invalid samples are carried as NaN through every function, never as a number that could be
mistaken for depth: non-finite ones, and for metric depth those <= 0 (a sensor's "no return").
Relative depth runs from 0 (the nearest point) to 1, so there only negative samples are
invalid: the functions that test validity take ``relative``.
"""

from __future__ import annotations

import numpy as np


def valid_mask(depth: np.ndarray, relative: bool = False) -> np.ndarray:
    """Where ``depth`` holds depth: finite, and > 0 (metric) or >= 0 (relative: 0 is nearest)."""
    return np.isfinite(depth) & ((depth >= 0) if relative else (depth > 0))


def normalize(
    depth: np.ndarray, low_pct: float = 0.0, high_pct: float = 100.0, positive_only: bool = True
) -> np.ndarray:
    """Map valid depth to [0, 1] between two percentiles (robust to outliers); invalid → NaN.

    ``positive_only=False`` treats every finite value as valid: network outputs (disparity,
    logits) may be negative and still meaningful."""
    ok = valid_mask(depth) if positive_only else np.isfinite(depth)
    out = np.full(depth.shape, np.nan, np.float32)
    if not ok.any():
        return out
    vals = depth[ok]
    lo, hi = np.percentile(vals, [low_pct, high_pct])
    span = hi - lo if hi > lo else 1.0
    out[ok] = np.clip((depth[ok] - lo) / span, 0.0, 1.0)
    return out


def relative_to_metric(
    rel: np.ndarray, near: float, far: float, mapping: str = "inverse"
) -> np.ndarray:
    """Relative depth (0 = near, 1 = far) → metres. 'inverse' interpolates in 1/z, which is what
    disparity-trained estimators (DPT, Depth Anything) actually order; 'linear' in z."""
    if not 0 < near < far:
        raise ValueError(f"need 0 < near < far; got near={near}, far={far}")
    r = np.clip(rel.astype(np.float64), 0.0, 1.0)
    if mapping == "linear":
        z = near + r * (far - near)
    elif mapping == "inverse":
        z = 1.0 / (1.0 / near + r * (1.0 / far - 1.0 / near))
    else:
        raise ValueError(f"mapping must be 'linear' or 'inverse'; got {mapping!r}")
    z = np.where(np.isfinite(rel), z, np.nan)
    return z.astype(np.float32)


def push_pull_fill(depth: np.ndarray, max_levels: int = 16, relative: bool = False) -> np.ndarray:
    """Fill invalid samples from valid neighbours at coarser and coarser scales (push-pull):
    smooth, closes any hole, and leaves valid samples exactly as they were."""
    d = depth.astype(np.float64)
    ok = valid_mask(d, relative)
    if ok.all() or not ok.any():
        return depth.astype(np.float32).copy()
    filled = _push_pull(np.where(ok, d, 0.0), ok.astype(np.float64), max_levels)
    return np.where(ok, d, filled).astype(np.float32)


def _push_pull(val: np.ndarray, w: np.ndarray, levels: int) -> np.ndarray:
    h, wd = val.shape
    if levels == 0 or (h <= 1 and wd <= 1):
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = val.sum() / max(w.sum(), 1e-12)
        return np.full_like(val, mean)
    ph, pw = h + (h % 2), wd + (wd % 2)
    v = np.pad(val * w, ((0, ph - h), (0, pw - wd)))
    ww = np.pad(w, ((0, ph - h), (0, pw - wd)))
    vs = v.reshape(ph // 2, 2, pw // 2, 2).sum((1, 3))
    ws = ww.reshape(ph // 2, 2, pw // 2, 2).sum((1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        coarse_val = np.where(ws > 0, vs / np.maximum(ws, 1e-12), 0.0)
    coarse = _push_pull(coarse_val, np.minimum(ws, 1.0), levels - 1)
    up = np.repeat(np.repeat(coarse, 2, 0), 2, 1)[:h, :wd]
    return np.where(w > 0, val, up)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with a grey guide: edges of the guide survive in the output."""
    import cv2

    g = guide.astype(np.float32)
    p = src.astype(np.float32)
    k = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, k, normalize=True, borderType=cv2.BORDER_REFLECT)

    mg, mp = box(g), box(p)
    cov = box(g * p) - mg * mp
    var = box(g * g) - mg * mg
    a = cov / (var + eps)
    b = mp - a * mg
    return box(a) * g + box(b)


def smooth(
    depth: np.ndarray,
    method: str,
    radius: int,
    sigma: float,
    guide: np.ndarray | None = None,
    relative: bool = False,
) -> np.ndarray:
    """Edge-aware smoothing of valid samples; holes stay holes.

    ``sigma`` is relative to the median depth, so one setting works at any scene scale.
    """
    import cv2

    ok = valid_mask(depth, relative)
    if not ok.any():
        return depth.astype(np.float32).copy()
    scale = float(np.median(depth[ok])) or 1.0  # relative depth's median may be 0
    filled = push_pull_fill(depth, relative=relative) / scale
    if method == "bilateral":
        out = cv2.bilateralFilter(filled.astype(np.float32), 2 * radius + 1, sigma, radius)
    elif method == "guided":
        g = filled if guide is None else guide
        eps = (sigma**2) if guide is None else (sigma * 0.1) ** 2
        out = guided_filter(g, filled, radius, eps)
    else:
        raise ValueError(f"unknown smoothing method {method!r}")
    return np.where(ok, out * scale, np.nan).astype(np.float32)


def turbo_like(t: np.ndarray) -> np.ndarray:
    """A perceptual rainbow via OpenCV's TURBO map; NaN → black."""
    import cv2

    ok = np.isfinite(t)
    u8 = (np.clip(np.nan_to_num(t), 0, 1) * 255).astype(np.uint8)
    rgb = cv2.applyColorMap(u8, cv2.COLORMAP_TURBO)[..., ::-1].astype(np.float32) / 255.0
    rgb[~ok] = 0.0
    return rgb


COLORMAPS = ("turbo", "viridis", "inferno", "gray")


def colorize(
    depth: np.ndarray,
    cmap: str = "turbo",
    low_pct: float = 2.0,
    high_pct: float = 98.0,
    near_is_bright: bool = True,
    relative: bool = False,
) -> np.ndarray:
    """H×W×3 preview in [0,1]; near is bright (or red in turbo) by default; invalid black."""
    import cv2

    if relative:  # its range from valid samples only: a negative one is a hole
        depth = np.where(valid_mask(depth, True), depth, np.nan)
    t = normalize(depth, low_pct, high_pct, positive_only=not relative)
    if near_is_bright:
        t = 1.0 - t
    if cmap == "gray":
        g = np.nan_to_num(t, nan=0.0)
        return np.repeat(g[..., None], 3, 2).astype(np.float32)
    if cmap == "turbo":
        return turbo_like(t)
    code = {"viridis": cv2.COLORMAP_VIRIDIS, "inferno": cv2.COLORMAP_INFERNO}[cmap]
    ok = np.isfinite(t)
    u8 = (np.clip(np.nan_to_num(t), 0, 1) * 255).astype(np.uint8)
    rgb = cv2.applyColorMap(u8, code)[..., ::-1].astype(np.float32) / 255.0
    rgb[~ok] = 0.0
    return rgb


def control_image(depth: np.ndarray, metric: bool) -> np.ndarray:
    """The grey image depth ControlNets were trained on (MiDaS-style): near bright, far dark,
    spread over [0, 1]. Metric depth becomes disparity (1/depth) first, as MiDaS predicts;
    relative depth (0 nearest) is flipped. Invalid depth is black. H×W×3 float32."""
    if metric:
        ok = valid_mask(depth)
        disparity = np.where(ok, 1.0 / np.where(ok, depth, 1.0), np.nan).astype(np.float32)
        shown = normalize(disparity, 2.0, 98.0)
    else:
        shown = 1.0 - normalize(depth, 2.0, 98.0, positive_only=False)
    grey = np.nan_to_num(shown, nan=0.0).astype(np.float32)
    return np.repeat(grey[:, :, None], 3, axis=2)
