"""Calling an actor that may be restarting: the same call again, until it is back (bounded).

Ray restarts a crashed live actor (``max_restarts=-1``) but never retries our calls
(``max_task_retries=0``): a call in flight when the actor dies fails with ``RayActorError``
(``ActorDiedError``, ``ActorUnavailableError``), even though it may have run. Every call the
runtime retries is idempotent (bars by index, orders by ``client_order_id``), so the answer is
to send the same call, with the same arguments, once the actor is back; a call sent while
the actor restarts waits for it. ``restart_wait_s`` bounds the whole wait.

A call that takes longer than ``timeout_s`` is not retried (the actor is alive but stuck, or
the work is too big): ``CallTimeoutError``, so the caller can stop instead of piling up calls.
"""

from __future__ import annotations

import asyncio
import contextlib
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
]

_FIRST_PAUSE_S = 0.05
_MAX_PAUSE_S = 1.0


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
) -> Any:
    """Await ``method.remote(*args)``, re-sending it while the actor restarts.

    Args:
        method: an actor method (``handle.on_bar``).
        restart_wait_s: longest total wait for the actor to come back.
        timeout_s: longest wait for one answer (None: no limit).
        name: the actor's name for messages.
        retry: False: one attempt; an actor error raises ``ActorDownError`` at once.

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
            await asyncio.sleep(min(_pause(attempt), max(restart_wait_s - waited, 0.0)))
            attempt += 1
        except TimeoutError:
            raise CallTimeoutError(actor, method_name, timeout_s or 0.0) from None


def call_sync(
    method: Any,
    *args: Any,
    restart_wait_s: float,
    timeout_s: float | None = None,
    name: str | None = None,
    retry: bool = True,
) -> Any:
    """``call`` for plain (driver or threaded-actor) code: ``ray.get``, same retry rules."""
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
            time.sleep(min(_pause(attempt), max(restart_wait_s - waited, 0.0)))
            attempt += 1
        except GetTimeoutError:
            raise CallTimeoutError(actor, method_name, timeout_s or 0.0) from None


def call_all_sync(
    calls: list[tuple[Any, tuple[Any, ...], str]],
    *,
    restart_wait_s: float,
    timeout_s: float | None = None,
) -> list[Any]:
    """Send every ``(method, args, name)`` at once and wait for all (one ``ray.wait``, not a
    ``ray.get`` per call); a call whose actor died is sent again with ``call_sync``'s rules.
    Answers come in the order of ``calls``; the first application error is raised after all
    have answered."""
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
    for (method, args, name), ref in zip(calls, refs, strict=True):
        try:
            out.append(ray.get(ref))
        except errors:
            out.append(call_sync(method, *args, name=name, restart_wait_s=restart_wait_s,
                                 timeout_s=timeout_s))  # fmt: skip
        except GetTimeoutError:
            raise CallTimeoutError(name, "call", timeout_s or 0.0) from None
        except Exception as exc:  # the method raised: report it once all have answered
            failed = failed or exc
            out.append(None)
    if failed is not None:
        raise failed
    return out
