"""The executor: runs only what the requested outputs need, in dependency order, through the cache.

Cache key = node type + node version + canonical parameters + upstream keys (never the instance
id), so unchanged subgraphs never re-run and one changed parameter re-runs exactly what is
downstream of it. Cached outputs stop the walk upstream: their ancestors are not even visited.
"""

from __future__ import annotations

import copy
import hashlib
import operator
import os
import threading
import time
import traceback
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextvars import copy_context
from dataclasses import dataclass, field, replace
from itertools import chain
from typing import Any

from fathom.engine.cache import OutputCache
from fathom.engine.context import (
    CancelToken,
    NodeContext,
    RunOptions,
    cancelled_message,
    derive_seed,
    node_running,
)
from fathom.engine.device import DeviceInfo, pick_device
from fathom.engine.errors import Cancelled, GraphInvalid, NodeError, Problem
from fathom.engine.events import Event, Listener
from fathom.engine.graph import Edge, Graph, NodeInstance, SubgraphDef, subgraph_type_id
from fathom.engine.models import ModelManager
from fathom.engine.node import Node, Output, Param
from fathom.engine.provenance import HashCache, canonical_json
from fathom.engine.registry import Registry, default_registry
from fathom.engine.subgraph import Scope, flatten, is_subgraph_type
from fathom.engine.types import CONVERSIONS, PortType, Scalar, Seed, String, convert
from fathom.engine.validate import bypass_source, check_params, validate

