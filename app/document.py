"""The open graph of one window: the engine's Graph, its file, its undo stack and editor data.

The engine's Graph emits plain events for nodes, edges, parameters and flags; editor-only data
(positions, groups, comments, reroutes, titles) has no engine events, so this wrapper emits Qt
signals for it. Every edit goes through ``app.commands`` so it can be undone.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from fathom.app.level_stack import LevelStack
from fathom.engine.graph import Graph, SubgraphDef
from fathom.engine.graphfile import SubgraphLibrary, to_document
from fathom.engine.node import Node
from fathom.engine.registry import Registry
from fathom.engine.subgraph import Scope

#: Editor lists stored under ``graph.ui`` (the schema's names), each entry a dict with an "id".
ENTRY_KINDS = ("groups", "comments", "reroutes")
#: The top level's editor key that holds each subgraph definition's editor data, by key.
INNER_UI = "subgraphs"
_PREFIX = {"groups": "g", "comments": "c", "reroutes": "r"}


class Document(QObject):
    """One graph, the file it came from, and the undo stack of its edits."""

    #: The graph object was replaced (new/open): views rebuild everything.
    reset = Signal()
    #: Editor data changed: (kind, id); kind is "nodes" (a position), "title" or an ENTRY_KIND.
    ui_changed = Signal(str, str)
    #: The file path (or the untitled state) changed.
    path_changed = Signal()
    #: Unsaved changes appeared or were saved (the window title's "*").
    modified_changed = Signal(bool)
    #: The editor went into or out of a subgraph: ``graph`` is now another level's graph.
    level_changed = Signal()
    #: The editor is about to leave the level ``trail`` names (views keep their place in it).
    level_leaving = Signal()

    def __init__(self, registry: Registry, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.registry = registry
        self.graph = Graph()
        #: The graph of the file; ``graph`` is the level the editor shows (this, or the inside
        #: of a subgraph definition). Saving and running always use the root.
        self.root = self.graph
        #: The subgraph levels the editor is inside, outermost first: (instance id, name).
        self.trail: list[tuple[str, str]] = []
        self.path: Path | None = None
        #: Where relative input paths resolve; the file's folder, or an example's for untitled.
        self.base_dir: Path = Path.cwd()
        self.undo_stack = LevelStack(self)
        self.undo_stack.cleanChanged.connect(self._clean_changed)
        self._dirty = False
        self._library = SubgraphLibrary(registry=registry)
        self._scope: Scope | None = None
        self._scope_graph: Graph | None = None

    # ---- the graph as a whole ----------------------------------------------------------------

    def set_graph(
        self, graph: Graph, path: Path | None = None, base_dir: Path | None = None
    ) -> None:
        """Replace the graph (new, open, restore); the undo history belongs to the old one."""
        self.graph = self.root = graph
        self.trail = []
        self.path = Path(path) if path is not None else None
        if base_dir is not None:
            self.base_dir = Path(base_dir)
        elif self.path is not None:
            self.base_dir = self.path.parent.resolve()
        self._scope = None
        self._dirty = False
        self.undo_stack.clear()
        self.reset.emit()
        self.path_changed.emit()

    def set_path(self, path: Path) -> None:
        self.path = Path(path)
        self.base_dir = self.path.parent.resolve()
        self.path_changed.emit()

    def _clean_changed(self, clean: bool) -> None:
        # The flag Qt passes, not a query of the stack: the stack sends its last change while
        # it is being destroyed, when asking it anything raises RuntimeError.
        self.modified_changed.emit(self._dirty or not clean)

    def close(self) -> None:
        """The window closes: the undo stack's last signals (sent while Qt destroys it, after
        a Discard left it unclean) must reach no one."""
        self.undo_stack.cleanChanged.disconnect(self._clean_changed)

    @property
    def modified(self) -> bool:
        return self._dirty or not self.undo_stack.isClean()

    def mark_dirty(self) -> None:
        """Unsaved without an undo step: a graph restored from a recovery file."""
        self._dirty = True
        self.modified_changed.emit(True)

    def mark_saved(self) -> None:
        self._dirty = False
        self.undo_stack.setClean()
        self.modified_changed.emit(False)

    def document(self) -> dict[str, Any]:
        """The graph-file JSON document: exactly what is saved and what ``fathom render`` reads."""
        return to_document(self.root, self.registry)

    def snapshot(self) -> Graph:
        """The whole graph (from the root) for a run. Definitions are copied too: the worker
        plans the run while the user may be editing a subgraph's inside."""
        return _run_copy(self.root)

    def node_snapshot(self, node_id: str) -> Graph:
        """One top-level node alone, with the definitions it may use, copied like ``snapshot``:
        what a worker needs to check that node while the user goes on editing."""
        one = Graph()
        one.nodes[node_id] = self.root.nodes[node_id]
        one.subgraphs = self.root.subgraphs
        return _run_copy(one)

    # ---- subgraph levels -----------------------------------------------------------------------

    def level_defs(self, trail: list[tuple[str, str]]) -> list[SubgraphDef] | None:
        """The definitions along ``trail``, each found as the engine's Scope finds it (the level's
        own graph, then the levels around it); None when one is gone."""
        found = self._resolve(trail)
        return [d for d, _ in found] if found is not None else None

    def _resolve(self, trail: list[tuple[str, str]]) -> list[tuple[SubgraphDef, str]] | None:
        """Each definition along ``trail`` with its key in ``INNER_UI``: the names of the
        definitions that hold it, then its own ("tone", "tone/flip")."""
        graphs, keys, found = [self.root], [""], []
        for _, name in trail:
            at = next((i for i in reversed(range(len(graphs))) if name in graphs[i].subgraphs), -1)
            if at < 0:
                return None
            d = graphs[at].subgraphs[name]
            found.append((d, keys[at] + name))
            graphs.append(d.graph)
            keys.append(keys[at] + name + "/")
        return found

    def inner_ui_key(self, name: str) -> str:
        """The ``INNER_UI`` key of definition ``name`` made at the level shown."""
        found = self._resolve(self.trail) or []
        return (found[-1][1] + "/" if found else "") + name

    def keep_inner_ui(self, d: SubgraphDef, key: str) -> None:
        """Keep ``d``'s editor data (positions, reroutes) with the top level's, which the file
        saves; definitions in a graph file carry none of their own."""
        store = self.root.ui.setdefault(INNER_UI, {})
        d.graph.ui = store.setdefault(key, d.graph.ui)

    def drop_inner_ui(self, key: str) -> None:
        store = self.root.ui.get(INNER_UI, {})
        store.pop(key, None)
        if not store:
            self.root.ui.pop(INNER_UI, None)

    def definition(self) -> SubgraphDef | None:
        """The definition whose inside the editor shows; None at the top level."""
        defs = self.level_defs(self.trail)
        return defs[-1] if defs else None

    def go_to(self, trail: list[tuple[str, str]]) -> bool:
        """Show the level ``trail`` names (``[]``: the top); False when it no longer exists."""
        trail = list(trail)
        if trail == self.trail:
            return True
        found = self._resolve(trail)
        if found is None:
            return False
        for d, key in found:
            self.keep_inner_ui(d, key)
        self.level_leaving.emit()
        self.trail = trail
        self.graph = found[-1][0].graph if found else self.root
        self._scope = None
        self.level_changed.emit()
        return True

    @property
    def library_folder(self) -> Path:
        """Where "Save to Library" writes: the first folder the library reads."""
        return Path(self._library.folders[0])

    def library_changed(self, name: str) -> None:
        """``name`` was written to the library folder: read it again when next used."""
        self._library.forget(name)
        self._scope = None

    def forget_scope(self) -> None:
        """A definition changed (added, removed, its exposed ports): resolve node types again."""
        self._scope = None

    # ---- node declarations ----------------------------------------------------------------

    def scope(self) -> Scope:
        """Resolves registry types and subgraphs (the graph's own and the user's library)."""
        if self._scope is None or self._scope_graph is not self.graph:
            scope = Scope(self.registry, self.root.subgraphs, library=self._library)
            for d in self.level_defs(self.trail) or []:
                scope = scope.child(d)  # inner levels resolve as flattening does
            self._scope = scope
            self._scope_graph = self.graph
        return self._scope

    def root_scope(self) -> Scope:
        """How the whole graph's types resolve, as a run resolves them (a fresh Scope)."""
        return Scope(self.registry, self.root.subgraphs, library=self._library)

    def subgraph_names(self) -> list[str]:
        """The graph's own subgraph definitions, then the library's (for suggestions)."""
        own = sorted(self.graph.subgraphs)
        return own + [n for n in self._library.names() if n not in own]

    def node_class(self, node_id: str) -> type[Node] | None:
        inst = self.graph.nodes.get(node_id)
        return self.scope().get(inst.type) if inst is not None else None

    def title(self, node_id: str) -> str:
        inst = self.graph.nodes[node_id]
        if inst.title:
            return inst.title
        cls = self.node_class(node_id)
        return cls.title if cls is not None and cls.title else inst.type

    # ---- editor data ---------------------------------------------------------------------------

    def node_pos(self, node_id: str) -> tuple[float, float] | None:
        pos = self.graph.ui.get("nodes", {}).get(node_id, {}).get("pos")
        return (float(pos[0]), float(pos[1])) if pos else None

    def set_node_pos(self, node_id: str, pos: tuple[float, float], notify: bool = True) -> None:
        entry = self.graph.ui.setdefault("nodes", {}).setdefault(node_id, {})
        entry["pos"] = [round(float(pos[0]), 2), round(float(pos[1]), 2)]
        if notify:
            self.ui_changed.emit("nodes", node_id)

    def set_title(self, node_id: str, title: str | None) -> None:
        self.graph.nodes[node_id].title = title or None
        self.ui_changed.emit("title", node_id)

    def entries(self, kind: str) -> list[dict[str, Any]]:
        return self.graph.ui.get(kind, [])

    def entry(self, kind: str, entry_id: str) -> dict[str, Any] | None:
        return next((e for e in self.entries(kind) if e.get("id") == entry_id), None)

    def new_entry_id(self, kind: str) -> str:
        used = {e.get("id") for e in self.entries(kind)}
        i = 1
        while f"{_PREFIX[kind]}{i}" in used:
            i += 1
        return f"{_PREFIX[kind]}{i}"

    def put_entry(self, kind: str, entry: dict[str, Any], index: int | None = None) -> None:
        """Insert or replace the entry with this id (at ``index`` when inserting)."""
        items = self.graph.ui.setdefault(kind, [])
        for i, old in enumerate(items):
            if old.get("id") == entry["id"]:
                items[i] = entry
                break
        else:
            items.insert(len(items) if index is None else index, entry)
        self.ui_changed.emit(kind, entry["id"])

    def remove_entry(self, kind: str, entry_id: str) -> None:
        items = self.graph.ui.get(kind, [])
        self.graph.ui[kind] = [e for e in items if e.get("id") != entry_id]
        if not self.graph.ui[kind]:
            del self.graph.ui[kind]
        self.ui_changed.emit(kind, entry_id)

    def entry_index(self, kind: str, entry_id: str) -> int:
        return next((i for i, e in enumerate(self.entries(kind)) if e.get("id") == entry_id), -1)


def _run_copy(graph: Graph) -> Graph:
    g = graph.copy()
    g.subgraphs = {
        name: replace(
            d,
            graph=_run_copy(d.graph),
            inputs=list(d.inputs),
            outputs=list(d.outputs),
            params=list(d.params),
        )
        for name, d in graph.subgraphs.items()
    }
    return g


def relative_to(path: str, base: Path) -> str:
    """Paths inside the graph's folder are stored relative, so graph and media travel together."""
    p = Path(path).resolve()
    try:
        return p.relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(p)
