"""The model manager: nodes ask for a model by source and kind; weights load once per device.

Safety: only safetensors weights are accepted; a folder that holds only pickle-based weights
(.bin, .pt, .ckpt) is refused with a message saying how to convert it.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import FathomError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class ModelError(FathomError):
    pass


def locate_model(source: str) -> Path:
    """A local folder, or a hub id already in the Hugging Face cache (never downloads here)."""
    p = Path(source).expanduser()
    if p.exists():
        return p
    if "/" in source and not source.startswith((".", "/")):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(source, local_files_only=True))
        except Exception:  # noqa: BLE001 - any hub failure means 'not available offline'
            pass
    raise ModelError(
        f"model {source!r} was not found: it is neither a folder nor a model in the Hugging "
        f"Face cache. Fix: download it (`hf download {source}`) or set the path to a folder "
        "holding the model.")


def safetensors_files(folder: Path) -> list[Path]:
    """The weight files of a model folder; refuses pickle-only checkpoints."""
    if folder.is_file():
        if folder.suffix != ".safetensors":
            raise ModelError(f"{folder} is not a .safetensors file; only safetensors weights "
                             "are loaded (pickle-based files can run code).")
        return [folder]
    found = sorted(folder.rglob("*.safetensors"))
    if not found:
        pickles = [p for p in folder.rglob("*") if p.suffix in PICKLE_SUFFIXES]
        if pickles:
            raise ModelError(
                f"{folder} holds only pickle-based weights ({pickles[0].name}); Fathom loads "
                "safetensors only. Fix: convert the checkpoint to .safetensors.")
        raise ModelError(f"{folder} holds no .safetensors weights.")
    return found


class ModelManager:
    """Keeps up to ``max_models`` loaded models, least recently used evicted first.

    Keyed by (kind, resolved path, device, dtype), so two nodes using the same checkpoint share
    one copy, and the same checkpoint on another device is another entry.
    """

    def __init__(self, max_models: int | None = None) -> None:
        self.max_models = max_models or int(os.environ.get("FATHOM_MAX_MODELS", "4"))
        self._models: OrderedDict[tuple[str, str, str, str], Any] = OrderedDict()
        self._lock = threading.RLock()
        self.loads = 0

    def get(self, kind: str, source: str, device: str, dtype: str,
            loader: Callable[[Path], Any]) -> tuple[Any, Path]:
        path = locate_model(source).resolve()
        key = (kind, str(path), device, dtype)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key], path
            safetensors_files(path)
            model = loader(path)
            self.loads += 1
            self._models[key] = model
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
            return model, path

    def clear(self) -> None:
        with self._lock:
            self._models.clear()

    def __len__(self) -> int:
        return len(self._models)
