"""What the preview dock shows: the selected node's latest output and a run's step previews,
thinned to what the eye can follow and downscaled to the preview-quality setting. A save node
shows what it wrote: the file read back (off the GUI thread) by the node that opens files of
its suffix, with the paths and Open / Show in folder above it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from fathom.app.document import Document
from fathom.app.preview.dock import PreviewDock
from fathom.app.preview.worker import BackgroundRenderer
from fathom.app.session import RunSession
from fathom.app.settings import Settings
from fathom.engine.executor import Executor
from fathom.engine.registry import Registry
from fathom.engine.types import Depth, Image

#: Least time between two step previews shown (ms): the preview keeps up, the GUI stays free.
PREVIEW_MS = 50


def downscaled(value: Any, limit: int | None) -> Any:
    """Previews above the quality setting's size are strided down: the GUI stays quick and the
    real output is untouched."""
    if limit is None or not isinstance(value, (Image, Depth)):
        return value
    h, w = value.data.shape[:2]
    step = int(np.ceil(max(h, w) / limit))
    if step <= 1:
        return value
    if isinstance(value, Image):
        return Image(value.data[::step, ::step])
    return Depth(value.data[::step, ::step], kind=value.kind, units=value.units)


def read_back(executor: Executor, registry: Registry, path: str) -> Any:
    """What a written file holds, loaded by the node that opens its suffix (from the nodes'
    metadata, so a plugin's format reads back too); its first output that has a value."""
    opener = registry.opener(Path(path).suffix)
    if opener is None:
        raise ValueError(f"no node opens {Path(path).suffix or 'files without a suffix'}")
    cls, param = opener
    values = executor.call(cls.type_id, params={param: path}, node_id="read back")
    return next(v for v in values.values() if v is not None)


class OutputPreviews(QObject):
    """Feeds the preview dock from the run session: outputs on selection and after runs, step
    previews while a node runs (only the selected node's, when one is selected)."""

    #: The preview opened on another node: (node id). Live mode runs it if it is stale.
    opened = Signal(str)

    def __init__(
        self,
        doc: Document,
        session: RunSession,
        dock: PreviewDock,
        settings: Settings,
        selected: Callable[[], list[str]],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.doc = doc
        self.session = session
        self.dock = dock
        self.settings = settings
        self.selected = selected
        self._pending: tuple[Any, str] | None = None
        #: The node whose output the dock shows (or waits for): its preview is open.
        self.node: str | None = None
        #: The output each node's preview shows, as last chosen (the inspector's Output).
        self.ports: dict[str, str] = {}
        #: The save node and file being read back; a result for anything else is stale.
        self._reading: tuple[str, str] | None = None
        self._reader = BackgroundRenderer(self._read_done, self)
        self._executor: Executor | None = None
        dock.written.chosen.connect(self._choose_file)
        self._timer = QTimer(self)
        self._timer.setInterval(PREVIEW_MS)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._flush)

    def step_preview(self, node: str, value: Any, title: str) -> None:
        """Step previews show at most every PREVIEW_MS: the newest wins, none queue up."""
        selected = self.selected()
        if selected and node.split("/")[0] not in selected:
            return
        self._pending = (value, title)
        if not self._timer.isActive():
            self._flush()
            self._timer.start()

    def _flush(self) -> None:
        if self._pending is not None:
            value, title = self._pending
            self._pending = None
            self.show_value(value, title)

    def show_value(
        self,
        value: Any,
        title: str,
        viewers: tuple[str, ...] = (),
        written: list[str] | None = None,
    ) -> None:
        """``viewers``: an output's own declared viewers; without them the value's type picks.
        ``written``: the files a save node wrote, listed above the preview."""
        extra: dict[str, Any] = {"viewers": viewers} if viewers else {}
        if written:
            extra["written"] = written
        self.dock.show_value(downscaled(value, self.settings.preview_limit()), title, **extra)

    def show_output(self, node_id: str, port: str | None = None) -> bool:
        """Show a node's latest output (``port``, else the one last chosen for it, else its
        first that has a value); without one yet, say so. The node's preview is then open."""
        opened, self.node = node_id != self.node, node_id
        self._reading = None
        if opened:
            self.opened.emit(node_id)
        if port:
            self.ports[node_id] = port
        cls = self.doc.node_class(node_id)
        if cls is not None and (cls.is_output or not cls.outputs):
            return self._show_written(node_id)
        values = self.session.outputs.get(node_id)
        port = port or self.ports.get(node_id)
        if values and (port is None or port not in values):
            port = next((k for k, v in values.items() if v is not None), None)
        if not values or port is None:
            self._pending = None
            self.dock.show_message(self._no_output(node_id), node_id)
            return False
        out = cls.output(port) if cls is not None else None
        self.show_value(values[port], f"{node_id}.{port}", out.viewers if out is not None else ())
        return True

    # ---- save nodes: what they wrote ----------------------------------------------------------

    def _show_written(self, node_id: str, path: str | None = None) -> bool:
        """A save node's file read back (the value it received shows until then); a node that
        writes nothing (a display node) shows the value it received."""
        files = self.session.files.get(node_id, [])
        received = self.received(node_id)
        if not files:
            if received is None:
                self.dock.show_message(self._no_output(node_id), node_id)
                return False
            self.show_value(received, f"{node_id} (received)")
            return True
        path = path if path in files else files[0]
        title = f"{node_id}: wrote {Path(path).name}"
        if received is not None:
            self.show_value(received, f"{title} (reading it back…)", written=files)
        else:
            self.dock.show_message(f"Reading {path}…", title, written=files)
        self._reading = (node_id, path)
        if self._executor is None:
            self._executor = Executor(self.doc.registry)
        executor, registry = self._executor, self.doc.registry
        self._reader.submit(lambda: read_back(executor, registry, path), self._reading)
        return True

    def _read_done(self, tag: tuple[str, str], value: Any) -> None:
        if tag != self._reading:
            return  # the user moved on, or chose another file
        self._reading = None
        node_id, path = tag
        files = self.session.files.get(node_id, [])
        title = f"{node_id}: wrote {Path(path).name}"
        if not isinstance(value, Exception):
            self.show_value(value, title, written=files)
            return
        why = f"cannot read {path} back: {value}"
        received = self.received(node_id)
        if received is not None:
            self.show_value(received, f"{node_id}: the value it received ({why})", written=files)
        else:
            self.dock.show_message(why, title, written=files)

    def _choose_file(self, path: str) -> None:
        if self.node is not None and path:
            self._show_written(self.node, path)

    def received(self, node_id: str) -> Any:
        """The value on the node's first connected input, from the latest run's outputs."""
        cls = self.doc.node_class(node_id)
        edges = [e for e in self.doc.graph.edges if e.dst == node_id]
        order = [i.name for i in cls.inputs] if cls is not None else []
        edges.sort(key=lambda e: order.index(e.dst_port) if e.dst_port in order else len(order))
        for e in edges:
            value = self.session.outputs.get(e.src, {}).get(e.src_port)
            if value is not None:
                return value
        return None

    def _no_output(self, node_id: str) -> str:
        title = self.doc.title(node_id) if node_id in self.doc.graph.nodes else node_id
        state = self.session.status(node_id)
        ended = state.status in ("failed", "skipped", "cancelled") and state.message
        if ended and not self.session.left_out(node_id):  # left out: a run now runs it
            return f"{title}: {state.status}\n{state.message}"
        if self.session.live:
            return f"{title} has no output yet: Live mode runs it"
        return f"{title} has no output yet: press F5 to run it"

    def show_selected(self) -> None:
        """Show the selected node's output (one selected), else refresh the open preview's."""
        ids = self.selected()
        node = ids[0] if len(ids) == 1 else self.previewed()
        if node is not None:
            self.show_output(node)
        elif self.node is not None and self.node not in self.doc.graph.nodes:
            self.forget()  # its node is gone: nothing on view may speak for it

    def forget(self) -> None:
        """Close the open preview (its node was deleted); each node's Output choice stays."""
        self._pending = None
        self._reading = None
        self.node = None
        self.dock.clear()

    def previewed(self) -> str | None:
        """The node whose preview is open: a run of the whole graph brings it up to date."""
        if self.node is None or self.node not in self.doc.graph.nodes or self.dock.isHidden():
            return None
        return self.node

    def clear(self) -> None:
        self._pending = None
        self._reading = None
        self.node = None
        self.ports.clear()
        self.dock.clear()
