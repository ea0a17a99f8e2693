"""Six views of one object from any text-to-image UNet, generated jointly (the HexaGen3D idea,
training-free).

HexaGen3D (Mercier et al., 2024) fine-tunes an image model to draw an object's front, back,
left, right, top and bottom views at once ("hexa-view") and lifts them to a mesh. Without the
fine-tuning, the views of a plain Stable Diffusion model agree only by chance. Four
training-free couplings make them show the same object:

- the six views are one batch whose self-attention is *extended* across views: each view's
  queries attend to the keys and values of all six (MVDream's multi-view attention, used here
  without its training, like the "consistent batch" methods), so appearance is shared;
- the initial noise is laid out on the object, not the screen: a base noise on a proxy sphere
  (the unit sphere the cameras frame), mixed with each view's own draw at a weight that keeps
  unit variance, so a surface point starts alike in every view that sees it;
- after each step the views' latents are pulled towards each other where they see the same
  point of that sphere (SyncMVD's synchronisation, with the sphere for its mesh);
- each view has a camera-aware prompt ("<prompt>, front view", "…, top view", …).

``share`` sets how strongly the views couple: the noise correlation on the sphere, the pull
of the synchronisation, and in the attention the weight of every other view's tokens relative
to the view's own (a logit bias of log(share)); 0 is six independent generations. The bias
rides in extra head channels (see :func:`joint_attention`), so any attention kernel (flash,
memory-efficient, CPU) runs it without a materialised mask. The sphere is a crude stand-in for
the object: it couples the views where the object's bulk is likely to be, nothing more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from fathom.engine.diffusion.videoattn import attention_out, plain_self_attention
from fathom.engine.geometry import analytic, projection
from fathom.engine.types import Camera


@dataclass(frozen=True)
class ViewSpec:
    """One view of the hexa-view set: its name (the prompt's suffix) and camera angles."""

    name: str
    azimuth: float
    elevation: float


#: HexaGen3D's six views, orthographic-like. Azimuth follows ``orbit_pose`` (0 = the front
#: camera on -z; 90 = the camera on the front camera's right); top and bottom stop short of
#: the pole (±89.9°), where "up" would be undefined.
VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec("front view", 0.0, 0.0),
    ViewSpec("right side view", 90.0, 0.0),
    ViewSpec("back view", 180.0, 0.0),
    ViewSpec("left side view", 270.0, 0.0),
    ViewSpec("top view", 0.0, 89.9),
    ViewSpec("bottom view", 0.0, -89.9),
)

#: The radius of the sphere the views frame: the object is assumed to fit in it.
OBJECT_RADIUS = 1.0


def view_prompts(prompt: str, views: tuple[ViewSpec, ...] = VIEWS) -> list[str]:
    """The camera-aware prompt of each view: "<prompt>, front view", … (the view's name alone
    for an empty prompt)."""
    base = prompt.strip()
    return [f"{base}, {v.name}" if base else v.name for v in views]


def camera_distance(fov_deg: float, radius: float = OBJECT_RADIUS) -> float:
    """How far the cameras stand so a sphere of ``radius`` fills the frame with a 10 % margin:
    a narrow field of view from far away is close to the orthographic views HexaGen3D draws."""
    return 1.1 * radius / math.sin(math.radians(fov_deg) / 2)


def view_cameras(
    width: int, height: int, fov_deg: float, views: tuple[ViewSpec, ...] = VIEWS
) -> list[Camera]:
    """One pinhole camera per view, looking at the origin from ``camera_distance``."""
    return projection.ring_cameras(
        [v.azimuth for v in views],
        [v.elevation for v in views],
        camera_distance(fov_deg),
        fov_deg,
        (width, height),
    )


def view_seeds(seed: int, count: int) -> list[int]:
    """Each view's own seed: view k of an independent run is a plain generation with seed + k,
    and the joint run draws its per-view noise from the same seeds."""
    return [(int(seed) + k) % 2**63 for k in range(count)]


def _cube_texels(dirs: np.ndarray, res: int) -> np.ndarray:
    """Directions N×3 → flat indices into a cube map of six res×res faces (nearest texel)."""
    axis = np.abs(dirs).argmax(-1)
    rows = np.arange(len(dirs))
    major = dirs[rows, axis]
    face = 2 * axis + (major < 0)
    others = np.array([[1, 2], [0, 2], [0, 1]])[axis]
    u = dirs[rows, others[:, 0]] / np.abs(major)
    v = dirs[rows, others[:, 1]] / np.abs(major)
    iu = np.clip(((u + 1) / 2 * res).astype(np.int64), 0, res - 1)
    iv = np.clip(((v + 1) / 2 * res).astype(np.int64), 0, res - 1)
    return (face * res + iv) * res + iu


