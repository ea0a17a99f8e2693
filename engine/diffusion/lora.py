"""LoRA adapters on shared model components: listed in a node's ``loras`` text, loaded once
per file version through diffusers' LoRA loaders (peft, so kohya and other community formats
convert as diffusers converts them), switched on with their weights for one run and off after.

The components are shared by every node that uses the model, so a LoRA never stays on: the
next run without it gets the base model exactly (``disable_lora``). Prompt embeddings are
cached per set of active text-encoder adapters for the same reason.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fathom.engine.errors import LibraryError

#: Adapters kept loaded per model; past this, the least recently used is deleted.
MAX_LOADED = 8
#: Loading or switching adapters changes the shared modules: one at a time.
LOCK = threading.RLock()


@dataclass(frozen=True)
class LoraRef:
    """One line of a ``loras`` parameter: a path or a name, and its weight."""

    source: str
    weight: float
    line: int


def parse_loras(text: str) -> list[LoraRef]:
    """``PATH[:WEIGHT]`` per line (weight 1.0 when omitted); blank lines and ``#`` comments
    are skipped. A colon followed by something that is not a number is part of the path (a
    Windows drive letter)."""
    out = []
    for n, raw in enumerate((text or "").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        source, weight = line, 1.0
        head, sep, tail = line.rpartition(":")
        if sep and head:
            try:
                weight = float(tail)
                source = head.strip()
            except ValueError:
                pass
        if not -10.0 <= weight <= 10.0:
            raise LibraryError(
                f"line {n} gives {source} the weight {weight:g}",
                "use a weight in [-10, 10]",
                "loras",
            )
        out.append(LoraRef(source, weight, n))
    return out


def adapter_name(path: Path) -> str:
    """A name per file version: the path, size and modification time, so an edited LoRA file
    loads again instead of reusing the adapter made from its old weights."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return "fathom_" + hashlib.sha1(key.encode()).hexdigest()[:12]


def pipeline_view(components: Any, image_encoder: Any = None) -> Any:
    """A diffusers pipeline over the shared modules (nothing is copied), for its LoRA and
    IP-Adapter loading and adapter switching."""
    extra = {"image_encoder": image_encoder, "feature_extractor": None}
    if getattr(components, "is_xl", False):
        from diffusers import StableDiffusionXLPipeline

        return StableDiffusionXLPipeline(
            vae=components.vae,
            text_encoder=components.text_encoder,
            text_encoder_2=components.text_encoder_2,
            tokenizer=components.tokenizer,
            tokenizer_2=components.tokenizer_2,
            unet=components.unet,
            scheduler=components.scheduler,
            add_watermarker=False,
            **extra,
        )
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=components.vae,
        text_encoder=components.text_encoder,
        tokenizer=components.tokenizer,
        unet=components.unet,
        scheduler=components.scheduler,
        safety_checker=None,
        requires_safety_checker=False,
        **extra,
    )


def _loaded(components: Any) -> dict[str, Path]:
    """Adapter names loaded into these components, least recently used first."""
    table: dict[str, Path] | None = components.__dict__.get("_loras")
    if table is None:
        table = components.__dict__["_loras"] = {}
    return table


def _load(view: Any, components: Any, path: Path, name: str) -> None:
    table = _loaded(components)
    if name in table:
        table[name] = table.pop(name)  # most recently used last
        return
    try:
        view.load_lora_weights(str(path), adapter_name=name)
    except Exception as exc:  # diffusers and peft raise many types here
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise LibraryError(
            f"{path.name} could not be loaded as a LoRA for this model: {first}",
            "check that the LoRA was made for this model's family",
            "loras",
        ) from exc
    table[name] = path
    while len(table) > MAX_LOADED:
        old = next(iter(table))
        view.delete_adapters([old])
        del table[old]


@contextmanager
def active(components: Any, loras: list[tuple[Path, float]]) -> Iterator[list[str]]:
    """The LoRAs on, each at its weight, for the block; off again after (also on failure).
    Yields the adapter names. With no LoRAs, any loaded adapters are simply off."""
    if not loras:
        yield []
        return
    with LOCK:
        view = pipeline_view(components)
        names = [adapter_name(p) for p, _ in loras]
        for (path, _), name in zip(loras, names, strict=True):
            _load(view, components, path, name)
        view.enable_lora()
        view.set_adapters(names, [w for _, w in loras])
        components.text_key = "|".join(f"{n}:{w:g}" for n, (_, w) in zip(names, loras, strict=True))
    try:
        yield names
    finally:
        with LOCK:
            view.disable_lora()
            components.text_key = ""
