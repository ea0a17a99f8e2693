"""Model management: locating, safely loading, sharing and evicting weights for every node.

``locate`` resolves model references (folders, single files, the Hugging Face cache, the models
folders) and pulls from the hub; ``manager`` shares loaded models under a memory budget;
``diffusion`` loads Stable-Diffusion-family models with CPU offload; ``memory`` sizes models and
recognises out-of-memory errors.
"""

from fathom.engine.models.locate import (
    ModelError,
    list_models,
    locate_model,
    model_folders,
    pull_model,
)
from fathom.engine.models.manager import ModelManager

__all__ = [
    "ModelError",
    "ModelManager",
    "list_models",
    "locate_model",
    "model_folders",
    "pull_model",
]
