"""Temporal coherence for video editing: anchor-frame attention, flow fusion, moving noise.

Editing frames one by one with an image model flickers: each frame settles on its own details.
Letting each frame's self-attention take its keys and values from an anchor frame (Wu et al.'s
Tune-A-Video "sparse-causal" attention; Khachatryan et al.'s Text2Video-Zero "cross-frame"
attention) makes every frame borrow the anchor's appearance, so the edit stays put while the
content moves. This is our own implementation as a diffusers attention processor.

Attention alone is not enough where a model's attention is diffuse (random test weights
attend almost uniformly, so every frame's self-attention is nearly a global average and the
anchor changes little): :func:`fuse_along_flow` also pulls each frame's latents towards the
previous frame's, carried along the input's optical flow, after every step. :func:`warp_noise`
carries the shared noise along the flow instead of leaving it fixed to the screen.

Frames are denoised in batches (chunks); the anchor's keys and values are kept per step and
layer while its chunk runs, so later chunks (and calls that hold only some frames, such as
Clockwork's cross-frame reuse) attend to the same anchor without recomputing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

MODES = ("first+self", "first", "off")


@dataclass
class FrameLayout:
    """How the current UNet call's batch is laid out, set by the video loop before each call.

    frames: frames per guidance half in the batch; halves: 2 with classifier-free guidance;
    anchor: the anchor frame's index among ``frames`` (None: not in this call, use the kept
    keys); step: a key for the kept keys (the same step of every chunk shares the anchor's);
    group: frames per batch item inside the transformer blocks (2 while temporal token merging
    has joined neighbouring frames into one sequence).
    """

    frames: int = 1
    halves: int = 1
    anchor: int | None = 0
    step: Any = 0
    group: int = 1


def plain_self_attention(
    attn: Any,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
) -> bool:
    """Whether an attention call is the plain self-attention that a replacing processor (this
    module's anchor attention, ``joint_views``' joint attention) computes itself: no
    cross-attention, no mask, (batch, tokens, channels) input, no norms inside the attention.
    Anything else goes to the processor it replaced; one test so both draw the same line."""
    return (
        encoder_hidden_states is None
        and attention_mask is None
        and hidden_states.ndim == 3
        and attn.spatial_norm is None
        and attn.group_norm is None
        and attn.norm_q is None
    )


def attention_out(attn: Any, out: torch.Tensor, hidden_states: torch.Tensor) -> torch.Tensor:
    """The end of diffusers' attention processor after the attention itself: output
    projection and dropout, the residual where the block has one, the output rescale."""
    out = attn.to_out[1](attn.to_out[0](out))
    if attn.residual_connection:
        out = out + hidden_states
    return out / attn.rescale_output_factor


class _AnchorProcessor:
    """Self-attention whose keys/values are the anchor frame's (plus the frame's own)."""

    def __init__(self, owner: AnchorAttention, name: str, base: Any) -> None:
        self.owner = owner
        self.name = name
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
        owner = self.owner
        if not plain_self_attention(attn, hidden_states, encoder_hidden_states, attention_mask):
            return self.base(
                attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs
            )
        lay = owner.layout
        b, n, _ = hidden_states.shape
        items = b // lay.halves
        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        slot = (lay.step, self.name)
        if lay.anchor is not None:
            pick = [h * items + lay.anchor // lay.group for h in range(lay.halves)]
            ak, av = key[pick], value[pick]
            owner.keep(slot, ak, av)
        else:
            kept = owner.kept.get(slot)
            if kept is None:
                raise RuntimeError(f"no anchor keys kept for {slot}: run the anchor's chunk first")
            ak, av = kept
        ak = ak.repeat_interleave(items, dim=0)
        av = av.repeat_interleave(items, dim=0)
        if owner.mode == "first+self":
            ak, av = torch.cat([key, ak], dim=1), torch.cat([value, av], dim=1)
        heads = attn.heads
        d = query.shape[-1] // heads
        q = query.view(b, -1, heads, d).transpose(1, 2)
        k = ak.view(b, -1, heads, d).transpose(1, 2)
        v = av.view(b, -1, heads, d).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(b, n, heads * d).to(query.dtype)
        return attention_out(attn, out, hidden_states)


class AnchorAttention:
    """Swaps every UNet self-attention (``attn1``) for anchor attention while attached.

    mode: "first+self" (keys = the frame's own and the anchor's: keeps each frame's detail,
    borrows the anchor's look), "first" (keys = the anchor's only: the strongest coupling), or
    "off" (nothing is patched). keep_steps: keep the anchor's keys for every step (needed when
    later chunks follow); otherwise only the current step's are kept.
    """

    def __init__(
        self, mode: str = "first+self", layout: FrameLayout | None = None, keep_steps: bool = True
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"anchor attention mode must be one of {MODES}, not {mode!r}")
        self.mode = mode
        self.layout = layout or FrameLayout()
        self.keep_steps = keep_steps
        self.kept: dict[Any, tuple[torch.Tensor, torch.Tensor]] = {}
        self._saved: dict[Any, Any] = {}

    def keep(self, slot: Any, k: torch.Tensor, v: torch.Tensor) -> None:
        if not self.keep_steps:
            stale = [s for s in self.kept if s[0] != slot[0]]
            for s in stale:
                del self.kept[s]
        self.kept[slot] = (k, v)

    @property
    def kept_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for kv in self.kept.values() for t in kv)

    def attach(self, components: Any) -> None:
        if self._saved:
            raise RuntimeError("AnchorAttention is already attached; detach() it first")
        if self.mode == "off":
            return
        unet = getattr(components, "unet", components)
        for name, module in unet.named_modules():
            if name.endswith("attn1") and hasattr(module, "processor"):
                self._saved[module] = module.processor
                module.processor = _AnchorProcessor(self, name, module.processor)

    def detach(self) -> None:
        for module, processor in self._saved.items():
            module.processor = processor
        self._saved.clear()
        self.kept.clear()


# --------------------------------------------------------------------------- motion-following noise


def follow_coords(coords: torch.Tensor, flow_back: torch.Tensor) -> torch.Tensor:
    """Where each pixel of the new frame came from in the first frame's noise.

    coords: (h, w, 2) the previous frame's source positions (x, y) in pixels of the noise;
    flow_back: (h, w, 2) displacement from each new-frame pixel to its place in the previous
    frame (pixels, same grid). Positions are carried, not noise values, so sub-pixel motion
    accumulates instead of rounding away.
    """
    h, w = coords.shape[:2]
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    px = (xs + flow_back[..., 0]).clamp(0, w - 1)
    py = (ys + flow_back[..., 1]).clamp(0, h - 1)
    grid = torch.stack([px / max(w - 1, 1) * 2 - 1, py / max(h - 1, 1) * 2 - 1], -1)[None]
    src = coords.permute(2, 0, 1)[None].float()
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=True)[
        0
    ].permute(1, 2, 0)


def warp_noise(noise: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """(1, C, h, w) noise sampled at (F, h, w, 2) source positions → (F, C, h, w) noise that
    moves with the content. Bilinear sampling averages neighbours and would shrink the
    variance where positions fall between pixels, so each sample is divided by the norm of its
    weights: the result stays unit-variance Gaussian everywhere."""
    f, h, w, _ = coords.shape
    x = coords[..., 0].clamp(0, w - 1)
    y = coords[..., 1].clamp(0, h - 1)
    grid = torch.stack([x / max(w - 1, 1) * 2 - 1, y / max(h - 1, 1) * 2 - 1], -1)
    out = F.grid_sample(
        noise.float().expand(f, -1, -1, -1),
        grid.to(noise.device),
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )
    fx, fy = x - x.floor(), y - y.floor()
    norm = (((1 - fx) ** 2 + fx**2) * ((1 - fy) ** 2 + fy**2)).sqrt()
    return (out / norm[:, None].to(out.device)).to(noise.dtype)


def warp_back(x: torch.Tensor, flow_back: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) previous-frame tensors pulled into the new frame: out(p) = x(p + flow(p)),
    with ``flow_back`` (B, h, w, 2) in pixels of the same grid (bilinear, border-clamped)."""
    b, _, h, w = x.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    fb = flow_back.float().to(x.device)
    px = ((xs.to(x.device) + fb[..., 0]) / max(w - 1, 1)) * 2 - 1
    py = ((ys.to(x.device) + fb[..., 1]) / max(h - 1, 1)) * 2 - 1
    out = F.grid_sample(
        x.float(),
        torch.stack([px, py], -1),
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )
    return out.to(x.dtype)


def fuse_along_flow(
    latents: torch.Tensor, flows: torch.Tensor, prev: torch.Tensor | None, beta: float
) -> torch.Tensor:
    """Causal temporal fusion: each frame's latents become (1 - beta)·own + beta·(the fused
    previous frame's, carried along the input's optical flow). ``flows[i]`` points from frame i
    to frame i - 1 (for i = 0: to ``prev``, the previous chunk's last frame, None: none).
    Content that moves stays put in the moving frame of reference, so the edit stops
    flickering even where the model itself would not keep frames apart coherently."""
    out = latents.clone()
    last = prev
    for i in range(latents.shape[0]):
        if last is not None:
            carried = warp_back(last, flows[i : i + 1])
            out[i : i + 1] = (1 - beta) * latents[i : i + 1] + beta * carried
        last = out[i : i + 1]
    return out
