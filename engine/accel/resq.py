"""ResQ for video depth: compute each frame's change from a low-bit residual of the activations.

After ResQ (Abati et al., "ResQ: Residual Quantization for Video Perception", ICCV 2023): the
activations of consecutive frames differ little, so the *difference* quantises to few bits with
a small error, where the activations themselves do not. For every linear layer of the ViT
backbone (Q, K, V, output projection, MLP), with the input x_t and the reference x̂ the layer
last saw:

    W·x_t + b  ≈  (W·x̂ + b) + W·Q_bits(x_t − x̂),     then  x̂ ← x̂ + Q_bits(x_t − x̂)

so the output tracks the quantised input without drift (the error of a frame is one
quantisation step of its residual, never the sum of past ones). ``Q_bits`` is symmetric uniform
quantisation with one scale per tensor (max |r| over the tensor). Tokens whose residual
quantises to zero keep their previous output and cost nothing (the residual's sparsity).

A keyframe (the first, then every ``keyframe_interval`` frames) runs in full precision and
resets the references. Between them the bit-width follows the amount of change: ``bits`` for a
frame whose mean pixel change is at most ``change_ref`` (0..1 RGB units), one bit more for every
doubling beyond it, at most ``max_bits``; ``adaptive=False`` keeps ``bits`` for every frame.

``PerFrameQuant`` is the baseline the paper compares against: the same quantiser applied to the
activations themselves on every frame (no residual, no reference).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fathom.engine.accel.depth_vit import DepthViT
from fathom.engine.node import Param
from fathom.engine.types import Int

#: The ``bits`` parameter of the nodes with a ``resq`` mode (video.depth, video.segment): one
#: declaration, so both read it the same way (``bits_for_change``).
RESQ_BITS = Param(
    "bits",
    Int,
    4,
    "resq: the fewest bits of the residual (a frame of small change; more as it grows)",
    min=2,
    max=8,
)


def quantize(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric uniform quantisation with one scale for the whole tensor (dequantised)."""
    levels = 2 ** (bits - 1) - 1
    scale = x.abs().amax().clamp_min(1e-12) / levels
    return torch.round(x / scale).clamp_(-levels, levels) * scale


def bits_for_change(change: float, bits: int, change_ref: float, max_bits: int = 8) -> int:
    """``bits`` up to ``change_ref`` of mean pixel change, +1 per doubling beyond, capped."""
    if change <= change_ref or change_ref <= 0:
        return bits
    return int(min(max_bits, bits + math.ceil(math.log2(change / change_ref))))


class ResQ:
    """Streams depth through the residual-quantised backbone; ``step`` once per frame, in order."""

    def __init__(
        self,
        net: Any,
        bits: int = 4,
        keyframe_interval: int = 30,
        change_ref: float = 0.02,
        adaptive: bool = True,
        max_bits: int = 8,
        image_std: tuple[float, float, float] = (0.229, 0.224, 0.225),
    ) -> None:
        if not 2 <= bits <= 16:
            raise ValueError(f"bits must be in 2..16, got {bits}")
        self.vit = DepthViT(net)
        self.bits = int(bits)
        self.keyframe_interval = max(1, int(keyframe_interval))
        self.change_ref = float(change_ref)
        self.adaptive = adaptive
        self.max_bits = max(int(max_bits), self.bits)
        self.std = torch.tensor(image_std, dtype=torch.float32)
        #: Bit-width used on each frame (0 for a full-precision keyframe) and the fraction of
        #: token rows whose residual was not zero.
        self.frame_bits: list[int] = []
        self.active_rows: list[float] = []
        self.reset()

    def reset(self) -> None:
        self.since_key = 0
        self.previous: torch.Tensor | None = None
        self.inputs: dict[str, torch.Tensor] = {}
        self.outputs: dict[str, torch.Tensor] = {}

    def step(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Predicted depth (1 × H × W, the model's raw output) for the next frame."""
        fresh = self.previous is None or self.previous.shape != pixel_values.shape
        if fresh or self.since_key >= self.keyframe_interval:
            self.inputs, self.outputs = {}, {}
            depth = self.vit.forward(pixel_values, self._record)[0]
            self.since_key = 1
            self.frame_bits.append(0)
        else:
            assert self.previous is not None
            std = self.std.to(pixel_values.device, pixel_values.dtype).view(1, -1, 1, 1)
            change = float(((pixel_values - self.previous).abs() * std).mean())
            bits = (
                bits_for_change(change, self.bits, self.change_ref, self.max_bits)
                if self.adaptive
                else self.bits
            )
            self.frame_bits.append(bits)
            self._rows = [0, 0]
            depth = self.vit.forward(pixel_values, self._residual(bits))[0]
            self.active_rows.append(self._rows[0] / max(1, self._rows[1]))
            self.since_key += 1
        self.previous = pixel_values.clone()
        return depth

    def _record(self, name: str, module: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, module.weight, module.bias)
        self.inputs[name], self.outputs[name] = x.clone(), y.clone()
        return y

    def _residual(self, bits: int) -> Any:
        def linear(name: str, module: nn.Linear, x: torch.Tensor) -> torch.Tensor:
            ref, out = self.inputs[name], self.outputs[name]
            rq = quantize(x - ref, bits)
            live = rq.abs().amax(dim=-1).reshape(-1) > 0
            self._rows[0] += int(live.sum())
            self._rows[1] += int(live.numel())
            if bool(live.all()):
                out = out + F.linear(rq, module.weight)
            elif bool(live.any()):
                flat = out.reshape(-1, out.shape[-1]).clone()
                flat[live] += F.linear(rq.reshape(-1, rq.shape[-1])[live], module.weight)
                out = flat.view_as(out)
            ref += rq
            self.outputs[name] = out
            return out

        return linear


class PerFrameQuant:
    """The plain baseline: every frame, every backbone linear sees its input quantised to
    ``bits`` with the same quantiser (no residual, no keyframes)."""

    def __init__(self, net: Any, bits: int = 4) -> None:
        self.vit = DepthViT(net)
        self.bits = int(bits)

    def step(self, pixel_values: torch.Tensor) -> torch.Tensor:
        def linear(name: str, module: nn.Linear, x: torch.Tensor) -> torch.Tensor:
            return F.linear(quantize(x, self.bits), module.weight, module.bias)

        return self.vit.forward(pixel_values, linear)[0]
