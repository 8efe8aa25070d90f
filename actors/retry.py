"""Calling an actor that may be restarting: the same call again, until it is back (bounded).

Ray restarts a crashed live actor (``max_restarts=-1``) but never retries our calls
(``max_task_retries=0``): a call in flight when the actor dies fails with ``RayActorError``
(``ActorDiedError``, ``ActorUnavailableError``), even though it may have run. Every call the
runtime retries is idempotent (bars by index, orders by ``client_order_id``), so the answer is
to send the same call, with the same arguments, once the actor is back. ``restart_wait_s``
bounds the whole wait.

Whether it is back is asked with a probe (``wait_back``): a method without arguments or
effects (``pid``, ``endpoint``), sent again every ``PROBE_EVERY_S`` without waiting for the
earlier ones to fail. A single call sent to a restarting actor is not held until the actor is
up: Ray fails it with ``ActorUnavailableError`` some 1-2 s later, often after the actor is
ready (measured here: an actor ready 0.3-0.6 s after its SIGKILL was seen back at 1.5-2.0 s
by one call at a time; one ready at 0.6 s, at 0.72-0.78 s by a probe every 50 ms), and the
caller would lose that time on every restart.

A call that takes longer than ``timeout_s`` is not retried (the actor is alive but stuck, or
the work is too big): ``CallTimeoutError``, so the caller can stop instead of piling up calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any

from core.errors import RaytraderError

__all__ = [
    "ActorDownError",
    "CallTimeoutError",
    "actor_errors",
    "call",
    "call_all_sync",
    "call_sync",
    "wait_back",
]

_FIRST_PAUSE_S = 0.05
_MAX_PAUSE_S = 1.0
#: How often ``wait_back`` sends another probe, and how many it keeps in flight at most.
PROBE_EVERY_S = 0.05
_MAX_PROBES = 64


class ActorDownError(RaytraderError):
    """An actor stayed unreachable for longer than the caller may wait."""

    def __init__(self, name: str, waited_s: float, cause: BaseException | None = None) -> None:
        self.name = name
        self.waited_s = waited_s
        why = f": {type(cause).__name__}" if cause is not None else ""
        super().__init__(f"actor {name!r} unreachable for {waited_s:.1f} s{why}")

    def __reduce__(self) -> tuple[type, tuple[str, float]]:
        # Picklable from its fields: it may end an actor method and cross to the caller.
        return type(self), (self.name, self.waited_s)


class CallTimeoutError(RaytraderError):
    """A call to a live actor did not answer in time."""

    def __init__(self, name: str, method: str, timeout_s: float) -> None:
        self.name, self.method, self.timeout_s = name, method, timeout_s
        super().__init__(f"{name}.{method} did not answer within {timeout_s:g} s")

    def __reduce__(self) -> tuple[type, tuple[str, str, float]]:
        return type(self), (self.name, self.method, self.timeout_s)


def actor_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the actor died or is restarting" (all ``RayActorError``)."""
    from ray.exceptions import RayActorError

    return (RayActorError,)


def _names(method: Any, name: str | None) -> tuple[str, str]:
    method_name = getattr(method, "_method_name", "call")
    return name or "actor", method_name


def _pause(attempt: int) -> float:
    return min(_FIRST_PAUSE_S * 2**attempt, _MAX_PAUSE_S)


async def call(
    method: Any,
    *args: Any,
    restart_wait_s: float,
    timeout_s: float | None = None,
    name: str | None = None,
    retry: bool = True,
    probe: Any | None = None,
) -> Any:
    """Await ``method.remote(*args)``, re-sending it while the actor restarts.

    Args:
        method: an actor method (``handle.on_bar``).
        restart_wait_s: longest total wait for the actor to come back.
        timeout_s: longest wait for one answer (None: no limit).
        name: the actor's name for messages.
        retry: False: one attempt; an actor error raises ``ActorDownError`` at once.
        probe: the actor's ``pid`` (say): the call is sent again as soon as ``wait_back``
            (in a thread) sees the actor up, not after a pause that grows to a second.

    Raises:
        ActorDownError: the actor did not come back in time (or ``retry`` is False).
        CallTimeoutError: one attempt took longer than ``timeout_s``.
        Exception: whatever the method itself raised (``RayTaskError`` wrapping it).
    """
    errors = actor_errors()
    actor, method_name = _names(method, name)
    start = time.monotonic()
    attempt = 0
    while True:
        ref = method.remote(*args)
        try:
            if timeout_s is None:
                return await ref
            return await asyncio.wait_for(asyncio.wrap_future(ref.future()), timeout_s)
        except errors as exc:
            waited = time.monotonic() - start
            if not retry or waited >= restart_wait_s:
                raise ActorDownError(actor, waited, exc) from exc
            if probe is not None:
                await asyncio.to_thread(wait_back, probe, restart_wait_s=restart_wait_s,
                                        name=actor, started=start)  # fmt: skip
            else:
                await asyncio.sleep(min(_pause(attempt), max(restart_wait_s - waited, 0.0)))
            attempt += 1
        except TimeoutError:
            raise CallTimeoutError(actor, method_name, timeout_s or 0.0) from None