#: Statuses a node can end a run with.
STATUSES = (
    "executed",
    "cached",
    "failed",
    "skipped",
    "muted",
    "bypassed",
    "cancelled",
    "not_needed",
)


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
        d = {
            "node": self.node,
            "type": self.type,
            "version": self.version,
            "status": self.status,
            "seconds": round(self.seconds, 6),
            "outputs": self.files,
        }
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
    #: How the graph's type ids resolved (its subgraph definitions, the library): nodes that run
    #: subgraphs themselves (video.map) find them through it.
    scope: Scope | None = None
    # Worked out on a plan's first run and reused by later runs of the same plan (a kept plan
    # runs many times); ``dataclasses.replace`` starts a copy without them.
    _incoming: dict[str, list[Edge]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _checked: list[str] | None = field(default=None, init=False, repr=False, compare=False)
    _volatile: frozenset[str] | None = field(default=None, init=False, repr=False, compare=False)
    _keys: _KeyMemo | None = field(default=None, init=False, repr=False, compare=False)

    def with_options(self, options: RunOptions) -> Plan:
        """The same plan for other run options, keeping what its runs worked out: all of
        it depends on the graph alone, and the key memo checks the options it was made for."""
        plan = replace(self, options=options)
        plan._incoming, plan._checked = self._incoming, self._checked
        plan._volatile, plan._keys = self._volatile, self._keys
        return plan

    def incoming(self) -> dict[str, list[Edge]]:
        """Edges into each needed node, in edge order (the order of a multi input's values)."""
        if self._incoming is None:
            incoming: dict[str, list[Edge]] = {n: [] for n in self.needed}
            for e in self.graph.edges:
                if e.dst in incoming:
                    incoming[e.dst].append(e)
            self._incoming = incoming
        return self._incoming

    def checked_nodes(self) -> list[str]:
        """Needed nodes whose pre-flight check can find something (neither muted nor
        bypassed); most nodes have none, and then no context is built for them."""
        if self._checked is None:
            has = {cls: cls.has_preflight() for cls in set(self.classes.values())}
            self._checked = [
                nid
                for nid in self.needed
                if has[self.classes[nid]]
                and not (self.graph.nodes[nid].mute or self.graph.nodes[nid].bypass)
            ]
        return self._checked

    def volatile_nodes(self) -> frozenset[str]:
        """Needed nodes whose cache key can change between runs of this plan: nodes that read
        the world (input files, ``cache_extra``), uncacheable ones, and everything below
        them. Every other key is a function of the plan and a few run options."""
        if self._volatile is None:
            incoming = self.incoming()
            reads = {c: not c.cacheable or c.has_cache_key() for c in set(self.classes.values())}
            out: set[str] = set()
            for nid in self.needed:  # topological: upstream nodes are decided first
                if reads[self.classes[nid]] or any(e.src in out for e in incoming[nid]):
                    out.add(nid)
            self._volatile = frozenset(out)
        return self._volatile


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

    def __init__(
        self,
        registry: Registry | None = None,
        cache: OutputCache | None = None,
        max_workers: int = 1,
        library: Any = None,
    ) -> None:
        self.registry = registry or default_registry()
        self.cache = cache if cache is not None else OutputCache()
        self.max_workers = max(1, int(max_workers))
        if library is None:
            from fathom.engine.graphfile import SubgraphLibrary

            library = SubgraphLibrary(registry=self.registry)
        self.library = library
        self.hash_cache = HashCache()
        self.models = ModelManager()
        self._file_records: dict[str, tuple[list[str], dict[str, str]]] = {}
        self._plans = _PlanCache(self)
        #: (library, subgraph name) -> the stamp of its files when last read.
        self._library_stamps: dict[tuple[int, str], Any] = {}

    @property
    def plans_built(self) -> int:
        """How many plans were worked out from a graph (not found kept): for tests and tools."""
        return self._plans.built

    # ---- planning --------------------------------------------------------------------------

    def scope(self, graph: Graph) -> Scope:
        """How ``graph``'s type ids resolve: the registry, its subgraphs, then the library."""
        return Scope(self.registry, graph.subgraphs, library=self.library_def)

    def plan(
        self,
        graph: Graph,
        targets: list[str] | None = None,
        options: RunOptions | None = None,
        check: bool = True,
        scope: Scope | None = None,
    ) -> Plan:
        """Validate everything and run each needed node's pre-flight check; raise all problems.

        Flattening, validation, parameter checks and the order depend on the graph alone, so
        they are kept per graph content (see ``_PlanCache``): re-rendering an unchanged graph
        skips them. The pre-flight checks run every time, because files change between renders
        while the graph does not. ``scope`` replaces the graph's own (a SubgraphRunner plans
        with extra feed types); such a plan is never kept."""
        options = options or RunOptions()
        if scope is not None:
            plan = self._build(graph, targets, options, scope)
        else:
            live = _GraphState.read(graph)
            kept = self._plans.find(live, targets, options) if live is not None else None
            plan = kept or self._plan_and_keep(graph, live, targets, options)
        if check:
            self.preflight(plan)
        return plan

    def _plan_and_keep(
        self,
        graph: Graph,
        live: _GraphState | None,
        targets: list[str] | None,
        options: RunOptions,
    ) -> Plan:
        """Plan afresh and keep the result with what it was read from."""
        # Copy the graph's state before planning: an edit made in between then makes the kept
        # state differ from the graph next time (a needless re-plan), never a stale plan.
        state = live.frozen() if live is not None else None
        files = _LibraryFiles(self)
        # A copy of the definitions dict: a kept plan must not see later edits of this graph.
        scope = Scope(self.registry, dict(graph.subgraphs), library=files)
        plan = self._build(graph, targets, options, scope)
        self._plans.keep(state, targets, plan, files)
        return plan

    def _build(
        self, graph: Graph, targets: list[str] | None, options: RunOptions, scope: Scope
    ) -> Plan:
        """The work that depends on the graph alone: flatten, validate, check parameters,
        choose targets, order what they need."""
        flat = flatten(graph, scope)
        problems = flat.meta["_problems"] + validate(flat, scope.get)
        if problems:
            raise GraphInvalid(problems)
        classes: dict[str, type[Node]] = {}
        for nid, inst in flat.nodes.items():
            cls = scope.get(inst.type)
            assert cls is not None  # validate() refused unknown types
            classes[nid] = cls
        params = {
            nid: check_params(nid, classes[nid], inst.params)[0] for nid, inst in flat.nodes.items()
        }
        chosen = self._targets(flat, classes, targets)
        needed_set = flat.ancestors(chosen)
        needed = flat.topological_order(needed_set)
        with self._plans.lock:
            self._plans.built += 1
        return Plan(flat, classes, params, chosen, needed, options, scope)

    def preflight(self, plan: Plan) -> None:
        """Run the pre-flight checks of the needed nodes that have one (input files exist,
        output folders are writable, the node's own check); raise every problem at once.

        ``plan`` runs them on every render, a kept plan too: a file may be deleted between two
        renders of an unchanged graph."""
        nodes = plan.checked_nodes()
        if not nodes:
            return  # most nodes have nothing to check: no context to build
        problems: list[Problem] = []
        runner = SubgraphRunner(self, plan.scope or self.scope(Graph()), plan.options)
        for nid in nodes:
            problems.extend(node_preflight(nid, plan.classes[nid], plan.params[nid], runner))
        if problems:
            raise GraphInvalid(problems, "The render cannot start")

    def library_def(self, name: str) -> SubgraphDef | None:
        """A subgraph definition from the user's library, read again when its file changed on
        disk since this executor last looked (the library itself keeps what it read)."""
        return self._library_def(name, _library_stamp(self.library, name))

    def _library_def(self, name: str, stamp: Any) -> SubgraphDef | None:
        """``library_def`` with the stamp already taken (a plan notes the same stamp)."""
        lib = self.library
        if lib is None:
            return None
        slot = (id(lib), name)
        with self._plans.lock:
            known = self._library_stamps.get(slot, _UNSEEN)
            self._library_stamps[slot] = stamp
        if known != stamp:
            # First look, or the file changed: what the library kept may be older than the
            # stamp just taken (another user of the same library read it earlier).
            _forget_library_def(lib, name)
        return lib(name)

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
                raise GraphInvalid(
                    [
                        Problem(
                            f"no node '{b}' to render.", b, None, "name a node id from the graph"
                        )
                        for b in bad
                    ]
                )
            return out
        outs = [n for n, c in classes.items() if c is not None and c.is_output]
        if outs:
            return outs
        sources = {e.src for e in flat.edges}
        return [n for n in flat.nodes if n not in sources]

    # ---- running ---------------------------------------------------------------------------

    def call(
        self,
        type_id: str,
        inputs: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        options: RunOptions | None = None,
        node_id: str = "node",
    ) -> dict[str, Any]:
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
                problems.append(
                    Problem(
                        f"required input '{inp.name}' is missing.",
                        node_id,
                        inp.name,
                        f"pass a {inp.type.type_id}",
                    )
                )
        if problems:
            raise GraphInvalid(problems)
        opts = options or RunOptions(device="cpu")
        ctx = NodeContext(
            node_id,
            opts,
            None,
            seed=derive_seed(opts.seed, node_id),
            model_hashes=self.hash_cache,
            models=self.models,
        )
        ctx.subgraphs = SubgraphRunner(self, self.scope(Graph()), opts)
        outs = cls().run(ctx, **values, **given)
        return _Run.check_outputs(node_id, cls, outs)

    def run(
        self,
        graph: Graph | Plan,
        targets: list[str] | None = None,
        options: RunOptions | None = None,
        listener: Listener | None = None,
        cancel: CancelToken | None = None,
        live: Any = None,
        states: dict[str, dict[str, Any]] | None = None,
    ) -> RunResult:
        """``live`` and ``states``: a live session's tick (``ctx.live``) and its per-node
        state dicts (``ctx.state``, made on first use and kept in ``states`` across ticks)."""
        plan = graph if isinstance(graph, Plan) else self.plan(graph, targets, options)
        run = _Run(self, plan, listener, cancel or CancelToken())
        run.live, run.states = live, states
        return run.execute()


def _has_seed_param(cls: type[Node]) -> bool:
    """Whether the node's seed is its own ``seed`` parameter rather than derived from its id."""
    spec = cls.param("seed")
    return spec is not None and issubclass(spec.type, Seed)


# ---- kept plans -------------------------------------------------------------------------------

#: Plans an executor keeps: the graph being edited and re-rendered, a few batch rows, the
#: pruned graph the editor renders around an invalid corner.
PLAN_CACHE_SIZE = 8
#: Parameter values that cannot change in place: kept as they are, compared by identity first.
_ATOMS = frozenset((str, int, float, bool, type(None)))
_UNSEEN = object()


@dataclass
class _KeyMemo:
    """A plan's cache keys from earlier runs, valid for one set of key-relevant options."""

    options: tuple[Any, ...]
    #: Keys that only the plan and these options decide.
    fixed: dict[str, str] = field(default_factory=dict)
    #: A volatile node's last material (its own extra, upstream keys) and the key it gave.
    varying: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)


