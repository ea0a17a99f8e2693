"""Reference attention: a UNet attends to a reference image through its own self-attention.

Zero123++ (arXiv 2310.15110) feeds the condition image through the same UNet as the views it
denoises: a first pass on the (noised) reference latents stores, at every self-attention layer,
the tokens that layer attends to; the denoising pass then attends to its own tokens and the
stored ones together (the reference tokens go through the same key/value projections). No
weights are added, so a plain UNet runs unchanged when the bank is off.

One :class:`ReferenceBank` per UNet holds the mode ("off", "write" or "read") and the stored
tokens; :func:`install` wraps each self-attention (``attn1``) processor once, keeping the
processor it had (so the wrapped attention runs the same kernel as before).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MODES = ("off", "write", "read")


class ReferenceBank:
    """The stored reference tokens of one UNet, by layer name, and the mode the wrapped
    processors are in. "off": every processor passes straight through (the plain UNet)."""

    def __init__(self) -> None:
        self.mode = "off"
        self.tokens: dict[str, Any] = {}

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Run the UNet on the reference inside this: each layer's tokens are stored."""
        self.tokens.clear()
        self.mode = "write"
        try:
            yield
        finally:
            self.mode = "off"

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Run the UNet on the sample inside this: each layer also attends to what was stored."""
        self.mode = "read"
        try:
            yield
        finally:
            self.mode = "off"
            self.tokens.clear()


class ReferenceAttnProcessor:
    """Wraps one self-attention processor: stores (write) or appends (read) the tokens its
    keys and values are made from, then runs the wrapped processor."""

    def __init__(self, inner: Any, name: str, bank: ReferenceBank) -> None:
        self.inner, self.name, self.bank = inner, name, bank

    def __call__(
        self,
        attn: Any,
        hidden_states: Any,
        encoder_hidden_states: Any = None,
        attention_mask: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        mode = self.bank.mode
        if mode == "off":
            return self.inner(
                attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs
            )
        import torch

        # Self-attention makes keys and values from the layer's own tokens.
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if mode == "write":
            self.bank.tokens[self.name] = context
        else:
            stored = self.bank.tokens.get(self.name)
            if stored is None:
                raise RuntimeError(f"reference attention: nothing stored for {self.name}")
            if stored.shape[0] != context.shape[0]:
                raise RuntimeError(
                    f"reference attention: {stored.shape[0]} references for a batch of "
                    f"{context.shape[0]} at {self.name}"
                )
            context = torch.cat([context, stored.to(context.dtype)], dim=1)
        return self.inner(attn, hidden_states, context, attention_mask, *args, **kwargs)


def is_self_attention(name: str) -> bool:
    """diffusers names a transformer block's self-attention ``attn1`` (``attn2`` attends to
    the text)."""
    return name.endswith("attn1.processor")


def install(unet: Any) -> ReferenceBank:
    """Wrap every self-attention processor of ``unet`` (once) and return its bank. The bank is
    off until a pass runs inside ``writing()`` or ``reading()``."""
    procs = dict(unet.attn_processors)
    existing = [p for p in procs.values() if isinstance(p, ReferenceAttnProcessor)]
    if existing:
        return existing[0].bank
    bank = ReferenceBank()
    wrapped = {
        name: ReferenceAttnProcessor(proc, name, bank) if is_self_attention(name) else proc
        for name, proc in procs.items()
    }
    if not any(is_self_attention(n) for n in procs):
        raise ValueError("this UNet has no self-attention layers to attend to a reference")
    unet.set_attn_processor(wrapped)
    return bank


def uninstall(unet: Any) -> None:
    """Put back the processors :func:`install` wrapped."""
    procs = dict(unet.attn_processors)
    unet.set_attn_processor(
        {n: p.inner if isinstance(p, ReferenceAttnProcessor) else p for n, p in procs.items()}
    )
