"""What every live actor shares: names, the namespace, its journal connection, its pid.

Kept apart from ``actors.runtime`` (which creates the actors) so actor modules import it
without importing each other.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Sequence
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
    "warm_up",
]

log = logging.getLogger("raytrader.actors")

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


def warm_up(strategies: Sequence[Any], max_bars: int = 300) -> None:
    """Run each strategy config for a few synthetic bars through a throwaway runner and paper
    engine, so numba loads its compiled kernels (about a second per process on a small
    machine) during start-up instead of while the first live bars wait. Failures are only
    logged: the real run reports them where they belong."""
    from core.data.synthetic import synthetic_wide
    from core.panel import WidePanel
    from strategies.registry import get_strategy
    from strategies.runner import StrategyRunner, replay_in_process

    for config in strategies:
        try:
            strategy = get_strategy(config.strategy)(**config.params)
            n = min(max(3 * strategy.lookback, 64), max_bars)
            p = synthetic_wide(len(config.symbols), n, seed=1)
            panel = WidePanel(p.timestamps, tuple(config.symbols), p.open, p.high, p.low,
                              p.close, p.volume)  # fmt: skip
            runner = StrategyRunner(strategy, config.id, config.symbols, config.sim)
            replay_in_process(panel, [runner])
        except Exception as exc:  # the live run will meet it again, and report it
            log.warning("warm-up of %s failed: %s", config.id, exc)


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
    SIGKILL it). They are plain methods, so an actor whose own methods are plain too (host,
    broker: nothing to await) is a threaded actor, one call at a time, which costs Ray less
    per call than an asyncio actor's hand-off to its event loop thread."""

    def ready(self) -> bool:
        """True once ``__init__`` (the rebuild from the journal) has finished."""
        return True

    def pid(self) -> int:
        """The worker process id."""
        return os.getpid()

    def fingerprint(self) -> str:
        """The run this actor belongs to (``actors.runtime.fingerprint``)."""
        return getattr(self, "_fingerprint", "")
