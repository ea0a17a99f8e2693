"""What the preview dock shows: the selected node's latest output and a run's step previews,
thinned to what the eye can follow and downscaled to the preview-quality setting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer

from fathom.app.document import Document
from fathom.app.preview.dock import PreviewDock
from fathom.app.session import RunSession
from fathom.app.settings import Settings
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


class OutputPreviews(QObject):
    """Feeds the preview dock from the run session: outputs on selection and after runs, step
    previews while a node runs (only the selected node's, when one is selected)."""

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

    def show_value(self, value: Any, title: str, viewers: tuple[str, ...] = ()) -> None:
        """``viewers``: an output's own declared viewers; without them the value's type picks."""
        extra = {"viewers": viewers} if viewers else {}
        self.dock.show_value(downscaled(value, self.settings.preview_limit()), title, **extra)

    def show_output(self, node_id: str, port: str | None = None) -> bool:
        """Show a node's latest output (``port``, else the one last chosen for it, else its
        first that has a value); without one yet, say so. The node's preview is then open."""
        self.node = node_id
        if port:
            self.ports[node_id] = port
        values = self.session.outputs.get(node_id)
        port = port or self.ports.get(node_id)
        if values and (port is None or port not in values):
            port = next((k for k, v in values.items() if v is not None), None)
        if not values or port is None:
            self._pending = None
            self.dock.show_message(self._no_output(node_id), node_id)
            return False
        cls = self.doc.node_class(node_id)
        out = cls.output(port) if cls is not None else None
        self.show_value(values[port], f"{node_id}.{port}", out.viewers if out is not None else ())
        return True

    def _no_output(self, node_id: str) -> str:
        title = self.doc.title(node_id) if node_id in self.doc.graph.nodes else node_id
        state = self.session.status(node_id)
        if state.status in ("failed", "skipped", "cancelled") and state.message:
            return f"{title}: {state.status}\n{state.message}"
        return f"{title} has no output yet: press F5 to run it"

    def show_selected(self) -> None:
        """Show the selected node's output (one selected), else refresh the open preview's."""
        ids = self.selected()
        node = ids[0] if len(ids) == 1 else self.previewed()
        if node is not None:
            self.show_output(node)

    def previewed(self) -> str | None:
        """The node whose preview is open: a run of the whole graph brings it up to date."""
        if self.node is None or self.node not in self.doc.graph.nodes or self.dock.isHidden():
            return None
        return self.node

    def clear(self) -> None:
        self._pending = None
        self.node = None
        self.ports.clear()
        self.dock.clear()
