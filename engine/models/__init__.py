"""Model management: locating, safely loading, sharing and evicting weights for every node.

``locate`` resolves model references (folders, single files, the Hugging Face cache, the models
folders); ``families`` tells what a model is from its files; ``catalog`` lists the models on
this machine; ``pull`` downloads one from the hub (only what its loader reads); ``manager``
shares loaded models under a memory budget; ``diffusion`` loads Stable-Diffusion-family models
with CPU offload; ``memory`` sizes models and recognises out-of-memory errors.
"""

from fathom.engine.models.catalog import list_models
from fathom.engine.models.locate import ModelError, locate_model, model_folders
from fathom.engine.models.manager import ModelManager
from fathom.engine.models.pull import pull_model

__all__ = [
    "ModelError",
    "ModelManager",
    "list_models",
    "locate_model",
    "model_folders",
    "pull_model",
]
