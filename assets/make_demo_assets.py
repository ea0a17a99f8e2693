"""Make the demo's sample media: a procedurally modelled room, ray-cast to RGB + depth.

Writes (relative to this folder):
  scene/rgb.png, scene/depth.png (16-bit, millimetres), scene/camera.json
  pano/rgb.png, pano/distance.png (16-bit, millimetres along each ray from the centre)
  video/dolly.mp4 (H.264 + AAC: a camera gliding through the room, a chord as soundtrack)

Run: python assets/make_demo_assets.py   (deterministic; a few seconds on a CPU)
Everything here is made by this script: no outside images or models.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from fathom.engine.geometry import projection

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


# World: OpenCV axes (y down). Camera at the origin looking along +z; floor 1.2 m below.
ROOM = {"x": (-3.5, 3.5), "y": (-1.8, 1.2), "z": (-4.0, 6.0)}
SPHERES = [  # centre, radius, colour
    ((-1.0, 0.55, 3.0), 0.65, (0.85, 0.25, 0.2)),
    ((1.2, 0.75, 4.2), 0.45, (0.2, 0.45, 0.85)),
    ((0.3, 0.9, 2.2), 0.3, (0.95, 0.8, 0.2)),
    ((-1.8, 0.7, -2.0), 0.5, (0.3, 0.8, 0.4)),
    ((2.0, 0.6, -1.0), 0.6, (0.8, 0.4, 0.8)),
]
BOXES = [  # min corner, max corner, colour
    ((1.6, 0.2, 2.0), (2.6, 1.2, 3.0), (0.9, 0.6, 0.3)),
    ((-2.9, -0.2, 4.5), (-1.9, 1.2, 5.5), (0.5, 0.7, 0.7)),
    ((-0.5, 0.4, -3.2), (0.7, 1.2, -2.4), (0.6, 0.6, 0.9)),
]
LIGHT = np.array([0.4, -1.0, 0.3]) / np.linalg.norm([0.4, -1.0, 0.3])


def raycast(dirs: np.ndarray, origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit ray directions N×3 from ``origin`` → (colour N×3, distance N)."""
    n = len(dirs)
    best = np.full(n, np.inf)
    color = np.zeros((n, 3))
    normal = np.zeros((n, 3))

    def take(t: np.ndarray, col: np.ndarray, nrm: np.ndarray) -> None:
        hit = (t > 1e-6) & (t < best)
        best[hit] = t[hit]
        color[hit] = col[hit]
        normal[hit] = nrm[hit]

    with np.errstate(divide="ignore", invalid="ignore"):
        # Room: six inward-facing planes with procedural textures.
        for axis, (lo, hi) in enumerate((ROOM["x"], ROOM["y"], ROOM["z"])):
            for bound, sign in ((lo, 1.0), (hi, -1.0)):
                t = (bound - origin[axis]) / dirs[:, axis]
                p = origin + dirs * t[:, None]
                nrm = np.zeros((n, 3))
                nrm[:, axis] = sign
                take(t, wall_texture(p, axis, bound), nrm)
        for c, r, col in SPHERES:
            oc = origin - np.array(c)
            b = dirs @ oc
            disc = b * b - (oc @ oc - r * r)
            t = np.where(disc >= 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
            p = origin + dirs * t[:, None]
            nrm = (p - np.array(c)) / r
            stripes = 0.85 + 0.15 * np.sign(np.sin(12 * np.arctan2(nrm[:, 0], nrm[:, 2])))
            take(t, np.outer(stripes, col), nrm)
        for lo, hi, col in BOXES:
            lo_, hi_ = np.array(lo), np.array(hi)
            t1 = (lo_ - origin) / dirs
            t2 = (hi_ - origin) / dirs
            tmin = np.nanmax(np.minimum(t1, t2), axis=1)
            tmax = np.nanmin(np.maximum(t1, t2), axis=1)
            t = np.where((tmax >= tmin) & (tmax > 0), tmin, np.inf)
            p = origin + dirs * t[:, None]
            centre, half = (lo_ + hi_) / 2, (hi_ - lo_) / 2
            q = (p - centre) / half
            ax = np.argmax(np.abs(q), axis=1)
            nrm = np.zeros((n, 3))
            nrm[np.arange(n), ax] = np.sign(q[np.arange(n), ax])
            check = (np.floor(p[:, 0] * 5) + np.floor(p[:, 1] * 5) + np.floor(p[:, 2] * 5)) % 2
            take(t, np.outer(0.8 + 0.2 * check, col), nrm)
    shade = 0.55 + 0.45 * np.clip(-(normal @ LIGHT), 0, 1)
    return np.clip(color * shade[:, None], 0, 1), best


def wall_texture(p: np.ndarray, axis: int, bound: float) -> np.ndarray:
    n = len(p)
    if axis == 1 and bound > 0:  # floor: checkerboard tiles
        tile = (np.floor(p[:, 0] * 1.5) + np.floor(p[:, 2] * 1.5)) % 2
        return np.outer(0.35 + 0.35 * tile, [0.95, 0.9, 0.8])
    if axis == 1:  # ceiling: soft grid
        g = (np.abs(np.sin(p[:, 0] * 3)) < 0.08) | (np.abs(np.sin(p[:, 2] * 3)) < 0.08)
        return np.where(g[:, None], 0.6, 0.9) * np.ones((n, 3))
    hue = {
        (0, -3.5): (0.55, 0.75, 0.6),
        (0, 3.5): (0.8, 0.7, 0.5),
        (2, -4.0): (0.6, 0.6, 0.8),
        (2, 6.0): (0.85, 0.6, 0.55),
    }[(axis, bound)]
    u = p[:, 2] if axis == 0 else p[:, 0]
    stripes = 0.8 + 0.2 * (np.floor(u * 2) % 2)
    band = np.where(p[:, 1] > 0.6, 0.7, 1.0)  # darker skirting band near the floor
    return np.outer(stripes * band, hue)


def save_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)).save(path)


