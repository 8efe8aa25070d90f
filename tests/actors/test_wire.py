"""The bar path's transport (``actors.wire``) between real Ray actors: answers, the callee's
own errors, the method allowlist, the key, resends after a SIGKILL, timeouts."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from actors.retry import ActorDownError, CallTimeoutError
from actors.wire import DeathWatch, WireError, WirePeer, _prove, call_all
from tests.kit.wire import Echo, PickyError, Unreachable


def _peer(handle, timeout_s: float = 30.0, wait_s: float = 60.0) -> WirePeer:
    return WirePeer("echo", handle, restart_wait_s=wait_s, timeout_s=timeout_s)


@pytest.mark.timeout(60)
def test_a_call_answers_and_a_fan_out_answers_in_order(ray_session, echo) -> None:
    other = ray_session.remote(Echo).options(num_cpus=0).remote()
    try:
        peer = _peer(echo)
        pid = ray_session.get(echo.pid.remote())
        assert peer.call("echo", [1, "a"]) == {"value": [1, "a"], "pid": pid}
        answers = call_all([(peer, "echo", (1,)), (_peer(other), "echo", (2,))])
        assert [a["value"] for a in answers] == [1, 2]
        assert answers[0]["pid"] != answers[1]["pid"]  # two processes, two connections
    finally:
        ray_session.kill(other, no_restart=True)


@pytest.mark.timeout(60)
def test_the_callees_error_comes_back_as_itself_and_the_wire_stays_usable(
    ray_session, echo
) -> None:
    peer = _peer(echo)
    with pytest.raises(PickyError, match="bad qty") as caught:
        peer.call("fail", "qty")
    assert caught.value.field == "qty"
    assert peer.call("echo", 7)["value"] == 7
    assert ray_session.get(echo.ran.remote()) == ["fail", "echo"]


@pytest.mark.timeout(60)
def test_a_method_not_served_on_the_wire_is_refused_and_never_runs(ray_session, echo) -> None:
    peer = _peer(echo)
    with pytest.raises(AttributeError, match="'secret' is not served on the wire"):
        peer.call("secret")
    assert "secret" not in ray_session.get(echo.ran.remote())


@pytest.mark.timeout(60)
def test_a_caller_without_the_key_is_refused_before_anything_is_read(ray_session, echo) -> None:
    point = ray_session.get(echo.endpoint.remote())
    with (
        socket.create_connection((point["host"], point["port"]), timeout=5) as sock,
        pytest.raises(WireError, match="does not hold the key"),
    ):
        _prove(sock, b"not the key", server=False)
    assert _peer(echo).call("echo", 1)["value"] == 1  # the server serves on
    assert ray_session.get(echo.ran.remote()) == ["echo"]


@pytest.mark.timeout(120)
def test_a_call_in_flight_when_the_actor_is_sigkilled_is_sent_again_after_the_restart(
    ray_session, echo
) -> None:
    peer = _peer(echo)
    old = ray_session.get(echo.pid.remote())
    peer.call("echo", 0)  # connected
    killer = threading.Timer(0.5, os.kill, (old, signal.SIGKILL))
    killer.start()
    started = time.monotonic()
    new = peer.call("sleep", 2.0)  # killed mid-call: resent to the restarted process
    killer.join()
    assert new != old and new == ray_session.get(echo.pid.remote())
    assert time.monotonic() - started >= 2.0
    assert ray_session.get(echo.ran.remote()) == ["sleep"]  # the new process ran it once


def _connected_then_killed(ray_session, echo) -> WirePeer:
    """A peer that has talked to ``echo``, whose process was then SIGKILLed."""
    peer = _peer(echo)
    pid = ray_session.get(echo.pid.remote())
    peer.call("echo", 0)
    os.kill(pid, signal.SIGKILL)
    return peer


@pytest.mark.timeout(120)
def test_without_retry_a_dead_actor_is_actor_down_at_once(ray_session, echo) -> None:
    peer = _connected_then_killed(ray_session, echo)
    with pytest.raises(ActorDownError, match="'echo' unreachable"):
        peer.call("echo", 1, retry=False)
    assert peer.call("echo", 2)["value"] == 2  # with retry, it waits for the restart


@pytest.mark.timeout(120)
def test_a_fan_out_without_retry_raises_actor_down_at_once(ray_session, echo) -> None:
    peer = _connected_then_killed(ray_session, echo)
    with pytest.raises(ActorDownError, match="'echo' unreachable"):  # with retry: the answer
        call_all([(peer, "echo", (1,))], retry=False)
    assert call_all([(peer, "echo", (2,))])[0]["value"] == 2  # with retry: after the restart


@pytest.mark.timeout(60)
def test_a_call_past_its_timeout_raises_and_its_late_answer_is_never_read(
    ray_session, echo
) -> None:
    ray_session.get(echo.pid.remote())  # the actor is up: its endpoint answers in time
    peer = _peer(echo, timeout_s=0.3)
    with pytest.raises(CallTimeoutError, match=r"echo\.sleep did not answer within 0\.3 s"):
        peer.call("sleep", 1.0)
    time.sleep(1.0)  # the late answer arrives on the dropped connection
    assert peer.call("echo", "next")["value"] == "next"


# ---------------------------------------------------------------------- after the answer
@pytest.mark.timeout(60)
def test_work_left_for_after_the_answer_runs_before_the_next_call(ray_session, echo) -> None:
    # Risk marks a bar after answering its open: the answer comes back first (the caller
    # reads it while the work is pending), and the same connection's next call finds it done.
    peer = _peer(echo)
    answer = peer.call("defer", "marks")
    assert answer == {"pending": ["marks"], "done": []}
    assert peer.call("echo", "next")["value"] == "next"
    assert ray_session.get(echo.ran.remote()) == ["defer", "after:marks", "echo"]


# ---------------------------------------------------------------------- death watch
def _until(check, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.timeout(120)
def test_a_death_watch_sees_the_process_die_and_watches_the_restarted_one(
    ray_session, echo
) -> None:
    watch = DeathWatch("echo", echo, restart_wait_s=60)
    watch.watch()
    old = ray_session.get(echo.pid.remote())
    assert ray_session.get(echo.echo.remote(1))["value"] == 1  # calls do not touch the watch
    assert not watch.died()
    os.kill(old, signal.SIGKILL)
    assert _until(watch.died)  # end of file on the dead process's connection
    assert watch.died() is False  # closed: nothing more to report until watched again
    watch.watch()  # waits for the restart
    assert ray_session.get(echo.pid.remote()) != old and not watch.died()
    assert ray_session.get(echo.ran.remote()) == []  # the new process ran nothing for it
    watch.close()


@pytest.mark.timeout(60)
def test_a_death_watch_that_cannot_connect_says_so_and_watches_nothing(
    ray_session, caplog
) -> None:
    handle = ray_session.remote(Unreachable).options(num_cpus=0).remote()
    try:
        watch = DeathWatch("far", handle, restart_wait_s=10)
        with caplog.at_level("WARNING", logger="raytrader.wire"):
            watch.watch()
        assert "far: no death watch" in caplog.text and "its calls will tell" in caplog.text
        assert not watch.died()
    finally:
        ray_session.kill(handle, no_restart=True)
