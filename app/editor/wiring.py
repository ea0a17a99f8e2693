"""Whether a wire may join two ports, and if not, a short reason the user can act on.

Uses the engine's own rule (``engine.types.can_connect``) so the editor never allows a wire that
``fathom validate`` would refuse.
"""

from __future__ import annotations

from fathom.app.document import Document
from fathom.engine.registry import Registry
from fathom.engine.types import CONVERSIONS, can_connect


def converter_hint(registry: Registry, src_type: str, dst_type: str) -> str:
    """Names a node that turns ``src_type`` into ``dst_type``, when one exists."""
    for cls in registry.types():
        if any(i.type.type_id == src_type for i in cls.inputs if not i.optional) and any(
            o.type.type_id == dst_type for o in cls.outputs
        ):
            return f"put a '{cls.title}' ({cls.type_id}) node between them"
    return f"connect a {dst_type} output here"


def connection_problem(
    doc: Document, src: str, src_port: str, dst: str, dst_port: str
) -> str | None:
    """None if the wire src.src_port → dst.dst_port is allowed, else why not."""
    if src == dst:
        return "a node cannot feed its own input"
    src_cls, dst_cls = doc.node_class(src), doc.node_class(dst)
    out = src_cls.output(src_port) if src_cls is not None else None
    inp = dst_cls.input(dst_port) if dst_cls is not None else None
    if src_cls is not None and out is None:
        return f"'{src}' has no output '{src_port}'"
    if dst_cls is not None and inp is None:
        return f"'{dst}' has no input '{dst_port}'"
    if out is not None and inp is not None:
        st, dt = out.type.type_id, inp.type.type_id
        if not can_connect(st, dt):
            return (
                f"incompatible types: {src}.{src_port} gives {st} but {dst}.{dst_port} "
                f"takes {dt}; {converter_hint(doc.registry, st, dt)}"
            )
    if dst in doc.graph.ancestors([src]):
        return f"this wire would make a cycle: '{src}' already depends on '{dst}'"
    return None


def conversion_note(src_type: str, dst_type: str) -> str:
    """The implicit conversion a wire performs, for its tooltip ('' when types match)."""
    if src_type == dst_type or dst_type == "any":
        return ""
    return CONVERSIONS.get((src_type, dst_type), (None, ""))[1]
