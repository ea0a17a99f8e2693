"""Model management: locating, safely loading, sharing and evicting weights for every node."""

from engine.models.manager import ModelError, ModelManager, locate_model

__all__ = ["ModelError", "ModelManager", "locate_model"]
