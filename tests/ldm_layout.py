"""Diffusers models written back in the original (LDM / SGM) checkpoint layout, for tests.

Single-file checkpoints as users download them (A1111, ComfyUI, civitai) name tensors the way
the original training code did: ``model.diffusion_model.input_blocks.4.1...``,
``first_stage_model.decoder.up.0.block.1...``, ``cond_stage_model.transformer.text_model...``
(CLIP) and ``conditioner.embedders.1.model.transformer.resblocks.3.attn.in_proj_weight``
(OpenCLIP). diffusers' ``single_file_utils`` converts those to its own layout; these functions
are our own inverse of that conversion, so tests can write such files from tiny random models
(and header-only stand-ins of real-size ones) and load them through the user's code path.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path
from typing import Any

_RESNET = (
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("time_emb_proj", "emb_layers.1"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("conv_shortcut", "skip_connection"),
)
_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",  # SDXL's size / pooled-text embedding
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}


def _resnet(rest: str) -> str:
    for a, b in _RESNET:
        if rest.startswith(a + "."):
            return b + rest[len(a) :]
    return rest


def _unet_key(key: str, lpb: int, attn_up: list[bool]) -> str:
    p = key.split(".")
    head = ".".join(p[:-1])
    if head in _TOP:
        return f"{_TOP[head]}.{p[-1]}"
    if p[0] == "mid_block":
        rest = ".".join(p[3:])
        if p[1] == "resnets":
            return f"middle_block.{2 * int(p[2])}.{_resnet(rest)}"
        return f"middle_block.1.{rest}"
    i, kind, j, rest = int(p[1]), p[2], int(p[3]), ".".join(p[4:])
    base = (1 + i * (lpb + 1)) if p[0] == "down_blocks" else i * (lpb + 1)
    blocks = "input_blocks" if p[0] == "down_blocks" else "output_blocks"
    return {
        "resnets": f"{blocks}.{base + j}.0.{_resnet(rest)}",
        "attentions": f"{blocks}.{base + j}.1.{rest}",
        "downsamplers": f"{blocks}.{base + lpb}.0.op.{p[-1]}",
        "upsamplers": f"{blocks}.{base + lpb}.{2 if attn_up[i] else 1}.conv.{p[-1]}",
    }[kind]


def unet_to_ldm(unet: Any) -> dict[str, Any]:
    """A diffusers UNet's state dict under the original ``model.diffusion_model.`` names."""
    lpb = unet.config.layers_per_block
    attn_up = [hasattr(b, "attentions") for b in unet.up_blocks]
    return {
        "model.diffusion_model." + _unet_key(k, lpb, attn_up): v
        for k, v in unet.state_dict().items()
    }


def _vae_key(key: str, n_up: int) -> str:
    n = re.sub(r"down_blocks\.(\d+)\.resnets\.(\d+)", r"down.\1.block.\2", key)
    n = re.sub(r"down_blocks\.(\d+)\.downsamplers\.0", r"down.\1.downsample", n)
    n = re.sub(
        r"up_blocks\.(\d+)\.resnets\.(\d+)", lambda m: f"up.{n_up - 1 - int(m[1])}.block.{m[2]}", n
    )
    n = re.sub(
        r"up_blocks\.(\d+)\.upsamplers\.0", lambda m: f"up.{n_up - 1 - int(m[1])}.upsample", n
    )
    n = re.sub(r"mid_block\.resnets\.(\d+)", lambda m: f"mid.block_{int(m[1]) + 1}", n)
    if "mid_block.attentions.0" in n:
        n = n.replace("mid_block.attentions.0", "mid.attn_1")
        for a, b in (
            ("group_norm", "norm"),
            ("to_q", "q"),
            ("to_k", "k"),
            ("to_v", "v"),
            ("to_out.0", "proj_out"),
        ):
            n = n.replace(f".{a}.", f".{b}.")
    return n.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")


def vae_to_ldm(vae: Any) -> dict[str, Any]:
    """A diffusers AutoencoderKL's state dict under the original ``first_stage_model.`` names;
    the middle attention's projections as 1×1 convolutions, as the original files hold them."""
    n_up = len(vae.config.block_out_channels)
    out = {}
    for k, v in vae.state_dict().items():
        new = _vae_key(k, n_up)
        if ".attn_1." in new and new.endswith(".weight") and v.ndim == 2:
            v = v[:, :, None, None]
        out["first_stage_model." + new] = v
    return out


