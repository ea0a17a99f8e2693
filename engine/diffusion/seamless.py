"""Seamless 360° panoramas: convolutions that wrap around horizontally."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.nn import functional as F


@contextmanager
def horizontal_wrap(*modules: Any) -> Iterator[None]:
    """Convolutions pad circularly along the width while inside: the left and right edges of an
    equirectangular 360° panorama then continue into each other (no seam). Rows still get zero
    padding (the poles do not wrap). Restores every convolution on exit."""
    patched: list[tuple[Any, Any, Any]] = []
    for m in modules:
        if m is None:
            continue
        for conv in m.modules():
            if not isinstance(conv, torch.nn.Conv2d) or isinstance(conv.padding, str):
                continue
            ph, pw = conv.padding
            if pw == 0 or conv.padding_mode != "zeros":
                continue
            own = conv.__dict__.get("forward")  # e.g. an offload hook's forward
            inner = conv.forward

            def forward(
                x: torch.Tensor, _inner: Any = inner, _ph: int = ph, _pw: int = pw
            ) -> torch.Tensor:
                x = F.pad(x, (_pw, _pw, 0, 0), mode="circular")
                return _inner(F.pad(x, (0, 0, _ph, _ph)))

            patched.append((conv, conv.padding, own))
            conv.padding = (0, 0)
            conv.forward = forward  # type: ignore[method-assign,assignment]  # per instance
    try:
        yield
    finally:
        for conv, padding, own in patched:
            conv.padding = padding
            if own is None:
                del conv.forward
            else:
                conv.forward = own
