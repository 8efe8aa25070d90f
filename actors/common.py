"""What every live actor shares: names, the namespace, its journal connection, its pid.

Kept apart from ``actors.runtime`` (which creates the actors) so actor modules import it
without importing each other.
"""

from __future__ import annotations

import os
import pickle
from typing import Any, Final, Literal

from core.journal import Journal

__all__ = [
    "BROKER",
    "FEED",
    "JOURNAL",
    "LIVE_NAMES",
    "NAMESPACE",
    "RISK",
    "ActorShell",
    "Handles",
    "get_actor",
    "host_name",
    "open_journal",
    "pack",
    "unpack",
]

NAMESPACE: Final = "raytrader"
FEED: Final = "feed"
BROKER: Final = "broker"
RISK: Final = "risk"
JOURNAL: Final = "journal"
LIVE_NAMES: Final = (JOURNAL, FEED, BROKER, RISK)


def host_name(strategy_id: str) -> str:
    """The actor name of a strategy's host: ``strategy:<id>``."""
    return f"strategy:{strategy_id}"


def open_journal(path: str, synchronous: Literal["NORMAL", "FULL"] = "NORMAL") -> Journal:
    """A hot writer's connection: no automatic checkpoints on its commits (the ``journal``
    actor checkpoints in the background), so no commit pays for a WAL checkpoint."""
    return Journal(path, synchronous=synchronous, wal_autocheckpoint=0)


def pack(value: Any) -> bytes:
    """The hot path's wire format: one C pickle, made once per bar by the sender.

    Ray serializes arguments with cloudpickle (pure Python) and numpy arrays as separate
    buffers; a bar slice or a report sent to a dozen actors is cheaper as ready bytes.
    """
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(value: Any) -> Any:
    """The value of ``pack``; anything that is not bytes passes unchanged (so callers off the
    hot path, tests and the API, may send plain objects)."""
    return pickle.loads(value) if isinstance(value, bytes) else value


def get_actor(name: str) -> Any:
    """A live actor's handle by name, in the ``raytrader`` namespace."""
    import ray

    return ray.get_actor(name, namespace=NAMESPACE)


class Handles:
    """Actor handles by name, looked up once (a lookup asks the GCS; a handle stays valid
    across the actor's restarts)."""

    def __init__(self) -> None:
        self._handles: dict[str, Any] = {}

    def __call__(self, name: str) -> Any:
        """The handle of a live actor by name."""
        handle = self._handles.get(name)
        if handle is None:
            handle = self._handles[name] = get_actor(name)
        return handle


class ActorShell:
    """Methods every live actor answers: liveness and the worker pid (fault-injection tests
    SIGKILL it)."""

    async def ready(self) -> bool:
        """True once ``__init__`` (the rebuild from the journal) has finished."""
        return True

    async def pid(self) -> int:
        """The worker process id."""
        return os.getpid()

    async def fingerprint(self) -> str:
        """The run this actor belongs to (``actors.runtime.fingerprint``)."""
        return getattr(self, "_fingerprint", "")