def save_depth_mm(path: Path, metres: np.ndarray) -> None:
    mm = np.where(np.isfinite(metres), np.round(metres * 1000), 0)
    Image.fromarray(np.clip(mm, 0, 65535).astype(np.uint16)).save(path)


def make_scene(width: int = 512, height: int = 384, fov: float = 60.0) -> None:
    f = 0.5 * height / math.tan(math.radians(fov) / 2)
    u, v = projection.pixel_grid(width, height)
    rays = np.stack([(u - width / 2) / f, (v - height / 2) / f, np.ones_like(u)], -1)
    norm = np.linalg.norm(rays, axis=-1, keepdims=True)
    col, dist = raycast((rays / norm).reshape(-1, 3), np.zeros(3))
    depth = dist.reshape(height, width) / norm[..., 0]  # distance along the ray → z depth
    save_rgb(HERE / "scene" / "rgb.png", col.reshape(height, width, 3))
    save_depth_mm(HERE / "scene" / "depth.png", depth)
    cam = {
        "width": width,
        "height": height,
        "fov_y_degrees": fov,
        "fx": f,
        "fy": f,
        "cx": width / 2,
        "cy": height / 2,
        "pose": np.eye(4).tolist(),
        "depth_encoding": "uint16 millimetres along the camera z axis",
    }
    (HERE / "scene" / "camera.json").write_text(json.dumps(cam, indent=2) + "\n")


def make_panorama(width: int = 1024, height: int = 512) -> None:
    dirs = projection.equirect_directions(width, height).reshape(-1, 3)
    col, dist = raycast(dirs, np.array([0.0, 0.0, 0.5]))
    save_rgb(HERE / "pano" / "rgb.png", col.reshape(height, width, 3))
    save_depth_mm(HERE / "pano" / "distance.png", dist.reshape(height, width))


def make_clip(
    width: int = 256,
    height: int = 192,
    frames: int = 72,
    fps: int = 24,
    fov: float = 60.0,
    sample_rate: int = 48000,
) -> None:
    """A dolly-and-pan through the room: real parallax and occlusion for the video nodes
    (flow, interpolation, segmentation, restyling), with a soundtrack for the audio paths."""
    from fractions import Fraction

    import av

    f = 0.5 * height / math.tan(math.radians(fov) / 2)
    u, v = projection.pixel_grid(width, height)
    rays = np.stack([(u - width / 2) / f, (v - height / 2) / f, np.ones_like(u)], -1)
    rays = (rays / np.linalg.norm(rays, axis=-1, keepdims=True)).reshape(-1, 3)
    path = HERE / "video" / "dolly.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as out:
        vs = out.add_stream("libx264", rate=Fraction(fps))
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"crf": "23", "g": "24", "preset": "veryslow", "flags": "+bitexact"}
        au = out.add_stream("aac", rate=sample_rate)
        au.layout = "stereo"
        for i in range(frames):
            s = i / (frames - 1)
            yaw = math.radians(-18 + 36 * s)
            rot = np.array(
                [[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]]
            )
            origin = np.array([-0.8 + 1.6 * s, -0.1, 0.2 + 0.8 * s])
            col, _ = raycast(rays @ rot.T, origin)
            rgb = (np.clip(col.reshape(height, width, 3), 0, 1) * 255).round().astype(np.uint8)
            for packet in vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        n = round(frames / fps * sample_rate)
        t = np.arange(n) / sample_rate
        env = np.minimum(1.0, np.minimum(t / 0.2, (t[-1] - t) / 0.5))
        chord = sum(np.sin(2 * np.pi * hz * t) for hz in (220.0, 277.18, 329.63)) / 3
        pcm = (0.25 * env * np.stack([chord, np.roll(chord, 240)])).astype(np.float32)
        for start in range(0, n, 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm[:, start : start + 1024]), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts = sample_rate, start
            for packet in au.encode(frame):
                out.mux(packet)
        for packet in au.encode():
            out.mux(packet)


if __name__ == "__main__":
    make_scene()
    make_panorama()
    make_clip()
    print(
        "wrote",
        *(
            str(p.relative_to(HERE))
            for p in sorted(HERE.glob("*/*.*"))
            if p.parent.name in ("scene", "pano", "video")
        ),
    )
