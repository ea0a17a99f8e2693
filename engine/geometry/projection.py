"""Pure geometry for depth and 3D: back-projection, projection, grid meshes, panoramas, paths.

Conventions (used everywhere, so no function guesses): OpenCV camera axes (x right, y down,
z forward); poses are 4×4 camera-to-world; pixel (i, j) covers [i, i+1)×[j, j+1) so its centre
is at (i + 0.5, j + 0.5); depth is distance along the camera z axis; equirectangular longitude
runs left→right from -π to π with the image centre looking along +z, latitude top→bottom from
+π/2 (up, which is -y) to -π/2.
"""

from __future__ import annotations

import math

import numpy as np

from fathom.engine.errors import BadInput
from fathom.engine.types import Camera

# --------------------------------------------------------------------------------------------
# Poses


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """Camera-to-world pose at ``eye`` looking at ``target``; ``up`` is world up (default -y,
    so images are upright in the OpenCV convention)."""
    eye = np.asarray(eye, np.float64)
    target = np.asarray(target, np.float64)
    up = np.array([0.0, -1.0, 0.0]) if up is None else np.asarray(up, np.float64)
    z = target - eye
    n = np.linalg.norm(z)
    if n < 1e-12:
        raise ValueError("look_at: eye and target coincide")
    z /= n
    x = np.cross(-up, z)  # right = forward × down ... expressed with up = -down
    if np.linalg.norm(x) < 1e-9:  # looking straight up or down: pick any right vector
        x = np.cross(z, [1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, y, z, eye
    return pose


def yaw_pitch_pose(position: np.ndarray, yaw_deg: float, pitch_deg: float = 0.0) -> np.ndarray:
    """Pose from a position and yaw (about world -y, positive turns right) and pitch (up +)."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    fwd = np.array(
        [math.cos(pitch) * math.sin(yaw), -math.sin(pitch), math.cos(pitch) * math.cos(yaw)]
    )
    return look_at(np.asarray(position, np.float64), np.asarray(position, np.float64) + fwd)


def invert_pose(pose: np.ndarray) -> np.ndarray:
    r, t = pose[:3, :3], pose[:3, 3]
    out = np.eye(4)
    out[:3, :3] = r.T
    out[:3, 3] = -r.T @ t
    return out


# --------------------------------------------------------------------------------------------
# Projection


def pixel_grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (u, v), each H×W float64."""
    u = np.arange(width, dtype=np.float64) + 0.5
    v = np.arange(height, dtype=np.float64) + 0.5
    return np.meshgrid(u, v)


def backproject(
    depth: np.ndarray, fx: float, fy: float, cx: float, cy: float, pose: np.ndarray | None = None
) -> np.ndarray:
    """H×W depth → H×W×3 points (world frame if ``pose`` is given). Invalid depth gives NaN."""
    h, w = depth.shape
    u, v = pixel_grid(w, h)
    z = depth.astype(np.float64)
    z = np.where(np.isfinite(z) & (z > 0), z, np.nan)
    pts = np.stack([(u - cx) / fx * z, (v - cy) / fy * z, z], axis=-1)
    if pose is not None:
        pts = pts @ pose[:3, :3].T + pose[:3, 3]
    return pts


def project(
    points: np.ndarray, fx: float, fy: float, cx: float, cy: float, pose: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """World points N×3 → (N×2 continuous pixel coords, N depths along the camera axis)."""
    p = np.asarray(points, np.float64).reshape(-1, 3)
    if pose is not None:
        w2c = invert_pose(pose)
        p = p @ w2c[:3, :3].T + w2c[:3, 3]
    z = p[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = np.stack([fx * p[:, 0] / z + cx, fy * p[:, 1] / z + cy], axis=-1)
    return uv, z


# --------------------------------------------------------------------------------------------
# Grid triangulation with discontinuity cutting


def depth_normals(
    depth: np.ndarray, fx: float, fy: float, cx: float, cy: float, baseline: int = 1
) -> np.ndarray:
    """Camera-space unit normals H×W×3 from central differences of back-projected points over
    ±``baseline`` pixels (wider baselines average out quantised depth, e.g. 16-bit mm files);
    NaN where depth is missing. Normals face the camera (against the viewing ray)."""
    p = backproject(depth, fx, fy, cx, cy)
    k = max(1, int(baseline))
    du = np.full_like(p, np.nan)
    dv = np.full_like(p, np.nan)
    du[:, k:-k] = p[:, 2 * k :] - p[:, : -2 * k]
    dv[k:-k, :] = p[2 * k :, :] - p[: -2 * k, :]
    n = np.cross(dv, du)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = n / norm
    flip = np.sum(n * p, axis=-1) > 0  # face the camera: against the viewing ray
    n[flip] *= -1
    return n


# --------------------------------------------------------------------------------------------
# Equirectangular panoramas


def equirect_directions(width: int, height: int) -> np.ndarray:
    """H×W×3 unit view directions for an equirectangular image (OpenCV axes, y down)."""
    u, v = pixel_grid(width, height)
    lon = u / width * 2 * math.pi - math.pi
    lat = math.pi / 2 - v / height * math.pi
    return np.stack([np.cos(lat) * np.sin(lon), -np.sin(lat), np.cos(lat) * np.cos(lon)], -1)


def direction_to_equirect(dirs: np.ndarray, width: int, height: int) -> np.ndarray:
    """Unit directions N×3 → continuous equirect pixel coords N×2 (inverse of the above)."""
    d = dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
    lon = np.arctan2(d[..., 0], d[..., 2])
    lat = np.arcsin(np.clip(-d[..., 1], -1, 1))
    return np.stack(
        [(lon + math.pi) / (2 * math.pi) * width, (math.pi / 2 - lat) / math.pi * height], -1
    )


# --------------------------------------------------------------------------------------------
# Camera paths: each returns a list of camera-to-world poses.


def orbit_path(
    center: np.ndarray,
    radius: float,
    frames: int,
    height: float = 0.0,
    degrees: float = 360.0,
    start_deg: float = 0.0,
) -> list[np.ndarray]:
    """Circle around ``center`` in the horizontal plane, always looking at it."""
    c = np.asarray(center, np.float64)
    out = []
    n = max(1, frames)
    closed = abs(degrees) >= 360.0
    for k in range(n):
        t = k / n if closed else (k / (n - 1) if n > 1 else 0.0)
        a = math.radians(start_deg + degrees * t)
        eye = c + np.array([radius * math.sin(a), -height, -radius * math.cos(a)])
        out.append(look_at(eye, c))
    return out


def orbit_pose(azimuth_deg: float, elevation_deg: float, distance: float) -> np.ndarray:
    """Camera-to-world pose on a sphere around the origin, looking at it: the camera layout of
    multi-view generators (Zero123's relative pose, a ring of six views). Azimuth 0 is the
    front (the camera on -z looking along +z), positive azimuth turns the camera to the
    object's right seen from above, positive elevation raises it (up is -y)."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    eye = distance * np.array(
        [math.sin(az) * math.cos(el), -math.sin(el), -math.cos(az) * math.cos(el)]
    )
    return look_at(eye, np.zeros(3))


def ring_cameras(
    azimuths_deg: list[float],
    elevations_deg: list[float],
    distance: float,
    fov_deg: float,
    size: tuple[int, int],
) -> list[Camera]:
    """One pinhole camera per (azimuth, elevation), all at ``distance`` from the origin and
    looking at it, ``size`` = (width, height): the cameras of a generated view set."""
    if len(azimuths_deg) != len(elevations_deg):
        raise ValueError(f"{len(azimuths_deg)} azimuths but {len(elevations_deg)} elevations")
    width, height = size
    out = []
    for az, el in zip(azimuths_deg, elevations_deg, strict=True):
        cam = Camera.from_fov(width, height, fov_deg)
        cam.pose = orbit_pose(az, el, distance)
        out.append(cam)
    return out


def line_path(
    start: np.ndarray,
    end: np.ndarray,
    frames: int,
    target: np.ndarray | None = None,
    direction: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Straight move from ``start`` to ``end``: a dolly when looking along the move, a pan/truck
    when looking across it (``direction``), or tracking a fixed ``target``."""
    s, e = np.asarray(start, np.float64), np.asarray(end, np.float64)
    out = []
    for k in range(max(1, frames)):
        t = k / (frames - 1) if frames > 1 else 0.0
        eye = s + (e - s) * t
        if target is not None:
            out.append(look_at(eye, np.asarray(target, np.float64)))
        else:
            d = np.asarray(direction, np.float64) if direction is not None else (e - s)
            out.append(look_at(eye, eye + d))
    return out


def walk_path(waypoints: np.ndarray, frames: int) -> list[np.ndarray]:
    """Constant-speed walk through waypoints, looking ahead along the path."""
    w = np.asarray(waypoints, np.float64).reshape(-1, 3)
    if len(w) < 2:
        raise ValueError("a walk needs at least two waypoints")
    seg = np.linalg.norm(np.diff(w, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = cum[-1]
    if total <= 0:
        raise ValueError("walk waypoints must not all coincide")
    out = []
    for k in range(max(1, frames)):
        s = total * (k / (frames - 1) if frames > 1 else 0.0)
        i = min(int(np.searchsorted(cum, s, side="right")) - 1, len(seg) - 1)
        t = (s - cum[i]) / seg[i] if seg[i] > 0 else 0.0
        eye = w[i] + (w[i + 1] - w[i]) * t
        ahead = w[i + 1] - w[i]
        out.append(look_at(eye, eye + ahead))
    return out


CUBE_FACES = ("front", "right", "back", "left", "up", "down")


def cube_poses(center: np.ndarray) -> list[np.ndarray]:
    """Six 90° views (front, right, back, left, up, down) from ``center``."""
    c = np.asarray(center, np.float64)
    out = [yaw_pitch_pose(c, yaw) for yaw in (0.0, 90.0, 180.0, 270.0)]
    out.append(yaw_pitch_pose(c, 0.0, 89.999))
    out.append(yaw_pitch_pose(c, 0.0, -89.999))
    return out


def parse_points(text: str) -> np.ndarray:
    """'x,y,z; x,y,z; ...' → N×3; the way waypoints are typed into a text field."""
    rows = [r for r in text.replace("\n", ";").split(";") if r.strip()]
    try:
        pts = np.array([[float(v) for v in r.split(",")] for r in rows], np.float64)
    except ValueError:
        raise ValueError(f"waypoints must look like '0,0,0; 0,0,1'; got {text!r}") from None
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"each waypoint needs three numbers x,y,z; got {text!r}")
    return pts


def camera_for(camera: Camera | None, width: int, height: int, fov: float) -> Camera:
    """The connected camera (it must match the image's size) or, when none is connected, one
    made from a vertical field of view: what every node lifting an image to 3D needs."""
    if camera is None:
        return Camera.from_fov(width, height, fov)
    if (camera.width, camera.height) != (width, height):
        raise BadInput(
            f"camera is {camera.width}×{camera.height} but the image is {width}×{height}",
            port="camera",
            fix="make the camera at the image's size",
        )
    return camera
