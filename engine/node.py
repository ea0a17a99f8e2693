"""The node contract: declared typed inputs, outputs and parameters, and one run method."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from fathom.engine.errors import Problem
from fathom.engine.types import Enum, Float, Int, PortType, Scalar

if TYPE_CHECKING:
    from fathom.engine.context import NodeContext


def _article(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


@dataclass(frozen=True)
class Input:
    """An input port. ``multi`` ports take any number of edges and receive a list, in edge order."""

    name: str
    type: type[PortType]
    doc: str = ""
    optional: bool = False
    multi: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.type_id,
            "doc": self.doc,
            "optional": self.optional,
            "multi": self.multi,
        }


@dataclass(frozen=True)
class Output:
    name: str
    type: type[PortType]
    doc: str = ""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type.type_id, "doc": self.doc}


@dataclass(frozen=True)
class Param:
    """A literal parameter with its kind, default and limits; the GUI builds its widget."""

    name: str
    type: type[Scalar]
    default: Any = None
    doc: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    optional: bool = False
    multiline: bool = False
    step: float | None = None
    #: Where the GUI finds values to suggest for a free-text parameter ("subgraphs": the
    #: graph's and the library's subgraph names). Any text is still accepted.
    suggest: str = ""

    def validate(self, value: Any) -> Any:
        """Coerce and range-check; raises ValueError whose text says what is allowed."""
        if value is None:
            if self.optional:
                return None
            raise ValueError("a value is required")
        out = self.type.coerce(value)
        if self.choices is not None and out not in self.choices:
            raise ValueError(f"{out!r} is not one of: {', '.join(map(str, self.choices))}")
        if issubclass(self.type, (Int, Float)):
            if self.min is not None and out < self.min:
                raise ValueError(f"{out} is below the minimum {self.min}")
            if self.max is not None and out > self.max:
                raise ValueError(f"{out} is above the maximum {self.max}")
        return out

    def allowed(self) -> str:
        if self.choices is not None:
            return "one of: " + ", ".join(map(str, self.choices))
        if self.min is not None or self.max is not None:
            lo = "-inf" if self.min is None else f"{self.min:g}"
            hi = "inf" if self.max is None else f"{self.max:g}"
            return f"{_article(self.type.type_id)} in [{lo}, {hi}]"
        return _article(self.type.type_id)

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "type": self.type.type_id,
            "default": _jsonable(self.default),
            "doc": self.doc,
            "optional": self.optional,
        }
        for key in ("min", "max", "step"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        if self.choices is not None:
            d["choices"] = list(self.choices)
        if self.multiline:
            d["multiline"] = True
        if self.suggest:
            d["suggest"] = self.suggest
        return d


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value


class Node:
    """Base of every node type. Subclasses declare the class attributes and implement ``run``.

    A node is stateless: ``run`` receives every input and parameter as keyword arguments and
    returns a dict from output name to value. Weights, files and devices come through ``ctx``.
    """

    type_id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    category: ClassVar[str] = ""
    version: ClassVar[int] = 1
    legacy_ids: ClassVar[tuple[str, ...]] = ()
    inputs: ClassVar[Sequence[Input]] = ()
    outputs: ClassVar[Sequence[Output]] = ()
    params: ClassVar[Sequence[Param]] = ()
    #: False for nodes that are random without a seed; they re-run every time.
    cacheable: ClassVar[bool] = True
    #: True for nodes that draw on ``ctx.seed``/``ctx.rng()`` without a Seed parameter: their
    #: seed derives from the node id, so their cache key must include it.
    seeded: ClassVar[bool] = False
    #: Terminal nodes (save, preview) are what a render runs when no target is named.
    is_output: ClassVar[bool] = False
    #: Safe to run on a worker thread beside other nodes (pure numpy/torch work is).
    thread_safe: ClassVar[bool] = True

    def run(self, ctx: NodeContext, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError

    # ---- hooks with sensible defaults -------------------------------------------------------

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        """Problems found before anything runs (missing input file, unwritable folder...)."""
        return []

    @classmethod
    def upgrade(cls, params: dict[str, Any], from_version: int) -> dict[str, Any]:
        """Turn parameters saved by an older version of this node into current ones."""
        return params

    @classmethod
    def cache_extra(cls, params: dict[str, Any], ctx: NodeContext) -> str:
        """Extra cache-key material for nodes that read the world (a file's size and mtime)."""
        return ""

    # ---- declarations as data -------------------------------------------------------------

    @classmethod
    def input(cls, name: str) -> Input | None:
        return next((p for p in cls.inputs if p.name == name), None)

    @classmethod
    def output(cls, name: str) -> Output | None:
        return next((p for p in cls.outputs if p.name == name), None)

    @classmethod
    def param(cls, name: str) -> Param | None:
        return next((p for p in cls.params if p.name == name), None)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {p.name: p.default for p in cls.params}

    @classmethod
    def doc(cls) -> str:
        """The class docstring as plain prose for the inspector and ``fathom nodes``: source
        indentation and hard line wraps removed (paragraphs kept), ``code`` marks dropped."""
        text = inspect.cleandoc(cls.__doc__ or "")
        paragraphs = [
            " ".join(line.strip() for line in block.splitlines()) for block in text.split("\n\n")
        ]
        return "\n\n".join(p for p in paragraphs if p).replace("``", "")

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "type": cls.type_id,
            "title": cls.title or cls.type_id,
            "category": cls.category,
            "version": cls.version,
            "legacy_ids": list(cls.legacy_ids),
            "doc": cls.doc(),
            "inputs": [p.describe() for p in cls.inputs],
            "outputs": [p.describe() for p in cls.outputs],
            "params": [p.describe() for p in cls.params],
            "cacheable": cls.cacheable,
            "is_output": cls.is_output,
        }

    @classmethod
    def declaration_problems(cls) -> list[str]:
        """Mistakes in a node class itself, reported when it is registered."""
        out = []
        if not cls.type_id or cls.type_id != cls.type_id.lower() or " " in cls.type_id:
            out.append(f"{cls.__name__}: type_id must be dotted lowercase, got {cls.type_id!r}")
        names = [p.name for p in (*cls.inputs, *cls.params)]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            out.append(f"{cls.type_id}: inputs and params share names {sorted(dup)}")
        for p in cls.params:
            if p.choices is not None and not issubclass(p.type, Enum):
                out.append(f"{cls.type_id}.{p.name}: choices need the enum type")
            if p.default is not None:
                try:
                    p.validate(p.default)
                except ValueError as exc:
                    out.append(f"{cls.type_id}.{p.name}: default is invalid ({exc})")
        return out


@dataclass
class NodeResult:
    """What a run of one node produced, for reports and the GUI."""

    outputs: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
