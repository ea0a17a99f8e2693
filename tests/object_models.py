"""Tiny random-weight models for the text/photo-to-3D examples and the depth node tests, saved
like real checkpoints (safetensors + configs) so they load through the same code as a user's
models."""

from __future__ import annotations

from pathlib import Path

from fathom.engine.models.mini_depth import save_depth_anything


def build_tiny_depth(folder: Path) -> Path:
    """A Depth Anything (the family of the examples' default, V2 Small) at toy width, 56²."""
    return save_depth_anything(folder)
