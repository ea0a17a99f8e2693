"""Run handling for one window: requests made from the document, run, run-to-selected, cancel
and live mode, with the runner's worker events fed into the window's run session."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from fathom.app.document import Document
from fathom.app.runner import Runner
from fathom.app.session import RunRequest, RunSession
from fathom.app.settings import Settings
from fathom.engine.context import RunOptions
from fathom.engine.executor import Executor


class RunController(QObject):
    """Starts and cancels runs of one document; the session holds what they do and make.

    The controller owns no run state of its own beyond the runner's thread: badges, outputs,
    previews and the log all follow the session, which this controller feeds."""

    #: A notice for the status bar: (text, milliseconds; 0 keeps it until the next one).
    notice = Signal(str, int)

    def __init__(
        self,
        doc: Document,
        settings: Settings,
        executor: Executor,
        session: RunSession,
        selected: Callable[[], list[str]],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.doc = doc
        self.settings = settings
        self.executor = executor
        self.session = session
        self.selected = selected
        self.runner = Runner(executor, self)
        # Connected before anyone else listens to the runner: when its ``finished`` reaches
        # other slots, the session (and so badges and log) already shows the outcome.
        self.runner.started.connect(session.started)
        self.runner.planned.connect(session.planned)
        self.runner.event.connect(session.handle)
        self.runner.finished.connect(session.finished)
        #: The node whose preview is open (the window points this at its preview dock): a run
        #: of the whole graph, F5 or Live mode, brings it up to date even if nothing saves it.
        self.previewed: Callable[[], str | None] = lambda: None
        self._unsubscribe: Callable[[], None] | None = None
        doc.reset.connect(self._on_reset)
        doc.level_changed.connect(self._watch_graph)  # live mode follows edits inside subgraphs
        self._watch_graph()

    # ---- the document ------------------------------------------------------------------------

    def _watch_graph(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = self.doc.graph.subscribe(self._on_graph_event)

    def _on_reset(self) -> None:
        """Another document (new, opened, restored): the old one's cached results go, and
        with them the temporary depth and frame files their videos spilled to."""
        self._watch_graph()
        self.session.clear()
        self.executor.cache.clear()

    def _on_graph_event(self, event: str, payload: dict[str, Any]) -> None:
        if event == "node_removed":
            self.session.forget(payload["node"])
        if self.session.live:
            self.runner.schedule(self.make_request)

    def output_dir(self) -> Path:
        if self.settings.output_dir:
            return Path(self.settings.output_dir)
        if self.doc.path is not None:
            return self.doc.path.parent / "out"
        return Path.home() / "Fathom" / "out"

    def make_request(self, targets: list[str] | None = None) -> RunRequest:
        """A snapshot run exactly as ``fathom render`` would run the saved file: the same
        document is embedded in saved PNGs, inputs resolve against the graph's folder. The
        device is resolved on the worker, so importing torch never stalls the GUI. A run of
        the whole graph (``targets`` None) also brings the previewed node up to date."""
        graph = self.doc.snapshot()  # the whole graph, whichever level the editor shows
        document = self.doc.document()
        options = self.run_options(json.dumps(document, separators=(",", ":")))
        previewed = self.previewed() if targets is None else None
        titles = {n: inst.title or self._type_title(inst.type) for n, inst in graph.nodes.items()}
        return RunRequest(graph, options, targets, [previewed] if previewed else [], titles)

    def run_options(self, graph_json: str | None = None) -> RunOptions:
        """The options a run of the document gets now: outputs, the folder relative inputs and
        models resolve against, the device. The live pre-flight checks use them too, so they
        resolve every path exactly as the run would."""
        return RunOptions(
            output_dir=self.output_dir(),
            base_dir=self.doc.base_dir.resolve(),
            device=self.settings.device,
            seed=0,
            graph_json=graph_json,
        )

    def _type_title(self, type_id: str) -> str:
        cls = self.doc.registry.get(type_id)
        return cls.title if cls is not None and cls.title else type_id

    # ---- commands ----------------------------------------------------------------------------

    def run(self, targets: list[str] | None = None) -> bool:
        if self.runner.running:
            self.notice.emit("A run is in progress", 3000)
            return False
        if not self.doc.root.nodes:
            self.notice.emit("Nothing to run: add nodes first", 3000)
            return False
        return self.runner.start(self.make_request(targets))

    def run_selected(self) -> bool:
        ids = self.selected()
        return self.run(ids) if ids else self.run()

    def cancel(self) -> None:
        if self.runner.running:
            self.runner.cancel()
            self.notice.emit("Cancelling after the running step…", 0)

    def set_live(self, on: bool) -> None:
        """Live mode re-runs what an edit affects, debounced; turning it on runs at once."""
        self.session.set_live(on)
        if self.session.live:
            self.runner.schedule(self.make_request, 0)

    def preview_opened(self, node: str) -> None:
        """Live mode keeps what the user looks at up to date: a preview opened on a node the
        latest run left out runs it (and what it needs) at once."""
        if self.session.live and self.session.left_out(node):
            self.runner.schedule(self.make_request, 0)

    def shutdown(self) -> None:
        """Stop the run in progress and stop listening to the document (the window closes);
        the cached results go now, not when the process exits, and with them their spill
        files (the latest results stay with the session while the window shows them)."""
        self.runner.shutdown()
        self.executor.cache.clear()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
