"""Depth Anything's forward pass taken apart, so video accelerations can run it layer by layer.

transformers' ``DepthAnythingForDepthEstimation`` runs its DINOv2 backbone, DPT neck and head in
one call; temporal reuse (``temporal_reuse``) and residual quantisation (``resq``) need the
activations of every ViT layer and must replace parts of a layer (a token subset, a quantised
linear). This module re-expresses the backbone with the model's own submodules (its norms,
projections, layer scales and MLP; nothing is copied or changed) and exposes:

- ``DepthViT.embed(pixel_values)``: the patch + position embeddings, CLS first (1 × (1+N) × C);
- ``DepthViT.layer(li, x, linear)``: one encoder layer, returning the output and the layer's keys
  and values (so a later frame can attend to them), with every linear routed through ``linear``;
- ``DepthViT.layer_subset(li, x_s, keys, values, linear)``: the same layer for a token subset
  attending to all tokens' (cached) keys and values;
- ``DepthViT.features(hidden)``: the backbone's feature maps from the layer outputs;
- ``DepthViT.encode(pixel_values)``: the backbone alone (hidden states, keys, values);
- ``DepthViT.head(features, rows, cols)``: neck + head on a patch grid (or a batch of crops).

With the plain ``linear`` the dense path equals the model's own forward (tests check it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: ``linear(name, module, x)`` computes ``module(x)`` (an ``nn.Linear``); accelerations pass
#: their own (quantised, residual) version. ``name`` is unique per linear in the backbone.
Linear = Callable[[str, nn.Linear, torch.Tensor], torch.Tensor]


def plain_linear(name: str, module: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, module.weight, module.bias)


def is_depth_vit(net: Any) -> bool:
    """True for a Depth Anything model with a DINOv2 backbone (what these paths understand)."""
    backbone = getattr(net, "backbone", None)
    cfg = getattr(getattr(net, "config", None), "model_type", "")
    return (
        cfg == "depth_anything"
        and backbone is not None
        and hasattr(backbone, "embeddings")
        and hasattr(getattr(backbone, "encoder", None), "layer")
        and hasattr(backbone.embeddings, "patch_embeddings")
        and not getattr(backbone.config, "reshape_hidden_states", False)
        and hasattr(net, "neck")
        and hasattr(net, "head")
    )


class DepthViT:
    """A view on one Depth Anything model; holds no weights of its own and changes nothing."""

    def __init__(self, net: Any) -> None:
        if not is_depth_vit(net):
            raise ValueError("not a Depth Anything model with a DINOv2 backbone")
        self.net = net
        self.backbone = net.backbone
        self.layers = list(net.backbone.encoder.layer)
        self.patch = int(net.config.patch_size)
        names = list(self.backbone.stage_names)
        #: Which hidden states (0 = embeddings, l = output of layer l) the neck takes.
        self.out_stages = [names.index(s) for s in self.backbone.out_features]
        self.apply_layernorm = bool(getattr(self.backbone.config, "apply_layernorm", True))
        att = self.layers[0].attention
        self.heads = int(att.num_attention_heads)
        self.head_dim = int(att.head_dim)
        self.scaling = float(att.scaling)
        #: (input size, 1 × (1+N) × C position embeddings) for ``embed_subset``.
        self._positions: tuple[tuple[int, ...], torch.Tensor] | None = None
        self._subset_exact = False

    @property
    def depth(self) -> int:
        return len(self.layers)

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.backbone.embeddings(pixel_values)

    def embed_subset(self, pixel_values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``embed(pixel_values)[:, index]`` (index 0 is CLS), computing only those tokens: the
        patch projection as one product over the chosen patches, plus the position embeddings
        interpolated once per input size. The model's own path runs the projection over every
        patch and re-interpolates the positions on every call (on a frame where a sixth of the
        tokens changed, about 3 % of its time). Checked once per size against the model's own
        embeddings; a model whose embeddings do more than this takes the whole path."""
        size = tuple(pixel_values.shape[-2:])
        if self._positions is None or self._positions[0] != size:
            full = self.embed(pixel_values)
            emb = self.backbone.embeddings
            pos = emb.interpolate_pos_encoding(full, size[0], size[1])
            self._positions = (size, pos.expand_as(full).contiguous())
            every = torch.arange(full.shape[1], device=full.device)
            mine = self._subset(pixel_values, every)
            self._subset_exact = bool(
                torch.allclose(mine, full, atol=1e-5 * float(full.abs().max()), rtol=0)
            )
        if not self._subset_exact:
            return self.embed(pixel_values)[:, index]
        return self._subset(pixel_values, index)

    def _subset(self, pixel_values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        assert self._positions is not None and int(index[0]) == 0
        emb = self.backbone.embeddings
        conv = emb.patch_embeddings.projection
        rows, cols = self.grid(pixel_values)
        p = self.patch
        x = pixel_values[0, :, : rows * p, : cols * p].to(conv.weight.dtype)
        x = x.reshape(x.shape[0], rows, p, cols, p)
        flat = index[1:] - 1
        patches = x[:, flat // cols, :, flat % cols, :]  # K × 3 × p × p
        tokens = F.linear(patches.reshape(len(flat), -1), conv.weight.flatten(1), conv.bias)
        out = torch.cat([emb.cls_token[0], tokens])
        return (out + self._positions[1][0, index])[None]

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = F.scaled_dot_product_attention(
            self._split(q), self._split(k), self._split(v), scale=self.scaling
        )
        b, _, n, _ = out.shape
        return out.transpose(1, 2).reshape(b, n, self.heads * self.head_dim)

    def _mlp(self, li: int, x: torch.Tensor, linear: Linear) -> torch.Tensor:
        mlp = self.layers[li].mlp
        if hasattr(mlp, "gate_proj"):  # SwiGLU (the giant DINOv2)
            gate = linear(f"{li}.gate", mlp.gate_proj, x)
            up = linear(f"{li}.up", mlp.up_proj, x)
            return linear(f"{li}.down", mlp.down_proj, mlp.act_fn(gate) * up)
        h = mlp.activation_fn(linear(f"{li}.fc1", mlp.fc1, x))
        return linear(f"{li}.fc2", mlp.fc2, h)

    def _finish(
        self, li: int, x: torch.Tensor, attended: torch.Tensor, linear: Linear
    ) -> torch.Tensor:
        layer = self.layers[li]
        att = layer.attention
        x = layer.layer_scale1(linear(f"{li}.o", att.o_proj, attended)) + x
        return layer.layer_scale2(self._mlp(li, layer.norm2(x), linear)) + x

    def layer(
        self, li: int, x: torch.Tensor, linear: Linear = plain_linear
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Layer ``li`` on all tokens: (output, keys, values)."""
        layer = self.layers[li]
        att = layer.attention
        h = layer.norm1(x)
        q = linear(f"{li}.q", att.q_proj, h)
        k = linear(f"{li}.k", att.k_proj, h)
        v = linear(f"{li}.v", att.v_proj, h)
        return self._finish(li, x, self._attend(q, k, v), linear), k, v

    def layer_subset(
        self,
        li: int,
        x_sub: torch.Tensor,
        index: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        linear: Linear = plain_linear,
    ) -> torch.Tensor:
        """Layer ``li`` for the tokens at ``index`` only: their keys and values are written into
        ``keys``/``values`` (all tokens', updated in place), their queries attend to all."""
        layer = self.layers[li]
        att = layer.attention
        h = layer.norm1(x_sub)
        keys[:, index] = linear(f"{li}.k", att.k_proj, h)
        values[:, index] = linear(f"{li}.v", att.v_proj, h)
        q = linear(f"{li}.q", att.q_proj, h)
        return self._finish(li, x_sub, self._attend(q, keys, values), linear)

    def features(self, hidden: list[torch.Tensor]) -> list[torch.Tensor]:
        """The neck's inputs (token sequences with CLS) from the hidden states."""
        out = []
        for s in self.out_stages:
            h = hidden[s]
            out.append(self.backbone.layernorm(h) if self.apply_layernorm else h)
        return out

    def head(self, features: list[torch.Tensor], rows: int, cols: int) -> torch.Tensor:
        """Neck + head on a ``rows`` × ``cols`` patch grid: B × (rows·patch) × (cols·patch)."""
        return self.net.head(self.net.neck(features, rows, cols), rows, cols)

    def forward(
        self, pixel_values: torch.Tensor, linear: Linear = plain_linear
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """The whole model: (predicted depth, hidden states, keys, values)."""
        hidden, keys, values = self.encode(pixel_values, linear)
        rows, cols = self.grid(pixel_values)
        return self.head(self.features(hidden), rows, cols), hidden, keys, values

    def encode(
        self, pixel_values: torch.Tensor, linear: Linear = plain_linear
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """The backbone alone: (hidden states, keys, values) of every layer."""
        x = self.embed(pixel_values)
        hidden, keys, values = [x], [], []
        for li in range(self.depth):
            x, k, v = self.layer(li, x, linear)
            hidden.append(x)
            keys.append(k)
            values.append(v)
        return hidden, keys, values

    def grid(self, pixel_values: torch.Tensor) -> tuple[int, int]:
        return pixel_values.shape[-2] // self.patch, pixel_values.shape[-1] // self.patch
