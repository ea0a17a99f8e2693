"""Node type registry: built-ins from ``nodes/`` and third-party ``fathom.nodes`` entry points."""

from __future__ import annotations

import colorsys
import importlib
import inspect
import logging
import pkgutil
import zlib
from collections.abc import Iterable
from functools import lru_cache
from importlib.metadata import entry_points
from types import ModuleType

from fathom.engine.node import Node
from fathom.engine.types import InputFile

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "fathom.nodes"

#: Header colours of the built-in categories, chosen to tell families apart at a glance: hues
#: spread around the wheel, each dark enough for light title text (WCAG contrast >= 4.5). A node
#: can set its category's colour with ``Node.color``; other categories get one made from their
#: name. "load" and "save" are families, not categories (see ``node_family``).
CATEGORY_COLORS = {
    "load": "#37474f",
    "save": "#5d4037",
    "io": "#616161",
    "value": "#3c4a3e",
    "math": "#4a3c4a",
    "image": "#1565c0",
    "mask": "#6d6300",
    "depth": "#b34700",
    "rgbd": "#ad1457",
    "camera": "#8e24aa",
    "view": "#00695c",
    "mesh": "#2e7d32",
    "video": "#4527a0",
    "motion": "#00698f",
    "generate": "#c62828",
    "live": "#283593",
}


def node_family(cls: type[Node]) -> str:
    """What a node's header colour says it is: its category, except that nodes which read a
    file and take no inputs are "load" and terminal nodes are "save", whatever their category,
    so a graph's sources and results stand out even when every node is, say, a video node."""
    if cls.is_output:
        return "save"
    if not cls.inputs and any(issubclass(p.type, InputFile) for p in cls.params):
        return "load"
    return cls.category


def name_color(name: str) -> str:
    """A stable, mid-dark colour for a name (the same on every machine and run)."""
    hue = zlib.crc32(name.encode()) % 360
    r, g, b = colorsys.hsv_to_rgb(hue / 360, 0.55, 0.6)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


class RegistryError(Exception):
    pass


class Registry:
    """Maps stable type ids (and legacy ids, so old files keep loading) to node classes."""

    def __init__(self) -> None:
        self._types: dict[str, type[Node]] = {}
        self._legacy: dict[str, str] = {}
        self._openers: dict[str, type[Node]] = {}
        self._colors: dict[str, str] = {}
        self.load_errors: list[str] = []

    def register(self, cls: type[Node]) -> type[Node]:
        problems = cls.declaration_problems()
        if problems:
            raise RegistryError("; ".join(problems))
        existing = self._types.get(cls.type_id)
        if existing is not None and existing is not cls:
            raise RegistryError(
                f"node type {cls.type_id!r} is declared twice: by {existing.__module__}."
                f"{existing.__name__} and {cls.__module__}.{cls.__name__}"
            )
        self._types[cls.type_id] = cls
        for old in cls.legacy_ids:
            self._legacy[old] = cls.type_id
        for suffix in cls.opens:
            self._openers.setdefault(suffix, cls)  # the first to claim a suffix keeps it
        if cls.color:
            self._colors.setdefault(cls.category, cls.color)
        return cls

    def register_module(self, module: ModuleType) -> int:
        count = 0
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Node) and obj.type_id and obj.__module__ == module.__name__:
                self.register(obj)
                count += 1
        return count

    def register_all(self, classes: Iterable[type[Node]]) -> None:
        for cls in classes:
            self.register(cls)

    def resolve_id(self, type_id: str) -> str:
        return type_id if type_id in self._types else self._legacy.get(type_id, type_id)

    def get(self, type_id: str) -> type[Node] | None:
        return self._types.get(self.resolve_id(type_id))

    def __contains__(self, type_id: str) -> bool:
        return self.get(type_id) is not None

    def types(self) -> list[type[Node]]:
        return [self._types[k] for k in sorted(self._types)]

    # ---- what the GUI asks, so it names no node type ----------------------------------------

    def opener(self, suffix: str) -> tuple[type[Node], str] | None:
        """The node that loads a dropped file with this suffix, and the parameter the file's
        path goes into; None when no node claims the suffix."""
        cls = self._openers.get(suffix.lower())
        if cls is None:
            return None
        (param,) = [p for p in cls.params if issubclass(p.type, InputFile)]
        return cls, param.name

    def opened_suffixes(self) -> list[str]:
        return sorted(self._openers)

    def category_color(self, category: str) -> str:
        """A category's header colour: a node's declared one, the built-in table's, or one
        made from the name."""
        return self._colors.get(category) or CATEGORY_COLORS.get(category) or name_color(category)

    def node_color(self, cls: type[Node]) -> str:
        """A node's header colour: the one it declares (``Node.color``: a plugin's own look
        wins), else its family's (``node_family``), so loaders and savers share one colour
        across categories and the rest are coloured by category."""
        return cls.color or self.category_color(node_family(cls))

    # ---- discovery -------------------------------------------------------------------------

    def load_builtin(self) -> None:
        import fathom.nodes as nodes

        for info in pkgutil.iter_modules(nodes.__path__):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"fathom.nodes.{info.name}")
            self.register_module(module)

    def load_entry_points(self) -> None:
        """A plugin that fails to load is reported, never allowed to take the built-ins down."""
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
                if isinstance(obj, ModuleType):
                    self.register_module(obj)
                elif inspect.isclass(obj) and issubclass(obj, Node):
                    self.register(obj)
                elif callable(obj):
                    self.register_all(obj())
                else:
                    raise RegistryError(f"entry point gives {type(obj).__name__}, not nodes")
            except Exception as exc:  # noqa: BLE001 - third-party code may raise anything
                msg = f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}"
                log.warning(msg)
                self.load_errors.append(msg)


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """Built-ins plus installed plugins, built once per process."""
    reg = Registry()
    reg.load_builtin()
    reg.load_entry_points()
    return reg
