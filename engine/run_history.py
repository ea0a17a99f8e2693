"""Run history on disk: each finished run's graph, report and outputs, kept beside the outputs.

A record is a folder ``<output dir>/.history/<stamp>/`` holding ``graph.json`` (the graph-file
document that ran), ``report.json`` (the ``fathom.run`` report: status, timings, per-node
records, outputs) and ``files/`` (hard links to the files the run wrote; an image sequence's
folder becomes a folder of links to its frames). Saves replace files and sequence folders
atomically, so a later run writing the same name gets new files and the links keep this run's
own; where a link cannot be made, a copy is kept (up to ``KEEP_COPY_LIMIT`` per output). The
report is written last, so a folder without one is an unfinished record and listings skip it.
A ``pinned`` file in a record keeps it from pruning (``engine.history_prune``: the size and
count budget, and deleting records). No Qt here: the studio's history and gallery docks read
what these functions return.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fathom.engine.errors import GraphFileError
from fathom.engine.executor import RunResult
from fathom.engine.fileio import atomic_write_text
from fathom.engine.graphfile import dumps, graph_hash, parse_text

HISTORY_DIR = ".history"
#: A record holding this (empty) file is pinned: pruning never removes it.
PIN_FILE = "pinned"
REPORT_FORMAT = "fathom.run"
#: Largest output copied into a record when the file system cannot hard-link it (bytes).
KEEP_COPY_LIMIT = 256 << 20
#: Sequence folders with more files than this are not linked in the studio's first pass (on
#: the GUI thread, at about 20 µs a link: 40 ms) but in its second, on a worker, moments later.
#: A run writing that many frames cannot finish, and swap a new folder in, in that time.
LINK_NOW_LIMIT = 2000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".exr", ".tif", ".tiff", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".gif", ".avi")
COUNTED = ("executed", "cached", "failed", "skipped", "muted", "bypassed", "cancelled")


def media_kind(path: str | os.PathLike[str]) -> str | None:
    """ "image" or "video" by the file's suffix; None for anything else (meshes, reports)."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def run_report(
    result: RunResult,
    document: dict[str, Any],
    started: float,
    *,
    graph_path: str | None = None,
    base_dir: str | None = None,
    output_dir: str | None = None,
    label: str = "",
    problems: list[str] | None = None,
) -> dict[str, Any]:
    """The report of a run made in the studio: the fields ``fathom render --report`` writes
    that a studio run has, plus where it ran from, so the graph can be re-opened as it was."""
    status = "cancelled" if result.cancelled else ("failed" if result.failed else "ok")
    return {
        "format": REPORT_FORMAT,
        "version": 1,
        "status": status,
        "label": label,
        "graph": graph_path,
        "base_dir": base_dir,
        "output_dir": output_dir,
        "graph_hash": graph_hash(document),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "started_unix": started,
        "seconds": round(result.seconds, 6),
        "device": result.device.as_dict() if result.device is not None else None,
        "outputs": result.files(),
        "counts": {s: len(result.by_status(s)) for s in COUNTED},
        "problems": list(problems or []),
        "nodes": [r.as_dict() for r in result.records.values()],
    }


def _new_folder(root: Path, started: float) -> Path:
    """A fresh folder named by the start time; names sort in time order, and two runs in one
    millisecond get a suffix instead of sharing one."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
    stamp += f"-{int(started * 1000) % 1000:03d}"
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        folder = root / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"too many run records named {stamp} in {root}")


def _free_name(source: Path, files: Path, taken: set[str]) -> str:
    """The output's own name, or ``name-2``, ``name-3``… when another output of the run (or a
    folder left on disk) has it: two save nodes may write ``a/x.png`` and ``b/x.png``."""
    name, n = source.name, 1
    while name in taken or (files / name).exists():
        n += 1
        name = f"{source.stem}-{n}{source.suffix}"
    return name


def _link_or_copy(source: Path, target: Path, copy: bool) -> bool:
    """Hard-link one file (free, whatever its size); copy it only where allowed and small."""
    try:
        os.link(source, target)
        return True
    except OSError:
        if not copy or source.stat().st_size > KEEP_COPY_LIMIT:
            return False
        shutil.copy2(source, target)
        return True


def _keep_folder(source: Path, target: Path, copy: bool) -> bool:
    """Keep a folder output (PNG/EXR frames) as a folder of hard links to its files.

    Sequence writers swap a fresh folder in for the old one, so links keep this run's frames
    while the next run writes new ones, for the cost of a directory entry per frame (about
    20 µs each; plain string paths, since this runs on the GUI thread). Where links fail, the
    frames are copied (``copy``) if together they are under ``KEEP_COPY_LIMIT``; otherwise
    nothing is kept (no half sequence)."""
    copied = 0
    for root, _, names in os.walk(source):
        into = os.path.join(target, os.path.relpath(root, source))
        os.makedirs(into)
        for name in names:
            src, dst = os.path.join(root, name), os.path.join(into, name)
            try:
                os.link(src, dst)
                continue
            except OSError:
                pass
            copied += os.stat(src).st_size
            if not copy or copied > KEEP_COPY_LIMIT:
                shutil.rmtree(target, ignore_errors=True)
                return False
            shutil.copy2(src, dst)
    return True


def _file_count(folder: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(folder))


def _keep(source: Path, files: Path, taken: set[str], copy: bool) -> str | None:
    """Link (or, with ``copy``, copy) one output, a file or a folder of frames, into the
    record; its path in the record, or None when it was not kept."""
    if not (source.is_file() or source.is_dir()):
        return None
    if source.is_dir() and not copy and _file_count(source) > LINK_NOW_LIMIT:
        return None  # the worker's pass links it (see LINK_NOW_LIMIT)
    files.mkdir(exist_ok=True)
    name = _free_name(source, files, taken)
    target = files / name
    if source.is_dir():
        kept = _keep_folder(source, target, copy)
    else:
        kept = _link_or_copy(source, target, copy)
    if not kept:
        return None
    taken.add(name)
    return f"files/{name}"


def start_record(output_dir: str | os.PathLike[str], started: float) -> Path:
    """The new, empty folder of a run's record under ``output_dir``/.history."""
    return _new_folder(Path(output_dir) / HISTORY_DIR, started)


