"""Loading monocular depth models (transformers depth estimators, Marigold) for the model
manager."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_transformers_depth(path: Path, device: str, dtype: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    processor = AutoImageProcessor.from_pretrained(path)
    model = AutoModelForDepthEstimation.from_pretrained(
        path, use_safetensors=True, dtype=getattr(torch, dtype)
    )
    return processor, model.to(device).eval()


def load_marigold(path: Path, device: str, dtype: str) -> Any:
    import torch
    from diffusers import MarigoldDepthPipeline

    pipe = MarigoldDepthPipeline.from_pretrained(
        path, use_safetensors=True, torch_dtype=getattr(torch, dtype)
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def is_metric_model(model: Any) -> bool:
    cfg = model.config
    return getattr(cfg, "depth_estimation_type", None) == "metric" or getattr(
        cfg, "model_type", ""
    ) in ("zoedepth",)
