"""A live session: capture threads, one model thread cooking the graph per frame, output threads.

The contract every node relies on: each tick, a live source outputs an ordinary ``Video`` of one
frame (the newest captured), so any node that takes a Video works live unchanged; ``ctx.state``
is a per-node dict kept across the ticks of one session; ``ctx.live`` is the ``LiveTick`` being
cooked. Ticks go through the ordinary ``Executor`` (validation, caching, error reporting are
the engine's); a node failing in one tick is reported and the next tick goes on.

Frame accounting: every frame a primary source captures ends as exactly one of out (the
primary output wrote it), dropped (pushed out of a full input or output queue: the model or
the output fell behind and the newest frame won) or failed (its tick produced nothing for the
primary output). The primary source and output are the first in the graph's order.
"""

from __future__ import annotations

import logging
import statistics
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fathom.engine.cache import OutputCache
from fathom.engine.context import CancelToken, NodeContext, RunOptions
from fathom.engine.errors import GraphInvalid, NodeError, Problem
from fathom.engine.graph import Graph
from fathom.engine.live.capture import Capture
from fathom.engine.live.queues import NewestQueue
from fathom.engine.live.sinks import CallbackSink, CountingSink, RecordSink, Sink
from fathom.engine.types import Image, Video

log = logging.getLogger("fathom.live")

#: How long a thread waits on an empty queue before looking at the stop flag again.
POLL_S = 0.05


@dataclass
class LiveOptions:
    """How a live session runs (the graph says what it computes)."""

    run: RunOptions = field(default_factory=RunOptions)
    #: Stop by itself after this many seconds (None: until ``stop`` or the source ends).
    seconds: float | None = None
    #: Frames waiting for the model (1: only the newest, as StreamDiffusion keeps it).
    input_queue: int = 1
    #: Frames waiting for each output.
    output_queue: int = 2
    #: The output cache's budget: each tick's results are new entries, the oldest make way.
    cache_bytes: int = 256 * 1024**2
    #: Headless only (no ``on_frame``): live.window frames are recorded here as
    #: ``<node id>.mp4``; None: they are counted, and the log and report say nobody saw them.
    window_dir: Path | None = None
    #: Cook the first frame (model loading, first-call set-up) before capture threads and
    #: the clock start: ``seconds``, fps and latency then describe the running stream, and the
    #: report gives the warm-up's time apart (``warmup_s``).
    warmup: bool = True


@dataclass
class CapturedFrame:
    """One frame from a source: pixels H×W×3 float32 in [0, 1] and when it was captured."""

    pixels: np.ndarray
    captured_at: float
    index: int
    fps: float
    source: str


@dataclass
class _Emitted:
    tick: int
    captured_at: float
    frames: list[np.ndarray]
    key: Any
    opener: Callable[[], Sink]


class LiveTick:
    """What ``ctx.live`` holds while a tick is cooked: which frame, when it was captured, the
    sources' frames, and where outputs hand their frames to their threads."""

    def __init__(
        self,
        session: LiveSession,
        tick: int,
        frames: dict[str, CapturedFrame],
        primary: str,
    ) -> None:
        self._session = session
        self.session_id = session.session_id
        self.tick = tick
        self.frames = frames
        self.captured_at = frames[primary].captured_at
        self.frame_index = frames[primary].index
        self.emitted: set[str] = set()

    def frame(self, node_id: str) -> CapturedFrame:
        """The newest frame captured by source node ``node_id``."""
        got = self.frames.get(node_id)
        if got is None:
            raise NodeError("this source has no capture in the live session", node_id)
        return got

    def emit(self, node_id: str, video: Video, key: Any, opener: Callable[[], Sink]) -> None:
        """Queue ``video``'s frames for output node ``node_id``'s thread; ``opener`` makes its
        sink, again whenever ``key`` (the node's parameters) changes."""
        frames = [np.asarray(video.frame(i).data) for i in range(len(video))]
        self.emitted.add(node_id)
        self._session._emit(node_id, _Emitted(self.tick, self.captured_at, frames, key, opener))

    def show(self, node_id: str, video: Video) -> None:
        """Queue ``video``'s frames for a preview window (the session's ``on_frame``)."""
        self.emit(node_id, video, "window", lambda: self._session._window_sink(node_id))