def clip_to_ldm(text_encoder: Any, prefix: str) -> dict[str, Any]:
    """A transformers CLIP text encoder in the original layout: its own names under
    ``prefix`` (``cond_stage_model.transformer.`` for SD 1.x,
    ``conditioner.embedders.0.transformer.`` for SDXL's first encoder)."""
    out = {}
    for k, v in text_encoder.state_dict().items():
        k = k if k.startswith("text_model.") else "text_model." + k
        out[prefix + k] = v
    return out


_OPEN_CLIP = (
    ("text_model.encoder.layers.", "transformer.resblocks."),
    (".self_attn.out_proj.", ".attn.out_proj."),
    (".layer_norm1.", ".ln_1."),
    (".layer_norm2.", ".ln_2."),
    (".mlp.fc1.", ".mlp.c_fc."),
    (".mlp.fc2.", ".mlp.c_proj."),
)
_OPEN_CLIP_TOP = {
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight",
    "text_model.final_layer_norm.bias": "ln_final.bias",
}


def open_clip_to_ldm(text_encoder: Any, prefix: str) -> dict[str, Any]:
    """A transformers CLIP text encoder in OpenCLIP's layout under ``prefix``
    (``conditioner.embedders.1.model.`` for SDXL, ``cond_stage_model.model.`` for SD 2.x):
    q/k/v projections fused into ``attn.in_proj_*``, the projection as a plain (transposed)
    ``text_projection`` matrix."""
    import torch

    sd = {
        (k if k.startswith(("text_model.", "text_projection")) else "text_model." + k): v
        for k, v in text_encoder.state_dict().items()
    }
    out: dict[str, Any] = {}
    for k, v in sd.items():
        if k in _OPEN_CLIP_TOP:
            out[prefix + _OPEN_CLIP_TOP[k]] = v
        elif k == "text_projection.weight":
            out[prefix + "text_projection"] = v.T
        elif ".self_attn.q_proj." in k:
            kind = k.rsplit(".", 1)[1]  # weight or bias
            parts = [sd[k.replace(".q_proj.", f".{p}_proj.")] for p in "qkv"]
            new = k.replace(f".self_attn.q_proj.{kind}", f".attn.in_proj_{kind}")
            for a, b in _OPEN_CLIP:
                new = new.replace(a, b)
            out[prefix + new] = torch.cat(parts, dim=0)
        elif ".self_attn.k_proj." in k or ".self_attn.v_proj." in k or "position_ids" in k:
            continue
        else:
            new = k
            for a, b in _OPEN_CLIP:
                new = new.replace(a, b)
            out[prefix + new] = v
    return out


_DTYPE = {"float16": "F16", "bfloat16": "BF16", "float32": "F32", "int64": "I64"}
_SIZE = {"F16": 2, "BF16": 2, "F32": 4, "I64": 8}


def write_header_only(
    path: Path,
    tensors: dict[str, Any],
    metadata: dict[str, str] | None = None,
    values: dict[str, bytes] | None = None,
    dtype: str = "F16",
) -> Path:
    """A .safetensors file listing ``tensors`` (name → tensor or shape) with no weights
    written: the header, then a sparse data region of the full size (zeros when read), so the
    file is valid and as large as the real one while taking a few kB on disk. ``values`` gives
    the bytes of chosen tensors (written first in the data region)."""
    values = values or {}
    entries: dict[str, Any] = {}
    offset = 0
    order = [k for k in tensors if k in values] + [k for k in tensors if k not in values]
    for name in order:
        t = tensors[name]
        shape = [int(n) for n in (t.shape if hasattr(t, "shape") else t)]
        kind = _DTYPE.get(str(getattr(t, "dtype", "")).replace("torch.", ""), dtype)
        kind = dtype if kind in ("F16", "BF16", "F32") else kind
        size = _SIZE[kind]
        for n in shape:
            size *= n
        entries[name] = {"dtype": kind, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    if metadata:
        entries["__metadata__"] = metadata
    raw = json.dumps(entries, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        for name in order:
            if name in values:
                start, end = entries[name]["data_offsets"]
                assert len(values[name]) == end - start, name
                fh.write(values[name])
    os.truncate(path, 8 + len(raw) + offset)
    return path
