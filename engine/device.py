"""Device choice and dtype policy: CUDA, then MPS, then CPU, unless the user says otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class DeviceInfo:
    """What a run uses; recorded in every report so a result can be traced to its hardware."""

    kind: str  # "cuda", "mps" or "cpu"
    index: int = 0
    dtype: str = "float32"
    name: str = "cpu"

    @property
    def torch_device(self) -> str:
        return f"cuda:{self.index}" if self.kind == "cuda" else self.kind

    def torch_dtype(self) -> torch.dtype:  # torch is imported only when this is called
        import torch

        return getattr(torch, self.dtype)

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "device": self.torch_device,
            "dtype": self.dtype,
            "name": self.name,
        }


class DeviceUnavailable(Exception):
    pass


def pick_device(preference: str = "auto") -> DeviceInfo:
    """Half precision on accelerators (bf16 where supported), float32 on CPU where fp16 is slow."""
    if preference not in DEVICE_CHOICES and not preference.startswith("cuda:"):
        raise DeviceUnavailable(
            f"unknown device {preference!r}; use one of {', '.join(DEVICE_CHOICES)}"
        )
    if preference == "cpu":
        return DeviceInfo("cpu")
    import torch

    if preference.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceUnavailable(
                "--device cuda was asked for but no CUDA GPU is visible to torch; "
                "use --device cpu or auto"
            )
        index = int(preference.split(":")[1]) if ":" in preference else 0
        return _cuda(torch, index)
    if preference == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise DeviceUnavailable("--device mps was asked for but MPS is not available")
        return DeviceInfo("mps", dtype="float16", name="Apple MPS")
    if torch.cuda.is_available():
        return _cuda(torch, 0)
    if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        return DeviceInfo("mps", dtype="float16", name="Apple MPS")
    return DeviceInfo("cpu")


def _cuda(torch, index: int) -> DeviceInfo:  # noqa: ANN001
    dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return DeviceInfo("cuda", index, dtype, torch.cuda.get_device_name(index))
