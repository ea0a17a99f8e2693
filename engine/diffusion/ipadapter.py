"""IP-Adapter (an image as a prompt) on shared model components: the adapter's image
projection and extra cross-attention are loaded into the UNet through diffusers' loader for one
run and unloaded after; the reference image goes through the CLIP image encoder as diffusers'
pipelines send it (their feature extractor, a zero embedding for the unguided half).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fathom.engine.diffusion.lora import LOCK, pipeline_view
from fathom.engine.errors import LibraryError


@dataclass
class AdapterInput:
    """One IP-Adapter for a run: its weights (``image_proj`` and ``ip_adapter`` parts), the
    reference image (H×W×3 in [0, 1]) and its scale."""

    state: dict[str, dict[str, Any]]
    image: np.ndarray
    scale: float = 1.0


def read_state(path: Path) -> dict[str, dict[str, Any]]:
    """An IP-Adapter .safetensors file split into the two parts diffusers' loader takes."""
    from safetensors import safe_open

    state: dict[str, dict[str, Any]] = {"image_proj": {}, "ip_adapter": {}}
    with safe_open(str(path), framework="pt", device="cpu") as f:
        for key in f.keys():
            part, _, rest = key.partition(".")
            if part in state:
                state[part][rest] = f.get_tensor(key)
    if not state["image_proj"] or not state["ip_adapter"]:
        raise LibraryError(
            f"{path.name} is not an IP-Adapter (no image_proj and ip_adapter weights)",
            "choose an IP-Adapter .safetensors file",
            "ip_adapter",
        )
    return state


def cross_dim(state: dict[str, dict[str, Any]]) -> int | None:
    """The text-feature width the adapter's image tokens are made for (4 tokens per image)."""
    proj = state["image_proj"].get("proj.weight")
    return None if proj is None else int(proj.shape[0]) // 4


def _pil(image: np.ndarray) -> Any:
    from PIL import Image as PILImage

    return PILImage.fromarray((np.clip(image[..., :3], 0, 1) * 255).round().astype(np.uint8))


@contextmanager
def active(
    components: Any, encoder: Any, adapters: list[AdapterInput], batch: int, cfg: bool
) -> Iterator[list[Any] | None]:
    """The IP-Adapters in the UNet for the block, yielding the image embeddings the UNet
    takes as ``added_cond_kwargs["image_embeds"]`` (None without adapters); unloaded after,
    also on failure, so the shared UNet gets its own attention back."""
    if not adapters:
        yield None
        return
    want = int(components.unet.config.cross_attention_dim)
    for k, a in enumerate(adapters):
        if cross_dim(a.state) not in (None, want):
            raise LibraryError(
                f"IP-Adapter {k + 1} makes {cross_dim(a.state)}-wide image tokens but the model "
                f"attends to {want}-wide ones: it was made for another model family",
                "use an IP-Adapter made for this model's family",
                "ip_adapter",
            )
    with LOCK:
        view = pipeline_view(components, image_encoder=encoder)
        n = len(adapters)
        view.load_ip_adapter(
            [a.state for a in adapters],
            subfolder=[None] * n,
            weight_name=[None] * n,
            image_encoder_folder=None,
        )
        try:
            view.set_ip_adapter_scale([a.scale for a in adapters] if n > 1 else adapters[0].scale)
            embeds = view.prepare_ip_adapter_image_embeds(
                [_pil(a.image) for a in adapters], None, components.device, batch, cfg
            )
            yield embeds
        finally:
            view.unload_ip_adapter()
