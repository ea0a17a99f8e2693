"""How this copy of Fathom was built and what it runs on: for `fathom --version` and About."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from fathom.engine import __version__

BUILD_FILE = "build.json"  # written into the packaged assets by setup.py and the bundle spec


def _git_commit(root: Path) -> str | None:
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def build_info() -> dict[str, Any]:
    """kind: bundle (PyInstaller), wheel, or source (a checkout / editable install)."""
    from fathom.engine.resources import AssetsNotFound, assets_dir

    info: dict[str, Any] = {"version": __version__}
    try:
        stamp = assets_dir() / BUILD_FILE
        if stamp.exists():
            info.update(json.loads(stamp.read_text("utf-8")))
    except (AssetsNotFound, OSError, ValueError):
        pass
    if getattr(sys, "frozen", False):
        info["kind"] = "bundle"
    elif "kind" not in info:
        info["kind"] = "source"
        commit = _git_commit(Path(__file__).resolve().parent.parent)
        if commit:
            info["commit"] = commit
    info["python"] = platform.python_version()
    info["platform"] = f"{platform.system()}-{platform.machine()}"
    return info


def model_folders() -> dict[str, str]:
    """Where models are looked for: the user's Hugging Face cache, never inside the install."""
    try:
        from huggingface_hub import constants

        return {"hf_cache": str(constants.HF_HUB_CACHE)}
    except ImportError:
        return {}


def version_lines() -> list[str]:
    """The lines `fathom --version` prints (the GUI's About box shows the same)."""
    from fathom.engine.device import pick_device
    from fathom.engine.provenance import package_versions

    info = build_info()
    build = ", ".join(f"{k} {v}" for k, v in info.items() if k not in ("version",))
    lines = [f"fathom {__version__}", f"  build: {build}"]
    for name, ver in package_versions().items():
        if name != "python":
            lines.append(f"  {name} {ver}")
    try:  # located, not imported: importing Ray takes a second
        if find_spec("ray") is not None:
            lines.append(f"  ray {version('ray')} (--cluster available)")
    except (PackageNotFoundError, ValueError):
        pass
    try:
        lines.append(f"  device: {pick_device('auto').as_dict()}")
    except Exception as exc:  # noqa: BLE001 - --version must always answer
        lines.append(f"  device: unavailable ({exc})")
    for name, path in model_folders().items():
        lines.append(f"  models: {name} {path}")
    return lines
