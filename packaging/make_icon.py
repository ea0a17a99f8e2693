"""Draws Fathom's application icon (a sounding line over depth bands) into assets/icons/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "assets" / "icons"


def draw(size: int = 256) -> Image.Image:
    """Rounded square, deep-sea gradient bands (depth), a plumb line and its weight."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    top, bottom = np.array([0.20, 0.62, 0.80]), np.array([0.03, 0.10, 0.25])
    t = np.floor(yy * 6) / 5  # six depth bands
    rgb = top * (1 - t[..., None]) + bottom * t[..., None]
    wave = 0.5 + 0.5 * np.sin(xx * 2 * np.pi * 2)
    rgb *= (0.9 + 0.1 * wave)[..., None]
    line = (np.abs(xx - 0.5) < 0.018) & (yy > 0.12) & (yy < 0.70)
    weight = (xx - 0.5) ** 2 + (yy - 0.74) ** 2 < 0.075**2
    rgb[line | weight] = (0.98, 0.80, 0.30)
    r = 0.18  # corner radius
    cx, cy = np.clip(xx, r, 1 - r), np.clip(yy, r, 1 - r)
    alpha = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.float32)
    data = np.dstack([rgb, alpha]) * 255
    return Image.fromarray(np.round(data).astype(np.uint8), "RGBA")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    icon = draw(256)
    icon.save(OUT / "fathom.png", optimize=True)
    icon.save(OUT / "fathom.ico", sizes=[(16, 16), (32, 32), (48, 48), (64, 64), (256, 256)])


if __name__ == "__main__":
    main()