def _frozen_params(params: dict[str, Any]) -> dict[str, Any]:
    """A copy that later edits cannot reach: atoms are shared (they cannot change), anything
    else is copied deep, so appending to a list parameter in place still reads as a change."""
    if all(type(v) in _ATOMS for v in params.values()):
        return dict(params)
    return copy.deepcopy(params)


def _same_value(a: Any, b: Any) -> bool:
    """Equal and of the same type all the way down. Python has ``1 == 1.0 == True``, but an
    int parameter accepts 1 and refuses True: a plan checked for one is not the other's."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(_same_value, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_value(v, b[k]) for k, v in a.items())
    return bool(a == b)


def _same_params(live: dict[str, Any], kept: dict[str, Any]) -> bool:
    """One node's parameters, the same names with the same values by ``_same_value``."""
    if len(live) != len(kept):
        return False
    # The usual case, in two C loops: the same names in the same order, each value the very
    # object kept (atoms are shared by the copy kept and by Graph.copy alike).
    if all(map(operator.is_, live.values(), kept.values())) and all(map(operator.eq, live, kept)):
        return True
    return live.keys() == kept.keys() and all(_same_value(v, kept[k]) for k, v in live.items())


def _def_fields(d: SubgraphDef) -> tuple[Any, ...]:
    """A definition's own fields (its graph is compared apart); lists become tuples, so a
    later edit of the definition cannot reach the copy kept."""
    return (d.name, tuple(d.inputs), tuple(d.outputs), tuple(d.params), d.doc, d.version)


