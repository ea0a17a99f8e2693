"""Where the shipped assets live (example graphs, demo media, icons): checkout, wheel or bundle."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ASSETS_ENV = "FATHOM_ASSETS"
# A checkout keeps assets/ beside engine/; the wheel carries it as fathom/assets/ (setup.py),
# beside fathom/engine/, so one rule finds both; the desktop bundle keeps the checkout's layout.
ICON_NAME = "fathom.png"


class AssetsNotFound(LookupError):
    pass


def _candidates() -> list[Path]:
    out = []
    if os.environ.get(ASSETS_ENV):
        out.append(Path(os.environ[ASSETS_ENV]))
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:  # the desktop bundle keeps the checkout's layout
        out.append(Path(frozen) / "assets")
    here = Path(__file__).resolve().parent.parent  # site-packages, the bundle, or the checkout
    out.append(here / "assets")
    return out


def assets_dir() -> Path:
    """The folder holding graphs/, scene/, pano/ and icons/."""
    for cand in _candidates():
        if (cand / "graphs").is_dir():
            return cand
    tried = ", ".join(str(c) for c in _candidates())
    raise AssetsNotFound(
        f"Fathom's assets were not found (looked in {tried}). Fix: reinstall "
        f"fathom-studio, or set {ASSETS_ENV} to the assets folder."
    )


def example_graphs() -> dict[str, Path]:
    """Bundled example graphs by name (file stem)."""
    try:
        folder = assets_dir() / "graphs"
    except AssetsNotFound:
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.json"))}


def example_graph(name: str) -> Path:
    graphs = example_graphs()
    key = name[:-5] if name.endswith(".json") else name
    if key not in graphs:
        raise AssetsNotFound(
            f"no bundled example graph named {name!r}; the examples are: "
            f"{', '.join(graphs) or '(none found)'}."
        )
    return graphs[key]


def icon_path() -> Path | None:
    try:
        p = assets_dir() / "icons" / ICON_NAME
    except AssetsNotFound:
        return None
    return p if p.exists() else None
