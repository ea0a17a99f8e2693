"""Files: atomic writes (a crash or a failing node never leaves a half-written file behind), and
the pre-flight checks and cache keys of declared file parameters."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fathom.engine.errors import Problem

if TYPE_CHECKING:
    from fathom.engine.context import NodeContext
    from fathom.engine.node import Param

# Read once: mkstemp makes owner-only files, and a rename keeps that mode.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], backup: bool = False) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` (same suffix, so libraries pick the right format);
    renames it over ``path`` only if the block succeeds. ``backup`` keeps the old file as .bak."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o666 & ~_UMASK
        os.chmod(tmp_path, mode)
        if backup and target.exists():
            # Copy, not rename: ``path`` must name a complete file at every instant.
            shutil.copy2(target, target.with_name(target.name + ".bak"))
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, backup: bool = False) -> None:
    with atomic_path(path, backup=backup) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike[str], text: str, backup: bool = False) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), backup=backup)


def writable_dir_problem(folder: str | os.PathLike[str]) -> str | None:
    """Why ``folder`` cannot take output, or None; checked before a run so nothing half-happens."""
    p = Path(folder)
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return f"{probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


def _files_of(path: Path, sequence: bool) -> list[Path] | None:
    """The files a sequence parameter names (a folder or a numbered pattern), else None."""
    if not sequence:
        return None
    from fathom.engine.media.timing import list_sequence, sequence_pattern

    if path.is_dir() or sequence_pattern(str(path)) is not None:
        return list_sequence(path)
    return None


def _empty(param: Param, value: Any) -> bool:
    return value is None or (value == "" and param.optional)


def file_param_problems(param: Param, value: Any, ctx: NodeContext) -> list[Problem]:
    """Why a declared file parameter cannot work, checked before a run: an input file (or
    sequence) that is missing, an output whose folder cannot be written. An optional one left
    empty means "no file"."""
    from fathom.engine.types import InputFile

    if _empty(param, value):
        return []
    if issubclass(param.type, InputFile):
        path = ctx.resolve_path(value)
        files = _files_of(path, param.sequence)
        if files is not None:
            if files:
                return []
            return [
                Problem(
                    f"no images match {path}.",
                    ctx.node_id,
                    param.name,
                    f"point `{param.name}` at a folder of images or a pattern like "
                    "frames/%04d.png that matches existing files",
                )
            ]
        if path.is_file():
            return []
        why = "is a folder" if path.is_dir() else "does not exist"
        return [
            Problem(
                f"file {path} {why}.",
                ctx.node_id,
                param.name,
                f"point `{param.name}` at an existing file (relative paths start at the graph "
                "file's folder)",
            )
        ]
    target = Path(value).expanduser()
    folder = target.parent if target.is_absolute() else ctx.options.output_dir / target.parent
    unwritable = writable_dir_problem(folder)
    if unwritable:
        return [
            Problem(
                f"cannot write here: {unwritable}.",
                ctx.node_id,
                param.name,
                "choose a writable output folder",
            )
        ]
    return []


def input_file_key(param: Param, value: Any, ctx: NodeContext) -> str:
    """Size and modification time of the file (or of every file of a sequence), so an edited
    input re-runs the node; a file that is gone keys on its path alone."""
    if _empty(param, value):
        return ""
    path = ctx.resolve_path(value)
    files = _files_of(path, param.sequence)
    parts = []
    for f in files if files is not None else [path]:
        try:
            st = f.stat()
        except OSError:
            parts.append(str(f))
            continue
        parts.append(f"{f}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)
