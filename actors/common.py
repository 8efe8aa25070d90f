"""What every live actor shares: names, the namespace, its journal connection, its pid.

Kept apart from ``actors.runtime`` (which creates the actors) so actor modules import it
without importing each other.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import pickle
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, ParamSpec, TypeVar

from core.errors import RaytraderError
from core.journal import Journal
from core.journal_lock import WriterLock

if TYPE_CHECKING:
    from actors.event_metrics import EventMetrics
    from actors.wire import Endpoint, WireServer
    from core.run_config import RunConfig, StrategyConfig

__all__ = [
    "BROKER",
    "FEED",
    "JOURNAL",
    "LIVE_NAMES",
    "NAMESPACE",
    "RISK",
    "ActorShell",
    "Handles",
    "all_strategies",
    "exclusive",
    "get_actor",
    "host_name",
    "open_journal",
    "pack",
    "restarted",
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


_P = ParamSpec("_P")
_R = TypeVar("_R")


def exclusive(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run an actor method under the actor's ``_mutex``: the bar path arrives on the wire's
    threads (``actors.wire``) while Ray calls run on the actor's own thread, and both touch
    the same state."""

    @functools.wraps(method)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with args[0]._mutex:  # type: ignore[attr-defined]
            return method(*args, **kwargs)

    return guarded


def host_name(strategy_id: str) -> str:
    """The actor name of a strategy's host: ``strategy:<id>``."""
    return f"strategy:{strategy_id}"


def open_journal(path: str, synchronous: Literal["NORMAL", "FULL"] = "NORMAL") -> Journal:
    """A hot writer's connection: no automatic checkpoints on its commits (the ``journal``
    actor checkpoints in the background), so no commit pays for a WAL checkpoint. The
    process counts as the journal's writer while it lives (``WriterLock``)."""
    return WriterJournal(path, synchronous=synchronous, wal_autocheckpoint=0)


class WriterJournal(Journal):
    """A ``Journal`` whose process holds ``core.journal_lock.WriterLock`` until it is closed
    or ends: a new run of this journal starts no actor while an earlier run's are alive."""

    def __init__(self, path: str, **options: Any) -> None:
        self._writer = WriterLock(path)
        try:
            super().__init__(path, **options)
        except BaseException:
            self._writer.release()
            raise

    def close(self) -> None:
        """Close the connection, then stop counting as a writer."""
        try:
            super().close()
        finally:
            self._writer.release()


def all_strategies(config: RunConfig, journal: Journal) -> list[StrategyConfig]:
    """The run's strategies: the config's, then those launched into the running system
    (journaled ``strategy_launched``, in launch order), so a restarted actor knows them all."""
    from core.events import EventKind, StrategyLaunched
    from core.run_config import StrategyConfig

    out = list(config.strategies)
    ids = {s.id for s in out}
    for entry in journal.read([EventKind.STRATEGY_LAUNCHED]):
        event: StrategyLaunched = entry.event  # type: ignore[assignment]
        if event.strategy_id not in ids:
            out.append(StrategyConfig.model_validate(event.config))
            ids.add(event.strategy_id)
    return out


def restarted() -> bool:
    """True in an actor process Ray started again after the actor died (not the first)."""
    import ray

    try:
        return bool(ray.get_runtime_context().was_current_actor_reconstructed)
    except Exception:  # outside an actor
        return False


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


_ENDPOINT_LOCK = threading.Lock()  # one actor per worker process: one wire server


