"""Batch rendering: one job per row of overrides, on worker processes, merged in one manifest."""

from __future__ import annotations

import csv
import json
import multiprocessing as mp
import re
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fathom.engine.errors import FathomError, GraphInvalid, Problem
from fathom.engine.executor import Executor
from fathom.engine.fileio import atomic_write_text
from fathom.engine.graphfile import graph_hash, load, to_document
from fathom.engine.registry import default_registry
from fathom.engine.render import (
    RenderJob,
    build_report,
    execute,
    parse_frames,
    prepare,
    write_report,
)

MANIFEST_FORMAT = "fathom.batch"
_NAME_RE = re.compile(r"[^A-Za-z0-9_.\-]+")


@dataclass
class Row:
    index: int
    name: str
    overrides: list[tuple[str, str, Any]]
    from_text: bool
    frames: tuple[int, int] | None = None
    seed: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)


class BatchFileError(FathomError):
    pass


def read_rows(path: Path) -> list[Row]:
    """JSONL (typed JSON values) or CSV (text parsed by each parameter's kind).

    Columns are ``NODE.PARAM``; ``_name``, ``_frames`` and ``_seed`` are per-row settings.
    """
    if not path.exists():
        raise BatchFileError(f"batch file {path} does not exist.")
    suffix = path.suffix.lower()
    records: list[tuple[int, dict[str, Any]]] = []
    if suffix in (".jsonl", ".ndjson"):
        for lineno, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BatchFileError(f"{path} line {lineno} is not JSON: {exc.msg}.") from None
            except RecursionError:  # the decoder recurses once per level: [[[[...]]]]
                raise BatchFileError(
                    f"{path} line {lineno} nests too deeply to be overrides. Fix: give each "
                    "row as one flat JSON object of NODE.PARAM values."
                ) from None
            if not isinstance(obj, dict):
                raise BatchFileError(f"{path} line {lineno} must be a JSON object of overrides.")
            records.append((lineno, obj))
        from_text = False
    elif suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            for lineno, obj in enumerate(reader, 2):
                if None in obj:
                    raise BatchFileError(f"{path} line {lineno} has more cells than the header.")
                records.append((lineno, {k: v for k, v in obj.items() if v not in (None, "")}))
        from_text = True
    else:
        raise BatchFileError(f"batch file {path} must be .jsonl or .csv.")
    if not records:
        raise BatchFileError(f"batch file {path} has no rows.")
    rows = []
    for i, (lineno, obj) in enumerate(records):
        overrides = []
        for key, value in obj.items():
            if key.startswith("_"):
                continue
            if "." not in key:
                raise BatchFileError(f"{path} line {lineno}: column {key!r} must be NODE.PARAM.")
            node, param = key.split(".", 1)
            overrides.append((node, param, value))
        try:
            frames = parse_frames(str(obj["_frames"])) if "_frames" in obj else None
            seed = int(obj["_seed"]) if "_seed" in obj else None
        except ValueError as exc:
            raise BatchFileError(f"{path} line {lineno}: {exc}") from None
        name = _NAME_RE.sub("_", str(obj.get("_name", f"row-{i:04d}")))
        rows.append(Row(i, name, overrides, from_text, frames, seed, obj))
    names = [r.name for r in rows]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise BatchFileError(f"{path}: row names {dup} repeat; each row needs its own folder.")
    return rows


def check_rows(base: RenderJob, rows: list[Row], executor: Executor) -> None:
    """Every row is prepared (graph validated, overrides applied, pre-flight checks run) before
    any row runs, so a typo or a missing file costs no render time and writes nothing. Problems
    that every row shares (the graph's own) are listed once, the rest with their row."""
    failed: list[tuple[Row, list[Problem]]] = []
    for row in rows:
        try:
            prepare(row_job(base, row), executor)
        except GraphInvalid as exc:
            failed.append((row, exc.problems))
    if not failed:
        return
    shared: set[Problem] = set()
    if len(failed) == len(rows):
        shared = set.intersection(*(set(probs) for _, probs in failed))
    problems = [p for p in failed[0][1] if p in shared]
    for row, probs in failed:
        problems += [
            Problem(f"row {row.index} ({row.name}): {p.message}", p.node, p.port, p.fix, p.code)
            for p in probs
            if p not in shared
        ]
    raise GraphInvalid(problems, "The batch cannot start")


