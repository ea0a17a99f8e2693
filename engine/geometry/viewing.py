"""Software views for interactive viewers: preview geometry, culling, headlight shading,
wireframes, crack filling, panorama backdrops and band-wise progressive renders."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from fathom.engine.geometry import meshing, projection
from fathom.engine.geometry.scene import (
    RenderScene,
    render_torch,
    scene_from_mesh,
    scene_from_pointcloud,
)
from fathom.engine.types import RGBD, Camera, Mesh, PointCloud

BACKGROUND = (0.125, 0.125, 0.125)


MAX_POINTS = 400_000


MAX_EDGES = 400_000


@lru_cache(maxsize=1)
def render_device() -> str:
    """The torch device previews render on: a GPU when there is one, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class PreviewGeometry:
    """A value made renderable: the engine scene (texture kept) for the software path, one colour
    per vertex for OpenGL, normals for shading when colours are off, and its bounds."""

    scene: RenderScene
    vertex_colors: np.ndarray  # V×3 in [0, 1]
    normals: np.ndarray | None
    has_colors: bool
    center: np.ndarray
    radius: float
    summary: str
    _edges: np.ndarray | None = None
    #: For per-vertex renderers (the OpenGL preview) of a textured mesh: vertices, faces and
    #: colours sampled from the texture (``textured_vertex_mesh``); None: the scene's own.
    vertex_mesh: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def is_points(self) -> bool:
        return self.scene.faces is None

    def edges(self) -> np.ndarray:
        """Unique undirected edges (E×2), subsampled past MAX_EDGES to keep wireframes fast."""
        if self._edges is None:
            f = np.asarray(self.scene.faces)
            pairs = np.sort(f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1).astype(np.int64)
            n = int(pairs.max()) + 1 if len(pairs) else 1
            keys = np.unique(pairs[:, 0] * n + pairs[:, 1])
            if len(keys) > MAX_EDGES:
                keys = np.random.default_rng(0).choice(keys, MAX_EDGES, replace=False)
            self._edges = np.stack([keys // n, keys % n], axis=1)
        return self._edges


def _bounds(points: np.ndarray) -> tuple[np.ndarray, float]:
    lo, hi = np.nanmin(points, 0), np.nanmax(points, 0)
    center = (lo + hi) / 2
    return center.astype(np.float64), max(float(np.linalg.norm(hi - lo)) / 2, 1e-6)


def _bilinear(texture: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """RGB at pixel coordinates ``x``, ``y`` (texel centres at integers), clamped at the
    border: N×3 float32."""
    th, tw = texture.shape[:2]
    x, y = np.clip(x, 0, tw - 1), np.clip(y, 0, th - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, tw - 1), np.minimum(y0 + 1, th - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    t = np.asarray(texture[..., :3], np.float32)
    top = t[y0, x0] * (1 - fx) + t[y0, x1] * fx
    bottom = t[y1, x0] * (1 - fx) + t[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def _texel_coords(texture: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UVs (origin bottom-left, as glTF/OBJ and the rasterizer's ``shade_texture``) → pixel
    coordinates with texel centres at integers."""
    th, tw = texture.shape[:2]
    u, v = np.asarray(uv[..., 0], np.float64), np.asarray(uv[..., 1], np.float64)
    return u * tw - 0.5, (1.0 - v) * th - 0.5


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear RGB lookup of N×2 ``uv`` in an H×W×C texture, as the rasterizer samples it:
    N×3 float32."""
    return _bilinear(texture, *_texel_coords(texture, uv))


def _texture_at_vertices(scene: RenderScene) -> np.ndarray:
    """The texture at each vertex's UV: a rough colour per vertex (bounds, summaries)."""
    assert scene.texture is not None and scene.uv is not None
    return sample_texture(scene.texture, scene.uv)


#: A textured mesh shown with per-vertex colours is subdivided up to this many faces, so the
#: colours can follow the texture's detail (about 1.5 M vertices once faces are split apart).
VERTEX_TEXTURE_FACES = 500_000


def textured_vertex_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    uv: np.ndarray,
    texture: np.ndarray,
    max_faces: int = VERTEX_TEXTURE_FACES,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured mesh as (vertices, faces, colours) for renderers that only interpolate
    colours between vertices (pyqtgraph's OpenGL mesh item).

    Two things make the picture right: triangles much larger than a texel are subdivided
    (within ``max_faces``), so a coarse mesh still shows its texture's detail; and every face
    gets its own three vertices, each sampled slightly inside the face's UV triangle, so a
    seam between atlas charts never takes a neighbouring chart's colour (a shared corner sits
    exactly on the chart's edge)."""
    import trimesh.remesh

    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    t = np.asarray(uv, np.float64)
    th, tw = texture.shape[:2]
    while 0 < len(f) and len(f) * 4 <= max_faces:
        a, b, c = t[f[:, 0]], t[f[:, 1]], t[f[:, 2]]
        cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (
            c[:, 0] - a[:, 0]
        )
        texels = float(np.median(np.abs(cross))) * 0.5 * tw * th
        if texels <= 8.0:  # a face already covers only a few texels
            break
        v, f, attrs = trimesh.remesh.subdivide(v, f, vertex_attributes={"uv": t})
        t = np.asarray(attrs["uv"], np.float64)
    x, y = _texel_coords(texture, t[f])  # F×3 each
    # Each corner is moved a texel towards its face's centre (at most half-way) and kept within
    # the texel centres its face spans, so the blend never reaches across a chart's edge.
    cx, cy = x.mean(1, keepdims=True), y.mean(1, keepdims=True)
    reach = np.hypot(x - cx, y - cy)
    pull = np.minimum(0.5, 1.0 / np.maximum(reach, 1e-9))
    x, y = x + (cx - x) * pull, y + (cy - y) * pull
    for c, lo, hi in ((x, x.min(1), x.max(1)), (y, y.min(1), y.max(1))):
        first, last = np.ceil(lo), np.floor(hi)
        spans = first <= last  # faces spanning at least one texel centre on this axis
        c[spans] = np.clip(c[spans], first[spans, None], last[spans, None])
    colours = _bilinear(texture, x.reshape(-1), y.reshape(-1))
    split_faces = np.arange(3 * len(f), dtype=np.int64).reshape(-1, 3)
    return v[f].reshape(-1, 3).astype(np.float32), split_faces, colours


def geometry_from_value(
    value: Any, max_points: int = MAX_POINTS, per_vertex: bool = False
) -> PreviewGeometry:
    """Mesh, PointCloud or RGBD (shown as its point cloud) → PreviewGeometry. ``per_vertex``:
    also make a textured mesh's ``vertex_mesh`` (for the OpenGL preview; the software path
    samples the texture per pixel and needs none)."""
    if isinstance(value, Mesh):
        tm = value.mesh
        if len(tm.faces) == 0:
            raise ValueError("the mesh has no faces")
        sc = scene_from_mesh(value)
        has_colors = getattr(tm.visual, "kind", None) is not None
        cols = _texture_at_vertices(sc) if sc.texture is not None else np.asarray(sc.colors)
        normals = np.asarray(tm.vertex_normals, np.float32)
        center, radius = _bounds(np.asarray(sc.vertices))
        summary = f"mesh: {len(tm.vertices):,} vertices, {len(tm.faces):,} faces"
        vmesh = None
        if sc.texture is not None and sc.uv is not None:
            th, tw = sc.texture.shape[:2]
            summary += f", {tw}×{th} texture"
            if per_vertex:
                vmesh = textured_vertex_mesh(sc.vertices, np.asarray(sc.faces), sc.uv, sc.texture)
        geom = PreviewGeometry(sc, cols, normals, has_colors, center, radius, summary)
        geom.vertex_mesh = vmesh
        return geom
    if isinstance(value, RGBD):
        d = value.depth
        cam = value.camera or Camera.from_fov(d.width, d.height, 60.0)
        pts = projection.backproject(d.data, cam.fx, cam.fy, cam.cx, cam.cy, cam.pose)
        pts = pts.reshape(-1, 3)
        # A sample at distance 0 (relative depth's nearest point, shown as distance) would sit
        # on the camera itself: left out, as holes are.
        ok = np.all(np.isfinite(pts), axis=1) & (d.valid() & (d.data > 0)).reshape(-1)
        note = "" if d.kind == "metric" else " (relative depth shown as distance)"
        pc = PointCloud(pts[ok], value.image.rgb().reshape(-1, 3)[ok])
        geom = geometry_from_value(pc, max_points)
        geom.summary = f"RGBD {d.width}×{d.height} as points: {len(pc):,}{note}"
        return geom
    if isinstance(value, PointCloud):
        if len(value) == 0:
            raise ValueError("the point cloud is empty")
        stride = max(1, math.ceil(len(value) / max_points))
        pts = value.points[::stride]
        colored = value.colors is not None
        kept = value.colors[::stride] if value.colors is not None else None
        sc = scene_from_pointcloud(PointCloud(pts, kept), radius=1)
        center, radius = _bounds(pts)
        shown = f" (every {stride}th shown)" if stride > 1 else ""
        summary = f"point cloud: {len(value):,} points{shown}"
        return PreviewGeometry(sc, np.asarray(sc.colors), None, colored, center, radius, summary)
    raise TypeError(f"cannot show a {type(value).__name__} as 3D")


def cull_faces(scene: RenderScene, camera: Camera, near: float = 1e-3) -> RenderScene:
    """Keep only triangles in front of the camera whose screen bounds touch the image: the
    rasterizer's cost grows with the triangles it is given, and a 360° scene is mostly outside
    any one view."""
    if scene.faces is None or len(scene.faces) == 0:
        return scene
    w2c = projection.invert_pose(camera.pose).astype(np.float32)
    v = np.asarray(scene.vertices, np.float32) @ w2c[:3, :3].T + w2c[:3, 3]
    z = v[:, 2]
    front = z > near
    zs = np.where(front, z, 1.0)
    sx = camera.fx * v[:, 0] / zs + camera.cx
    sy = camera.fy * v[:, 1] / zs + camera.cy
    f = np.asarray(scene.faces)
    fx, fy = sx[f], sy[f]
    keep = front[f].all(1)
    keep &= (fx.max(1) >= 0) & (fx.min(1) <= camera.width)
    keep &= (fy.max(1) >= 0) & (fy.min(1) <= camera.height)
    return replace(scene, faces=f[keep])


def headlight(normals: np.ndarray, camera: Camera) -> np.ndarray:
    """Gray shading lit from the camera (two-sided), so uncoloured shapes read as 3D."""
    fwd = camera.pose[:3, 2].astype(np.float32)
    lam = np.abs(normals @ fwd)
    g = 0.2 + 0.7 * np.nan_to_num(lam)
    return np.repeat(g[:, None], 3, axis=1).astype(np.float32)


def draw_wireframe(
    image: np.ndarray,
    zbuf: np.ndarray,
    vertices: np.ndarray,
    edges: np.ndarray,
    camera: Camera,
    color: tuple[float, float, float] = (0.95, 0.95, 0.95),
) -> None:
    """Draw edges into ``image`` in place, hidden where the rendered surface is in front
    (samples are depth-tested against ``zbuf`` with perspective-correct depth)."""
    if not len(edges):
        return
    w2c = projection.invert_pose(camera.pose).astype(np.float32)
    v = np.asarray(vertices, np.float32) @ w2c[:3, :3].T + w2c[:3, 3]
    z = v[:, 2]
    e = edges[(z[edges] > 1e-3).all(1)]
    if not len(e):
        return
    uv = np.stack(
        [
            camera.fx * v[:, 0] / np.maximum(z, 1e-3) + camera.cx,
            camera.fy * v[:, 1] / np.maximum(z, 1e-3) + camera.cy,
        ],
        1,
    )
    a, b = uv[e[:, 0]], uv[e[:, 1]]
    h, w = zbuf.shape
    on_screen = (
        (np.maximum(a[:, 0], b[:, 0]) >= 0)
        & (np.minimum(a[:, 0], b[:, 0]) < w)
        & (np.maximum(a[:, 1], b[:, 1]) >= 0)
        & (np.minimum(a[:, 1], b[:, 1]) < h)
    )
    e, a, b = e[on_screen], a[on_screen], b[on_screen]
    n = np.clip(np.ceil(np.abs(b - a).max(1)), 1, 512).astype(np.int64) + 1
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    idx = np.repeat(np.arange(len(e)), n)
    t = ((np.arange(int(n.sum())) - start[idx]) / (n[idx] - 1)).astype(np.float32)
    p = a[idx] + (b - a)[idx] * t[:, None]
    iz = (1 - t) / z[e[idx, 0]] + t / z[e[idx, 1]]
    xi, yi = np.floor(p[:, 0]).astype(np.int64), np.floor(p[:, 1]).astype(np.int64)
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    xi, yi, depth = xi[inside], yi[inside], 1.0 / iz[inside]
    visible = depth <= zbuf[yi, xi] * 1.01 + 1e-4
    image[yi[visible], xi[visible]] = color


def render_geometry(
    geom: PreviewGeometry,
    camera: Camera,
    colors_on: bool = True,
    wireframe: bool = False,
    point_radius: int = 1,
) -> np.ndarray:
    """H×W×3 software render of ``geom``, as the mesh viewer's fallback shows it."""
    sc = replace(geom.scene, point_radius=point_radius)
    if not (colors_on and geom.has_colors):
        n = len(sc.vertices)
        cols = (
            headlight(geom.normals, camera)
            if geom.normals is not None
            else np.full((n, 3), 0.8, np.float32)
        )
        sc = replace(sc, colors=cols, texture=None, uv=None)
    out = render_torch(cull_faces(sc, camera), camera, render_device(), BACKGROUND)
    image = out.image
    if wireframe and not geom.is_points:
        image = image.copy()
        draw_wireframe(image, out.depth, sc.vertices, geom.edges(), camera)
    return image


@dataclass
class OrbitCamera:
    """Turntable camera around a target: azimuth about world up (-y), elevation above it."""

    target: np.ndarray
    distance: float
    azimuth: float = 0.0
    elevation: float = 0.0
    fov: float = 50.0

    def pose(self) -> np.ndarray:
        az, el = math.radians(self.azimuth), math.radians(self.elevation)
        fwd = np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
        return projection.look_at(self.target - self.distance * fwd, self.target)

    def camera(self, width: int, height: int) -> Camera:
        return Camera.from_fov(width, height, self.fov, self.pose())

    def orbit(self, d_azimuth: float, d_elevation: float) -> None:
        self.azimuth = (self.azimuth + d_azimuth) % 360.0
        self.elevation = float(np.clip(self.elevation + d_elevation, -89.0, 89.0))

    def pan(self, dx: float, dy: float, view_height: int) -> None:
        """Move the target so the scene follows a drag of (dx, dy) screen pixels."""
        pose = self.pose()
        per_px = 2 * self.distance * math.tan(math.radians(self.fov) / 2) / max(1, view_height)
        self.target = self.target - (pose[:3, 0] * dx + pose[:3, 1] * dy) * per_px

    def zoom(self, factor: float) -> None:
        self.distance = max(1e-6, self.distance * factor)


CUT = 0.08  # relative depth jump that splits surfaces, as view.panorama360's default


def render_view(
    scene: RenderScene, camera: Camera, fill_cracks: bool = False, frame_height: int | None = None
) -> np.ndarray:
    """H×W×3 render of ``scene`` with off-screen triangles culled first; ``fill_cracks`` closes
    holes up to 2.5 % of ``frame_height`` (default: this image's height) wide, the cuts at
    depth jumps, from their neighbours."""
    out = render_torch(cull_faces(scene, camera), camera, render_device())
    if not fill_cracks:
        return out.image
    radius = max(3, round((frame_height or camera.height) / 40))
    return close_cracks(out.image, out.covered, radius)


def close_cracks(image: np.ndarray, covered: np.ndarray, radius: int) -> np.ndarray:
    """Fill uncovered pixels within ``radius`` of covered ones with the mean of their covered
    neighbours; wide empty areas (outside a photo mesh's view) stay empty."""
    import cv2

    if covered.all() or not covered.any():
        return image
    k = 2 * radius + 1
    cov = covered.astype(np.float32)
    weight = cv2.blur(cov, (k, k))
    mean = cv2.blur(image * cov[..., None], (k, k)) / np.maximum(weight, 1e-6)[..., None]
    crack = ~covered & (weight > 0.2)
    out = image.copy()
    out[crack] = mean[crack]
    return out


def background_texture(
    rgb: np.ndarray,
    distance: np.ndarray,
    window: float = 1 / 8,
    ratio: float = 0.85,
    rim: int = 0,
    cut: float = CUT,
) -> np.ndarray:
    """The panorama with its foreground objects painted out: a pixel is background when it is
    nearly as far as the farthest sample within ``window`` of the width around it; the rest is
    filled from background pixels (push-pull) and softened. Seen through disocclusions, this
    shows what is probably behind an object instead of a ghost copy of it.

    Pixels within ``rim`` of a depth jump (relative step above ``cut``, the mesh's own cut rule)
    keep their colour: the cracks cut into the mesh lie there, and from the capture point they
    must show exactly those pixels."""
    import cv2

    from fathom.engine.imaging import depthmath

    h, w = distance.shape
    k = max(3, int(w * window) | 1)
    d = np.nan_to_num(distance, nan=0.0, posinf=0.0).astype(np.float32)
    wrapped = np.pad(d, ((0, 0), (k, k)), mode="wrap")  # longitude wraps around
    far = cv2.dilate(wrapped, np.ones((k, k), np.uint8))[:, k:-k]
    bg = (d > 0) & (d >= ratio * far)
    out = np.empty((h, w, 3), np.float32)
    for c in range(3):  # +1: push-pull treats values <= 0 as holes
        out[..., c] = depthmath.push_pull_fill(np.where(bg, rgb[..., c] + 1.0, np.nan)) - 1.0
    # Soften only what was painted in (push-pull is blocky); true background stays sharp, so
    # the cracks seen from the capture point match their surroundings exactly.
    soft = cv2.GaussianBlur(np.clip(out, 0, 1), (0, 0), 2.0)
    keep = bg
    if rim > 0:
        lo = cv2.erode(wrapped, np.ones((3, 3), np.uint8))
        hi = cv2.dilate(wrapped, np.ones((3, 3), np.uint8))
        jump = ((hi - lo) > cut * np.maximum(lo, 1e-6)).astype(np.uint8)
        near_jump = cv2.dilate(jump, np.ones((2 * rim + 1, 2 * rim + 1), np.uint8))[:, k:-k]
        keep = bg | (near_jump > 0)
    return np.where(keep[..., None], rgb[..., :3], soft).astype(np.float32)


def with_backdrop(
    scene: RenderScene, radius: float, texture: np.ndarray, grid: tuple[int, int] = (64, 32)
) -> RenderScene:
    """``scene`` plus a sphere of ``radius`` behind everything, textured with ``texture`` (same
    equirectangular mapping): both textures share one image, the scene's on top."""
    assert scene.faces is not None and scene.uv is not None and scene.texture is not None
    import cv2

    th, tw = scene.texture.shape[:2]
    if texture.shape[:2] != (th, tw):
        texture = cv2.resize(texture, (tw, th), interpolation=cv2.INTER_AREA)
    w, h = grid
    verts, faces, uv = meshing.panorama_mesh(
        np.full((h, w), radius, np.float64), np.inf, 1, "duplicate"
    )
    # uv origin is bottom-left: the upper half of the stacked image is v in [0.5, 1].
    top = np.asarray(scene.uv, np.float32) * [1.0, 0.5] + [0.0, 0.5]
    n = len(scene.vertices)
    return replace(
        scene,
        vertices=np.concatenate([scene.vertices, verts.astype(np.float32)]),
        faces=np.concatenate([scene.faces, faces.astype(np.int64) + n]),
        uv=np.concatenate([top, uv.astype(np.float32) * [1.0, 0.5]]).astype(np.float32),
        texture=np.concatenate([scene.texture, texture[..., :3]]).astype(np.float32),
    )


def render_bands(
    scene: RenderScene,
    camera: Camera,
    bands: int,
    superseded: Callable[[], bool] = lambda: False,
    fill_cracks: bool = False,
) -> np.ndarray | None:
    """Render in horizontal bands, giving up (None) between bands once ``superseded()``: a
    full-size frame then never delays the first preview frame of the next move by more than
    one band."""
    h = camera.height
    edges = np.linspace(0, h, bands + 1).round().astype(int)
    parts = []
    for y0, y1 in zip(edges[:-1], edges[1:], strict=True):
        if y1 <= y0:
            continue
        if superseded():
            return None
        band = Camera(
            camera.fx, camera.fy, camera.cx, camera.cy - y0, camera.width, int(y1 - y0), camera.pose
        )
        parts.append(render_view(scene, band, fill_cracks, h))
    return np.concatenate(parts, axis=0)


# --------------------------------------------------------------------------------------------
# Walking inside a panorama: GPU projection, time-based movement and the captured volume


def gl_projection(camera: Camera, near: float, far: float) -> np.ndarray:
    """4×4 OpenGL clip matrix of ``camera`` for points in its own (OpenCV: x right, y down, z
    forward) frame: a point lands on the same pixel as ``camera``'s projection puts it, with
    depth mapped from [near, far] to [-1, 1]."""
    w, h = camera.width, camera.height
    out = np.zeros((4, 4))
    out[0, 0], out[0, 2] = 2 * camera.fx / w, 2 * camera.cx / w - 1
    out[1, 1], out[1, 2] = -2 * camera.fy / h, 1 - 2 * camera.cy / h
    out[2, 2], out[2, 3] = (far + near) / (far - near), -2 * far * near / (far - near)
    out[3, 2] = 1.0
    return out


def gl_view_projection(camera: Camera, near: float, far: float) -> np.ndarray:
    """World → clip: ``gl_projection`` after the camera's world-to-camera transform."""
    return gl_projection(camera, near, far) @ projection.invert_pose(camera.pose)


def walk_step(
    position: np.ndarray,
    yaw_deg: float,
    direction: tuple[float, float, float],
    speed: float,
    dt: float,
) -> np.ndarray:
    """Where a walker at ``position`` facing ``yaw_deg`` is after ``dt`` seconds at ``speed``
    (units per second) along ``direction`` = (forward, right, up) in the horizontal plane of the
    view, up being world up (-y). A diagonal is no faster than a straight line."""
    y = math.radians(yaw_deg)
    f, r, u = direction
    v = (
        f * np.array([math.sin(y), 0.0, math.cos(y)])
        + r * np.array([math.cos(y), 0.0, -math.sin(y)])
        + u * np.array([0.0, -1.0, 0.0])
    )
    n = float(np.linalg.norm(v))
    if n == 0.0 or dt <= 0.0:
        return np.asarray(position, np.float64).copy()
    return np.asarray(position, np.float64) + v / max(n, 1.0) * speed * dt


def mesh_distance_panorama(
    vertices: np.ndarray, faces: np.ndarray, width: int = 512, max_points: int = 6_000_000
) -> np.ndarray:
    """How far a mesh's nearest surface is from the origin in every direction: an
    equirectangular H×W distance map (NaN where no surface), what ``CaptureVolume`` takes, so a
    mesh opened in the 360° viewer has walls as a panorama does.

    Each triangle is sampled on a barycentric grid fine enough that neighbouring samples are
    under half a pixel apart as seen from the origin (large walls of a coarse mesh leave no
    gaps to walk through), and every sample keeps the nearest distance in its pixel."""
    h = max(1, width // 2)
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64).reshape(-1, 3)
    out = np.full(h * width, np.inf)
    if not len(f):
        return np.full((h, width), np.nan)
    tri = v[f]  # F×3×3
    edge = np.max(np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2), axis=1)
    # The nearest a triangle comes to the origin is at least its plane's distance (a wall's
    # middle is nearer than its corners); a triangle seen edge-on needs no fine sampling.
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    corner = np.linalg.norm(tri, axis=2).min(axis=1)
    plane = np.abs(np.einsum("fd,fd->f", normal, tri[:, 0]))
    near = np.maximum(np.maximum(plane, 0.1 * corner), 1e-9)
    pixel = 2.0 * math.pi / width
    k = np.clip(np.ceil(edge / near / (0.5 * pixel)), 1, 512).astype(np.int64)
    points = (k + 1) * (k + 2) // 2
    while points.sum() > max_points and k.max() > 1:  # a cap on memory: coarser sampling
        k = np.maximum(1, k // 2)
        points = (k + 1) * (k + 2) // 2
    for n in np.unique(k):
        i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
        keep = i + j <= n
        bary = np.stack([n - i[keep] - j[keep], i[keep], j[keep]], 1) / n  # M×3
        for chunk in np.array_split(np.flatnonzero(k == n), max(1, points[k == n].sum() // 2**20)):
            pts = np.einsum("mk,fkd->fmd", bary, tri[chunk]).reshape(-1, 3)
            r = np.linalg.norm(pts, axis=1)
            ok = r > 1e-9
            xy = projection.direction_to_equirect(pts[ok] / r[ok, None], width, h)
            x = np.clip(xy[:, 0].astype(np.int64), 0, width - 1)
            y = np.clip(xy[:, 1].astype(np.int64), 0, h - 1)
            np.minimum.at(out, y * width + x, r[ok])
    out[~np.isfinite(out)] = np.nan
    return _close_row_gaps(out.reshape(h, width))


def _close_row_gaps(d: np.ndarray, most: float = 3.0) -> np.ndarray:
    """Fill gaps along each row that span less than ``most`` pixels of angle at the equator
    (near the poles a pixel's column is a sliver, so samples miss some) with the nearer of
    their two neighbours; wider gaps (no surface there) stay NaN."""
    h, w = d.shape
    lat = np.pi / 2 - (np.arange(h) + 0.5) / h * np.pi
    out = d.copy()
    for y in range(h):
        row = out[y]
        ok = np.flatnonzero(np.isfinite(row))
        if len(ok) in (0, w):
            continue
        gap = (np.roll(ok, -1) - ok - 1) % w  # missing pixels after each valid one (circular)
        for a, n in zip(ok[gap > 0], gap[gap > 0], strict=True):
            if n * max(np.cos(lat[y]), 1e-3) < most:
                row[(a + 1 + np.arange(n)) % w] = min(row[a], row[(a + n + 1) % w])
    return out


class CaptureVolume:
    """The space a panorama saw: from its centre, every direction is free up to the distance
    the panorama holds there (a star-shaped room). ``clamp`` keeps a viewer inside it, at least
    ``margin`` from every surface sample, so walking never goes through a wall or an object.

    Directions without a valid distance (sky, holes) count as a wall at the farthest distance
    seen. The surface is sampled on a grid at most ``max_width`` columns wide, taking the
    nearest distance of each block, so thin near things are not lost."""

    def __init__(self, distance: np.ndarray, max_width: int = 512) -> None:
        from scipy.spatial import cKDTree

        d = np.asarray(distance, np.float64)
        ok = np.isfinite(d) & (d > 0)
        if not ok.any():
            raise ValueError("the panorama has no valid distance: there is no room to walk in")
        d = np.where(ok, d, float(d[ok].max()))
        step = max(1, math.ceil(d.shape[1] / max_width))
        h, w = d.shape[0] // step, d.shape[1] // step
        d = d[: h * step, : w * step].reshape(h, step, w, step).min(axis=(1, 3))
        self.distance = d
        self.points = (projection.equirect_directions(w, h) * d[..., None]).reshape(-1, 3)
        self._tree = cKDTree(self.points)
        self.nearest = float(d.min())

    def surface_distance(self, direction: np.ndarray) -> float:
        """How far the surface is from the centre along ``direction`` (nearest sample)."""
        h, w = self.distance.shape
        x, y = projection.direction_to_equirect(np.asarray(direction, np.float64)[None], w, h)[0]
        return float(self.distance[min(max(int(y), 0), h - 1), int(x) % w])

    def inside(self, point: np.ndarray) -> bool:
        """Whether ``point`` is in the captured volume (closer to the centre than the surface in
        its direction)."""
        r = float(np.linalg.norm(point))
        return r == 0.0 or r < self.surface_distance(np.asarray(point) / r)

    def clearance(self, point: np.ndarray) -> float:
        """Distance from ``point`` to the nearest surface sample; negative outside."""
        d = float(self._tree.query(np.asarray(point, np.float64))[0])
        return d if self.inside(point) else -d

    def clamp(
        self, proposed: np.ndarray, current: np.ndarray | None = None, margin: float = 0.1
    ) -> np.ndarray:
        """``proposed`` kept inside and ``margin`` from every surface (the margin is capped at
        half the nearest distance, so the centre always qualifies).

        With ``current`` (where the walker is now), the step current → proposed is walked: it
        stops where it would come closer than the margin and the rest of it slides along the
        surface, so nothing is ever stepped through. Without, the point is pushed off the
        nearest surface (pulled towards the centre first when it is outside or very close)."""
        m = min(margin, 0.5 * self.nearest)
        p = np.asarray(proposed, np.float64)
        if current is None:
            return self._push_out(p, m)
        at = self._push_out(np.asarray(current, np.float64), m)
        move = p - at
        for _ in range(3):  # the step, then up to two slides along what blocked it
            t = self._free_fraction(at, move, m)
            at = at + t * move
            if t >= 1.0:
                break
            normal = self._gap(at)[1]
            rest = (1.0 - t) * move
            move = rest - min(0.0, float(rest @ normal)) * normal
            if np.linalg.norm(move) < 0.2 * np.linalg.norm(rest):
                break  # (nearly) head-on: stop rather than creep sideways
        return at

    def _gap(self, point: np.ndarray) -> tuple[float, np.ndarray]:
        """Distance from ``point`` to the nearest surface sample, and the direction away from
        the surface there: from the mean of the nearest samples, which lies on the local
        surface, so it is the surface's normal rather than the offset of one sample."""
        dist, idx = self._tree.query(point, k=8)
        away = point - self.points[idx].mean(axis=0)
        return float(dist[0]), away / max(float(np.linalg.norm(away)), 1e-12)

    def free(self, point: np.ndarray, margin: float) -> bool:
        """Inside, and at least ``margin`` from every surface sample."""
        return self.inside(point) and self._gap(point)[0] >= margin * (1 - 1e-6)

    def _spacing(self, point: np.ndarray) -> float:
        """About how far apart surface samples are around ``point``'s direction."""
        r = float(np.linalg.norm(point))
        far = self.surface_distance(point / r) if r > 0 else self.nearest
        return far * 2 * math.pi / self.distance.shape[1]

    def _push_out(self, point: np.ndarray, margin: float) -> np.ndarray:
        p = point.copy()
        d = self._gap(p)[0]
        r = float(np.linalg.norm(p))
        if r > 0 and (not self.inside(p) or d < min(margin, self._spacing(p))):
            # Outside, or too close for the nearest samples to give the wall's normal: back
            # along the ray to the centre first.
            p = p / r * min(r, max(0.0, self.surface_distance(p / r) - margin))
        for _ in range(32):
            d, normal = self._gap(p)
            if d >= margin * (1 - 1e-6) and self.inside(p):
                return p
            p = p + (margin - d) * normal
        return p if self.free(p, 0.5 * margin) else np.zeros(3)

    def _free_fraction(self, start: np.ndarray, move: np.ndarray, margin: float) -> float:
        """The largest t in [0, 1] with start + s·move free for every s ≤ t (sampled finer
        than a quarter of the margin, then bisected)."""
        length = float(np.linalg.norm(move))
        if length == 0.0:
            return 1.0
        n = min(4096, max(1, math.ceil(length / (0.25 * margin))))
        ok = 0.0
        for t in np.linspace(0.0, 1.0, n + 1)[1:]:
            if not self.free(start + t * move, margin):
                lo, hi = ok, float(t)
                for _ in range(12):
                    mid = 0.5 * (lo + hi)
                    lo, hi = (mid, hi) if self.free(start + mid * move, margin) else (lo, mid)
                return lo
            ok = float(t)
        return 1.0