@dataclass
class LiveStats:
    """A session's numbers so far (fps over the last two seconds)."""

    frames_in: int = 0
    frames_out: int = 0
    frames_dropped: int = 0
    frames_failed: int = 0
    fps_in: float = 0.0
    fps_out: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=lambda: {"median": 0.0, "p95": 0.0})
    running: bool = False
    error: str | None = None
    #: The newest error message of each node that has failed so far (the studio lists them).
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class LiveReport:
    """A finished session: totals, average fps, latency, and what went wrong per node."""

    seconds: float
    frames_in: int
    frames_out: int
    frames_dropped: int
    frames_failed: int
    fps: float
    fps_in: float
    latency_ms: dict[str, float]
    errors: dict[str, dict[str, Any]]
    notes: list[str]
    queue_peak: dict[str, int]
    warmup_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3),
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "frames_dropped": self.frames_dropped,
            "frames_failed": self.frames_failed,
            "fps": round(self.fps, 3),
            "fps_in": round(self.fps_in, 3),
            "latency_ms": {k: round(v, 2) for k, v in self.latency_ms.items()},
            "errors": self.errors,
            "notes": self.notes,
            "queue_peak": self.queue_peak,
            "warmup_s": round(self.warmup_s, 3),
        }


class _Source:
    def __init__(self, node_id: str, capture: Capture, params: dict[str, Any], size: int) -> None:
        self.node_id = node_id
        self.capture = capture
        self.params = params
        self.queue: NewestQueue[CapturedFrame] = NewestQueue(size)
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.latest: CapturedFrame | None = None
        self.frames_in = 0
        self.next_index = 0


class _Output:
    def __init__(self, node_id: str, size: int, primary: bool) -> None:
        self.node_id = node_id
        self.queue: NewestQueue[_Emitted] = NewestQueue(size)
        self.primary = primary
        self.thread: threading.Thread | None = None
        self.written = 0


class LiveCache(OutputCache):
    """The session's output cache: a byte budget and a cap on entries. Each tick's results are
    new entries, and a Video made of frames reports a nominal size, so the byte budget alone
    would let ticks pile up; results that do not change (a prompt's encoding) are read every
    tick and so stay the most recently used."""

    def __init__(self, max_bytes: int, max_entries: int = 64) -> None:
        super().__init__(max_bytes)
        self.max_entries = int(max_entries)

    def put(self, key: str, outputs: dict[str, Any]) -> None:
        super().put(key, outputs)
        with self._lock:
            while len(self._data) > self.max_entries:
                self._evict_oldest()


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def _rate(times: deque[float], window: float = 2.0) -> float:
    """Events per second over the last ``window`` seconds."""
    now = time.perf_counter()
    recent = [t for t in list(times) if now - t <= window]
    if len(recent) < 2:
        return 0.0
    span = max(now - recent[0], 1e-6)
    return (len(recent) - 1) / span


