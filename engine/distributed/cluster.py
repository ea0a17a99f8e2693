"""Connecting to Ray (`--cluster auto|local|ray://HOST:PORT`) and sizing the pool of row workers."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fathom.engine.errors import FathomError

CLUSTER_CHOICES = "auto|local|ray://HOST:PORT"
# Ray otherwise binds a local instance to this machine's network address; a local instance has
# no reason to be reachable from elsewhere (checked: every socket then stays on 127.0.0.1).
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
CPUS_PER_WORKER_ENV = "FATHOM_CPUS_PER_WORKER"
FIX = (
    "start a cluster head with `ray start --head --ray-client-server-port=10001`, check the "
    "address, or use --cluster local"
)


class ClusterUnavailable(FathomError):
    """The cluster cannot be used; raised before any row runs or anything is written."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ClusterUnavailable(
            f"--cluster needs Ray, which is not installed ({exc}). "
            'Fix: pip install "fathom-studio[cluster]"'
        ) from None
    return ray


def parse_address(address: str) -> tuple[str, int] | None:
    """(host, port) of a ``ray://HOST:PORT`` address; None for auto and local."""
    if address in ("auto", "local"):
        return None
    if not address.startswith("ray://"):
        raise ClusterUnavailable(f"--cluster {address!r} is not one of {CLUSTER_CHOICES}.")
    host, _, port = address[len("ray://") :].rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterUnavailable(
            f"--cluster {address!r} needs the form ray://HOST:PORT "
            "(the head's Ray client port, 10001 by default)."
        )
    return host.strip("[]"), int(port)


def check_reachable(host: str, port: int, timeout: float = 3.0) -> None:
    """A plain TCP connect first: Ray's client retries for a long time before it gives up."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ClusterUnavailable(
            f"the Ray cluster at ray://{host}:{port} cannot be reached ({reason}). Fix: {FIX}."
        ) from None


def _start_local(ray: Any, num_cpus: int | None) -> None:
    os.environ.setdefault(LOOPBACK_ENV, "0")
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)


@contextlib.contextmanager
def connect(address: str, num_cpus: int | None = None) -> Iterator[Any]:
    """Yields the ``ray`` module, connected; disconnects (and stops a local instance) after.

    ``auto``: RAY_ADDRESS, else a cluster already started on this machine (`ray start`), else a
    local instance. ``local``: always a new local instance. ``ray://HOST:PORT``: a remote head.
    If Ray is already initialised (a test, a notebook), that connection is used as it is.
    """
    target = parse_address(address)
    if target is not None:
        check_reachable(*target)
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        if target is not None:
            ray.init(address=address)
        elif address == "local":
            _start_local(ray, num_cpus)
        elif os.environ.get("RAY_ADDRESS"):
            ray.init(address=os.environ["RAY_ADDRESS"])
        else:
            try:
                ray.init(address="auto")
            except ConnectionError:
                _start_local(ray, num_cpus)
    except ClusterUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; all mean 'no cluster'
        raise ClusterUnavailable(
            f"could not connect to Ray ({address}): {exc}. Fix: {FIX}."
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class PoolPlan:
    """How many row workers, and what each one reserves on its node."""

    workers: int
    num_cpus: float
    num_gpus: float

    def describe(self) -> str:
        each = f"1 GPU + {self.num_cpus:g} CPU" if self.num_gpus else f"{self.num_cpus:g} CPU"
        return f"{self.workers} worker{'s' if self.workers != 1 else ''} ({each} each)"


def plan_pool(
    resources: dict[str, float],
    rows: int,
    device: str = "auto",
    max_workers: int | None = None,
    cpus_per_worker: float | None = None,
) -> PoolPlan:
    """One worker per GPU when the cluster has GPUs (unless --device cpu), else one per
    ``cpus_per_worker`` CPUs (FATHOM_CPUS_PER_WORKER, default 1); never more than rows."""
    if cpus_per_worker is None:
        from fathom.engine.envvars import env_number

        cpus_per_worker = env_number(CPUS_PER_WORKER_ENV, 1.0, "CPUs per worker", minimum=0.01)
    gpus = int(resources.get("GPU", 0))
    cpus = resources.get("CPU", 0.0)
    if gpus and device not in ("cpu", "mps"):
        n, plan_cpus, plan_gpus = gpus, min(1.0, cpus / gpus if gpus else 1.0), 1.0
    else:
        n, plan_cpus, plan_gpus = max(1, int(cpus // cpus_per_worker)), cpus_per_worker, 0.0
    if max_workers:
        n = min(n, max_workers)
    return PoolPlan(max(1, min(n, rows)), plan_cpus, plan_gpus)
