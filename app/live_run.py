"""Live sessions of one window's graph, kept off the GUI thread: start, stop, edits, frames, stats.

The engine's ``LiveSession`` cooks the graph once per captured frame on its own threads. This
controller starts and stops it on a helper thread (opening a camera or joining the model thread
may take a while), and everything the session's threads report crosses to the GUI thread as a
queued Qt signal: the stats a few times a second, each window node's newest frame
(``LatestFrames``: newest wins, nothing queues up), and the newest value of the node whose
preview is open, which the window shows in its preview dock (a point cloud in the 3D view,
updated in place). Edits of the graph while it runs reach the session through ``update_graph``,
debounced, and apply on its next tick.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QScreen
from PySide6.QtWidgets import QWidget

from fathom.app.document import Document
from fathom.app.live_window import LatestFrames, LiveWindow, other_screen
from fathom.app.warmup import wait_until_warm
from fathom.engine.context import RunOptions
from fathom.engine.graph import Graph
from fathom.engine.types import RGBD, Depth, Image, Mesh, OutputFile, PointCloud

if TYPE_CHECKING:
    from fathom.engine.executor import Executor
    from fathom.engine.live.session import LiveSession

#: Quiet time after the last edit before the session gets the edited graph (ms).
EDIT_DELAY_MS = 150
#: Least time between two stats reports that reach the GUI (s): a few a second.
STATS_INTERVAL = 0.25
#: How often the controller looks whether the session ended by itself (ms).
END_POLL_MS = 250
#: The errors' key for a session that could not start (not a node id: it has a space).
START = "could not start"
#: Values a live preview can follow frame by frame (a Video's frames are computed lazily by
#: the nodes that read them; reading one again from the GUI would compute it twice).
LIVE_PREVIEW_TYPES = (Mesh, PointCloud, RGBD, Image, Depth)


def as_stats(report: Any) -> dict[str, Any]:
    """A finished session's report in the form of its running stats (for the panel)."""
    return {
        "frames_in": report.frames_in,
        "frames_out": report.frames_out,
        "frames_dropped": report.frames_dropped,
        "fps_in": report.fps_in,
        "fps_out": report.fps,
        "latency_ms": dict(report.latency_ms),
        "running": False,
        "errors": {node: str(e.get("last", "")) for node, e in report.errors.items()},
    }


def first_line(text: str) -> str:
    return next((line for line in str(text).splitlines() if line.strip()), str(text))


