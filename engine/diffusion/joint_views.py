"""Six views of one object from any text-to-image UNet, generated jointly (the HexaGen3D idea,
training-free).

HexaGen3D (Mercier et al., 2024) fine-tunes an image model to draw an object's front, back,
left, right, top and bottom views at once ("hexa-view") and lifts them to a mesh. Without the
fine-tuning, the views of a plain Stable Diffusion model agree only by chance. Three
training-free couplings make them show the same object:

- the six views are one batch whose self-attention is *extended* across views: each view's
  queries attend to the keys and values of all six (MVDream's multi-view attention, used here
  without its training, like the "consistent batch" methods), so appearance is shared;
- the initial noise is correlated: a base draw shared by every view, mixed with each view's own
  draw at a weight that keeps unit variance, so the views start from a common layout;
- each view has a camera-aware prompt ("<prompt>, front view", "…, top view", …).

``share`` sets how strongly the views couple: the noise correlation is ``share`` and, in the
attention, every other view's tokens count ``share`` times as much as the view's own (a logit
bias of log(share)); 0 is six independent generations, 1 full extended attention on identical
noise. The bias rides in extra head channels (see :func:`joint_attention`), so any attention
kernel (flash, memory-efficient, CPU) runs it without a materialised mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from fathom.engine.geometry.projection import ring_cameras
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
    return ring_cameras(
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


def shared_noise(
    shape: tuple[int, ...], seed: int, count: int, share: float, dtype: torch.dtype
) -> torch.Tensor:
    """``count`` starting noises (count × C × h × w), each sqrt(share)·base + sqrt(1-share)·own:
    unit variance, pairwise correlation ``share``. Drawn on the CPU like the loop's noise; each
    view's own draw is what a plain generation with its seed (``view_seeds``) starts from, and
    the base comes from a generator of its own (seed offset by 2**32), so share 0 starts exactly
    where the independent runs do."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], not {share}")
    own = torch.cat(
        [
            torch.randn(shape, generator=torch.Generator().manual_seed(s), dtype=dtype)
            for s in view_seeds(seed, count)
        ]
    )
    if share == 0.0:
        return own
    base_gen = torch.Generator().manual_seed((int(seed) + 2**32) % 2**63)
    base = torch.randn(shape, generator=base_gen, dtype=dtype)
    return math.sqrt(share) * base + math.sqrt(1.0 - share) * own


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
            encoder_hidden_states is not None
            or attention_mask is not None
            or hidden_states.ndim != 3
            or hidden_states.shape[0] % views
            or attn.spatial_norm is not None
            or attn.group_norm is not None
            or attn.norm_q is not None
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
        out = attn.to_out[1](attn.to_out[0](out.to(hidden_states.dtype)))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


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
