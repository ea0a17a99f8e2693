"""Batch rendering on a Ray cluster: long-lived row workers, retries, atomic commits, one manifest.

Ray is an optional extra (``pip install "fathom-studio[cluster]"``); nothing here imports it until
a cluster batch starts. ``fathom render GRAPH --batch ROWS --cluster ...`` is the entry point.
"""

from fathom.engine.distributed.cluster import ClusterUnavailable, connect
from fathom.engine.distributed.scheduler import run_batch_ray

__all__ = ["ClusterUnavailable", "connect", "run_batch_ray"]