def wait_back(
    probe: Any,
    *,
    restart_wait_s: float,
    timeout_s: float | None = None,
    name: str | None = None,
    started: float | None = None,
) -> Any:
    """The first answer of ``probe`` (an actor method without arguments or effects, such as
    ``handle.pid``), sent every ``PROBE_EVERY_S`` until one answers: the actor is up.

    Args:
        probe: the method to send.
        restart_wait_s: longest wait, counted from ``started`` (``time.monotonic()``; now
            when None).
        timeout_s: longest a probe may go unanswered without failing (an actor that is
            up but stuck; a restarting one fails them within seconds); None: no limit.
        name: the actor's name for messages.

    Raises:
        ActorDownError: no probe answered in time.
        CallTimeoutError: a probe went unanswered for ``timeout_s``.
        Exception: what the probe itself raised (the actor is up, and says something is
            wrong), as ``ray.get`` raises it.
    """
    import ray

    errors = actor_errors()
    actor, method_name = _names(probe, name)
    start = time.monotonic() if started is None else started
    pending: list[Any] = []
    sent_at: dict[Any, float] = {}
    sent = -math.inf
    last: BaseException | None = None
    while True:
        now = time.monotonic()
        if now - start >= restart_wait_s:
            raise ActorDownError(actor, now - start, last)
        if timeout_s is not None and pending and now - sent_at[pending[0]] > timeout_s:
            raise CallTimeoutError(actor, method_name, timeout_s)
        if now - sent >= PROBE_EVERY_S and len(pending) < _MAX_PROBES:
            pending.append(probe.remote())
            sent = sent_at[pending[-1]] = now
        full = len(pending) >= _MAX_PROBES  # then wait a whole period, not spin
        next_send = (time.monotonic() if full else sent) + PROBE_EVERY_S
        left = max(min(next_send, start + restart_wait_s) - time.monotonic(), 0.0)
        if not pending:
            time.sleep(left)
            continue
        ready, pending = ray.wait(pending, num_returns=1, timeout=left)
        for ref in ready:
            del sent_at[ref]
            try:
                return ray.get(ref)
            except errors as exc:  # an answer of the process that died, or "restarting"
                last = exc


def call_sync(
    method: Any,
    *args: Any,
    restart_wait_s: float,
    timeout_s: float | None = None,
    name: str | None = None,
    retry: bool = True,
    probe: Any | None = None,
) -> Any:
    """``call`` for plain (driver or threaded-actor) code: ``ray.get``, same retry rules.

    With ``probe`` (the actor's ``pid``, say), a call the actor's death failed is sent again
    as soon as ``wait_back`` sees it up, rather than after a pause that grows to a second.
    """
    import ray
    from ray.exceptions import GetTimeoutError

    errors = actor_errors()
    actor, method_name = _names(method, name)
    start = time.monotonic()
    attempt = 0
    while True:
        ref = method.remote(*args)
        try:
            return ray.get(ref, timeout=timeout_s)
        except errors as exc:
            waited = time.monotonic() - start
            if not retry or waited >= restart_wait_s:
                raise ActorDownError(actor, waited, exc) from exc
            if probe is not None:
                wait_back(probe, restart_wait_s=restart_wait_s, name=actor, started=start)
            else:
                time.sleep(min(_pause(attempt), max(restart_wait_s - waited, 0.0)))
            attempt += 1
        except GetTimeoutError:
            raise CallTimeoutError(actor, method_name, timeout_s or 0.0) from None


def call_all_sync(
    calls: list[tuple[Any, tuple[Any, ...], str]],
    *,
    restart_wait_s: float,
    timeout_s: float | None = None,
    probes: list[Any] | None = None,
) -> list[Any]:
    """Send every ``(method, args, name)`` at once and wait for all (one ``ray.wait``, not a
    ``ray.get`` per call); a call whose actor died is sent again with ``call_sync``'s rules
    (with ``probes[i]``, the actor's ``pid`` say, as its probe). Answers come in the order of
    ``calls``; the first application error is raised after all have answered."""
    if probes is not None and len(probes) != len(calls):
        raise ValueError(f"call_all_sync: {len(probes)} probes for {len(calls)} calls")
    import ray
    from ray.exceptions import GetTimeoutError

    errors = actor_errors()
    refs = [method.remote(*args) for method, args, _ in calls]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    if len(ready) < len(refs):
        late = next(n for (_, _, n), r in zip(calls, refs, strict=True) if r not in ready)
        raise CallTimeoutError(late, "call", timeout_s or 0.0)
    with contextlib.suppress(Exception):  # a failure is sorted out call by call below
        return list(ray.get(refs))  # every answer at once: the usual case
    out: list[Any] = []
    failed: BaseException | None = None
    for k, ((method, args, name), ref) in enumerate(zip(calls, refs, strict=True)):
        try:
            out.append(ray.get(ref))
        except errors:
            probe = None if probes is None else probes[k]
            out.append(call_sync(method, *args, name=name, restart_wait_s=restart_wait_s,
                                 timeout_s=timeout_s, probe=probe))  # fmt: skip
        except GetTimeoutError:
            raise CallTimeoutError(name, "call", timeout_s or 0.0) from None
        except Exception as exc:  # the method raised: report it once all have answered
            failed = failed or exc
            out.append(None)
    if failed is not None:
        raise failed
    return out
