"""Auto-layout: columns by dependency depth, rows ordered by the parents' rows.

Used for graphs saved without positions (hand-written or CLI-made files) and by Edit → Auto
Layout; the classic layered approach keeps wires flowing left to right with few crossings.
"""

from __future__ import annotations

from collections import defaultdict

from fathom.engine.graph import Graph

COLUMN_W = 250.0
ROW_GAP = 30.0


def layered_layout(
    graph: Graph, heights: dict[str, float] | None = None, origin: tuple[float, float] = (0.0, 0.0)
) -> dict[str, tuple[float, float]]:
    """Positions (top-left) for every node; ``heights`` lets tall nodes take more room."""
    heights = heights or {}
    parents: dict[str, list[str]] = defaultdict(list)
    for e in graph.edges:
        if e.src in graph.nodes and e.dst in graph.nodes:
            parents[e.dst].append(e.src)
    depth: dict[str, int] = {}
    order = graph.topological_order()
    for n in graph.nodes:  # nodes on a cycle are missing from the order: append them
        if n not in order:
            order.append(n)
    for n in order:
        depth[n] = 1 + max((depth.get(p, 0) for p in parents[n]), default=-1)
    columns: dict[int, list[str]] = defaultdict(list)
    for n in order:
        columns[depth[n]].append(n)
    row_of: dict[str, float] = {}
    out: dict[str, tuple[float, float]] = {}
    for col in sorted(columns):
        members = columns[col]
        # Barycentre of the parents' rows keeps children near what feeds them.
        members.sort(
            key=lambda n: (
                sum(row_of[p] for p in parents[n] if p in row_of)
                / max(1, len([p for p in parents[n] if p in row_of]))
                if parents[n]
                else -1.0
            )
        )
        y = origin[1]
        for i, n in enumerate(members):
            row_of[n] = float(i)
            out[n] = (origin[0] + col * COLUMN_W, y)
            y += heights.get(n, 90.0) + ROW_GAP
    return out
