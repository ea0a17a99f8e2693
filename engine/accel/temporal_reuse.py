"""Temporal reuse for video depth: between keyframes, recompute only what the new frame changed.

Training-free, in the manner of Eventful Transformers (Dutson et al., ICCV 2023) and of sparse
block-wise execution (SIGE, Li et al., NeurIPS 2022), for Depth Anything (DINOv2 ViT + DPT head):

- A keyframe (the first frame, every ``keyframe_interval`` frames, and any frame where more than
  ``dense_fraction`` of the patches changed) runs the whole network and caches, per ViT layer,
  the layer's output and its keys and values for every token, plus the predicted depth.
- On the frames between, a patch (token) is *changed* when the mean absolute difference of its
  pixels from the input it was last computed on reaches ``threshold`` (in 0..1 RGB units;
  comparing against that reference, not the previous frame, means slow drift still adds up and
  triggers a recompute). Layer by layer, only the changed tokens (and CLS) go through the
  layer: norms, Q/K/V, MLP; their queries attend to the keys and values of *all* tokens, the
  cached ones updated for the changed tokens; the unchanged tokens keep the cached output.
- The DPT neck runs whole up to its last fusion layer's residual units (low resolution, about
  40 % of its time); its fine end (the last ×2 upsampling, projection and the head, at up to
  the input's resolution) runs only over the blocks whose input changed by ``neck_threshold``
  × its mean magnitude, each with the context ring its layers read; every other block keeps
  the previous depth (``depth_neck.SparseFine``). On a camera move the changed patches
  scatter, and the coarse levels spread each change over the frame, so crops around them
  would cost more than the frame; the fine end's input changes much less, and its change
  falls off with distance from the changed patches.

``threshold <= 0`` makes every patch changed, so every frame is a keyframe (the plain model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from fathom.engine.accel.depth_neck import Reassembled, SparseFine, neck_coarse
from fathom.engine.accel.depth_vit import DepthViT


@dataclass
class ReuseStats:
    """What the reuse did: frames, keyframes, and the token and tile work done versus dense."""

    frames: int = 0
    keyframes: int = 0
    tokens_total: int = 0
    tokens_computed: int = 0
    #: Fine-end runs and their cost in whole-grid units (blocks recomputed / all blocks).
    tiles_total: int = 0
    tiles_computed: float = 0.0
    per_frame: list[float] = field(default_factory=list)  # fraction of tokens recomputed

    @property
    def token_fraction(self) -> float:
        return self.tokens_computed / max(1, self.tokens_total)


def patch_change(
    pixel_values: torch.Tensor, reference: torch.Tensor, patch: int, std: torch.Tensor
) -> torch.Tensor:
    """rows × cols mean absolute change per patch, in 0..1 RGB units (``std`` undoes the
    processor's normalisation)."""
    diff = (pixel_values - reference).abs() * std.view(1, -1, 1, 1)
    return torch.nn.functional.avg_pool2d(diff.mean(dim=1, keepdim=True), patch)[0, 0]


class TemporalReuse:
    """Streams depth for consecutive frames of one clip; call ``step`` once per frame, in order.

    Holds the per-layer caches of the last frame (about 3 × layers × tokens × width floats).
    """

    def __init__(
        self,
        net: Any,
        threshold: float = 0.02,
        keyframe_interval: int = 30,
        neck_threshold: float = 0.3,
        block: int = 2,
        dense_fraction: float = 0.5,
        image_std: tuple[float, float, float] = (0.229, 0.224, 0.225),
    ) -> None:
        self.vit = DepthViT(net)
        self.threshold = float(threshold)
        self.keyframe_interval = max(1, int(keyframe_interval))
        self.fine = SparseFine(net, neck_threshold, block)
        self.reassembled = Reassembled(net)
        self._index: torch.Tensor | None = None  # the tokens the last frame recomputed
        self.dense_fraction = float(dense_fraction)
        self.std = torch.tensor(image_std, dtype=torch.float32)
        self.stats = ReuseStats()
        self.reset()

    def reset(self) -> None:
        """Forget the caches: the next frame is a keyframe."""
        self.since_key = 0
        self.reference: torch.Tensor | None = None
        self.hidden: list[torch.Tensor] = []
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.depth: torch.Tensor | None = None
        self.fine.ref = None

    def step(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Predicted depth (1 × H × W, the model's raw output) for the next frame."""
        self.stats.frames += 1
        rows, cols = self.vit.grid(pixel_values)
        self.stats.tokens_total += rows * cols
        fresh = self.reference is None or self.reference.shape != pixel_values.shape
        if fresh or self.threshold <= 0 or self.since_key >= self.keyframe_interval:
            return self._keyframe(pixel_values)
        assert self.reference is not None and self.depth is not None
        std = self.std.to(pixel_values.device, pixel_values.dtype)
        changed = patch_change(pixel_values, self.reference, self.vit.patch, std) >= self.threshold
        frac = float(changed.float().mean())
        if frac > self.dense_fraction:
            return self._keyframe(pixel_values)
        self.since_key += 1
        self.stats.per_frame.append(frac)
        if not bool(changed.any()):
            return self.depth
        self._update_reference(pixel_values, changed)
        self._tokens(pixel_values, changed)
        self._neck(rows, cols)
        return self.depth

    def _keyframe(self, pixel_values: torch.Tensor) -> torch.Tensor:
        self.stats.keyframes += 1
        rows, cols = self.vit.grid(pixel_values)
        self.stats.tokens_computed += rows * cols
        self.stats.per_frame.append(1.0)
        self.hidden, self.keys, self.values = self.vit.encode(pixel_values)
        feats = self.vit.features(self.hidden)
        maps = self.reassembled.full(feats, rows, cols)
        h = neck_coarse(self.vit.net, feats, rows, cols, maps=maps)
        depth = self.fine.dense(h, rows, cols)
        self.reference = pixel_values.clone()
        self.depth = depth
        self.since_key = 1
        return depth

    def _update_reference(self, pixel_values: torch.Tensor, changed: torch.Tensor) -> None:
        assert self.reference is not None
        p = self.vit.patch
        mask = changed.repeat_interleave(p, 0).repeat_interleave(p, 1)
        h, w = mask.shape
        ref = self.reference[..., :h, :w]
        ref[:, :, mask] = pixel_values[..., :h, :w][:, :, mask]

    def _tokens(self, pixel_values: torch.Tensor, changed: torch.Tensor) -> None:
        """Recompute the changed tokens (and CLS) through every layer, reusing the rest."""
        flat = torch.nonzero(changed.reshape(-1)).reshape(-1) + 1
        index = torch.cat([flat.new_zeros(1), flat])
        self.stats.tokens_computed += int(flat.numel())
        self._index = index
        x = self.vit.embed_subset(pixel_values, index)
        self.hidden[0][:, index] = x
        for li in range(self.vit.depth):
            x = self.vit.layer_subset(li, x, index, self.keys[li], self.values[li])
            self.hidden[li + 1][:, index] = x

    def _neck(self, rows: int, cols: int) -> None:
        """The neck's coarse levels whole, its fine end over the blocks whose input changed."""
        assert self.depth is not None
        assert self._index is not None
        feats = self.vit.features(self.hidden)
        maps = self.reassembled.update(feats, self._index, cols)
        h = neck_coarse(self.vit.net, feats, rows, cols, channels_last=True, maps=maps)
        self.depth, frac = self.fine.update(h, rows, cols, self.depth)
        self.stats.tiles_total += 1
        self.stats.tiles_computed += frac