class ActorShell:
    """Methods every live actor answers: liveness and the worker pid (fault-injection tests
    SIGKILL it). They are plain methods, so an actor whose own methods are plain too (host,
    broker: nothing to await) is a threaded actor, one call at a time, which costs Ray less
    per call than an asyncio actor's hand-off to its event loop thread."""

    _telemetry: EventMetrics
    #: The methods served on the actor's wire (``actors.wire``): its part of the bar path.
    WIRE_METHODS: ClassVar[frozenset[str]] = frozenset()
    #: The wire methods whose answer ends the actor's part of a bar: the wire collects
    #: garbage after them, between bars (``actors.heap``).
    COLLECT_AFTER: ClassVar[frozenset[str]] = frozenset()
    _wire_server: WireServer | None = None
    _mutex: threading.RLock | contextlib.nullcontext[None] = contextlib.nullcontext()
    #: A domain error (bad data, a journal it cannot use) its first ``__init__`` raised: kept
    #: and raised by ``fingerprint``, ``ready`` and ``endpoint``, the calls ``start`` makes
    #: first, where Ray hands the caller the exception itself (an error in the constructor
    #: reaches callers only as ``ActorDiedError`` with a traceback's text). A restarted
    #: process raises it as before: the actor dies, and its callers fail as they would.
    _init_error: RaytraderError | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def guarded(self: ActorShell, *args: Any, **kw: Any) -> None:
            try:
                init(self, *args, **kw)
            except RaytraderError as exc:
                if restarted():
                    raise
                self._init_error = exc

        cls.__init__ = guarded  # type: ignore[misc]

    def _raise_init_error(self) -> None:
        """Raise what ``__init__`` failed with, if it did."""
        if self._init_error is not None:
            raise self._init_error

    def _init_telemetry(self, source: str, journal: Journal) -> EventMetrics:
        """The actor's metrics recorder and timed journal writer (``actors.event_metrics``);
        a restarted process counts itself in ``actor_restarts_total``."""
        from actors.event_metrics import EventMetrics
        from actors.metrics import MetricsRecorder
        from core import metric_names as mn

        self._telemetry = EventMetrics(MetricsRecorder(source), journal, source)
        if restarted():
            self._telemetry.recorder.inc(mn.ACTOR_RESTARTS, actor=source)
        return self._telemetry

    def _refresh_gauges(self) -> None:
        """Set the gauges computed from the actor's state (overridden where there are any)."""

    def metrics_snapshot(self) -> dict[str, Any]:
        """Every metric of this process (``actors.metrics.SNAPSHOT_METHOD``), gauges fresh."""
        with self._mutex:
            self._refresh_gauges()
        return dict(self._telemetry.recorder.snapshot())

    def endpoint(self) -> Endpoint:
        """Where this actor serves ``WIRE_METHODS`` (``actors.wire``), started on first ask
        (a threaded actor may be asked twice at once: one server)."""
        from actors.heap import settle
        from actors.wire import WireServer

        self._raise_init_error()
        with _ENDPOINT_LOCK:
            if self._wire_server is None:
                settle()  # started: what it holds now is never scanned again
                self._wire_server = WireServer(self, self.WIRE_METHODS,
                                               collect_after=self.COLLECT_AFTER)
        return self._wire_server.endpoint

    def before_call(self) -> None:
        """Before a wire method runs (``actors.wire``, on the connection's thread): its
        metrics are held until its answer has gone (``MetricsRecorder.hold``)."""
        telemetry = getattr(self, "_telemetry", None)
        if telemetry is not None:
            telemetry.recorder.hold()

    def after_reply(self) -> None:
        """Once a wire method's answer is sent (or could not be): the work it left for
        after, here the metrics it recorded. Risk adds the marks of the bar it opened."""
        telemetry = getattr(self, "_telemetry", None)
        if telemetry is not None:
            telemetry.recorder.flush()

    def ready(self) -> bool:
        """True once ``__init__`` (the rebuild from the journal) has finished."""
        self._raise_init_error()
        return True

    def pid(self) -> int:
        """The worker process id."""
        return os.getpid()

    def node_id(self) -> str:
        """The Ray node this actor runs on (every live actor runs on its run's driver's node,
        where the journal file is: ``actors.runtime.actor_options``)."""
        import ray

        return ray.get_runtime_context().get_node_id()

    def fingerprint(self) -> str:
        """The run this actor belongs to (``actors.runtime.fingerprint``)."""
        self._raise_init_error()
        return getattr(self, "_fingerprint", "")
