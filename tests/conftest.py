"""Shared pytest fixtures and settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parent.parent

# CI runs the same examples every time (a failure there is reproducible); locally hypothesis
# keeps exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def data_dir() -> Path:
    """The repository's bundled real daily data (data/*.csv)."""
    return REPO / "data"


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test session (2 CPUs), started on first use.

    Tests that use Ray take this fixture and carry their own ``@pytest.mark.timeout``.
    """
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            namespace="raytrader",
        )
    yield ray
    ray.shutdown()
