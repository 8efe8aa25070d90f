"""Waiting for a restarting actor (``actors.retry``) against real Ray actors: a probe sees
the new process, a call the death failed is sent again once and runs once there, an actor
killed for good or stuck ends the wait with an error that names it. No timing is asserted
(how much sooner a probe sees an actor up is measured in the module's docstring)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from actors.retry import (
    _MAX_PROBES,
    ActorDownError,
    CallTimeoutError,
    call,
    call_all_sync,
    call_sync,
    wait_back,
)
from tests.kit.wire import Echo


@pytest.mark.timeout(120)
def test_a_probe_sees_the_process_ray_restarted_after_a_sigkill(ray_session, echo) -> None:
    old = ray_session.get(echo.pid.remote())
    os.kill(old, signal.SIGKILL)
    new = old
    while new == old:  # a probe sent before the kill landed may still see the old process
        new = wait_back(echo.pid, restart_wait_s=60, name="echo")
    assert new == ray_session.get(echo.pid.remote())
    assert ray_session.get(echo.ran.remote()) == []  # probes run no method of its own


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_call_the_death_failed_is_sent_again_once_and_runs_once_in_the_new_process(
    ray_session, echo, kind
) -> None:
    old = ray_session.get(echo.pid.remote())
    killer = threading.Timer(0.5, os.kill, (old, signal.SIGKILL))
    killer.start()
    if kind == "sync":
        new = call_sync(echo.sleep, 1.5, restart_wait_s=60, name="echo", probe=echo.pid)
    else:
        new = asyncio.run(call(echo.sleep, 1.5, restart_wait_s=60, name="echo", probe=echo.pid))
    killer.join()
    assert new != old and new == ray_session.get(echo.pid.remote())
    assert ray_session.get(echo.ran.remote()) == ["sleep"]  # the new process ran it once


@pytest.mark.timeout(120)
def test_a_fan_out_resends_only_the_call_whose_actor_died_once_it_is_up(
    ray_session, echo
) -> None:
    other = ray_session.remote(Echo).options(num_cpus=0).remote()
    try:
        old = ray_session.get(echo.pid.remote())
        killer = threading.Timer(0.5, os.kill, (old, signal.SIGKILL))
        killer.start()
        calls = [(echo.sleep, (1.5,), "echo"), (other.echo, ("x",), "other")]
        probes = [echo.pid, other.pid]
        new, answer = call_all_sync(calls, restart_wait_s=60, probes=probes)
        killer.join()
        assert new != old and new == ray_session.get(echo.pid.remote())
        assert answer["value"] == "x"
        assert ray_session.get(echo.ran.remote()) == ["sleep"]  # once, in the new process
        assert ray_session.get(other.ran.remote()) == ["echo"]  # never sent again
        with pytest.raises(ValueError, match="1 probes for 2 calls"):
            call_all_sync(calls, restart_wait_s=60, probes=probes[:1])
    finally:
        ray_session.kill(other, no_restart=True)


@pytest.mark.timeout(60)
def test_an_actor_killed_for_good_is_actor_down_after_the_wait(ray_session) -> None:
    handle = ray_session.remote(Echo).options(max_restarts=-1, num_cpus=0).remote()
    ray_session.get(handle.pid.remote())
    ray_session.kill(handle, no_restart=True)
    deadline = time.monotonic() + 30  # ray.kill returns at once: a call may still get through
    while True:
        try:
            ray_session.get(handle.pid.remote(), timeout=10)
        except ray_session.exceptions.RayActorError:
            break  # gone for good
        assert time.monotonic() < deadline, "the killed actor kept answering"
        time.sleep(0.05)
    with pytest.raises(ActorDownError, match=r"actor 'gone' unreachable for \d+\.\d s") as err:
        wait_back(handle.pid, restart_wait_s=0.5, name="gone")
    assert err.value.waited_s >= 0.5  # the whole wait (how much longer is the machine's load)
    with pytest.raises(ActorDownError, match="'gone' unreachable"):
        call_sync(handle.echo, 1, restart_wait_s=0.5, name="gone", probe=handle.pid)


@pytest.mark.timeout(60)
def test_a_probe_an_actor_up_but_stuck_never_answers_is_a_timeout(ray_session, echo) -> None:
    ray_session.get(echo.pid.remote())
    busy = echo.sleep.remote(3.0)  # one call at a time: the probes queue behind it
    with pytest.raises(CallTimeoutError, match=r"echo\.pid did not answer within 0\.5 s"):
        wait_back(echo.pid, restart_wait_s=60, timeout_s=0.5, name="echo")
    assert ray_session.get(busy) == ray_session.get(echo.pid.remote())  # not restarted


@pytest.mark.timeout(60)
def test_probes_in_flight_are_capped(ray_session, echo) -> None:
    # An actor that is up but busy (one call at a time) holds every probe until it is free;
    # a wait longer than the cap's worth of probes (64 x 50 ms) sends no more than the cap,
    # each of which then runs once.
    ray_session.get(echo.pid.remote())
    busy = echo.sleep.remote(4.5)
    with pytest.raises(ActorDownError, match="'echo' unreachable"):
        wait_back(echo.ping, restart_wait_s=4.0, name="echo")
    ray_session.get(busy)
    deadline = time.monotonic() + 20
    while (ran := ray_session.get(echo.ran.remote())).count("ping") < _MAX_PROBES:
        assert time.monotonic() < deadline, ran
        time.sleep(0.05)
    time.sleep(0.5)  # none beyond the cap arrives late
    assert ray_session.get(echo.ran.remote()).count("ping") == _MAX_PROBES == 64