class LiveSession:
    """Runs a live graph: ``start``, then ``stop`` (or ``seconds`` in the options, or the end
    of a non-looping file) gives the ``LiveReport``. ``update_graph`` swaps in an edited graph
    on the next tick, keeping loaded models and node state. ``on_frame(node_id, Image)`` is
    called from an output thread for each frame a ``live.window`` node shows; ``on_stats``
    from the model thread after every tick."""

    def __init__(
        self,
        graph: Graph,
        options: LiveOptions | None = None,
        on_frame: Callable[[str, Image], None] | None = None,
        on_stats: Callable[[LiveStats], None] | None = None,
        executor: Any = None,
        on_tick: Callable[[LiveTick, Any], None] | None = None,
    ) -> None:
        from fathom.engine.executor import Executor

        self.graph = graph.copy()
        self.options = options or LiveOptions()
        self.on_frame = on_frame
        self.on_stats = on_stats
        #: Called from the model thread after each tick with the tick and its ``RunResult``
        #: (the studio's previews show a node's newest value from it).
        self.on_tick = on_tick
        # Its own executor and cache (see LiveCache); a given executor lends its registry,
        # library and loaded models, so the studio's models are not loaded twice.
        cache = LiveCache(self.options.cache_bytes)
        if executor is None:
            self.executor = Executor(cache=cache)
        else:
            self.executor = Executor(executor.registry, cache, library=executor.library)
            self.executor.models, self.executor.hash_cache = executor.models, executor.hash_cache
        self.session_id = uuid.uuid4().hex[:12]
        self.states: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._cancel = CancelToken()
        self._pending: Graph | None = None
        self._plan: Any = None
        self._sources: dict[str, _Source] = {}
        self._outputs: dict[str, _Output] = {}
        self._primary_output: str | None = None
        self._model: threading.Thread | None = None
        self._t0 = 0.0
        self._t1: float | None = None
        self._started = 0.0
        self._torch_threads = 0
        self._warm_ticks = 0  # ticks before the clock started: not in the latency
        self._capturing = False
        self._ticks = 0
        self._dropped_out = 0
        self._retired_in = 0  # frames taken by primary sources since replaced
        self._failed = 0
        self._out_plain = 0  # ticks of a graph without live outputs
        self._latency: deque[float] = deque(maxlen=100_000)
        self._in_times: deque[float] = deque(maxlen=512)
        self._out_times: deque[float] = deque(maxlen=512)
        self._errors: dict[str, dict[str, Any]] = {}
        self._notes: list[str] = []
        self._last_error: str | None = None

    # ---- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Plan the graph and open every source (raising GraphInvalid or a NodeError that names
        the node, e.g. a missing camera), then start the threads."""
        if self._model is not None:
            raise RuntimeError("a live session starts once")
        self._plan = self.executor.plan(self.graph, None, self.options.run)
        self._sync_sources(self._plan)
        if not self._sources:
            raise GraphInvalid(
                [Problem("a live graph needs a live source.", fix="add live.file or live.camera")],
                "The live session cannot start",
            )
        self._pick_primary_output(self._plan)
        torch = sys.modules.get("torch")  # loaded by then if any node computes with it
        self._torch_threads = torch.get_num_threads() if torch is not None else 0
        self._started = self._t0 = time.perf_counter()
        self._model = threading.Thread(target=self._model_loop, name="fathom-live-model")
        self._model.daemon = True
        self._model.start()

    def stop(self) -> LiveReport:
        """Stop capturing, finish the frames already taken, close outputs; the report."""
        self._stop_sources()
        self.wait()
        return self.report()

    def request_stop(self) -> None:
        """Ask the session to stop without waiting (a GUI thread must not block on the frame
        being cooked); ``running`` turns False when it has, then ``stop`` returns at once."""
        self._stop_sources()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the session to end by itself (``seconds``, a source's end); True if it did."""
        if self._model is not None:
            self._model.join(timeout)
            return not self._model.is_alive()
        return True

    @property
    def running(self) -> bool:
        return self._model is not None and self._model.is_alive()

    def update_graph(self, graph: Graph) -> None:
        """Use ``graph`` from the next tick on (parameters, prompts, even new nodes); models
        and the state of nodes that stay are kept. An invalid graph is reported and skipped."""
        with self._lock:
            self._pending = graph.copy()

    # ---- sources -------------------------------------------------------------------------------

    def _sync_sources(self, plan: Any) -> None:
        """Open the plan's live sources, reopening any whose parameters changed."""
        wanted = {
            nid: plan.params[nid]
            for nid in plan.needed
            if getattr(plan.classes[nid], "live_source", False)
            and not (plan.graph.nodes[nid].mute or plan.graph.nodes[nid].bypass)
        }
        primary = self._primary_source()
        for nid in [n for n in self._sources if wanted.get(n) != self._sources[n].params]:
            src = self._sources.pop(nid)
            self._close_source(src, src is primary)
        for nid, params in wanted.items():
            if nid in self._sources:
                continue
            cls = plan.classes[nid]
            ctx = NodeContext(nid, self.options.run, None)
            capture = cls.open_capture(ctx, **params)
            src = _Source(nid, capture, dict(params), self.options.input_queue)
            self._sources[nid] = src
            if self._capturing:
                self._start_capture(src)

    def _start_capture(self, src: _Source) -> None:
        src.thread = threading.Thread(
            target=self._capture_loop, args=(src,), name=f"fathom-live-capture-{src.node_id}"
        )
        src.thread.daemon = True
        src.thread.start()

    def _close_source(self, src: _Source, primary: bool) -> None:
        src.stop.set()
        if src.thread is not None:
            src.thread.join(5.0)
        else:
            src.capture.close()
        left = len(src.queue.drain())  # frames of a source taken away are never cooked
        if primary:  # its frames stay in the session's totals
            with self._lock:
                self._retired_in += src.frames_in
                self._dropped_out += left + src.queue.dropped

    def _primary_source(self) -> _Source | None:
        return next(iter(self._sources.values()), None)

    def _capture_loop(self, src: _Source) -> None:
        index = src.next_index
        try:
            while not src.stop.is_set():
                pixels = src.capture.read()
                if pixels is None:
                    break
                now = time.perf_counter()
                with self._lock:
                    src.frames_in += 1
                    if src is self._primary_source():
                        self._in_times.append(now)
                src.queue.put(CapturedFrame(pixels, now, index, src.capture.fps, src.node_id))
                index += 1
        except Exception as exc:  # noqa: BLE001 - a lost device ends this source, reported
            self._note_error(src.node_id, f"node '{src.node_id}': capture failed: {exc}")
        finally:
            src.queue.close()
            try:
                src.capture.close()
            except Exception:  # noqa: BLE001 - closing a dead device may fail too
                pass

    # ---- the model thread ---------------------------------------------------------------------

    def _next_frames(self) -> dict[str, CapturedFrame] | None:
        """The primary source's next frame with the newest of every other source; None when
        the primary source has ended and its queue is empty."""
        while True:
            primary = self._primary_source()
            if primary is None:
                return None
            got = primary.queue.get(POLL_S)
            if got is not None:
                break
            if primary.queue.closed and not len(primary.queue):
                return None
            if self._pending is not None:
                self._apply_update()
        frames = {primary.node_id: got}
        for src in list(self._sources.values())[1:]:
            for item in src.queue.drain():
                src.latest = item
            while src.latest is None and not src.queue.closed:
                src.latest = src.queue.get(POLL_S)
            if src.latest is not None:
                frames[src.node_id] = src.latest
        return frames

    def _warm_up(self) -> None:
        """Cook one frame from each source, read here, before the clock starts."""
        frames: dict[str, CapturedFrame] = {}
        for src in list(self._sources.values()):
            pixels = src.capture.read()
            if pixels is None:
                return  # an empty source: the loop ends the session
            frames[src.node_id] = CapturedFrame(
                pixels, time.perf_counter(), 0, src.capture.fps, src.node_id
            )
            src.frames_in, src.next_index, src.latest = 1, 1, frames[src.node_id]
        self._cook(frames)
        self._warm_ticks = self._ticks
        for src in list(self._sources.values()):
            src.capture.resync()

    def _begin(self) -> None:
        """Start the clock, the capture threads and the ``seconds`` timer."""
        self._t0 = time.perf_counter()
        self._capturing = True
        for src in list(self._sources.values()):
            self._start_capture(src)
        if self.options.seconds is not None:
            timer = threading.Timer(self.options.seconds, self._stop_sources)
            timer.daemon = True
            timer.start()

    def _stop_sources(self) -> None:
        self._stop.set()
        for src in list(self._sources.values()):
            src.stop.set()

    def _model_loop(self) -> None:
        # The model thread computes with as many intra-op threads as the thread that started
        # the session (a new thread's OpenMP team otherwise follows its own defaults).
        torch = sys.modules.get("torch")
        if torch is not None and self._torch_threads:
            torch.set_num_threads(self._torch_threads)
        try:
            if self.options.warmup:
                self._warm_up()
            if not self._stop.is_set():
                self._begin()
            else:
                for src in list(self._sources.values()):
                    src.queue.close()
            while True:
                if self._time_up():
                    self._stop_sources()
                frames = self._next_frames()
                if frames is None:
                    break
                self._apply_update()
                self._cook(frames)
                if self.on_stats is not None:
                    self.on_stats(self.stats())
        except Exception as exc:  # the session ends, and says why
            self._note_error("session", f"the live session stopped: {type(exc).__name__}: {exc}")
            log.exception("live session failed")
        finally:
            self._finish()

    def _time_up(self) -> bool:
        s = self.options.seconds
        return s is not None and time.perf_counter() - self._t0 >= s

    def _cook(self, frames: dict[str, CapturedFrame]) -> None:
        primary = next(iter(frames))
        tick = LiveTick(self, self._ticks, frames, primary)
        self._ticks += 1
        result = self.executor.run(self._plan, live=tick, states=self.states, cancel=self._cancel)
        if self.on_tick is not None:
            self.on_tick(tick, result)
        for rec in result.records.values():
            if rec.status == "failed":
                self._note_error(rec.node, rec.error or f"node '{rec.node}' failed")
        with self._lock:
            if self._primary_output is None:
                self._out_plain += 1
                self._out_times.append(time.perf_counter())
                if self._capturing:
                    self._latency.append(time.perf_counter() - tick.captured_at)
            elif self._primary_output not in tick.emitted:
                self._failed += 1

    def _apply_update(self) -> None:
        with self._lock:
            graph, self._pending = self._pending, None
        if graph is None:
            return
        try:
            plan = self.executor.plan(graph, None, self.options.run)
            self._sync_sources(plan)
        except (GraphInvalid, NodeError) as exc:
            self._note_error("graph", f"the edited graph was not applied: {exc}")
            return
        self.graph, self._plan = graph, plan
        self._pick_primary_output(plan)
        self._clear_error("graph")

    def _pick_primary_output(self, plan: Any) -> None:
        outs = [n for n in plan.needed if getattr(plan.classes[n], "live_output", False)]
        self._primary_output = outs[0] if outs else None
        for nid, out in self._outputs.items():
            out.primary = nid == self._primary_output

    def _finish(self) -> None:
        """Drain and close the outputs, close the sources and what nodes kept."""
        for src in list(self._sources.values()):
            src.stop.set()
        for out in list(self._outputs.values()):
            out.queue.close()
        for out in list(self._outputs.values()):
            if out.thread is not None:
                out.thread.join()
        for src in list(self._sources.values()):
            if src.thread is not None:
                src.thread.join(5.0)
            else:
                src.capture.close()
            with self._lock:  # frames captured after the last tick was taken
                self._dropped_out += len(src.queue.drain()) if src is self._primary_source() else 0
        # A node's state may hold a ``close`` callable: called once, when the session ends.
        for nid, state in self.states.items():
            closer = state.get("close")
            if callable(closer):
                try:
                    closer()
                except Exception as exc:  # noqa: BLE001 - report, and close the others
                    self._note_error(nid, f"node '{nid}': closing its live state failed: {exc}")
            state.clear()  # what it held (a pipeline, a writer) is let go with the session
        self._t1 = time.perf_counter()

    # ---- outputs -------------------------------------------------------------------------------

    def _emit(self, node_id: str, item: _Emitted) -> None:
        out = self._outputs.get(node_id)
        if out is None:
            out = _Output(node_id, self.options.output_queue, node_id == self._primary_output)
            out.thread = threading.Thread(
                target=self._output_loop, args=(out,), name=f"fathom-live-output-{node_id}"
            )
            out.thread.daemon = True
            self._outputs[node_id] = out
            out.thread.start()
        if out.queue.put(item) is not None and out.primary:
            with self._lock:
                self._dropped_out += 1

    def _output_loop(self, out: _Output) -> None:
        sink: Sink | None = None
        key: Any = None
        try:
            while True:
                item = out.queue.get(POLL_S)
                if item is None:
                    if out.queue.closed:
                        break
                    continue
                try:
                    if sink is None or item.key != key:
                        if sink is not None:
                            sink.close()
                        sink, key = None, item.key
                        sink = item.opener()
                    for frame in item.frames:
                        sink.write(frame, item.captured_at)
                except Exception as exc:  # noqa: BLE001 - reported; the next frame tries again
                    self._note_error(out.node_id, f"node '{out.node_id}': {exc}")
                    with self._lock:
                        self._failed += 1 if out.primary else 0
                    continue
                now = time.perf_counter()
                with self._lock:
                    out.written += 1
                    if out.primary:
                        self._out_times.append(now)
                        if item.tick >= self._warm_ticks:
                            self._latency.append(now - item.captured_at)
        finally:
            if sink is not None:
                try:
                    sink.close()
                except Exception as exc:  # noqa: BLE001 - a file that did not finish: say so
                    self._note_error(out.node_id, f"node '{out.node_id}': closing failed: {exc}")

    def _window_sink(self, node_id: str) -> Sink:
        if self.on_frame is not None:
            return CallbackSink(node_id, self.on_frame)
        if self.options.window_dir is not None:
            path = self.options.window_dir / f"{node_id.replace('/', '_')}.mp4"
            self._note(f"live.window '{node_id}': no window headless; frames recorded to {path}")
            return RecordSink(path)
        self._note(
            f"live.window '{node_id}': no window is shown in a headless session; its frames "
            "are counted, not shown (give --out DIR to record them)"
        )
        return CountingSink()

    # ---- numbers -------------------------------------------------------------------------------

    def _note(self, text: str) -> None:
        with self._lock:
            if text not in self._notes:
                self._notes.append(text)
        log.warning(text)

    def _note_error(self, node: str, message: str) -> None:
        with self._lock:
            entry = self._errors.setdefault(node, {"count": 0, "last": ""})
            entry["count"] += 1
            entry["last"] = message
            self._last_error = message
        if entry["count"] == 1:
            log.error(message)

    def _clear_error(self, node: str) -> None:
        """An error that no longer holds goes: an edited graph was refused, and a later edit
        that fixed it has been applied. Left in place, the studio's panel would show the fixed
        problem for the rest of the session, and the user could not tell the fix took."""
        with self._lock:
            entry = self._errors.pop(node, None)
            if entry is not None and self._last_error == entry["last"]:
                self._last_error = None

    def _frames_out(self) -> int:
        out = self._outputs.get(self._primary_output or "")
        return out.written if out is not None else self._out_plain

    def _frames_in(self) -> int:
        src = self._primary_source()
        return self._retired_in + (src.frames_in if src is not None else 0)

    def _dropped(self) -> int:
        src = self._primary_source()
        return self._dropped_out + (src.queue.dropped if src is not None else 0)

    def stats(self) -> LiveStats:
        with self._lock:
            lat = [v * 1000 for v in self._latency]
            return LiveStats(
                frames_in=self._frames_in(),
                frames_out=self._frames_out(),
                frames_dropped=self._dropped(),
                frames_failed=self._failed,
                fps_in=_rate(self._in_times),
                fps_out=_rate(self._out_times),
                latency_ms={"median": _percentile(lat, 50), "p95": _percentile(lat, 95)},
                running=self.running,
                error=self._last_error,
                errors={k: str(v["last"]) for k, v in self._errors.items()},
            )

    def report(self) -> LiveReport:
        end = self._t1 if self._t1 is not None else time.perf_counter()
        seconds = max(end - self._t0, 1e-9)
        with self._lock:
            lat = [v * 1000 for v in self._latency]
            peaks = {n: s.queue.peak for n, s in self._sources.items()}
            peaks.update({n: o.queue.peak for n, o in self._outputs.items()})
            return LiveReport(
                seconds=seconds,
                frames_in=self._frames_in(),
                frames_out=self._frames_out(),
                frames_dropped=self._dropped(),
                frames_failed=self._failed,
                fps=self._frames_out() / seconds,
                fps_in=self._frames_in() / seconds,
                latency_ms={
                    "median": statistics.median(lat) if lat else 0.0,
                    "p95": _percentile(lat, 95),
                },
                errors={k: dict(v) for k, v in self._errors.items()},
                notes=list(self._notes),
                queue_peak=peaks,
                warmup_s=self._t0 - self._started,
            )
