"""Memory accounting for loaded models: sizes, budgets, offload choice and out-of-memory errors."""

from __future__ import annotations

import gc
import os
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
}


def parse_bytes(text: str) -> int:
    """'6GB', '512 MB', '1.5g' or a plain byte count."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"{text!r} is not a size like '6GB' or '512MB'")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def module_nbytes(obj: Any, _seen: set[int] | None = None) -> int:
    """Bytes of every torch parameter and buffer reachable from ``obj`` (modules, tuples,
    dicts, dataclass-like objects), each tensor counted once."""
    seen = _seen if _seen is not None else set()
    if id(obj) in seen or obj is None:
        return 0
    seen.add(id(obj))
    torch = sys.modules.get("torch")
    if torch is None:
        return 0
    if isinstance(obj, torch.nn.Module):
        total = 0
        for t in (*obj.parameters(), *obj.buffers()):
            if id(t) not in seen:
                seen.add(id(t))
                total += t.numel() * t.element_size()
        return total
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, (list, tuple, set)):
        return sum(module_nbytes(v, seen) for v in obj)
    if isinstance(obj, dict):
        return sum(module_nbytes(v, seen) for v in obj.values())
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sum(module_nbytes(v, seen) for k, v in vars(obj).items() if not k.startswith("_"))
    return 0


def system_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3


def default_budget(device: str) -> int:
    """FATHOM_MODEL_MEMORY, else the settings' model_memory_gb, else 90% of a GPU's memory or
    half of the machine's RAM."""
    env = os.environ.get("FATHOM_MODEL_MEMORY")
    if env:
        return parse_bytes(env)
    from fathom.engine.models.locate import read_settings

    setting = read_settings().get("model_memory_gb")
    if setting:
        try:
            return int(float(setting) * 1024**3)
        except ValueError:
            pass
    if device.startswith("cuda"):
        import torch

        index = int(device.split(":")[1]) if ":" in device else 0
        return int(0.9 * torch.cuda.get_device_properties(index).total_memory)
    return system_memory() // 2


def free_device_memory(device: str) -> int | None:
    """Free bytes on a CUDA device (None on other devices: nothing to measure)."""
    if not device.startswith("cuda"):
        return None
    import torch

    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def choose_offload(need: int, free: int | None, largest: int, headroom: float = 1.25) -> str:
    """'none' when the whole model fits with room for activations, 'model' (one component on
    the GPU at a time) when the largest component fits, else 'sequential' (layer by layer)."""
    if free is None or need * headroom <= free:
        return "none"
    if largest * headroom <= free:
        return "model"
    return "sequential"


#: How a model may be placed: "auto" chooses from the free memory (``offload_mode``).
OFFLOAD_MODES = ("auto", "none", "model", "sequential")


def offload_mode(modules: list[Any], device: str, offload: str = "auto") -> str:
    """The placement for ``modules`` on ``device``: ``offload`` itself unless "auto", which
    measures them against the free memory (``choose_offload``); "none" off CUDA."""
    from fathom.engine.models.locate import ModelError

    if offload not in OFFLOAD_MODES:
        raise ModelError(f"unknown offload mode {offload!r}; use one of {OFFLOAD_MODES}")
    if not device.startswith("cuda"):
        return "none"
    if offload != "auto":
        return offload
    largest = max(module_nbytes(m) for m in modules)
    return choose_offload(module_nbytes(modules), free_device_memory(device), largest)


def place_pipeline(pipe: Any, modules: list[Any], device: str, offload: str = "auto") -> str:
    """Put a diffusers pipeline on ``device``: whole when it fits, else with the pipeline's
    own model or sequential CPU offload hooks. Returns the mode used."""
    mode = offload_mode(modules, device, offload)
    if mode == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif mode == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
    return mode


def is_oom(exc: BaseException) -> bool:
    """CUDA/MPS out-of-memory errors and CPU allocation failures."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
        return True
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text or "failed to allocate" in text
    )


def retry_on_oom(
    attempt: Callable[[], T], lower: Callable[[], str], fail: Callable[[str], BaseException]
) -> tuple[T, str | None]:
    """Run ``attempt``; if it runs out of memory, ``lower()`` frees or falls back (and says
    what it changed) and ``attempt`` runs once more; a second out-of-memory raises
    ``fail(what_changed)``. Returns the result and what changed (None when nothing had to).

    The retry happens outside the ``except`` block, so the failed attempt's tensors, held by
    the traceback's frames, are already free when it starts."""
    try:
        return attempt(), None
    except Exception as exc:
        if not is_oom(exc):
            raise
    changed = lower()
    try:
        return attempt(), changed
    except Exception as exc:
        if not is_oom(exc):
            raise
        raise fail(changed) from None


def release_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