def row_job(base: RenderJob, row: Row) -> RenderJob:
    return RenderJob(
        base.graph_path,
        base.out_dir / row.name,
        base.overrides + row.overrides,
        row.from_text,
        base.device,
        row.frames or base.frames,
        base.seed if row.seed is None else row.seed,
        base.targets,
    )


# ---- workers -------------------------------------------------------------------------------

_WORKER_EXECUTOR: Executor | None = None


def _worker_executor() -> Executor:
    """One executor per worker process, kept across rows so loaded models and cache are reused."""
    global _WORKER_EXECUTOR
    if _WORKER_EXECUTOR is None:
        from fathom.engine.allocator import keep_freed_memory

        keep_freed_memory()  # a spawned worker process: as the CLI that started it
        _WORKER_EXECUTOR = Executor()
    return _WORKER_EXECUTOR


def run_row(job: RenderJob, row_index: int, name: str) -> dict[str, Any]:
    """Render one row; never raises: a failed row is a manifest entry, not a crashed batch."""
    started = time.time()
    t0 = time.perf_counter()
    entry: dict[str, Any] = {"row": row_index, "name": name, "out": str(job.out_dir)}
    try:
        ex = _worker_executor()
        prep = prepare(job, ex)
        result = execute(prep, ex)
        report = build_report(prep, result, started)
        write_report(job.out_dir / "run.json", report)
        entry.update(
            status=report["status"],
            outputs=report["outputs"],
            graph_hash=report["graph_hash"],
            errors=[
                r["error"] for r in report["nodes"] if r.get("error") and r["status"] == "failed"
            ],
        )
    except (FathomError, OSError) as exc:
        entry.update(status="invalid", outputs=[], errors=[str(exc)])
    entry["seconds"] = round(time.perf_counter() - t0, 4)
    return entry


ProgressFn = Callable[[dict[str, Any], int, int], None]


def run_batch(
    base: RenderJob, rows: list[Row], workers: int = 1, progress: ProgressFn | None = None
) -> dict[str, Any]:
    """Runs rows on ``workers`` processes (inline for 1) and writes ``manifest.json``."""
    t0 = time.perf_counter()
    jobs = [(row_job(base, r), r.index, r.name) for r in rows]
    entries: list[dict[str, Any]] = []
    interrupted = False

    def done(entry: dict[str, Any]) -> None:
        entries.append(entry)
        if progress:
            progress(entry, len(entries), len(jobs))

    try:
        if workers <= 1:
            for job, i, name in jobs:
                done(run_row(job, i, name))
        else:
            ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                pending: set[Future[dict[str, Any]]] = {pool.submit(run_row, *j) for j in jobs}
                try:
                    while pending:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for fut in finished:
                            done(fut.result())
                except KeyboardInterrupt:
                    for fut in pending:
                        fut.cancel()
                    raise
    except KeyboardInterrupt:
        interrupted = True
    return write_manifest(base, entries, len(jobs), interrupted, time.perf_counter() - t0)


def write_manifest(
    base: RenderJob,
    entries: list[dict[str, Any]],
    total_rows: int,
    interrupted: bool,
    seconds: float,
) -> dict[str, Any]:
    """``DIR/manifest.json`` over every row's entry; the local and the Ray batch both write it."""
    entries = sorted(entries, key=lambda e: e["row"])
    doc = to_document(load(base.graph_path, default_registry()), default_registry())
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": 1,
        "graph": str(base.graph_path),
        "graph_hash": graph_hash(doc),
        "rows": entries,
        "counts": {
            s: sum(1 for e in entries if e["status"] == s)
            for s in ("ok", "failed", "invalid", "cancelled")
        },
        "total_rows": total_rows,
        "interrupted": interrupted,
        "seconds": round(seconds, 4),
    }
    base.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(base.out_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest
