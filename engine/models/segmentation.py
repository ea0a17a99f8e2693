"""Loading transformers semantic-segmentation models (SegFormer and kin) for the model manager:
one loader, so ``video.segment`` and ``fathom distill`` load a teacher the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_transformers_segmentation(path: Path, device: str, dtype: str) -> tuple[Any, Any]:
    """(image processor, model in eval mode on ``device``); safetensors weights only."""
    import torch
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    processor = AutoImageProcessor.from_pretrained(path)
    model = AutoModelForSemanticSegmentation.from_pretrained(
        path, use_safetensors=True, dtype=getattr(torch, dtype)
    )
    return processor, model.to(device).eval()
