"""What a render records to be reproduced: graph hash, versions, device, seeds, model hashes."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from fathom.engine.fileio import atomic_write_text

TRACKED_PACKAGES = (
    "fathom-studio",
    "numpy",
    "torch",
    "diffusers",
    "transformers",
    "pillow",
    "av",
    "trimesh",
    "open3d",
    "opencv-python-headless",
    "jsonschema",
)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def canonical_json(obj: Any) -> str:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
    )


def _default(obj: Any) -> Any:
    if isinstance(obj, (tuple, set)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON data")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hash_cache_path() -> Path:
    base = os.environ.get("FATHOM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "fathom"
    )
    return Path(base) / "file_hashes.json"


class HashCache:
    """sha256 of big files, remembered by (size, mtime) so multi-GB weights hash once."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or hash_cache_path()
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, Any]] | None = None

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._data is None:
            try:
                self._data = json.loads(self.path.read_text("utf-8"))
                if not isinstance(self._data, dict):
                    self._data = {}
            except (OSError, ValueError):
                self._data = {}
        return self._data

    def lookup(self, path: Path) -> str | None:
        st = path.stat()
        entry = self._load().get(str(path.resolve()))
        if entry and entry.get("size") == st.st_size and entry.get("mtime") == st.st_mtime_ns:
            return entry.get("sha256")
        return None

    def store(self, path: Path, digest: str) -> None:
        st = path.stat()
        with self._lock:
            data = self._load()
            data[str(path.resolve())] = {
                "size": st.st_size,
                "mtime": st.st_mtime_ns,
                "sha256": digest,
            }
            try:
                atomic_write_text(self.path, json.dumps(data, indent=1))
            except OSError:
                pass  # a read-only cache folder only costs re-hashing next time


def file_sha256(path: Path, cache: HashCache | None = None) -> str:
    cache = cache or HashCache()
    hit = cache.lookup(path)
    if hit:
        return hit
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    cache.store(path, digest)
    return digest
