"""Copy and paste as graph-file JSON, so selections move between windows (and text editors).

A copied selection is a complete, schema-valid graph document holding the selected nodes, the
edges among them and their positions; pasting loads it through the engine's file reader (which
never executes anything) and renames ids that already exist.
"""

from __future__ import annotations

import copy
from typing import Any

from fathom.app.commands import AddNodes
from fathom.app.document import Document
from fathom.engine.graph import Edge, Graph
from fathom.engine.graphfile import dumps, loads, to_document


def selection_text(doc: Document, node_ids: list[str]) -> str:
    """The selected nodes as a graph file (subgraph definitions they use come along)."""
    keep = [n for n in doc.graph.nodes if n in set(node_ids)]
    sub = Graph()
    sub.nodes = {n: copy.deepcopy(doc.graph.nodes[n]) for n in keep}
    sub.edges = [e for e in doc.graph.edges if e.src in sub.nodes and e.dst in sub.nodes]
    used = {i.type.split(".", 1)[1] for i in sub.nodes.values() if i.type.startswith("subgraph.")}
    sub.subgraphs = {k: v for k, v in doc.graph.subgraphs.items() if k in used}
    ui_nodes = {n: copy.deepcopy(doc.graph.ui.get("nodes", {}).get(n, {})) for n in keep}
    sub.ui = {"nodes": {n: u for n, u in ui_nodes.items() if u}}
    return dumps(to_document(sub, doc.registry))


def paste_command(
    doc: Document,
    text: str,
    at: tuple[float, float] | None = None,
    offset: tuple[float, float] = (40.0, 40.0),
) -> AddNodes:
    """An undoable command adding the pasted nodes; raises GraphFileError for foreign text.

    ``at`` puts the pasted block's top-left there; otherwise it lands ``offset`` from where it
    was copied, so a paste never hides its original.
    """
    pasted = loads(text, doc.registry, source="the clipboard")
    positions = {n: tuple(u.get("pos", (0.0, 0.0))) for n, u in pasted.ui.get("nodes", {}).items()}
    if positions:
        left = min(p[0] for p in positions.values())
        top = min(p[1] for p in positions.values())
    else:
        left = top = 0.0
    dx, dy = (at[0] - left, at[1] - top) if at is not None else offset
    rename: dict[str, str] = {}
    taken = set(doc.graph.nodes)
    for nid, inst in pasted.nodes.items():
        new = nid
        if new in taken:
            probe = Graph()
            probe.nodes = dict.fromkeys(taken)  # type: ignore[arg-type]
            new = probe.new_id(inst.type)
        taken.add(new)
        rename[nid] = new
    nodes, ui = [], {}
    for nid, inst in pasted.nodes.items():
        inst = copy.deepcopy(inst)
        inst.id = rename[nid]
        nodes.append(inst)
        entry: dict[str, Any] = copy.deepcopy(pasted.ui.get("nodes", {}).get(nid, {}))
        x, y = positions.get(nid, (left, top))
        entry["pos"] = [round(x + dx, 2), round(y + dy, 2)]
        ui[inst.id] = entry
    edges = [Edge(rename[e.src], e.src_port, rename[e.dst], e.dst_port) for e in pasted.edges]
    for name, d in pasted.subgraphs.items():
        doc.graph.subgraphs.setdefault(name, d)
    return AddNodes(
        doc, nodes, edges, ui, text=f"Paste {len(nodes)} node{'s' if len(nodes) != 1 else ''}"
    )
