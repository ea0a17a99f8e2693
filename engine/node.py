"""The node contract: declared typed inputs, outputs and parameters, and one run method."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from fathom.engine.errors import Problem
from fathom.engine.fileio import file_param_problems, input_file_key
from fathom.engine.types import (
    Bool,
    Enum,
    Float,
    InputFile,
    Int,
    OutputFile,
    PortType,
    Scalar,
)

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
    """An output port. ``viewers`` names the viewers that show it, the preview's first; empty:
    its type's (``PortType.viewers``). The GUI reads this, so a plugin's outputs get viewers
    without GUI changes."""

    name: str
    type: type[PortType]
    doc: str = ""
    viewers: tuple[str, ...] = ()

    def shown_in(self) -> tuple[str, ...]:
        return self.viewers or self.type.viewers

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.type_id,
            "doc": self.doc,
            "viewers": list(self.shown_in()),
        }


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
    #: graph's and the library's subgraph names; "models": the local models that fit the
    #: node's declared ``families``, in a model picker; "loras": LoRA lines, with the LoRA
    #: files that fit the node's model; "controlnet", "ip-adapter": a model picker listing
    #: the local models of that kind, which the missing-models check also looks up). Any
    #: text is still accepted.
    suggest: str = ""
    #: File kinds only: the suffixes offered by file dialogs (".png", ...); empty: any file.
    suffixes: tuple[str, ...] = ()
    #: File kinds only: the value may also name a folder of images or a numbered pattern
    #: (frames/%04d.png); checks and cache keys then cover every matching file.
    sequence: bool = False

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
        if self.suffixes:
            d["suffixes"] = list(self.suffixes)
        if self.sequence:
            d["sequence"] = True
        return d

    @property
    def is_file(self) -> bool:
        return issubclass(self.type, (InputFile, OutputFile))


@dataclass(frozen=True)
class Ordered:
    """Two parameters that constrain each other: ``low`` must stay below ``high`` (or equal,
    with ``strict=False``). Declared on a node (``Node.constraints``) so validation, ``fathom
    validate`` and the studio catch a swapped pair before anything runs, instead of the run
    quietly giving a wrong picture. An empty optional value (None) is never out of order."""

    low: str
    high: str
    strict: bool = True
    #: What goes wrong otherwise, for the message ("the range between them is empty").
    why: str = ""

    def problem(self, node_id: str | None, values: dict[str, Any]) -> Problem | None:
        lo, hi = values.get(self.low), values.get(self.high)
        if lo is None or hi is None or lo < hi or (lo == hi and not self.strict):
            return None
        relation = "below" if self.strict else "at or below"
        because = f": {self.why}" if self.why else ""
        return Problem(
            f"{self.low} ({lo:g}) must be {relation} {self.high} ({hi:g}){because}.",
            node_id,
            self.low,
            f"set {self.low} {relation} {hi:g}, or raise {self.high} above {lo:g}",
            code="param_order",
        )

    def names(self) -> tuple[str, str]:
        return (self.low, self.high)


@dataclass(frozen=True)
class ModelsFor:
    """What a mode of a node's ``mode_param`` needs of its model, where it runs only some of
    the models the node takes (``Node.mode_models``): the transformers ``model_type`` values
    it runs, how a person names those models, and why. The node's check refuses another model
    before the run (``mode_model_problem``); the studio's model picker says the same beside
    each model."""

    model_types: tuple[str, ...]
    #: "Depth Anything (V1/V2)": as in "use a ... model".
    title: str
    #: "runs Depth Anything models layer by layer": as in "temporal 'reuse' ...".
    reason: str


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
    #: Suffixes (".png", ...) of files this node loads when one is dropped on the editor; the
    #: file goes into its input-file parameter. Built-in nodes claim a suffix before plugins.
    opens: ClassVar[tuple[str, ...]] = ()
    #: Header colour ("#rrggbb") for this node's whole category; empty: the registry's colour
    #: for the category (a built-in one, another node's, or one made from its name).
    color: ClassVar[str] = ""
    #: Parameters that constrain each other (low below high...); ``check_values`` checks them.
    constraints: ClassVar[Sequence[Ordered]] = ()
    #: The parameters an artist changes most, shown and edited on the node itself in the
    #: studio (the inspector keeps the full set); empty: the first few simple ones.
    main_params: ClassVar[tuple[str, ...]] = ()
    #: For a node whose parameter ``mode_param`` picks a mode: the mode-specific parameters
    #: each mode reads (every name listed for any mode is mode-specific). Changing one that
    #: the chosen mode does not read then re-runs nothing (``key_params``).
    mode_param: ClassVar[str] = ""
    mode_reads: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Modes of ``mode_param`` that run only some of the node's models (unlisted modes run
    #: any): checks and the studio's model picker read it (``modes_refusing``).
    mode_models: ClassVar[dict[str, ModelsFor]] = {}

    def run(self, ctx: NodeContext, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError

    # ---- hooks with sensible defaults -------------------------------------------------------

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        """Problems found before anything runs (missing input file, unwritable folder...)."""
        return []

    @classmethod
    def check_values(cls, node_id: str | None, values: dict[str, Any]) -> list[Problem]:
        """Problems among valid parameter values taken together (a low above its high), found
        by validation before a run and by the studio as soon as a value is set: needs no
        context, reads no files. The declared ``constraints``; override for other relations."""
        found = (c.problem(node_id, values) for c in cls.constraints)
        return [p for p in found if p is not None]

    @classmethod
    def upgrade(cls, params: dict[str, Any], from_version: int) -> dict[str, Any]:
        """Turn parameters saved by an older version of this node into current ones."""
        return params

    @classmethod
    def cache_extra(cls, params: dict[str, Any], ctx: NodeContext) -> str:
        """Extra cache-key material for nodes that read the world in ways the declared input
        files do not cover (those are keyed by the engine already)."""
        return ""

    @classmethod
    def key_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The parameters that decide the outputs, for the cache key: all of them, less those
        that ``mode_reads`` says the chosen mode ignores (then changing one re-runs nothing;
        dropping one that is read would serve stale results, so declare only what is provably
        unread)."""
        if not cls.mode_reads:
            return params
        return unread_dropped(params, cls.mode_param, cls.mode_reads)

    @classmethod
    def modes_refusing(cls, model_type: str | None) -> tuple[str, ...]:
        """The modes (``mode_models``) that cannot run a model of ``model_type``; none for an
        unknown type (None or ""), which only loading the model tells."""
        if not model_type:
            return ()
        return tuple(m for m, need in cls.mode_models.items() if model_type not in need.model_types)

    @classmethod
    def mode_model_problem(
        cls, mode: str, model_type: str | None, model_name: str
    ) -> tuple[str, str] | None:
        """(message, fix) when ``mode`` cannot run the model ``model_name`` of ``model_type``:
        "temporal 'reuse' runs Depth Anything models layer by layer; dpt is a dpt model"."""
        if mode not in cls.modes_refusing(model_type):
            return None
        need = cls.mode_models[mode]
        message = f"{cls.mode_param} '{mode}' {need.reason}; {model_name} is a {model_type} model"
        spec = next((p for p in cls.params if p.name == cls.mode_param), None)
        free = [m for m in (spec.choices or ()) if m not in cls.mode_models] if spec else []
        instead = f"{cls.mode_param} '{free[0]}', or " if free else ""
        return message, f"use {instead}{_article(need.title)} model"

    # ---- what the engine runs around the hooks ----------------------------------------------

    @classmethod
    def file_params(cls) -> tuple[Param, ...]:
        return tuple(p for p in cls.params if p.is_file)

    @classmethod
    def has_preflight(cls) -> bool:
        """Whether ``preflight`` can find anything: most nodes have neither a check nor files,
        and the executor then builds no context for them."""
        own = getattr(cls.check, "__func__", None) is not _BASE_CHECK
        return own or bool(cls.file_params())

    @classmethod
    def preflight(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        """Everything checked before a run: the declared file parameters (input files exist,
        output folders are writable; skipped when the run options say so), then ``check``."""
        out: list[Problem] = []
        if ctx.options.check_files:
            for p in cls.file_params():
                out += file_param_problems(p, params.get(p.name), ctx)
        return out + cls.check(params, ctx)

    @classmethod
    def has_cache_key(cls) -> bool:
        own = getattr(cls.cache_extra, "__func__", None) is not _BASE_CACHE_EXTRA
        return own or any(issubclass(p.type, InputFile) for p in cls.params)

    @classmethod
    def cache_key(cls, params: dict[str, Any], ctx: NodeContext) -> str:
        """Key material beyond the parameters: each input file's size and modification time,
        then ``cache_extra``."""
        parts = [
            input_file_key(p, params.get(p.name), ctx)
            for p in cls.params
            if issubclass(p.type, InputFile)
        ]
        return "|".join([*parts, cls.cache_extra(params, ctx)])

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
    def main_specs(cls) -> tuple[Param, ...]:
        """``main_params`` in that order, or else the first three numbers, switches or
        choices: what fits on a node without crowding it."""
        if cls.main_params:
            return tuple(p for name in cls.main_params if (p := cls.param(name)) is not None)
        simple = [p for p in cls.params if issubclass(p.type, (Int, Float, Bool)) or p.choices]
        return tuple(simple[:_MAIN_DEFAULT])

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
            "opens": list(cls.opens),
        }

    @classmethod
    def declaration_problems(cls) -> list[str]:
        """Mistakes in a node class itself, reported when it is registered."""
        out = []
        if not cls.type_id or cls.type_id != cls.type_id.lower() or " " in cls.type_id:
            out.append(f"{cls.__name__}: type_id must be dotted lowercase, got {cls.type_id!r}")
        names = [p.name for p in cls.inputs] + [p.name for p in cls.params]
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
        for c in cls.constraints:
            missing = [n for n in c.names() if cls.param(n) is None]
            if missing:
                out.append(f"{cls.type_id}: a constraint names no parameter {missing}")
        unknown = set(cls.main_params) - {p.name for p in cls.params}
        if unknown:
            out.append(f"{cls.type_id}: main_params names no parameter {sorted(unknown)}")
        return out + _signature_problems(cls) + _opens_problems(cls)


