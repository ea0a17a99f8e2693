"""The executor: runs only what the requested outputs need, in dependency order, through the cache.

Cache key = node type + node version + canonical parameters + upstream keys (never the instance
id), so unchanged subgraphs never re-run and one changed parameter re-runs exactly what is
downstream of it. Cached outputs stop the walk upstream: their ancestors are not even visited.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import traceback
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from engine.cache import OutputCache
from engine.context import CancelToken, NodeContext, RunOptions, derive_seed
from engine.device import DeviceInfo, pick_device
from engine.errors import Cancelled, GraphInvalid, NodeError, Problem
from engine.events import Event, Listener
from engine.graph import Edge, Graph
from engine.models import ModelManager
from engine.node import Node
from engine.provenance import HashCache, canonical_json
from engine.registry import Registry, default_registry
from engine.subgraph import Scope, flatten
from engine.types import PortType, Scalar, Seed, convert
from engine.validate import bypass_source, check_params, validate

#: Statuses a node can end a run with.
STATUSES = ("executed", "cached", "failed", "skipped", "muted", "bypassed", "cancelled",
            "not_needed")


@dataclass
class NodeRecord:
    node: str
    type: str
    version: int
    status: str = "not_needed"
    seconds: float = 0.0
    key: str = ""
    files: list[str] = field(default_factory=list)
    error: str | None = None
    traceback: str | None = None
    seed: int | None = None
    model_files: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = {"node": self.node, "type": self.type, "version": self.version,
             "status": self.status, "seconds": round(self.seconds, 6), "outputs": self.files}
        if self.error:
            d["error"] = self.error
        if self.seed is not None:
            d["seed"] = self.seed
        if self.model_files:
            d["model_files"] = self.model_files
        if self.details:
            d["details"] = self.details
        return d


@dataclass
class Plan:
    """A validated, flattened graph ready to run; building it writes nothing."""

    graph: Graph
    classes: dict[str, type[Node]]
    params: dict[str, dict[str, Any]]
    targets: list[str]
    needed: list[str]
    options: RunOptions


@dataclass
class RunResult:
    records: dict[str, NodeRecord]
    values: dict[str, dict[str, Any]]
    cancelled: bool = False
    seconds: float = 0.0
    device: DeviceInfo | None = None

    def by_status(self, status: str) -> list[str]:
        return [n for n, r in self.records.items() if r.status == status]

    @property
    def executed(self) -> list[str]:
        return self.by_status("executed")

    @property
    def cached(self) -> list[str]:
        return self.by_status("cached")

    @property
    def failed(self) -> list[str]:
        return self.by_status("failed")

    @property
    def ok(self) -> bool:
        return not self.failed and not self.cancelled

    def output(self, node: str, port: str) -> Any:
        return self.values[node][port]

    def files(self) -> list[str]:
        return [f for r in self.records.values() for f in r.files]


class Executor:
    """Holds the cache between runs (the GUI's live mode and re-renders rely on it)."""

    def __init__(self, registry: Registry | None = None, cache: OutputCache | None = None,
                 max_workers: int = 1, library: Any = None) -> None:
        self.registry = registry or default_registry()
        self.cache = cache if cache is not None else OutputCache()
        self.max_workers = max(1, int(max_workers))
        if library is None:
            from engine.graphfile import SubgraphLibrary

            library = SubgraphLibrary(registry=self.registry)
        self.library = library
        self.hash_cache = HashCache()
        self.models = ModelManager()
        self._file_records: dict[str, tuple[list[str], dict[str, str]]] = {}

    # ---- planning --------------------------------------------------------------------------

    def scope(self, graph: Graph) -> Scope:
        return Scope(self.registry, graph.subgraphs, library=self.library)

    def plan(self, graph: Graph, targets: list[str] | None = None,
             options: RunOptions | None = None, check: bool = True) -> Plan:
        """Validate everything and run each needed node's pre-flight check; raise all problems."""
        options = options or RunOptions()
        scope = self.scope(graph)
        flat = flatten(graph, scope)
        problems = flat.meta["_problems"] + validate(flat, scope.get)
        if problems:
            raise GraphInvalid(problems)
        classes = {nid: scope.get(inst.type) for nid, inst in flat.nodes.items()}
        params = {nid: check_params(nid, classes[nid], inst.params)[0]  # type: ignore[arg-type]
                  for nid, inst in flat.nodes.items()}
        chosen = self._targets(flat, classes, targets)
        needed_set = flat.ancestors(chosen)
        needed = flat.topological_order(needed_set)
        if check:
            problems = []
            for nid in needed:
                inst = flat.nodes[nid]
                if inst.mute or inst.bypass:
                    continue
                ctx = NodeContext(nid, options, None)
                try:
                    problems.extend(classes[nid].check(params[nid], ctx))  # type: ignore[union-attr]
                except Exception as exc:  # noqa: BLE001 - a plugin's buggy check is a problem
                    problems.append(Problem(f"its pre-flight check crashed: {exc!r}", nid, None,
                                            "report this to the node's author"))
            if problems:
                raise GraphInvalid(problems, "The render cannot start")
        return Plan(flat, classes, params, chosen, needed, options)  # type: ignore[arg-type]

    @staticmethod
    def _targets(flat: Graph, classes: dict[str, Any], targets: list[str] | None) -> list[str]:
        if targets:
            out, bad = [], []
            for t in targets:
                if t in flat.nodes:
                    out.append(t)
                    continue
                inner = [n for n in flat.nodes if n.startswith(t + "/")]
                (out.extend(inner) if inner else bad.append(t))
            if bad:
                raise GraphInvalid([Problem(f"no node '{b}' to render.", b, None,
                                            "name a node id from the graph") for b in bad])
            return out
        outs = [n for n, c in classes.items() if c is not None and c.is_output]
        if outs:
            return outs
        sources = {e.src for e in flat.edges}
        return [n for n in flat.nodes if n not in sources]

    # ---- running ---------------------------------------------------------------------------

    def call(self, type_id: str, inputs: dict[str, Any] | None = None,
             params: dict[str, Any] | None = None, options: RunOptions | None = None,
             node_id: str = "node") -> dict[str, Any]:
        """Run one node on given values, outside any graph: for scripts, tests and the GUI's
        quick previews. Parameters are validated and outputs checked exactly as in a run."""
        cls = self.registry.get(type_id)
        if cls is None:
            raise GraphInvalid([Problem(f"unknown node type '{type_id}'.", node_id)])
        values, problems = check_params(node_id, cls, params or {})
        given = dict(inputs or {})
        for name in given:
            if cls.input(name) is None:
                problems.append(Problem(f"'{type_id}' has no input '{name}'.", node_id, name))
        for inp in cls.inputs:
            if inp.name not in given and not inp.optional:
                problems.append(Problem(f"required input '{inp.name}' is missing.", node_id,
                                        inp.name, f"pass a {inp.type.type_id}"))
        if problems:
            raise GraphInvalid(problems)
        opts = options or RunOptions(device="cpu")
        ctx = NodeContext(node_id, opts, None, seed=derive_seed(opts.seed, node_id),
                          model_hashes=self.hash_cache, models=self.models)
        outs = cls().run(ctx, **values, **given)
        return _Run.check_outputs(node_id, cls, outs)

    def run(self, graph: Graph | Plan, targets: list[str] | None = None,
            options: RunOptions | None = None, listener: Listener | None = None,
            cancel: CancelToken | None = None) -> RunResult:
        plan = graph if isinstance(graph, Plan) else self.plan(graph, targets, options)
        return _Run(self, plan, listener, cancel or CancelToken()).execute()


def _has_seed_param(cls: type[Node]) -> bool:
    """Whether the node's seed is its own ``seed`` parameter rather than derived from its id."""
    spec = cls.param("seed")
    return spec is not None and issubclass(spec.type, Seed)


class _Run:
    """One execution of a plan; all per-run state lives here so the Executor stays reusable."""

    def __init__(self, ex: Executor, plan: Plan, listener: Listener | None,
                 cancel: CancelToken) -> None:
        self.ex = ex
        self.plan = plan
        self.emit = listener or (lambda e: None)
        self.cancel = cancel
        self.g = plan.graph
        self.nonce = uuid.uuid4().hex
        self.incoming: dict[str, list[Edge]] = {n: [] for n in plan.needed}
        for e in self.g.edges:
            if e.dst in self.incoming:
                self.incoming[e.dst].append(e)
        self.keys: dict[str, str] = {}
        self.values: dict[str, dict[str, Any]] = {}
        self.records: dict[str, NodeRecord] = {}
        self.device: DeviceInfo | None = None
        self.lock = threading.Lock()
        self.serial_lock = threading.Lock()

    # ---- keys ------------------------------------------------------------------------------

    def compute_keys(self) -> None:
        opts = self.plan.options
        for nid in self.plan.needed:
            cls = self.plan.classes[nid]
            inst = self.g.nodes[nid]
            ups = [(e.dst_port, self.keys.get(e.src, ""), e.src_port) for e in self.incoming[nid]]
            parts: list[Any] = [cls.type_id, cls.version, self.plan.params[nid],
                                self.cache_extra(nid, cls), ups, inst.bypass, inst.mute]
            if not cls.cacheable:
                parts.append(self.nonce)
            if cls.is_output:
                parts += [str(opts.output_dir), opts.frames, opts.graph_json is not None]
            if not _has_seed_param(cls):
                parts.append(opts.seed)
                if cls.seeded:
                    parts.append(nid)  # its seed is derive_seed(run seed, node id)
            text = canonical_json(parts)
            self.keys[nid] = hashlib.sha256(text.encode()).hexdigest()

    def cache_extra(self, nid: str, cls: type[Node]) -> str:
        """A node's own key material (a file's mtime...). If that hook crashes, the node is
        treated as uncacheable: its run reports any real problem, against the right node."""
        if cls.cache_extra.__func__ is Node.cache_extra.__func__:  # type: ignore[attr-defined]
            return ""
        try:
            return str(cls.cache_extra(self.plan.params[nid], NodeContext(nid, self.plan.options,
                                                                          None)))
        except Exception:  # noqa: BLE001 - a plugin's bug must not stop the whole run
            return f"uncacheable:{self.nonce}"

    def node_seed(self, nid: str) -> int:
        if _has_seed_param(self.plan.classes[nid]):
            return int(self.plan.params[nid]["seed"])
        return derive_seed(self.plan.options.seed, nid)

    # ---- the walk --------------------------------------------------------------------------

    def select(self) -> list[str]:
        """Nodes to actually execute: walk back from targets, stopping at cached outputs."""
        to_run: set[str] = set()
        visited: set[str] = set()
        stack = list(self.plan.targets)
        cache = self.ex.cache
        while stack:
            nid = stack.pop()
            if nid in visited:
                continue
            visited.add(nid)
            inst = self.g.nodes[nid]
            if inst.mute:
                self.records[nid].status = "muted"
                continue
            hit = None if inst.bypass else cache.get(self.keys[nid])
            if hit is not None and self._files_missing(self.keys[nid]):
                hit = None  # an output file was deleted or moved since: write it again
            if hit is not None:
                self.values[nid] = hit
                rec = self.records[nid]
                rec.status = "cached"
                rec.files, rec.model_files = self.ex._file_records.get(self.keys[nid], ([], {}))
                self.emit(Event("node_cached", nid))
                continue
            to_run.add(nid)
            stack.extend(e.src for e in self.incoming[nid])
        # Ancestors of a cached result were not visited; those still cached say so.
        for nid in self.plan.needed:
            rec = self.records[nid]
            if rec.status == "not_needed" and nid not in to_run and self.keys[nid] in cache:
                rec.status = "cached"
                rec.files, rec.model_files = self.ex._file_records.get(self.keys[nid], ([], {}))
                self.emit(Event("node_cached", nid))
        return [n for n in self.plan.needed if n in to_run]

    def _files_missing(self, key: str) -> bool:
        """Whether a cached result's written files are missing on disk."""
        files = self.ex._file_records.get(key, ([], {}))[0]
        return any(not os.path.exists(f) for f in files)

    def execute(self) -> RunResult:
        t0 = time.perf_counter()
        for nid in self.plan.needed:
            cls = self.plan.classes[nid]
            self.records[nid] = NodeRecord(nid, cls.type_id, cls.version)
        self.emit(Event("run_started"))
        self.compute_keys()
        order = self.select()
        for nid in order:
            self.emit(Event("node_queued", nid))
        if self.ex.max_workers > 1 and len(order) > 1:
            self.run_parallel(order)
        else:
            for nid in order:
                if self.cancel.cancelled:
                    break
                self.run_node(nid)
        cancelled = self.cancel.cancelled
        for nid in order:
            if self.records[nid].status == "not_needed" and cancelled:
                self.records[nid].status = "cancelled"
        result = RunResult(self.records, self.values, cancelled, time.perf_counter() - t0,
                           self.device)
        self.emit(Event("run_finished", seconds=result.seconds,
                        message="cancelled" if cancelled else ""))
        return result

    def run_parallel(self, order: list[str]) -> None:
        deps = {n: {e.src for e in self.incoming[n] if e.src in order} for n in order}
        users: dict[str, list[str]] = {n: [] for n in order}
        for n, ds in deps.items():
            for d in ds:
                users[d].append(n)
        ready = [n for n in order if not deps[n]]
        running: dict[Future[None], str] = {}
        with ThreadPoolExecutor(self.ex.max_workers, thread_name_prefix="fathom-node") as pool:
            while ready or running:
                while ready and not self.cancel.cancelled:
                    n = ready.pop(0)
                    running[pool.submit(self.run_node, n)] = n
                if not running:
                    break
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    n = running.pop(fut)
                    fut.result()
                    for u in users[n]:
                        deps[u].discard(n)
                        if not deps[u]:
                            ready.append(u)

    # ---- one node --------------------------------------------------------------------------

    def gather(self, nid: str) -> tuple[dict[str, Any] | None, str]:
        """Input values by port, or None and the reason this node cannot run."""
        cls = self.plan.classes[nid]
        values: dict[str, Any] = {}
        for inp in cls.inputs:
            edges = [e for e in self.incoming[nid] if e.dst_port == inp.name]
            got = []
            for e in edges:
                src_vals = self.values.get(e.src)
                if src_vals is None or src_vals.get(e.src_port) is None:
                    status = self.records[e.src].status
                    if inp.optional and status in ("muted", "bypassed"):
                        continue
                    return None, f"input '{inp.name}' has no value: '{e.src}' is {status}"
                src_type = self.plan.classes[e.src].output(e.src_port).type.type_id  # type: ignore[union-attr]
                got.append(convert(src_vals[e.src_port], src_type, inp.type.type_id))
            if inp.multi:
                values[inp.name] = got
            else:
                values[inp.name] = got[0] if got else None
        return values, ""

    def run_node(self, nid: str) -> None:
        rec = self.records[nid]
        cls = self.plan.classes[nid]
        inst = self.g.nodes[nid]
        inputs, why = self.gather(nid)
        if inputs is None:
            rec.status, rec.error = "skipped", why
            self.emit(Event("node_skipped", nid, message=why))
            return
        if inst.bypass:
            fed = [p for p, v in inputs.items() if v is not None]
            outs = {}
            for o in cls.outputs:
                src = bypass_source(cls, o.type.type_id, fed)
                outs[o.name] = inputs[src] if src else None
            self.values[nid] = outs
            rec.status = "bypassed"
            self.emit(Event("node_finished", nid, message="bypassed"))
            return
        rec.seed = self.node_seed(nid)
        if self.device is None and self.plan.options.device == "cpu":
            self.device = DeviceInfo("cpu")
        ctx = NodeContext(nid, self.plan.options, self.device, self.emit, self.cancel, rec.seed,
                          self.ex.hash_cache, self.ex.models)
        self.emit(Event("node_started", nid))
        t0 = time.perf_counter()
        try:
            if cls.thread_safe:
                outs = cls().run(ctx, **self.plan.params[nid], **inputs)
            else:
                with self.serial_lock:
                    outs = cls().run(ctx, **self.plan.params[nid], **inputs)
            outs = self.check_outputs(nid, cls, outs)
        except Cancelled as exc:
            rec.status, rec.error = "cancelled", str(exc)
            rec.seconds = time.perf_counter() - t0
            self.cancel.cancel()
            return
        except NodeError as exc:
            self.fail(rec, str(exc.with_node(nid)), t0, None)
            return
        except Exception as exc:  # noqa: BLE001 - a node's bug must not kill the run
            msg = f"node '{nid}' ({cls.type_id}) failed: {type(exc).__name__}: {exc}"
            self.fail(rec, msg, t0, traceback.format_exc())
            return
        finally:
            if ctx._device is not None and self.device is None:
                self.device = ctx._device
            rec.details = dict(ctx.details)
        rec.seconds = time.perf_counter() - t0
        rec.status = "executed"
        rec.files = list(ctx.files)
        rec.model_files = dict(ctx.model_files)
        self.values[nid] = outs
        self.ex.cache.put(self.keys[nid], outs)
        if rec.files or rec.model_files:
            self.ex._file_records[self.keys[nid]] = (rec.files, rec.model_files)
        self.emit(Event("node_finished", nid, seconds=rec.seconds))

    def fail(self, rec: NodeRecord, message: str, t0: float, tb: str | None) -> None:
        rec.status, rec.error, rec.traceback = "failed", message, tb
        rec.seconds = time.perf_counter() - t0
        self.emit(Event("node_failed", rec.node, message=message, seconds=rec.seconds))

    @staticmethod
    def check_outputs(nid: str, cls: type[Node], outs: Any) -> dict[str, Any]:
        """A node that returns the wrong thing fails itself, not the node downstream of it."""
        if not isinstance(outs, dict):
            raise NodeError(f"run() returned {type(outs).__name__}, not a dict of outputs", nid)
        for o in cls.outputs:
            if o.name not in outs:
                raise NodeError("run() did not return this output", nid, o.name)
            v = outs[o.name]
            if issubclass(o.type, Scalar):
                outs[o.name] = o.type.coerce(v)
            elif o.type.type_id != "any" and not isinstance(v, o.type):
                raise NodeError(f"output should be {o.type.type_id}, got {type(v).__name__}",
                                nid, o.name)
        return outs


__all__ = ["Executor", "NodeRecord", "Plan", "RunResult", "RunOptions", "PortType",
           "pick_device"]
