"""Starting or joining Ray: in-process for a laptop, ``RAY_ADDRESS`` for a running cluster."""

from __future__ import annotations

import os

from core.cluster_join import join
from core.errors import ConfigError

__all__ = ["NAMESPACE", "cluster_cpus", "ensure_ray", "resolve_workers"]

NAMESPACE = "raytrader"


def ensure_ray(num_cpus: int | None = None) -> None:
    """Connect to Ray once: the cluster at ``RAY_ADDRESS`` if set, else a local in-process one.

    Args:
        num_cpus: CPUs of a local instance (default: all of the machine's); ignored when
            joining a cluster, whose size is its own.

    A local instance runs its workers at normal priority (``RAY_worker_niceness=0``, unless
    set): Ray's default niceness of 15 lets any other busy process on the machine starve the
    research workers, which do nothing but compute.
    """
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = os.environ.get("RAY_ADDRESS")
    if address:
        join(address, ray.init, namespace=NAMESPACE, logging_level="warning")
    else:
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(
            num_cpus=num_cpus, namespace=NAMESPACE, include_dashboard=False,
            logging_level="warning", configure_logging=False,
        )  # fmt: skip


def cluster_cpus() -> int:
    """CPUs of the connected cluster (at least 1)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def resolve_workers(workers: int | None) -> int:
    """The number of worker actors: as asked, or one per CPU of the cluster."""
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: must be at least 1")
    cpus = cluster_cpus()
    if workers is not None and workers > cpus:
        raise ConfigError(
            f"--workers {workers}: the Ray cluster has {cpus} CPUs (one worker per CPU at most)"
        )
    return workers if workers is not None else cpus
