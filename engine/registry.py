"""Node type registry: built-ins from ``nodes/`` and third-party ``fathom.nodes`` entry points."""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
from collections.abc import Iterable
from functools import lru_cache
from importlib.metadata import entry_points
from types import ModuleType

from fathom.engine.node import Node

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "fathom.nodes"


class RegistryError(Exception):
    pass


class Registry:
    """Maps stable type ids (and legacy ids, so old files keep loading) to node classes."""

    def __init__(self) -> None:
        self._types: dict[str, type[Node]] = {}
        self._legacy: dict[str, str] = {}
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

    # ---- discovery -------------------------------------------------------------------------

    def load_builtin(self) -> None:
        from fathom import nodes

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
