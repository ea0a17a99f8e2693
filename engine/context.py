"""The narrow door through which a running node reaches the world: device, progress, files."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fathom.engine.device import DeviceInfo
from fathom.engine.errors import Cancelled, LibraryError, NodeError
from fathom.engine.events import Event, Listener

if TYPE_CHECKING:
    import torch

    from fathom.engine.models.manager import ModelManager


class CancelToken:
    """Cooperative cancellation: the executor checks between nodes, nodes check inside loops."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class RunOptions:
    """Everything about a run that is not in the graph itself."""

    output_dir: Path = Path("out")
    base_dir: Path = Path(".")
    device: str = "auto"
    seed: int = 0
    frames: tuple[int, int] | None = None
    graph_json: str | None = None
    overwrite: bool = True
    #: False: pre-flight checks skip the declared file parameters (validating a graph made
    #: on another machine, before its media are in place).
    check_files: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


#: The node whose ``run`` is working in this thread: set by the executor around each node's
#: run, and seen by the worker threads a run starts with its context copied (``prefetch``,
#: the executor's parallel branches). None outside any node's run.
_RUNNING: ContextVar[str | None] = ContextVar("fathom_running_node", default=None)


def running_node() -> str | None:
    """The node whose run the calling code works for, if any (see ``node_running``)."""
    return _RUNNING.get()


@contextmanager
def node_running(node_id: str) -> Iterator[None]:
    """Mark ``node_id``'s run as the work going on in this thread. A node already marked keeps
    the mark: a run nested in a node's run (video.map's per-frame subgraph runs) works for it,
    and the listener knows that node, not the nested run's inner ones."""
    if _RUNNING.get() is not None:
        yield
        return
    token = _RUNNING.set(node_id)
    try:
        yield
    finally:
        _RUNNING.reset(token)


def cancelled_message(running: str, source: str | None = None) -> str:
    """What a node cancelled during its run says: the node that was running, and the node
    whose lazy output it was reading when the cancel was noticed there (``source``)."""
    if source is None or source == running:
        return f"cancelled while running node '{running}'"
    return f"cancelled while running node '{running}' (reading the output of node '{source}')"


def derive_seed(base: int, *parts: str) -> int:
    """Stable per-node seed from the run seed and names, so adding a node changes no other seed."""
    h = hashlib.sha256(repr((base, *parts)).encode()).digest()
    return int.from_bytes(h[:8], "little") & (2**63 - 1)