class _GraphState:
    """What planning reads from a graph, to tell whether a later graph plans the same.

    A revision counter cannot answer that: the editor plans a fresh copy of its graph for
    every run, and code edits ``nodes[...].params`` in place (render overrides, undo). So
    the content is compared: node ids, types, parameters, flags and titles in order, edges
    in order, subgraph definitions recursively. Editor data (positions) is not part of it.
    ``read`` takes a live view (parameters are the graph's own dicts), cheap enough for
    every plan call; ``frozen`` is the copy a kept plan holds.
    """

    __slots__ = ("edges", "names", "nodes", "params", "subgraphs", "values")

    def __init__(
        self,
        nodes: list[tuple[Any, ...]],
        params: list[dict[str, Any]],
        edges: list[Edge],
        subgraphs: list[tuple[str, tuple[Any, ...], _GraphState]],
        names: list[str] | None = None,
        values: list[Any] | None = None,
    ) -> None:
        self.nodes = nodes
        self.params = params
        self.edges = edges
        self.subgraphs = subgraphs
        # Every parameter name and value in order, for the usual "all the same objects" test.
        self.names = list(chain.from_iterable(params)) if names is None else names
        self.values = (
            list(chain.from_iterable(map(dict.values, params))) if values is None else values
        )

    @classmethod
    def read(cls, graph: Graph, _within: tuple[int, ...] = ()) -> _GraphState | None:
        """The graph's state now; None for a definition that holds its own graph (flattening
        reports that; such a graph is planned every time)."""
        subgraphs = []
        path = (*_within, id(graph))
        for name, d in graph.subgraphs.items():
            inner = None if id(d.graph) in path else cls.read(d.graph, path)
            if inner is None:
                return None
            subgraphs.append((name, _def_fields(d), inner))
        return cls(
            [
                (nid, i.id, i.type, i.bypass, i.mute, i.title, i.version)
                for nid, i in graph.nodes.items()
            ],
            [i.params for i in graph.nodes.values()],
            list(graph.edges),
            subgraphs,
        )

    def frozen(self) -> _GraphState | None:
        """A copy that later edits of the graph cannot reach; None when a parameter value
        cannot be copied (that graph is then planned every time)."""
        subgraphs = [(n, fields, state.frozen()) for n, fields, state in self.subgraphs]
        if any(state is None for _, _, state in subgraphs):
            return None
        if all(map(_ATOMS.__contains__, map(type, self.values))):
            # The usual case: shallow copies, holding the very same names and values.
            params = list(map(dict, self.params))
            return _GraphState(
                self.nodes,
                params,
                self.edges,
                subgraphs,  # type: ignore[arg-type]
                self.names,
                self.values,
            )
        try:
            params = [_frozen_params(p) for p in self.params]
        except Exception:  # noqa: BLE001 - any value may sit in a parameter; planning reports it
            return None
        return _GraphState(self.nodes, params, self.edges, subgraphs)  # type: ignore[arg-type]

    def same(self, live: _GraphState) -> bool:
        """Whether ``live`` (a graph read now) holds what this kept state holds. The cheap,
        C-level comparisons come first and stop at the first difference."""
        # Parameters first: a changed value is the usual difference, found at its node.
        if live.params != self.params or live.nodes != self.nodes or live.edges != self.edges:
            return False
        # Equal is not enough (1 == 1.0 == True); the very same values are, and that is the
        # usual case (atoms are shared by the copy kept and by Graph.copy alike).
        identical = live.names == self.names and all(map(operator.is_, live.values, self.values))
        if not (identical or all(map(_same_params, live.params, self.params))):
            return False
        if len(live.subgraphs) != len(self.subgraphs):
            return False
        return all(
            name == kept_name and fields == kept_fields and kept.same(state)
            for (name, fields, state), (kept_name, kept_fields, kept) in zip(
                live.subgraphs, self.subgraphs, strict=True
            )
        )