def shared_noise(
    shape: tuple[int, ...],
    seed: int,
    cameras: list[Camera],
    share: float,
    dtype: torch.dtype,
    radius: float = OBJECT_RADIUS,
) -> torch.Tensor:
    """The views' starting noise (views × C × h × w for ``shape`` = 1 × C × h × w), laid out on
    the object rather than the screen: a base noise lives on a sphere of ``radius`` at the
    origin (a cube map, texels a little finer than a latent pixel there, so a view's pixels
    rarely share one), and where a latent pixel's ray meets the sphere its noise is
    sqrt(share)·base + sqrt(1-share)·own, so the same surface point starts alike in every view
    that sees it; elsewhere it is the view's own. Unit variance everywhere.

    cameras: the views' cameras (any resolution; rays go through the latent pixels' centres).
    Each view's own noise is what a plain generation with its seed (``view_seeds``) draws, on
    the CPU in ``dtype``; the base comes from a generator of its own (seed + 2**32), so share 0
    starts exactly where the independent runs do."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], not {share}")
    own = torch.cat(
        [
            torch.randn(shape, generator=torch.Generator().manual_seed(s), dtype=dtype)
            for s in view_seeds(seed, len(cameras))
        ]
    )
    if share == 0.0:
        return own
    _, c, h, w = shape
    res = int(math.ceil(1.25 * max(h, w)))
    base_gen = torch.Generator().manual_seed((int(seed) + 2**32) % 2**63)
    base = torch.randn((c, 6 * res * res), generator=base_gen, dtype=dtype)
    out = own.clone()
    for k, cam in enumerate(cameras):
        sx, sy = w / cam.width, h / cam.height
        small = Camera(cam.fx * sx, cam.fy * sy, cam.cx * sx, cam.cy * sy, w, h, cam.pose)
        depth = analytic.sphere_depth(small, np.zeros(3), radius)
        hit = np.isfinite(depth)
        if not hit.any():
            continue
        pts = projection.backproject(depth, small.fx, small.fy, small.cx, small.cy, small.pose)
        texels = torch.from_numpy(_cube_texels(pts[hit] / radius, res))
        mask = torch.from_numpy(hit)
        mixed = math.sqrt(share) * base[:, texels] + math.sqrt(1.0 - share) * own[k][:, mask]
        out[k][:, mask] = mixed
    return out


def joint_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    views: int,
    heads: int,
    share: float,
) -> torch.Tensor:
    """Self-attention extended across views. query/key/value: (groups·views) × N × C, the views
    of a group adjacent (a group is a CFG half). Every query attends to the N·views tokens of
    its group; another view's tokens get a logit bias of log(share) (0 for share 1).

    The bias is an inner product, so it is appended to the heads: queries gain a one-hot of
    their view, keys a column per view holding the bias where the key is *not* that view's
    (both padded to a multiple of 8 channels, values with zeros), and the attention scale is
    kept at the original head width. No N·views × N·views mask is ever made."""
    b, n, c = query.shape
    groups, d = b // views, c // heads

    def seq(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(groups, views, n, heads, d).permute(0, 3, 1, 2, 4)
        return x.reshape(groups, heads, views * n, d)

    q, k, v = seq(query), seq(key), seq(value)
    scale = 1.0 / math.sqrt(d)
    if share < 1.0:
        extra = -(-(d + views) // 8) * 8 - d
        own = F.one_hot(torch.arange(views, device=q.device).repeat_interleave(n), extra)
        own = own.to(q.dtype).expand(groups, heads, -1, -1)
        bias = math.log(share) / scale
        q = torch.cat([q, own], -1)
        k = torch.cat([k, (1.0 - own) * bias], -1)
        v = torch.cat([v, torch.zeros_like(own)], -1)
    out = F.scaled_dot_product_attention(q, k, v, scale=scale)[..., :d]
    out = out.reshape(groups, heads, views, n, d).permute(0, 2, 3, 1, 4)
    return out.reshape(b, n, c)


class _JointProcessor:
    """An ``attn1`` processor that runs :func:`joint_attention`; anything it was not made for
    (cross-attention, masks, norms inside the attention, a batch not made of whole view sets)
    goes to the processor it replaced."""

    def __init__(self, owner: JointAttention, base: Any) -> None:
        self.owner = owner
        self.base = base

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        views = self.owner.views
        if (
            not plain_self_attention(attn, hidden_states, encoder_hidden_states, attention_mask)
            or hidden_states.shape[0] % views
        ):
            return self.base(
                attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs
            )
        out = joint_attention(
            attn.to_q(hidden_states),
            attn.to_k(hidden_states),
            attn.to_v(hidden_states),
            views,
            attn.heads,
            self.owner.share,
        )
        return attention_out(attn, out.to(hidden_states.dtype), hidden_states)


class JointAttention:
    """Extends every UNet self-attention (``attn1``) across the views of each batch group while
    attached: an acceleration-style hook (``engine.diffusion.stages.Acceleration``), so it runs
    inside the studio's own loop beside the real accelerations. List it first: token merging
    wraps whatever processor it finds, so merged tokens are then shared across views too.
    share 0 patches nothing (each view attends to itself: plain self-attention)."""

    def __init__(self, views: int = len(VIEWS), share: float = 0.5) -> None:
        if views < 1:
            raise ValueError(f"views must be at least 1, not {views}")
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be in [0, 1], not {share}")
        self.views = views
        self.share = share
        self._saved: dict[Any, Any] = {}

    def attach(self, components: Any) -> None:
        if self._saved:
            raise RuntimeError("JointAttention is already attached; detach() it first")
        if self.share == 0.0 or self.views == 1:
            return
        unet = getattr(components, "unet", components)
        for name, module in unet.named_modules():
            if name.endswith("attn1") and hasattr(module, "processor"):
                self._saved[module] = module.processor
                module.processor = _JointProcessor(self, module.processor)

    def detach(self) -> None:
        for module, processor in self._saved.items():
            module.processor = processor
        self._saved.clear()


def _latent_camera(cam: Camera, w: int, h: int) -> Camera:
    """``cam`` at latent resolution w×h (the same view, coarser pixels)."""
    sx, sy = w / cam.width, h / cam.height
    return Camera(cam.fx * sx, cam.fy * sy, cam.cx * sx, cam.cy * sy, w, h, cam.pose)


def proxy_links(
    cameras: list[Camera], w: int, h: int, radius: float = OBJECT_RADIUS
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where each view's latent pixels lie in every other view, through a sphere of ``radius``
    at the origin: ``grid`` (V × V × h × w × 2, grid_sample coordinates of view i's pixels in
    view j), ``seen`` (V × V × h × w, 1 where view j sees that surface point: the sphere faces
    camera j there and the point is in its frame; 0 on the diagonal) and ``hit`` (V × h × w, 1
    where view i's pixel meets the sphere)."""
    small = [_latent_camera(c, w, h) for c in cameras]
    n = len(small)
    grid = torch.zeros(n, n, h, w, 2)
    seen = torch.zeros(n, n, h, w)
    hit = torch.zeros(n, h, w)
    for i, ci in enumerate(small):
        depth = analytic.sphere_depth(ci, np.zeros(3), radius)
        ok = np.isfinite(depth)
        hit[i] = torch.from_numpy(ok.astype(np.float32))
        pts = projection.backproject(depth, ci.fx, ci.fy, ci.cx, ci.cy, ci.pose).reshape(-1, 3)
        for j, cj in enumerate(small):
            if i == j:
                continue
            uv, z = projection.project(pts, cj.fx, cj.fy, cj.cx, cj.cy, cj.pose)
            facing = np.einsum("nk,nk->n", pts, cj.pose[:3, 3] - pts) > 0
            with np.errstate(invalid="ignore"):
                vis = ok.reshape(-1) & facing & (z > 0)
                vis &= (uv[:, 0] >= 0) & (uv[:, 0] <= w) & (uv[:, 1] >= 0) & (uv[:, 1] <= h)
            g = np.stack([uv[:, 0] / w * 2 - 1, uv[:, 1] / h * 2 - 1], -1)
            grid[i, j] = torch.from_numpy(np.nan_to_num(g).reshape(h, w, 2).astype(np.float32))
            seen[i, j] = torch.from_numpy(vis.reshape(h, w).astype(np.float32))
    return grid, seen, hit


