"""The driver of a Ray batch: hands rows to free workers, retries rows whose worker died,
commits each row's folder once, and writes the same manifest as the local batch."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fathom.engine.batch import ProgressFn, Row, row_job, write_manifest
from fathom.engine.distributed.cluster import PoolPlan, plan_pool
from fathom.engine.distributed.worker import PROBE_NAME, RowWorker
from fathom.engine.fileio import atomic_write_bytes, atomic_write_text
from fathom.engine.render import RenderJob

STAGING_PREFIX = ".fathom-staging-"
LogFn = Callable[[str], None]


@dataclass
class _Task:
    row: Row
    job: RenderJob
    attempts: int = 0


def _cancelled_entry(task: _Task, why: str) -> dict[str, Any]:
    return {
        "row": task.row.index,
        "name": task.row.name,
        "out": str(task.job.out_dir),
        "status": "cancelled",
        "outputs": [],
        "errors": [why] if why else [],
        "seconds": 0.0,
    }


def _died_entry(task: _Task, error: str) -> dict[str, Any]:
    return {
        "row": task.row.index,
        "name": task.row.name,
        "out": str(task.job.out_dir),
        "status": "failed",
        "outputs": [],
        "errors": [error],
        "seconds": 0.0,
    }


def commit(result: dict[str, Any], final: Path, staging: Path, attempt: str) -> None:
    """Move a rendered row into place: files are complete before they get their final name.
    A folder left by an earlier batch is replaced whole, so no stale file survives in it."""
    staged = result.get("staged")
    if "files" in result:
        if not result["files"]:
            return
        folder = staging / f"{final.name}.{attempt}.recv"
        for rel, data in result["files"].items():
            atomic_write_bytes(folder / rel, data)
        staged = str(folder)
    if not staged:
        return  # the row was invalid: nothing was rendered, nothing changes
    old = None
    if final.exists():
        old = staging / f"{final.name}.{attempt}.old"
        os.replace(final, old)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _actor_died(ray: Any, exc: BaseException) -> bool:
    died = (
        ray.exceptions.RayActorError,
        ray.exceptions.WorkerCrashedError,
        ray.exceptions.NodeDiedError,
        ray.exceptions.ObjectLostError,
    )
    return isinstance(exc, died)


def run_batch_ray(
    ray: Any,
    base: RenderJob,
    rows: list[Row],
    *,
    progress: ProgressFn | None = None,
    log: LogFn | None = None,
    max_workers: int | None = None,
    max_retries: int = 2,
    plan: PoolPlan | None = None,
) -> dict[str, Any]:
    """Runs rows on a connected Ray cluster and writes ``DIR/manifest.json``.

    A row whose worker dies (process killed, node lost) runs again on a fresh worker, at most
    ``max_retries`` more times; a row that fails inside a node is reported like a local one.
    Ctrl-C stops handing out rows and waits for the running ones (again: stops them too).
    """
    t0 = time.perf_counter()
    say = log or (lambda text: None)
    tasks = [_Task(r, row_job(base, r)) for r in rows]
    plan = plan or plan_pool(ray.cluster_resources(), len(tasks), base.device, max_workers)
    say(f"ray: {plan.describe()} for {len(tasks)} rows")

    base.out_dir.mkdir(parents=True, exist_ok=True)
    batch_id = uuid.uuid4().hex[:12]
    staging = (base.out_dir / f"{STAGING_PREFIX}{batch_id}").resolve()
    staging.mkdir()
    atomic_write_text(staging / PROBE_NAME, batch_id)
    cwd = os.getcwd()

    actor_cls = ray.remote(RowWorker).options(
        num_cpus=plan.num_cpus, num_gpus=plan.num_gpus, max_restarts=0, max_task_retries=0
    )
    free = deque(actor_cls.remote() for _ in range(plan.workers))
    queue = deque(tasks)
    running: dict[Any, tuple[Any, _Task, str]] = {}
    entries: list[dict[str, Any]] = []
    replacements = 0
    stopping = False

    def done(entry: dict[str, Any]) -> None:
        entries.append(entry)
        if progress:
            progress(entry, len(entries), len(tasks))

    def submit() -> None:
        while free and queue and not stopping:
            actor, task = free.popleft(), queue.popleft()
            task.attempts += 1
            attempt = f"{batch_id}-{task.attempts}"
            ref = actor.render.remote(
                task.job, task.row.index, task.row.name, str(staging), batch_id, attempt, cwd
            )
            running[ref] = (actor, task, attempt)

    try:
        while running or (queue and not stopping):
            submit()
            if not running:  # every worker gone and no replacement left
                for t in queue:
                    done(_died_entry(t, "no worker left to run it"))
                queue.clear()
                break
            try:
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            except KeyboardInterrupt:
                if stopping:
                    raise
                stopping = True
                say(
                    f"cancelling: {len(queue)} rows not started will not run; waiting for "
                    f"{len(running)} running (Ctrl-C again to stop them)"
                )
                continue
            for ref in ready:
                actor, task, attempt = running.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - sorted below by what it means
                    if not _actor_died(ray, exc):
                        done(_died_entry(task, f"worker error: {exc}"))
                        free.append(actor)
                        continue
                    ray.kill(actor, no_restart=True)
                    cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                    if task.attempts <= max_retries:
                        say(
                            f"row {task.row.name}: its worker died ({cause}); retrying on "
                            f"another worker (attempt {task.attempts + 1} of {max_retries + 1})"
                        )
                        queue.appendleft(task)
                    else:
                        done(
                            _died_entry(
                                task, f"its worker died {task.attempts} times (last: {cause})"
                            )
                        )
                    if replacements < plan.workers * (max_retries + 1):
                        replacements += 1
                        free.append(actor_cls.remote())
                    continue
                commit(result, Path(task.job.out_dir), staging, attempt)
                done(result["entry"])
                free.append(actor)
    except KeyboardInterrupt:
        stopping = True
        say(f"stopped: {len(running)} running rows cancelled")
        for actor, task, _ in running.values():
            ray.kill(actor, no_restart=True)
            done(_cancelled_entry(task, "cancelled while running"))
        running.clear()
    interrupted = stopping
    reported = {e["row"] for e in entries}
    for task in tasks:  # rows not started, or stopped between their result and its commit
        if task.row.index not in reported:
            done(_cancelled_entry(task, "not started: the batch was cancelled"))
    for actor in free:
        ray.kill(actor, no_restart=True)
    shutil.rmtree(staging, ignore_errors=True)
    finished = sum(1 for e in entries if e["status"] != "cancelled")
    if interrupted:
        say(f"finished {finished} of {len(tasks)} rows before the cancel; see the manifest")
    return write_manifest(base, entries, len(tasks), interrupted, time.perf_counter() - t0)
