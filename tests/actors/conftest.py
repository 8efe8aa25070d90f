"""Fixtures of the live-runtime tests: a clean namespace around every test, and a
restartable test actor."""

from __future__ import annotations

import pytest


@pytest.fixture
def live(ray_session):
    """The session's Ray, with every live-runtime actor killed after the test (so no test
    sees another's ``feed``, ``risk``, ``broker`` or ``strategy:<id>``)."""
    from actors.runtime import kill_live_actors

    kill_live_actors()
    yield ray_session
    kill_live_actors()


@pytest.fixture
def echo(ray_session):
    """A restartable ``Echo`` actor (``tests.kit.wire``; one call at a time), killed for good
    after the test."""
    from tests.kit.wire import Echo

    ray = ray_session
    handle = ray.remote(Echo).options(max_restarts=-1, max_task_retries=0, num_cpus=0).remote()
    yield handle
    ray.kill(handle, no_restart=True)