def _library_stamp(library: Any, name: str) -> Any:
    """The identity of the files that may hold library subgraph ``name``, from the library's
    ``stamp``; a library that is a plain function has no files to watch: None."""
    stamp = getattr(library, "stamp", None)
    return stamp(name) if callable(stamp) else None


def _forget_library_def(library: Any, name: str) -> None:
    """Make the library read ``name`` again on its next lookup."""
    forget = getattr(library, "forget", None)
    if callable(forget):
        forget(name)


class _LibraryFiles:
    """The library lookup of one plan: finds definitions as ``Executor.library_def`` does and
    notes the stamp of each name's files, so the kept plan is dropped when one changes."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
        self.stamps: dict[str, Any] = {}

    def __call__(self, name: str) -> SubgraphDef | None:
        stamp = _library_stamp(self.ex.library, name)
        self.stamps.setdefault(name, stamp)
        return self.ex._library_def(name, stamp)


@dataclass
class _Kept:
    """One kept plan and everything its validity depends on besides run options."""

    state: _GraphState
    targets: tuple[str, ...] | None
    registry: Any
    library: Any
    #: The registry types the plan's nodes resolved to.
    types: tuple[tuple[str, type[Node]], ...]
    #: The library subgraphs it used and the stamps of their files.
    library_files: tuple[tuple[str, Any], ...]
    conversions: int
    plan: Plan


class _PlanCache:
    """An executor's kept plans, most recently used first.

    A plan is reused when the graph has the same content (``_GraphState``), the targets are
    the same, the executor has the same registry and library, every type still resolves to
    the same class, and no library file it used changed. Run options are not part of that:
    a plan for other options shares the graph-only work, in a new Plan object.
    """

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
        self.lock = threading.Lock()
        self.kept: list[_Kept] = []
        self.built = 0
        self.reused = 0

    def find(
        self, live: _GraphState, targets: list[str] | None, options: RunOptions
    ) -> Plan | None:
        """The kept plan for a graph read as ``live``, in a Plan for ``options``; else None."""
        wanted = tuple(targets) if targets else None
        with self.lock:
            candidates = list(self.kept)
        for kept in candidates:
            if kept.targets != wanted:
                continue
            try:
                same = kept.state.same(live)
            except Exception:  # noqa: BLE001 - a value that cannot be compared: plan afresh
                same = False
            if not (same and self._valid(kept)):
                continue
            plan = kept.plan
            if not _same_options(plan.options, options):
                plan = kept.plan = plan.with_options(options)
            with self.lock:
                self.reused += 1
                if kept in self.kept:
                    self.kept.remove(kept)
                    self.kept.insert(0, kept)
            return plan
        return None

    def _valid(self, kept: _Kept) -> bool:
        """Whether what the plan resolved still resolves the same: registry, library, types,
        conversions and library files (a few dict look-ups and one stat per library file)."""
        ex = self.ex
        if kept.registry is not ex.registry or kept.library is not ex.library:
            return False
        if kept.conversions != len(CONVERSIONS):
            return False
        get = ex.registry.get
        if not all(get(t) is cls for t, cls in kept.types):
            return False
        return all(_library_stamp(ex.library, n) == s for n, s in kept.library_files)

    def keep(
        self,
        state: _GraphState | None,
        targets: list[str] | None,
        plan: Plan,
        files: _LibraryFiles,
    ) -> None:
        """Keep a new plan first, dropping the least recently used past PLAN_CACHE_SIZE."""
        if state is None:
            return
        types = dict(
            zip([i.type for i in plan.graph.nodes.values()], plan.classes.values(), strict=True)
        )
        for t in [t for t in types if is_subgraph_type(t)]:
            del types[t]  # resolved by definition: the graph state and library stamps cover it
        kept = _Kept(
            state,
            tuple(targets) if targets else None,
            self.ex.registry,
            self.ex.library,
            tuple(types.items()),
            tuple(files.stamps.items()),
            len(CONVERSIONS),
            plan,
        )
        with self.lock:
            self.kept.insert(0, kept)
            del self.kept[PLAN_CACHE_SIZE:]


def _same_options(a: RunOptions, b: RunOptions) -> bool:
    """Whether a kept Plan object can be handed out as it is for options ``b``."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - ``extra`` may hold values that refuse comparison
        return False


