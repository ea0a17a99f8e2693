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
from fathom.app.session import ENDED, RunSession
from fathom.app.settings import Settings
from fathom.engine.executor import Executor
from fathom.engine.registry import Registry
from fathom.engine.types import Depth, Image

#: Least time between two step previews shown (ms): the preview keeps up, the GUI stays free.
PREVIEW_MS = 50
#: Longest failure message quoted above an earlier run's output (the log has it all).
NOTE_CHARS = 400
#: After the title of an output kept from an earlier run than the latest.
EARLIER = " (from an earlier run)"


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


def _sequence_opener(registry: Registry) -> tuple[Any, str] | None:
    """The node that opens a folder of frames (a PNG or EXR sequence a save node wrote): an
    opener whose file parameter takes sequences, from the nodes' metadata."""
    for suffix in registry.opened_suffixes():
        found = registry.opener(suffix)
        if found is not None:
            spec = found[0].param(found[1])
            if spec is not None and spec.sequence:
                return found
    return None


def read_back(executor: Executor, registry: Registry, path: str) -> Any:
    """What a written file holds, loaded by the node that opens its suffix (from the nodes'
    metadata, so a plugin's format reads back too); its first output that has a value."""
    opener = (
        _sequence_opener(registry) if Path(path).is_dir() else registry.opener(Path(path).suffix)
    )
    if opener is None:
        what = "folders of frames" if Path(path).is_dir() else Path(path).suffix
        raise ValueError(f"no node opens {what or 'files without a suffix'}")
    cls, param = opener
    values = executor.call(cls.type_id, params={param: path}, node_id="read back")
    return next(v for v in values.values() if v is not None)


def _note(who: str, what: str, message: str) -> str:
    """ "From an earlier run: this node failed: …", the note above a kept output; a long
    message is cut (the log and the badge's tooltip have it whole)."""
    if len(message) > NOTE_CHARS:
        message = message[: NOTE_CHARS - 1] + "…"
    return f"From an earlier run: {who} {what}" + (f":\n{message}" if message else ".")


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
        #: The newest step preview not shown yet: (the session's run id, value, title).
        self._pending: tuple[int, Any, str] | None = None
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
        """Step previews show at most every PREVIEW_MS: the newest wins, none queue up. Only
        while their node is at work: a step reported after its node ended, or after the run
        did, must never hide the node's final output."""
        selected = self.selected()
        if selected and node.split("/")[0] not in selected:
            return
        if not self.session.running or self.session.status(node).status in ENDED:
            return
        self._pending = (self.session.run_id, value, title)
        if not self._timer.isActive():
            self._flush()
            self._timer.start()

    def _flush(self) -> None:
        """The step preview due now, unless a newer run has started: the last step of a run
        always shows (its node may have ended meanwhile), until a final output replaces it;
        showing one drops the step still due (``_drop_steps``), so it never comes after."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        run, value, title = pending
        if run == self.session.run_id:
            self.dock.show_value(downscaled(value, self.settings.preview_limit()), title)

    def _drop_steps(self) -> None:
        """Forget the step preview waiting for the timer: what is shown now replaces it."""
        self._pending = None
        self._timer.stop()

    def show_value(
        self,
        value: Any,
        title: str,
        viewers: tuple[str, ...] = (),
        written: list[str] | None = None,
        note: str = "",
    ) -> None:
        """``viewers``: an output's own declared viewers; without them the value's type picks.
        ``written``: the files a save node wrote, listed above the preview. ``note``: why the
        value is not the node's latest, above it. A step preview still due is dropped."""
        self._drop_steps()
        extra: dict[str, Any] = {"viewers": viewers} if viewers else {}
        if written:
            extra["written"] = written
        if note:
            extra["note"] = note
        self.dock.show_value(downscaled(value, self.settings.preview_limit()), title, **extra)

    def show_output(self, node_id: str, port: str | None = None) -> bool:
        """Show a node's latest output (``port``, else the one last chosen for it, else its
        first that has a value); without one yet, say so. The node's preview is then open."""
        self._drop_steps()
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
            self.dock.show_message(self._no_output(node_id), node_id)
            return False
        out = cls.output(port) if cls is not None else None
        note = self.stale_note(node_id)
        title = f"{node_id}.{port}{EARLIER if note else ''}"
        self.show_value(values[port], title, out.viewers if out is not None else (), note=note)
        return True

    def stale_note(self, node_id: str) -> str:
        """Why the output kept for this node is not what its latest run made: the run failed
        (or was refused, or cancelled) at it or at a node it needs. Empty when it is current.
        A demanding user must never take an earlier run's picture for this run's result."""
        if self.session.status(node_id).status in ("done", "cached", "bypassed"):
            return ""
        own = self.session.failure(node_id)
        if own is not None:
            return _note("this node", *own)
        graph = self.doc.graph
        for up in sorted(graph.ancestors([node_id]) - {node_id}):
            failed = self.session.failure(up)
            if failed is not None:
                return _note(f"'{self.doc.title(up)}', which this node needs,", *failed)
        return ""

    # ---- save nodes: what they wrote ----------------------------------------------------------

    def _show_written(self, node_id: str, path: str | None = None) -> bool:
        """A save node's file read back (the value it received shows until then); a node that
        writes nothing (a display node) shows the value it received."""
        files = self.session.files.get(node_id, [])
        received = self.received(node_id)
        note = self.stale_note(node_id)
        earlier = EARLIER if note else ""
        if not files:
            if received is None:
                self.dock.show_message(self._no_output(node_id), node_id)
                return False
            self.show_value(received, f"{node_id} (received){earlier}", note=note)
            return True
        path = path if path in files else files[0]
        title = f"{node_id}: wrote {Path(path).name}{earlier}"
        if received is not None:
            self.show_value(received, f"{title} (reading it back…)", written=files, note=note)
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
        note = self.stale_note(node_id)
        title = f"{node_id}: wrote {Path(path).name}{EARLIER if note else ''}"
        if not isinstance(value, Exception):
            self.show_value(value, title, written=files, note=note)
            return
        why = f"cannot read {path} back: {value}"
        received = self.received(node_id)
        if received is not None:
            title = f"{node_id}: the value it received ({why})"
            self.show_value(received, title, written=files, note=note)
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
        self._drop_steps()
        self._reading = None
        self.node = None
        self.dock.clear()

    def previewed(self) -> str | None:
        """The node whose preview is open: a run of the whole graph brings it up to date."""
        if self.node is None or self.node not in self.doc.graph.nodes or self.dock.isHidden():
            return None
        return self.node

    def clear(self) -> None:
        self._drop_steps()
        self._reading = None
        self.node = None
        self.ports.clear()
        self.dock.clear()