def unread_dropped(
    params: dict[str, Any], mode: str, reads: dict[str, tuple[str, ...]]
) -> dict[str, Any]:
    """``params`` without the mode-specific ones that the chosen mode (``params[mode]``) does
    not read: ``reads`` maps each mode to what it reads, and every name any mode reads is
    mode-specific. An unknown mode keeps everything."""
    used = reads.get(str(params.get(mode)))
    if used is None:
        return params
    unread = {name for names in reads.values() for name in names} - set(used)
    return {k: v for k, v in params.items() if k not in unread}


_BASE_CHECK = Node.__dict__["check"].__func__
_BASE_CACHE_EXTRA = Node.__dict__["cache_extra"].__func__
_CTX_ONLY = 2  # run(self, ctx, ...): what comes before the declared names
_MAIN_DEFAULT = 3  # parameters shown on a node that declares no main_params


def _signature_problems(cls: type[Node]) -> list[str]:
    """A node is declared once: ``run`` takes exactly the declared inputs and parameters by
    name, so a renamed port or a forgotten argument is caught at registration, not mid-run."""
    if cls.run is Node.run:
        return [f"{cls.type_id}: it has no run method; define run(self, ctx, ...)"]
    args = list(inspect.signature(cls.run).parameters.values())
    if len(args) < _CTX_ONLY:
        return [f"{cls.type_id}: run() must take (self, ctx, ...) but takes {len(args)} arguments"]
    named = {
        a.name: a for a in args[_CTX_ONLY:] if a.kind in (a.POSITIONAL_OR_KEYWORD, a.KEYWORD_ONLY)
    }
    takes_any = any(a.kind is a.VAR_KEYWORD for a in args)
    out = []
    for kind, decl in (("input", cls.inputs), ("parameter", cls.params)):
        for d in decl:
            if d.name not in named and not takes_any:
                out.append(
                    f"{cls.type_id}: run() has no argument for the {kind} '{d.name}'; add "
                    f"`{d.name}` to run's arguments or remove the {kind}"
                )
    declared = {d.name for d in cls.inputs} | {d.name for d in cls.params}
    for name in named:
        if name not in declared:
            out.append(
                f"{cls.type_id}: run() argument '{name}' is neither an input nor a parameter; "
                "declare it or remove it from run's arguments"
            )
    return out


def _opens_problems(cls: type[Node]) -> list[str]:
    if not cls.opens:
        return []
    files = [p for p in cls.params if issubclass(p.type, InputFile)]
    if len(files) != 1:
        return [
            f"{cls.type_id}: it opens dropped files, so it needs exactly one input-file "
            f"parameter (it has {len(files)})"
        ]
    bad = [s for s in cls.opens if not s.startswith(".") or s != s.lower()]
    return [f"{cls.type_id}: opens takes lowercase suffixes like '.png', not {bad}"] if bad else []


@dataclass
class NodeResult:
    """What a run of one node produced, for reports and the GUI."""

    outputs: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