class _Run:
    """One execution of a plan; all per-run state lives here so the Executor stays reusable."""

    def __init__(
        self, ex: Executor, plan: Plan, listener: Listener | None, cancel: CancelToken
    ) -> None:
        self.ex = ex
        self.plan = plan
        self.emit = listener or (lambda e: None)
        # Per-node events of a run that finds everything cached are most of its cost when
        # nobody listens (scripts, batch rows): those are not even built then.
        self.listening = listener is not None
        self.contexts: list[NodeContext] = []
        self.cancel = cancel
        self.g = plan.graph
        self.nonce = uuid.uuid4().hex
        self.incoming = plan.incoming()
        self.keys: dict[str, str] = {}
        self.values: dict[str, dict[str, Any]] = {}
        self.records: dict[str, NodeRecord] = {}
        self.device: DeviceInfo | None = None
        self.lock = threading.Lock()
        self.serial_lock = threading.Lock()
        #: A live session's tick and per-node state dicts (None in an ordinary render).
        self.live: Any = None
        self.states: dict[str, dict[str, Any]] | None = None

    # ---- keys ------------------------------------------------------------------------------

    def compute_keys(self) -> None:
        """Every needed node's key. Most keys are the same on every run of a plan (same
        parameters, same options, same keys upstream), so they are hashed once per plan and
        reused; a volatile node's key is hashed again when its own material or an upstream
        key changed (a file's mtime, an uncacheable node's per-run nonce)."""
        opts = self.plan.options
        memo = self.plan._keys
        sig = (opts.seed, str(opts.output_dir), opts.frames, opts.graph_json is not None)
        if memo is None or memo.options != sig:
            memo = self.plan._keys = _KeyMemo(sig)
        volatile = self.plan.volatile_nodes()
        for nid in self.plan.needed:
            if nid not in volatile:
                key = memo.fixed.get(nid)
                if key is None:
                    key = memo.fixed[nid] = self.node_key(nid, "")
                self.keys[nid] = key
                continue
            cls = self.plan.classes[nid]
            extra = self.cache_extra(nid, cls)
            material = (extra, *[self.keys.get(e.src, "") for e in self.incoming[nid]])
            kept = memo.varying.get(nid)
            if kept is not None and kept[0] == material and cls.cacheable:
                self.keys[nid] = kept[1]
                continue
            self.keys[nid] = self.node_key(nid, extra)
            memo.varying[nid] = (material, self.keys[nid])

    def node_key(self, nid: str, extra: str) -> str:
        """Node type + version + canonical parameters + its own material + upstream keys."""
        opts = self.plan.options
        cls = self.plan.classes[nid]
        inst = self.g.nodes[nid]
        ups = [(e.dst_port, self.keys.get(e.src, ""), e.src_port) for e in self.incoming[nid]]
        parts: list[Any] = [
            cls.type_id,
            cls.version,
            cls.key_params(self.plan.params[nid]),
            extra,
            ups,
            inst.bypass,
            inst.mute,
        ]
        if not cls.cacheable:
            parts.append(self.nonce)
        if cls.is_output:
            parts += [str(opts.output_dir), opts.frames, opts.graph_json is not None]
        if not _has_seed_param(cls):
            parts.append(opts.seed)
            if cls.seeded:
                parts.append(nid)  # its seed is derive_seed(run seed, node id)
        text = canonical_json(parts)
        return hashlib.sha256(text.encode()).hexdigest()

    def cache_extra(self, nid: str, cls: type[Node]) -> str:
        """A node's own key material (a file's mtime...). If that hook crashes, the node is
        treated as uncacheable: its run reports any real problem, against the right node."""
        if not cls.has_cache_key():
            return ""
        ctx = NodeContext(nid, self.plan.options, None, live=self.live)
        ctx.subgraphs = self.subgraph_runner()
        try:
            return str(cls.cache_key(self.plan.params[nid], ctx))
        except Exception:  # noqa: BLE001 - a plugin's bug must not stop the whole run
            return f"uncacheable:{self.nonce}"

    def subgraph_runner(self) -> SubgraphRunner:
        scope = self.plan.scope or self.ex.scope(Graph())
        return SubgraphRunner(self.ex, scope, self.plan.options, self.cancel)

    def input_keys(self, nid: str) -> dict[str, str]:
        """Each input port's identity: the upstream keys and ports feeding it, in edge order."""
        out: dict[str, str] = {}
        for e in self.incoming[nid]:
            part = f"{self.keys.get(e.src, '')}:{e.src_port}"
            out[e.dst_port] = f"{out[e.dst_port]}+{part}" if e.dst_port in out else part
        return out

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
                if self.listening:
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
                if self.listening:
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
        if self.listening:
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
        self.ex.cache.trim()  # spill files grew as the run's readers pulled frames
        result = RunResult(
            self.records, self.values, cancelled, time.perf_counter() - t0, self.device
        )
        self.emit(
            Event("run_finished", seconds=result.seconds, message="cancelled" if cancelled else "")
        )
        for ctx in self.contexts:
            ctx.end_run()
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
                    # The context goes along: a node run nested in a node's run keeps
                    # working for that node (see node_running).
                    running[pool.submit(copy_context().run, self.run_node, n)] = n
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
        ctx = NodeContext(
            nid,
            self.plan.options,
            self.device,
            self.emit,
            self.cancel,
            rec.seed,
            self.ex.hash_cache,
            self.ex.models,
            state=None if self.states is None else self.states.setdefault(nid, {}),
            live=self.live,
        )
        self.contexts.append(ctx)
        ctx.input_keys = self.input_keys(nid)
        ctx.subgraphs = self.subgraph_runner()
        self.emit(Event("node_started", nid))
        t0 = time.perf_counter()
        try:
            # Marked as running for the lazy outputs upstream that it reads: their frames'
            # progress and cancels name this node, the one doing the work.
            with node_running(nid):
                if cls.thread_safe:
                    outs = cls().run(ctx, **self.plan.params[nid], **inputs)
                else:
                    with self.serial_lock:
                        outs = cls().run(ctx, **self.plan.params[nid], **inputs)
            outs = self.check_outputs(nid, cls, outs)
        except Cancelled as exc:
            # Noticed in an upstream lazy output's code (exc.node), it is still this node's run.
            why = str(exc) if exc.node is None else cancelled_message(nid, exc.node)
            rec.status, rec.error = "cancelled", why
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
        if getattr(cls, "cache_outputs", True):
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
                raise NodeError(
                    f"output should be {o.type.type_id}, got {type(v).__name__}", nid, o.name
                )
        return outs