class NodeContext:
    """Created per node per run; holds no state between runs except a live session's ``state``."""

    def __init__(
        self,
        node_id: str,
        options: RunOptions,
        device: DeviceInfo | None,
        emit: Listener | None = None,
        cancel: CancelToken | None = None,
        seed: int = 0,
        model_hashes: Any = None,
        models: Any = None,
        state: dict[str, Any] | None = None,
        live: Any = None,
    ) -> None:
        self.node_id = node_id
        self.options = options
        self._device = device
        self._emit = emit
        self._cancel = cancel  # None: never cancelled (a pre-flight check, a direct call)
        self.seed = seed
        self.files: list[str] = []
        self.model_files: dict[str, str] = {}
        self.details: dict[str, Any] = {}
        self._model_hashes = model_hashes
        self._models = models
        #: Set by the executor: each input port's cache identity (upstream keys and ports), so a
        #: node that runs work per item (video.map, per frame) can key that work without hashing.
        self.input_keys: dict[str, str] = {}
        #: Set by the executor: an ``engine.executor.SubgraphRunner`` that finds subgraph
        #: definitions (the graph's, then the library's) and runs them through its cache.
        self.subgraphs: Any = None
        #: Work a node carries from one frame to the next in a live session (a temporal cache,
        #: a stream pipeline, an open writer): the same dict on every tick of that session, a
        #: fresh empty one in an ordinary render, so a render never depends on an earlier one.
        self.state: dict[str, Any] = {} if state is None else state
        #: None in an ordinary render; in a live session, the tick being cooked (``tick``,
        #: ``captured_at`` in ``time.perf_counter`` seconds, ``frame_index``).
        self.live: Any = live

    # ---- device ----------------------------------------------------------------------------

    @property
    def device(self) -> DeviceInfo:
        if self._device is None:
            from fathom.engine.device import pick_device

            self._device = pick_device(self.options.device)
        return self._device

    @property
    def models(self) -> ModelManager:
        """The shared model manager: nodes never hold weights themselves."""
        if self._models is None:
            from fathom.engine.models import ModelManager

            self._models = ModelManager()
        return self._models

    def load_model(self, kind: str, source: str, loader: Any) -> Any:
        """Load (or reuse) a model for this run's device and record its weights' hashes."""
        from fathom.engine.models.manager import safetensors_files

        model, path = self.models.get(
            kind, source, self.device.torch_device, self.device.dtype, loader, self.options.base_dir
        )
        for f in safetensors_files(path):
            self.record_model_file(f)
        return model

    # ---- progress, preview, cancel --------------------------------------------------------

    def end_run(self) -> None:
        """The run is over: lazy outputs (a mapped video's frames, decoded later by a player or
        a later run) may still call progress/preview, but the run's listener is gone, and so is
        its cancel: cancelling a finished run (or one cancelled downstream) must not poison
        frames that a later run reads from the cache."""
        self._emit = None
        self._cancel = None
        if self.subgraphs is not None:  # its per-item runs take the run's token too
            self.subgraphs.cancel = CancelToken()

    def progress(self, fraction: float, message: str = "") -> None:
        """Report this node's progress. Called by a lazy output's work (its frames computing
        while a node downstream reads them), the event also names that reader."""
        self.check_cancelled()
        emit = self._emit  # read once: end_run may clear it from another thread
        if emit is not None:
            emit(
                Event(
                    "node_progress",
                    self.node_id,
                    progress=float(fraction),
                    message=message,
                    reader=self.reader(),
                )
            )

    def preview(self, value: Any, message: str = "") -> None:
        emit = self._emit
        if emit is not None:
            emit(
                Event(
                    "node_preview", self.node_id, value=value, message=message, reader=self.reader()
                )
            )

    def reader(self) -> str | None:
        """The node whose run this node's code is working for, when it is not this node's own
        run: a lazy output (a video whose frames compute when read) computing while that node,
        downstream, reads it. None during this node's own run and outside any run."""
        running = _RUNNING.get()
        return None if running == self.node_id else running

    @property
    def log(self) -> logging.Logger:
        """This node's logger (made on first use: most nodes never log)."""
        return logging.getLogger(f"fathom.node.{self.node_id}")

    def is_cancelled(self) -> bool:
        token = self._cancel  # read once: end_run may clear it from another thread
        return token is not None and token.cancelled

    def check_cancelled(self) -> None:
        """Raise Cancelled when the run was cancelled. Its message names the node that was
        running: this one, or the node reading this one's lazy output (and this one)."""
        if self.is_cancelled():
            reader = self.reader()
            if reader is None:
                raise Cancelled(cancelled_message(self.node_id), node=self.node_id)
            raise Cancelled(cancelled_message(reader, self.node_id), node=self.node_id)

    # ---- randomness ------------------------------------------------------------------------

    def rng(self, seed: int | None = None) -> np.random.Generator:
        return np.random.default_rng(self.seed if seed is None else seed)

    def torch_generator(self, seed: int | None = None) -> torch.Generator:
        import torch

        dev = self.device.torch_device if self.device.kind != "mps" else "cpu"
        return torch.Generator(device=dev).manual_seed(self.seed if seed is None else seed)

    # ---- files -----------------------------------------------------------------------------

    def resolve_path(self, value: str | Path) -> Path:
        """Relative input paths are relative to the graph file, so graphs travel with media."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.options.base_dir / p

    def output_path(self, value: str | Path) -> Path:
        """Relative output paths land in the run's output folder."""
        p = Path(value).expanduser()
        if not p.is_absolute():
            p = self.options.output_dir / p
        if p.exists() and not self.options.overwrite:
            raise NodeError(
                f"{p} exists and overwriting is off",
                node=self.node_id,
                fix="choose another file name or allow overwriting",
            )
        return p

    def record_file(self, path: str | Path) -> None:
        self.files.append(str(path))

    def report(self, **details: Any) -> None:
        """Facts about how the node ran (device, offload, steps run...) for the run report."""
        self.details.update(details)

    def record_model_file(self, path: str | Path) -> str:
        """sha256 of a weights file, cached by size and mtime; listed in the run report."""
        from fathom.engine.provenance import file_sha256

        digest = file_sha256(Path(path), self._model_hashes)
        self.model_files[str(path)] = digest
        return digest

    def error(self, message: str, port: str | None = None, fix: str | None = None) -> NodeError:
        """Build the error a node raises: it already names this node."""
        return NodeError(message, node=self.node_id, port=port, fix=fix)

    def refuse(self, exc: LibraryError, port: str | None = None) -> NodeError:
        """A library's refusal as this node's error: the library named the port when it could
        (``port`` overrides it, or fills it in) and the fix."""
        return NodeError(str(exc), node=self.node_id, port=port or exc.port, fix=exc.fix)
