"""Build hooks only (metadata lives in pyproject.toml): ship assets/ as `fathom/assets/`.

The repository keeps its demo media, example graphs and icons in assets/; installed copies find
them beside the engine package as fathom/assets/ (engine/resources.py), with a build.json stamp.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
ASSET_DIRS = ("graphs", "scene", "pano", "video", "icons")
STAMP = "build.json"


def _stamp() -> dict[str, str]:
    """Commit and date of the source: from git in a checkout, else from the sdist's stamp."""
    existing = ROOT / "assets" / STAMP
    if existing.exists():
        return json.loads(existing.read_text("utf-8"))
    info = {"built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        info["commit"] = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


class BuildPyWithAssets(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads assets/ in the checkout directly
        target = Path(self.build_lib) / "fathom" / "assets"
        for name in ASSET_DIRS:
            src = ROOT / "assets" / name
            if src.is_dir():
                shutil.copytree(
                    src,
                    target / name,
                    dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                )
        info = {"kind": "wheel", **_stamp()}
        (target / STAMP).write_text(json.dumps(info, indent=1) + "\n", "utf-8")


class SdistWithStamp(sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        stamp = Path(base_dir) / "assets" / STAMP
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(_stamp(), indent=1) + "\n", "utf-8")


setup(cmdclass={"build_py": BuildPyWithAssets, "sdist": SdistWithStamp})
