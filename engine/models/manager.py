"""The model manager: nodes ask for a model by kind and source; weights load once per device.

Safety: only safetensors weights are accepted (see ``engine.models.locate``). Loaded models are
shared by every node and run, and evicted least-recently-used first when a device's memory
budget (``FATHOM_MODEL_MEMORY``, default: half the RAM, or 90% of a GPU) or the model count
(``FATHOM_MAX_MODELS``, default 4) would be exceeded.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fathom.engine.envvars import env_number
from fathom.engine.models.locate import PICKLE_SUFFIXES, ModelError, locate_model, safetensors_files
from fathom.engine.models.memory import (
    default_budget,
    free_device_memory,
    module_nbytes,
    release_memory,
)

__all__ = [
    "PICKLE_SUFFIXES",
    "LoadedModel",
    "ModelError",
    "ModelManager",
    "locate_model",
    "safetensors_files",
]

log = logging.getLogger("fathom.models")

Key = tuple[str, str, str, str]


@dataclass
class LoadedModel:
    key: Key
    model: Any
    path: Path
    nbytes: int
    stamp: tuple[tuple[str, int, int], ...] = ()

    @property
    def device(self) -> str:
        return self.key[2]


class ModelManager:
    """Keeps loaded models keyed by (kind, resolved path, device, dtype).

    Two nodes using the same checkpoint share one copy; the same checkpoint on another device or
    in another dtype is another entry. ``evictions`` records what was dropped, for reports.
    """

    def __init__(
        self, max_models: int | None = None, budget_bytes: int | dict[str, int] | None = None
    ) -> None:
        self.max_models = max_models or int(
            env_number("FATHOM_MAX_MODELS", 4, "models kept loaded", minimum=1)
        )
        self._budget = budget_bytes
        self._models: OrderedDict[Key, LoadedModel] = OrderedDict()
        self._lock = threading.RLock()
        self.loads = 0
        self.evictions: list[tuple[str, str, str]] = []

    # ---- budget ----------------------------------------------------------------------------

    def budget(self, device: str) -> int:
        if isinstance(self._budget, int):
            return self._budget
        if isinstance(self._budget, dict) and device in self._budget:
            return self._budget[device]
        return default_budget(device)

    def used(self, device: str) -> int:
        return sum(e.nbytes for e in self._models.values() if e.device == device)

    # ---- loading ---------------------------------------------------------------------------

    def get(
        self,
        kind: str,
        source: str,
        device: str,
        dtype: str,
        loader: Callable[[Path], Any],
        base_dir: Path | None = None,
    ) -> tuple[Any, Path]:
        path = locate_model(source, base_dir).resolve()
        key = (kind, str(path), device, dtype)
        with self._lock:
            files = safetensors_files(path)
            stats = [(f, f.stat()) for f in files]
            stamp = tuple((str(f), st.st_size, st.st_mtime_ns) for f, st in stats)
            hit = self._models.get(key)
            if hit is not None and hit.stamp == stamp:
                self._models.move_to_end(key)
                return hit.model, path
            if hit is not None:  # the weights changed on disk since they were loaded
                self._evict(key, "its files changed")
            estimate = sum(st.st_size for _, st in stats)
            self.make_room(device, estimate)
            model = loader(path)
            nbytes = module_nbytes(model) or estimate
            self.loads += 1
            self._models[key] = LoadedModel(key, model, path, nbytes, stamp)
            self._shrink(device, keep=key)
            return model, path

    def make_room(self, device: str, need: int, keep: Any = None) -> int:
        """Evict least-recently-used models on ``device`` until ``need`` more bytes fit the
        budget (and, on a GPU, the free memory). Returns how many were evicted."""
        count = 0
        with self._lock:
            for key in list(self._models):
                entry = self._models[key]
                if entry.device != device or entry.model is keep or key == keep:
                    continue
                over_budget = self.used(device) + need > self.budget(device)
                free = free_device_memory(device)
                short = free is not None and free < need * 1.25
                if not (over_budget or short):
                    break
                self._evict(key, "to make room")
                count += 1
        if count:
            release_memory()
        return count

    def _shrink(self, device: str, keep: Key) -> None:
        for key in list(self._models):
            too_many = len(self._models) > self.max_models
            over = self.used(device) > self.budget(device)
            if not (too_many or over):
                break
            if key == keep or (not too_many and self._models[key].device != device):
                continue
            self._evict(key, "over the model count" if too_many else "over the memory budget")

    def _evict(self, key: Key, why: str) -> None:
        entry = self._models.pop(key)
        self.evictions.append((key[0], key[1], key[2]))
        log.info("evicted %s %s from %s (%s)", key[0], key[1], key[2], why)
        del entry

    def free(self, keep: Any = None) -> int:
        """Evict every model but ``keep`` (a loaded model object); the out-of-memory fallback."""
        with self._lock:
            keys = [k for k, e in self._models.items() if e.model is not keep]
            for key in keys:
                self._evict(key, "freeing memory")
        release_memory()
        return len(keys)

    def entries(self) -> list[LoadedModel]:
        with self._lock:
            return list(self._models.values())

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
        release_memory()

    def __len__(self) -> int:
        return len(self._models)
