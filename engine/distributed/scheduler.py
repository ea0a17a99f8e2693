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
    pool = _RayPool(ray, plan, tasks, base.out_dir, max_retries, say, progress)
    try:
        pool.run()
    except KeyboardInterrupt:
        pool.cancel_running()
    pool.close()
    interrupted = pool.stopping
    finished = sum(1 for e in pool.entries if e["status"] != "cancelled")
    if interrupted:
        say(f"finished {finished} of {len(tasks)} rows before the cancel; see the manifest")
    return write_manifest(base, pool.entries, len(tasks), interrupted, time.perf_counter() - t0)


class _RayPool:
    """A pool of row workers (Ray actors) fed from a queue of rows: results are committed
    from a staging folder, dead workers are replaced (within a budget) and their rows retried."""

    def __init__(
        self,
        ray: Any,
        plan: PoolPlan,
        tasks: list[_Task],
        out_dir: Path,
        max_retries: int,
        say: LogFn,
        progress: ProgressFn | None,
    ) -> None:
        self.ray, self.plan, self.tasks, self.max_retries = ray, plan, tasks, max_retries
        self.say, self.progress = say, progress
        self.batch_id = uuid.uuid4().hex[:12]
        self.staging = (out_dir / f"{STAGING_PREFIX}{self.batch_id}").resolve()
        self.staging.mkdir()
        atomic_write_text(self.staging / PROBE_NAME, self.batch_id)
        self.cwd = os.getcwd()
        self.actor_cls = ray.remote(RowWorker).options(
            num_cpus=plan.num_cpus, num_gpus=plan.num_gpus, max_restarts=0, max_task_retries=0
        )
        self.free = deque(self.actor_cls.remote() for _ in range(plan.workers))
        self.queue = deque(tasks)
        self.running: dict[Any, tuple[Any, _Task, str]] = {}
        self.entries: list[dict[str, Any]] = []
        self.replacements = 0
        self.stopping = False

    def done(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)
        if self.progress:
            self.progress(entry, len(self.entries), len(self.tasks))

    def submit(self) -> None:
        while self.free and self.queue and not self.stopping:
            actor, task = self.free.popleft(), self.queue.popleft()
            task.attempts += 1
            attempt = f"{self.batch_id}-{task.attempts}"
            ref = actor.render.remote(
                task.job,
                task.row.index,
                task.row.name,
                str(self.staging),
                self.batch_id,
                attempt,
                self.cwd,
            )
            self.running[ref] = (actor, task, attempt)

    def run(self) -> None:
        while self.running or (self.queue and not self.stopping):
            self.submit()
            if not self.running:  # every worker gone and no replacement left
                for t in self.queue:
                    self.done(_died_entry(t, "no worker left to run it"))
                self.queue.clear()
                return
            try:
                ready, _ = self.ray.wait(list(self.running), num_returns=1, timeout=0.5)
            except KeyboardInterrupt:
                if self.stopping:
                    raise
                self.stopping = True
                self.say(
                    f"cancelling: {len(self.queue)} rows not started will not run; waiting for "
                    f"{len(self.running)} running (Ctrl-C again to stop them)"
                )
                continue
            for ref in ready:
                self.collect(ref)

    def collect(self, ref: Any) -> None:
        actor, task, attempt = self.running.pop(ref)
        try:
            result = self.ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - sorted below by what it means
            if not _actor_died(self.ray, exc):
                self.done(_died_entry(task, f"worker error: {exc}"))
                self.free.append(actor)
            else:
                self.worker_died(actor, task, exc)
            return
        commit(result, Path(task.job.out_dir), self.staging, attempt)
        self.done(result["entry"])
        self.free.append(actor)

    def worker_died(self, actor: Any, task: _Task, exc: BaseException) -> None:
        self.ray.kill(actor, no_restart=True)
        cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        if task.attempts <= self.max_retries:
            self.say(
                f"row {task.row.name}: its worker died ({cause}); retrying on another worker "
                f"(attempt {task.attempts + 1} of {self.max_retries + 1})"
            )
            self.queue.appendleft(task)
        else:
            self.done(_died_entry(task, f"its worker died {task.attempts} times (last: {cause})"))
        if self.replacements < self.plan.workers * (self.max_retries + 1):
            self.replacements += 1
            self.free.append(self.actor_cls.remote())

    def cancel_running(self) -> None:
        self.stopping = True
        self.say(f"stopped: {len(self.running)} running rows cancelled")
        for actor, task, _ in self.running.values():
            self.ray.kill(actor, no_restart=True)
            self.done(_cancelled_entry(task, "cancelled while running"))
        self.running.clear()

    def close(self) -> None:
        """Rows never reported (not started, or stopped between their result and its commit)
        are listed as cancelled; the workers and the staging folder go."""
        reported = {e["row"] for e in self.entries}
        for task in self.tasks:
            if task.row.index not in reported:
                self.done(_cancelled_entry(task, "not started: the batch was cancelled"))
        for actor in self.free:
            self.ray.kill(actor, no_restart=True)
        shutil.rmtree(self.staging, ignore_errors=True)
