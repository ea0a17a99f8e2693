"""The row worker: a long-lived Ray actor that renders rows into a staging folder, never in place.

One worker holds one Executor for its whole life (engine.batch keeps it per process), so models
load once per worker and stay loaded across rows. A row renders into a fresh temporary folder;
the paths in its report are rewritten to the row's final folder, and then either the folder
stays in the shared staging area for the driver to move into place (shared output folder), or
its files travel back to the driver (no shared folder). Only the driver moves folders into place,
once per row: a row retried after its worker died is never written twice, never half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from fathom.engine.batch import _worker_executor, run_row
from fathom.engine.render import RenderJob, write_report

PROBE_NAME = ".probe"


def retarget(obj: Any, old: str, new: str) -> Any:
    """Every string in ``obj`` (JSON data) with the staging folder's path replaced by the final."""
    if isinstance(obj, str):
        return obj.replace(old, new)
    if isinstance(obj, list):
        return [retarget(v, old, new) for v in obj]
    if isinstance(obj, dict):
        return {k: retarget(v, old, new) for k, v in obj.items()}
    return obj


def sees_staging(staging: str, token: str) -> bool:
    """Whether this node sees the driver's output folder (a shared or the same filesystem)."""
    try:
        return (Path(staging) / PROBE_NAME).read_text("utf-8") == token
    except OSError:
        return False


def render_staged(
    job: RenderJob, row_index: int, name: str, staging: str, token: str, attempt: str
) -> dict[str, Any]:
    """Render one row away from its final folder; returns the manifest entry and either the
    staged folder (``staged``) or the folder's files (``files``: relative path -> bytes)."""
    shared = sees_staging(staging, token)
    if shared:
        tmp = Path(staging) / f"{name}.{attempt}"
    else:
        tmp = Path(tempfile.mkdtemp(prefix=f"fathom-{name}-"))
    final = str(job.out_dir)
    entry = run_row(replace(job, out_dir=tmp), row_index, name)
    entry = retarget(entry, str(tmp), final)
    report_path = tmp / "run.json"
    if report_path.exists():
        report = json.loads(report_path.read_text("utf-8"))
        write_report(report_path, retarget(report, str(tmp), final))
    result: dict[str, Any] = {"entry": entry, "node": socket.gethostname()}
    if shared:
        result["staged"] = str(tmp) if tmp.exists() else None
        return result
    files = {}
    if tmp.exists():
        for p in sorted(tmp.rglob("*")):
            if p.is_file():
                files[p.relative_to(tmp).as_posix()] = p.read_bytes()
        shutil.rmtree(tmp, ignore_errors=True)
    result["files"] = files
    return result


class RowWorker:
    """The actor class (wrapped with ``ray.remote`` by the scheduler): one per GPU or N CPUs."""

    def __init__(self) -> None:
        _worker_executor()  # the registry and executor load before the first row arrives

    def info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "node": socket.gethostname()}

    def render(
        self,
        job: RenderJob,
        row_index: int,
        name: str,
        staging: str,
        token: str,
        attempt: str,
        cwd: str,
    ) -> dict[str, Any]:
        # Relative graph, media and output paths mean what they mean on the driver, where the
        # driver's folder exists here too; rows run one at a time per worker, so chdir is safe.
        if os.path.isdir(cwd):
            os.chdir(cwd)
        return render_staged(job, row_index, name, staging, token, attempt)