class _TypesWith:
    """A registry view that also knows a few extra node types (a prepared subgraph's feeds)."""

    def __init__(self, base: Any, extra: dict[str, type[Node]]) -> None:
        self.base = base
        self.extra = extra

    def get(self, type_id: str) -> type[Node] | None:
        return self.extra.get(type_id) or self.base.get(type_id)


def node_preflight(
    node_id: str, cls: type[Node], params: dict[str, Any], runner: SubgraphRunner
) -> list[Problem]:
    """One node's pre-flight check (``Node.preflight``) as a render runs it, in the context a
    render gives it: ``params`` as validation returned them, the runner's options and
    subgraphs. A check that crashes is a problem of that node, not an error of the caller."""
    ctx = NodeContext(node_id, runner.options, None)
    ctx.subgraphs = runner
    try:
        return list(cls.preflight(params, ctx))
    except Exception as exc:  # noqa: BLE001 - a plugin's buggy check is a problem
        return [
            Problem(
                f"its pre-flight check crashed: {exc!r}",
                node_id,
                None,
                "report this to the node's author",
            )
        ]


class SubgraphRunner:
    """Finds subgraph definitions the way the running graph does (its own, then the library) and
    runs them on given values through the executor and its cache.

    This is how a node applies a whole subgraph per item, e.g. video.map per frame: each call is
    a small run whose feed nodes are keyed by the caller's item key, so every inner node's result
    is cached per item exactly as if the item were an ordinary upstream value.
    """

    def __init__(
        self, ex: Executor, scope: Scope, options: RunOptions, cancel: CancelToken | None = None
    ) -> None:
        self.ex = ex
        self.scope = scope
        self.options = options
        self.cancel = cancel or CancelToken()

    def find(self, name: str) -> SubgraphDef | None:
        return self.scope.find_def(name)

    def node_class(self, name: str) -> type[Node] | None:
        """The subgraph as one node class: its exposed ports with their types."""
        return self.scope.get(subgraph_type_id(name))

    def prepare(
        self,
        name: str,
        feeds: dict[str, type[PortType]],
        output: str,
        node_id: str,
        params: dict[str, Any] | None = None,
    ) -> PreparedSubgraph:
        """Plan once: exposed inputs ``feeds`` (port → type) are fed per call, ``output`` is
        returned. Raises GraphInvalid naming the inner nodes when the plan is invalid."""
        values: dict[str, list[Any]] = {}
        lock = threading.Lock()
        extra = {
            f"engine.feed.{t.type_id}": _feed_class(t, values, lock) for t in set(feeds.values())
        }
        scope = Scope(_TypesWith(self.scope.registry, extra), {}, parent=self.scope)  # type: ignore[arg-type]
        g = Graph()
        g.nodes[node_id] = NodeInstance(node_id, subgraph_type_id(name), dict(params or {}))
        feed_ids: dict[str, str] = {}
        for port, t in feeds.items():
            fid = f"{node_id}:feed:{port}"
            g.nodes[fid] = NodeInstance(fid, f"engine.feed.{t.type_id}", {"key": ""})
            g.edges.append(Edge(fid, "value", node_id, port))
            feed_ids[port] = fid
        flat = flatten(g, scope)
        target = flat.meta["_outputs"].get((node_id, output))
        if target is None:
            raise GraphInvalid(
                [Problem(f"subgraph '{name}' has no output '{output}'.", node_id, output)]
            )
        plan = self.ex.plan(g, [target[0]], self.options, scope=scope)
        return PreparedSubgraph(self, plan, feed_ids, target, values, lock)


class PreparedSubgraph:
    """One planned subgraph; calling it with ``{port: (value, key)}`` runs it (or finds it in
    the cache) and returns the chosen output's value. A value may be a zero-argument callable
    producing it: it is called only if the feed runs, so cache hits skip that work."""

    def __init__(
        self,
        runner: SubgraphRunner,
        plan: Plan,
        feed_ids: dict[str, str],
        target: tuple[str, str],
        values: dict[str, list[Any]],
        lock: threading.Lock,
    ) -> None:
        self.runner = runner
        self.plan = plan
        self.feed_ids = feed_ids
        self.target = target
        self._values = values
        self._lock = lock

    def __call__(self, feeds: dict[str, tuple[Any, str]]) -> Any:
        params = dict(self.plan.params)
        with self._lock:
            for port, (value, key) in feeds.items():
                params[self.feed_ids[port]] = {"key": key}
                slot = self._values.setdefault(key, [value, 0])
                slot[1] += 1
        try:
            result = self.runner.ex.run(
                replace(self.plan, params=params), cancel=self.runner.cancel
            )
        finally:
            with self._lock:
                for _, key in feeds.values():
                    slot = self._values[key]
                    slot[1] -= 1
                    if slot[1] <= 0:
                        del self._values[key]
        if result.cancelled:
            raise Cancelled("cancelled while running a subgraph")
        for rec in result.records.values():
            if rec.status == "failed":
                # Its text already names the inner node (and port, fix); keep it as it is.
                err = NodeError(rec.error or f"node '{rec.node}' failed")
                err.node = rec.node
                raise err
        node, port = self.target
        if node not in result.values:
            why = result.records[node].error if node in result.records else "it did not run"
            raise NodeError(f"produced no output: {why}", node=node, port=port)
        return result.values[node][port]


def _feed_class(
    t: type[PortType], values: dict[str, list[Any]], lock: threading.Lock
) -> type[Node]:
    """A node that hands out the value its caller stored under the ``key`` parameter: the key
    is the value's identity, so caching below it works per value."""

    def run(self: Node, ctx: Any, key: str) -> dict[str, Any]:
        with lock:
            value = values[key][0]
        # A producer (e.g. a frame decoder) runs only when nothing below it was cached.
        return {"value": value() if callable(value) else value}

    # cache_outputs False: the fed value (a decoded frame) is the caller's, keeping it in the
    # cache would only double the memory the results below it take.
    attrs = {
        "type_id": f"engine.feed.{t.type_id}",
        "title": f"{t.type_id} fed by a node",
        "category": "engine",
        "outputs": (Output("value", t),),
        "params": (Param("key", String, ""),),
        "run": run,
        "cache_outputs": False,
    }
    return type(f"Feed_{t.type_id}", (Node,), attrs)


__all__ = [
    "Executor",
    "NodeRecord",
    "Plan",
    "PreparedSubgraph",
    "RunResult",
    "RunOptions",
    "PortType",
    "SubgraphRunner",
    "pick_device",
]
