"""Fixtures of the live-runtime tests: a clean namespace around every test."""

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