class ProxySync:
    """After every step, pulls each view's latents towards the mean of what the other views
    show at the same surface point of a proxy sphere (the latents synchronised across views,
    as SyncMVD does through a mesh's texture; training-free). With the surface-anchored noise
    of :func:`shared_noise` the views' noise is correlated there too, so the mean lowers the
    noise level less than a mean of independent noise would (it is not renormalised). Weight
    ``share``: 0 changes nothing, 1 replaces a seen pixel by the mean. A hook of the loop's
    acceleration contract (``after_step``), listed like one."""

    def __init__(self, cameras: list[Camera], share: float, radius: float = OBJECT_RADIUS) -> None:
        self.cameras, self.share, self.radius = cameras, share, radius
        self._links: tuple[torch.Tensor, ...] | None = None

    def attach(self, components: Any) -> None:
        self._links = None

    def detach(self) -> None:
        self._links = None

    def after_step(self, i: int, t: Any, latents: torch.Tensor, pred_x0: torch.Tensor) -> bool:
        """Synchronise ``latents`` (views × C × h × w) in place; never stops the run."""
        if self.share == 0.0 or latents.shape[0] != len(self.cameras):
            return False
        v, c, h, w = latents.shape
        if self._links is None:
            self._links = tuple(
                x.to(latents.device) for x in proxy_links(self.cameras, w, h, self.radius)
            )
        grid, seen, hit = self._links
        x = latents.float()
        total = x.clone()
        count = torch.ones(v, 1, h, w, device=x.device)
        for j in range(v):
            warped = F.grid_sample(
                x[j : j + 1].expand(v, -1, -1, -1),
                grid[:, j],
                mode="bilinear",
                padding_mode="border",
                align_corners=False,
            )
            total += warped * seen[:, j, None]
            count += seen[:, j, None]
        pull = self.share * hit[:, None] * (count > 1)
        latents.copy_((x + pull * (total / count - x)).to(latents.dtype))
        return False
