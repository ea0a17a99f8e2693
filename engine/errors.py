"""Typed errors: every problem names the node, the port and the fix, so users never guess."""

from __future__ import annotations

from dataclasses import dataclass

#: Characters of user input a message repeats; the rest is summarised by its length.
ECHO_LIMIT = 60


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """``value`` as a message repeats it: whole when short, else its first ``limit`` characters,
    an ellipsis and its length. A file can hold a 100 KB node id or parameter value; repeated whole,
    it would flood the terminal, the report and the GUI's problem list and hide the problem."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a graph, a file or an override; collected, never raised alone."""

    message: str
    node: str | None = None
    port: str | None = None
    fix: str | None = None
    code: str = "invalid"

    def __str__(self) -> str:
        where = ""
        if self.node is not None:
            where = f"node '{echo(self.node)}'"
            if self.port is not None:
                where += f", port '{echo(self.port)}'"
            where += ": "
        text = where + self.message
        if self.fix:
            stop = "" if text.rstrip().endswith((".", "!", "?", ":")) else "."
            text += f"{stop} Fix: {self.fix}"
        return text


class FathomError(Exception):
    """Base of every error the engine raises on purpose."""


class GraphInvalid(FathomError):
    """The graph (or a file, or overrides) cannot run; holds every problem found at once."""

    def __init__(self, problems: list[Problem], title: str = "The graph is invalid") -> None:
        self.problems = list(problems)
        self.title = title
        lines = [f"{title} ({len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}):"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class GraphFileError(FathomError):
    """A graph file could not be read: malformed JSON, wrong format or version, schema errors."""


class NodeError(FathomError):
    """A node failed while running; carries the node id so reports and the GUI can point at it."""

    def __init__(
        self, message: str, node: str | None = None, port: str | None = None, fix: str | None = None
    ) -> None:
        self.node = node
        self.port = port
        self.fix = fix
        self.raw_message = message
        super().__init__(str(Problem(message, node=node, port=port, fix=fix)))

    def with_node(self, node: str) -> NodeError:
        if self.node is not None:
            return self
        return NodeError(self.raw_message, node=node, port=self.port, fix=self.fix)


class Cancelled(FathomError):
    """The run was cancelled cooperatively; not a failure of any node. ``node``: the node whose
    context noticed the cancel (a lazy output's producer, when its frames were being read)."""

    def __init__(self, message: str, node: str | None = None) -> None:
        self.node = node
        super().__init__(message)


class LibraryError(ValueError):
    """A library function (codecs, media, image ops, the diffusion loop) refuses a value.

    Libraries know no nodes, so they say which input is at fault by its usual port name
    (``port``, None when they cannot tell) and what to do (``fix``); a node turns this into a
    NodeError with ``ctx.refuse(exc)``, which adds its own id.
    """

    def __init__(self, message: str, fix: str | None = None, port: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix
        self.port = port


class MediaError(LibraryError):
    """A video, audio or sequence file cannot be read or written."""

    def __init__(self, message: str, fix: str, port: str | None = None) -> None:
        super().__init__(message, fix, port)


class FileProblem(LibraryError):
    """An image or depth file cannot be decoded or encoded as asked (port: usually ``path``)."""

    def __init__(self, message: str, fix: str, port: str = "path") -> None:
        super().__init__(message, fix, port)


class BadInput(LibraryError):
    """An image operation's argument is out of its domain (port: the argument's name)."""

    def __init__(self, message: str, port: str, fix: str) -> None:
        super().__init__(message, fix, port)


class LoopInputError(LibraryError):
    """A setting the diffusion loop cannot use (port: the node input or parameter at fault)."""

    def __init__(self, message: str, port: str | None = None, fix: str | None = None) -> None:
        super().__init__(message, fix, port)