class LiveRun(QObject):
    """At most one live session of the window's graph, and the windows its frames go to."""

    #: "Stopped", "Starting…", "Running", "Stopping…", or why it could not start.
    state_changed = Signal(str)
    #: The session's stats (a LiveStats, or a dict of the same fields once it has stopped).
    stats_changed = Signal(object)
    #: Node id → newest error message, whenever the set changes.
    errors_changed = Signal(dict)
    running_changed = Signal(bool)
    #: (node id, value): the newest value of the watched node (the open preview's).
    live_value = Signal(str, object)
    #: A notice for the status bar, and a problem for the log.
    notice = Signal(str, int)
    failed = Signal(str)
    _started = Signal(object)
    _stopped = Signal(object)
    _stats = Signal(object)

    def __init__(
        self,
        doc: Document,
        executor: Executor,
        options: Callable[[], RunOptions],
        window: QWidget,
    ) -> None:
        super().__init__(window)
        self.doc = doc
        self.executor = executor
        self.options = options
        self.window = window
        self.session: LiveSession | None = None
        self.phase = "stopped"
        self.frames = LatestFrames(self)
        self.values = LatestFrames(self, convert=lambda value: value)
        self.windows: dict[str, LiveWindow] = {}
        self.errors: dict[str, str] = {}
        #: (node, port or None, upstream (node, port) or None): whose values go to the preview.
        self.watch: tuple[str, str | None, tuple[str, str] | None] | None = None
        #: Edited graphs handed to the session, and stats reports shown (tests).
        self.updates_sent = 0
        self.stats_seen = 0
        self._hidden: set[str] = set()
        self._stop_when_started = False
        self._last_stats = 0.0
        self._threads: list[threading.Thread] = []
        self._edit_timer = QTimer(self)
        self._edit_timer.setSingleShot(True)
        self._edit_timer.setInterval(EDIT_DELAY_MS)
        self._edit_timer.timeout.connect(self._send_graph)
        self._end_timer = QTimer(self)
        self._end_timer.setInterval(END_POLL_MS)
        self._end_timer.timeout.connect(self._check_ended)
        self._unsubscribe: Callable[[], None] | None = None
        self.frames.arrived.connect(self._show_frame)
        self.values.arrived.connect(self._value_arrived)
        self._started.connect(self._on_started)
        self._stopped.connect(self._on_stopped)
        self._stats.connect(self._on_stats)
        doc.reset.connect(self._on_reset)
        doc.level_changed.connect(self._watch_graph)
        self._watch_graph()

    # ---- what may run ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """A session is starting, running or stopping."""
        return self.phase != "stopped"

    def live_sources(self, graph: Graph) -> list[str]:
        """The graph's live source nodes that are not muted or bypassed."""
        scope = self.executor.scope(graph)
        return [
            nid
            for nid, inst in graph.nodes.items()
            if getattr(scope.get(inst.type), "live_source", False)
            and not (inst.mute or inst.bypass)
        ]

    def source_titles(self) -> list[str]:
        """The titles of the live source node types (for the refusal's fix)."""
        return sorted(
            cls.title or cls.type_id
            for cls in self.doc.registry.types()
            if getattr(cls, "live_source", False)
        )

    def display_node(self) -> str | None:
        """The graph's first display node: an output that shows what it gets (no outputs, no
        file to write, not a live output), whose preview follows the session by default."""
        graph = self.doc.root
        scope = self.executor.scope(graph)
        for nid, inst in graph.nodes.items():
            cls = scope.get(inst.type)
            if (
                cls is not None
                and cls.is_output
                and not cls.outputs
                and not getattr(cls, "live_output", False)
                and not any(p.type is OutputFile for p in cls.params)
            ):
                return nid
        return None

    def cannot_start(self, graph: Graph) -> str | None:
        """Why a live session of ``graph`` cannot start, or None."""
        if not graph.nodes:
            return "Nothing to run live: add nodes first"
        if not self.live_sources(graph):
            kinds = ", ".join(self.source_titles()) or "a live source"
            return (
                "This graph has no live source, so there is nothing to run live: add one "
                f"({kinds}) and connect it to what should follow it"
            )
        return None

    # ---- start and stop --------------------------------------------------------------------

    def toggle(self) -> bool:
        if self.phase == "stopped":
            return self.start()
        self.stop()
        return True

    def start(self) -> bool:
        """Start a session of the graph as it is now; False (and a message) when it cannot."""
        if self.phase != "stopped":
            self.notice.emit("A live session is already running", 3000)
            return False
        graph = self.doc.snapshot()
        why = self.cannot_start(graph)
        if why is not None:
            self.state_changed.emit(why)
            self.notice.emit(why, 8000)
            return False
        from fathom.engine.live.session import LiveOptions, LiveSession

        session = LiveSession(
            graph,
            LiveOptions(run=self.options()),
            on_frame=self.frames.put,
            on_stats=self._stats_from_worker,
            executor=self.executor,
            on_tick=self._tick_from_worker,
        )
        self.session = session
        self.errors = {}
        self.errors_changed.emit({})
        self._hidden.clear()
        self.frames.reopen()
        self.values.reopen()
        self._stop_when_started = False
        self._set_phase("starting", "Starting…")
        self._spawn(self._start_worker, session)
        return True

    def _start_worker(self, session: LiveSession) -> None:
        try:
            session.start()
        except Exception as exc:  # noqa: BLE001 - shown in the panel and the log
            self._started.emit(str(exc) or type(exc).__name__)
            return
        self._started.emit(None)

    def _on_started(self, error: str | None) -> None:
        if error is not None:
            self.session = None
            self._set_phase("stopped", f"Could not start: {first_line(error)}")
            self.errors = {START: error}
            self.errors_changed.emit(dict(self.errors))
            self.notice.emit(f"The live session could not start: {first_line(error)}", 8000)
            self.failed.emit(f"The live session could not start:\n{error}")
            return
        self._set_phase("running", "Running")
        self._end_timer.start()
        if self._stop_when_started:
            self.stop()

    def stop(self) -> None:
        """Stop the session: its threads finish on a helper thread, the GUI goes on."""
        if self.phase == "starting":
            self._stop_when_started = True
            return
        if self.phase != "running" or self.session is None:
            return
        self._end_timer.stop()
        self._edit_timer.stop()
        self._set_phase("stopping", "Stopping…")
        self._spawn(self._stop_worker, self.session)

    def _stop_worker(self, session: LiveSession) -> None:
        try:
            report: Any = session.stop()
        except Exception as exc:  # noqa: BLE001 - the session is gone either way
            report = f"{type(exc).__name__}: {exc}"
        self._stopped.emit(report)

    def _on_stopped(self, report: Any) -> None:
        self.session = None
        self.values.close()  # a value of the last ticks must not land after the end
        if isinstance(report, str):
            self._set_phase("stopped", f"Stopped with an error: {report}")
            self.failed.emit(f"The live session ended with an error: {report}")
            return
        stats = as_stats(report)
        self.stats_changed.emit(stats)
        self._errors_seen(stats["errors"])
        self._set_phase(
            "stopped",
            f"Stopped: {report.frames_out} frames out in {report.seconds:.1f} s",
        )

    def _check_ended(self) -> None:
        """A session that ended by itself (a file without loop, a lost camera) is stopped."""
        if self.phase == "running" and self.session is not None and not self.session.running:
            self.stop()

    def _set_phase(self, phase: str, text: str) -> None:
        was = self.running
        self.phase = phase
        self.state_changed.emit(text)
        if self.running != was:
            self.running_changed.emit(self.running)

    def _spawn(self, fn: Callable[..., None], *args: Any) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]

        def work(*a: Any) -> None:
            wait_until_warm()  # the start-up imports end before the session imports the same
            fn(*a)

        thread = threading.Thread(target=work, args=args, name="fathom-live-control", daemon=True)
        self._threads.append(thread)
        thread.start()

    def shutdown(self, timeout: float = 10.0) -> None:
        """The window closes: stop the session (waiting for it) and close the windows."""
        self._end_timer.stop()
        self._edit_timer.stop()
        session, self.session = self.session, None
        for thread in self._threads:
            thread.join(timeout)
        if session is not None and session.running:
            session.stop()
        self.frames.close()
        self.values.close()
        for window in list(self.windows.values()):
            window.close()
            window.deleteLater()
        self.windows.clear()
        self.phase = "stopped"
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # ---- stats ------------------------------------------------------------------------------

    def _stats_from_worker(self, stats: Any) -> None:
        """On the model thread after every tick: a few reports a second reach the GUI."""
        now = time.perf_counter()
        if now - self._last_stats < STATS_INTERVAL:
            return
        self._last_stats = now
        self._stats.emit(stats)

    def _on_stats(self, stats: Any) -> None:
        if self.phase == "stopped":
            return  # a report from the last ticks, after the final one was shown
        self.stats_seen += 1
        self.stats_changed.emit(stats)
        self._errors_seen(dict(getattr(stats, "errors", {}) or {}))

    def _errors_seen(self, errors: dict[str, str]) -> None:
        if errors != self.errors:
            self.errors = errors
            self.errors_changed.emit(dict(errors))

    def title(self, node: str) -> str:
        if node == START:
            return "Could not start"
        if node in self.doc.root.nodes:
            inst = self.doc.root.nodes[node]
            cls = self.executor.scope(self.doc.root).get(inst.type)
            return inst.title or (cls.title if cls is not None and cls.title else node)
        return node

    # ---- edits while it runs ---------------------------------------------------------------

    def _watch_graph(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = self.doc.graph.subscribe(self._on_graph_event)

    def _on_graph_event(self, event: str, payload: dict[str, Any]) -> None:
        if self.phase in ("starting", "running"):
            self._edit_timer.start()

    def _send_graph(self) -> None:
        session = self.session
        if session is None or self.phase not in ("starting", "running"):
            return
        session.update_graph(self.doc.snapshot())
        self.updates_sent += 1
        if self.watch is not None:
            self.set_watched(self.watch[0], self.watch[1])  # its input may have been rewired

    def _on_reset(self) -> None:
        """Another graph was opened: the session of the last one stops."""
        self._watch_graph()
        self.stop()

    # ---- the watched node's values ---------------------------------------------------------

    def set_watched(self, node: str | None, port: str | None = None) -> None:
        """Send the newest value of ``node`` (its ``port``, else its first previewable one;
        a node without outputs: the value it receives) to ``live_value`` after every tick."""
        if node is None or node not in self.doc.root.nodes:
            self.watch = None
            return
        cls = self.executor.scope(self.doc.root).get(self.doc.root.nodes[node].type)
        upstream = None
        if cls is not None and not cls.outputs:
            order = [i.name for i in cls.inputs]
            edges = sorted(
                (e for e in self.doc.root.edges if e.dst == node),
                key=lambda e: order.index(e.dst_port) if e.dst_port in order else len(order),
            )
            upstream = (edges[0].src, edges[0].src_port) if edges else None
        self.watch = (node, port, upstream)

    def _tick_from_worker(self, tick: Any, result: Any) -> None:
        """On the model thread after every tick: the watched node's newest value."""
        watch = self.watch
        if watch is None:
            return
        node, port, upstream = watch
        outs = result.values.get(node)
        value = None
        if outs:
            if port is not None:
                value = outs.get(port)
            else:
                value = next((v for v in outs.values() if isinstance(v, LIVE_PREVIEW_TYPES)), None)
        elif upstream is not None:
            value = result.values.get(upstream[0], {}).get(upstream[1])
        if isinstance(value, LIVE_PREVIEW_TYPES):
            self.values.put(node, value)

    def _value_arrived(self, node: str) -> None:
        value = self.values.take(node)
        if value is not None and self.phase != "stopped":
            self.live_value.emit(node, value)

    # ---- windows ----------------------------------------------------------------------------

    def _show_frame(self, node: str) -> None:
        frame = self.frames.take(node)
        if frame is None or node in self._hidden:
            return
        window = self.windows.get(node)
        if window is None:
            window = self._open_window(node)
        window.show_frame(frame)

    def _open_window(self, node: str) -> LiveWindow:
        window = LiveWindow(node, self.title(node), self.window)
        window.closed.connect(self._window_closed)
        self.windows[node] = window
        inst = self.doc.root.nodes.get(node)
        params = inst.params if inst is not None else {}
        window.show()
        if params.get("fullscreen"):
            window.full_screen(self.screen_for(int(params.get("screen", 0) or 0)))
        return window

    def screen_for(self, index: int) -> QScreen | None:
        """Screen ``index`` as a window node counts them: 0 the studio's, 1 the first other
        one (a second monitor), and so on; one that is not there: another screen if any."""
        main = self.window.screen()
        if index <= 0:
            return main
        others = [s for s in QGuiApplication.screens() if s is not main]
        return others[index - 1] if index <= len(others) else other_screen(main)

    def _window_closed(self, node: str) -> None:
        """A window the user closed stays closed for this session (Show Windows reopens)."""
        self._hidden.add(node)

    def show_windows(self) -> None:
        for node, window in self.windows.items():
            self._hidden.discard(node)
            window.show()
            window.raise_()