def keep_outputs(
    folder: Path, outputs: list[str], copy: bool = True, kept: dict[str, str] | None = None
) -> dict[str, str]:
    """Keep this run's own outputs in its record: {output path: path in the record}.

    Hard links cost next to nothing, so the studio makes them the moment a run ends, before
    the next run can replace a file; ``copy=False`` skips what cannot be linked, for a later
    call (on a worker) with ``copy=True`` and the ``kept`` so far."""
    kept = dict(kept or {})
    taken = {Path(where).name for where in kept.values()}
    for out in outputs:
        if out not in kept:
            where = _keep(Path(out), folder / "files", taken, copy)
            if where is not None:
                kept[out] = where
    return kept


def finish_record(
    folder: Path, document: dict[str, Any], report: dict[str, Any], kept: dict[str, str]
) -> Path:
    """Write the graph, then the report (whose presence marks the record complete)."""
    atomic_write_text(folder / "graph.json", dumps(document))
    report = {**report, "kept": kept}
    atomic_write_text(folder / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    return folder


def record_run(output_dir: str | os.PathLike[str], document: dict[str, Any], report: dict) -> Path:
    """Write one run's whole record under ``output_dir``/.history and return its folder."""
    folder = start_record(output_dir, float(report.get("started_unix") or time.time()))
    kept = keep_outputs(folder, list(report.get("outputs", [])))
    return finish_record(folder, document, report, kept)


@dataclass(frozen=True)
class HistoryEntry:
    """One recorded run, as read back from its folder."""

    folder: Path
    report: dict[str, Any]
    #: Kept whatever the history budget (``PIN_FILE``); only the user deletes it.
    pinned: bool = False

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def status(self) -> str:
        return str(self.report.get("status", "?"))

    @property
    def started(self) -> float:
        return float(self.report.get("started_unix") or 0.0)

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.report.get("counts") or {})

    def outputs(self) -> list[Path]:
        """What the run wrote: this run's kept copy where there is one, else the file itself
        (which a later run may have replaced)."""
        kept = self.report.get("kept") or {}
        out = []
        for path in self.report.get("outputs", []):
            own = kept.get(path)
            out.append(self.folder / own if own else Path(path))
        return out

    def summary(self) -> str:
        """For a list: when, status, how long, how many nodes ran; the label on a second line."""
        c = self.counts
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        label = self.report.get("label") or ""
        return (
            f"{when}  {self.status}  {float(self.report.get('seconds', 0)):.2f} s  "
            f"{c.get('executed', 0)} executed, {c.get('cached', 0)} cached, "
            f"{c.get('failed', 0)} failed" + (f"\n{label}" if label else "")
        )

    def graph_document(self) -> dict[str, Any]:
        """The graph-file document that ran (GraphFileError if the file is damaged)."""
        path = self.folder / "graph.json"
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise GraphFileError(f"{path} cannot be read: {exc}") from None
        return parse_text(text, str(path))


def read_entry(folder: Path) -> HistoryEntry | None:
    """The record in ``folder``; None for an unfinished or damaged one (not worth a crash)."""
    try:
        report = json.loads((folder / "report.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or report.get("format") != REPORT_FORMAT:
        return None
    return HistoryEntry(folder, report, (folder / PIN_FILE).is_file())


def list_runs(output_dir: str | os.PathLike[str], limit: int | None = None) -> list[HistoryEntry]:
    """The runs recorded under ``output_dir``, newest first."""
    root = Path(output_dir) / HISTORY_DIR
    try:
        # Names starting with "." are records being deleted (``history_prune.delete_record``).
        folders = sorted(
            (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True
        )
    except OSError:
        return []
    entries = []
    for folder in folders:
        entry = read_entry(folder)
        if entry is not None:
            entries.append(entry)
            if limit is not None and len(entries) >= limit:
                break
    entries.sort(key=lambda e: (e.started, e.name), reverse=True)
    return entries


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def gallery(entries: list[HistoryEntry], graph_path: str | None) -> list[tuple[Path, HistoryEntry]]:
    """The images and videos that runs of one graph wrote, newest first, each file once.

    ``graph_path`` is the graph file's path (None: untitled graphs' runs). An output a run
    did not change (its node came from the cache) is the same file, linked into each record,
    and is listed once, with the newest run that has it."""
    seen: set[tuple[int, int]] = set()
    out = []
    for entry in entries:
        if entry.report.get("graph") != graph_path:
            continue
        for path in entry.outputs():
            same = _identity(path) if media_kind(path) is not None else None
            if same is not None and same not in seen:
                seen.add(same)
                out.append((path, entry))
    return out
