"""Fault injection for tests: a module whose forward runs out of memory a set number of times.

The real error type (``torch.OutOfMemoryError``) goes through the nodes' real recovery code; the
module itself is untouched otherwise and is restored on exit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class OutOfMemory:
    """``left`` more calls fail; set it again to fail more (e.g. every retry)."""

    def __init__(self, left: int) -> None:
        self.left = left


@contextmanager
def out_of_memory(module: Any, times: int = 1) -> Iterator[OutOfMemory]:
    import torch

    real = module.forward
    own = "forward" in vars(module)  # patched on the instance already, or the class's method
    state = OutOfMemory(times)

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if state.left:
            state.left -= 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real(*args, **kwargs)

    module.forward = flaky
    try:
        yield state
    finally:
        if own:
            module.forward = real
        else:
            del module.forward
