"""Long-lived worker actors that hold the bars and evaluate batches of parameter sets.

The panel goes into the object store once (``ray.put``); each worker receives its ObjectRef
and keeps the bars for its lifetime, so a call carries only parameter sets (a few hundred
bytes) and returns only summary metrics. One worker per CPU, each running numba on one thread.
``WorkerPool.stream`` keeps every worker ``depth`` calls deep and yields results in completion
order (``ray.wait``), checking for cancellation between results; closing the pool kills the
workers, which also drops their queued calls.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import ray

from core.errors import RaytraderError
from core.panel import WidePanel
from core.sim import SimConfig
from optimization.context import JobContext
from optimization.evaluation import window_metrics, window_returns
from optimization.metrics import aggregate

__all__ = ["EvalWorker", "WorkerPool", "unwrap"]


@ray.remote(num_cpus=1, max_restarts=0)
class EvalWorker:
    """Evaluates parameter sets of one strategy on bars it keeps for its lifetime."""

    def __init__(self, strategy: str, panel: WidePanel, sim: SimConfig, threads: int = 1):
        import numba

        from strategies.registry import get_strategy

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        self.cls = get_strategy(strategy)
        if not self.cls.cross_sectional:  # column-major once, not on every call
            panel = WidePanel(panel.timestamps, panel.symbols,
                              *(np.asfortranarray(getattr(panel, f))
                                for f in ("open", "high", "low", "close", "volume")))  # fmt: skip
        self.panel = panel
        self.sim = sim
        # Indicators shared by the calls of one job on one bar window: a sweep's chunks each
        # need most of them (an SMA grid's chunks needed ~20 of its 25 windows, 20% of W2 when
        # recomputed per call). One (job, window) at a time, so memory stays bounded and no
        # job reuses another's work.
        self._cache_scope: tuple[str, int, int | None] | None = None
        self._cache: dict[Any, Any] = {}

    def ready(self) -> bool:
        """True once constructed (used to surface constructor errors early)."""
        return True

    def evaluate(
        self, sets: list[dict[str, Any]], lo: int = 0, hi: int | None = None,
        per_column: bool = False, job: str | None = None,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:  # fmt: skip
        """Aggregated metrics per set on bars ``lo:hi`` (and the per-symbol ones if asked).

        Calls with the same ``job`` token and window share indicators; None shares nothing.
        """
        cache: dict[Any, Any] | None = None
        if job is not None:
            if self._cache_scope != (job, lo, hi):
                self._cache_scope, self._cache = (job, lo, hi), {}
            cache = self._cache
        raw = window_metrics(self.cls, self.panel, sets, self.sim, lo, hi, cache)
        return aggregate(raw), (raw if per_column else None)

    def returns(
        self, sets: list[dict[str, Any]], lo: int, hi: int, warm: int
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Per-bar returns of each set on ``lo:hi`` after ``warm`` bars of history."""
        return window_returns(self.cls, self.panel, sets, self.sim, lo, hi, warm)


def unwrap(err: Exception) -> Exception:
    """A worker's domain error as itself (ConfigError, StrategyError), anything else as is."""
    if isinstance(err, ray.exceptions.RayTaskError):
        cause = getattr(err, "cause", None)
        if isinstance(cause, RaytraderError):
            return cause
    return err


class WorkerPool:
    """``n`` EvalWorkers sharing one panel in the object store; a context manager."""

    def __init__(
        self, strategy: str, panel: WidePanel | ray.ObjectRef, sim: SimConfig, n: int
    ) -> None:
        self.panel_ref = panel if isinstance(panel, ray.ObjectRef) else ray.put(panel)
        self.symbols: tuple[str, ...] | None = (
            panel.symbols if isinstance(panel, WidePanel) else None
        )
        self.token = uuid.uuid4().hex[:8]
        self.names = [f"raytrader-worker-{self.token}-{i}" for i in range(n)]
        self.actors = [
            EvalWorker.options(name=name).remote(strategy, self.panel_ref, sim)
            for name in self.names
        ]
        self._closed = False

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill every worker (their running and queued calls die with them)."""
        if self._closed:
            return
        self._closed = True
        for actor in self.actors:
            ray.kill(actor, no_restart=True)

    def stream(
        self,
        items: Iterable[Any],
        call: Callable[[Any, Any], ray.ObjectRef],
        ctx: JobContext | None = None,
        depth: int = 2,
    ) -> Iterator[tuple[Any, Any]]:
        """Yield ``(item, result)`` in completion order; ``call(actor, item)`` submits one.

        Items are pulled lazily, only when a worker has room, so a generator may decide its
        next item from the results seen so far (as Optuna's ask/tell does).
        """
        source = iter(items)
        pending: dict[ray.ObjectRef, tuple[Any, Any]] = {}
        n = len(self.actors)
        load = dict.fromkeys(range(n), 0)
        exhausted = False
        sent = 0

        def fill() -> None:
            nonlocal exhausted, sent
            while not exhausted:
                # Least loaded first; among equals, in snake order (0..n-1, then n-1..0): the
                # items of an ordered grid tend to cost less as they go (a sweep's first chunk
                # holds the short windows: more trades), and snake order pairs the dearest
                # with the cheapest (W2-sweep: workers ending 13 ms apart instead of 23).
                forward = (sent // n) % 2 == 0
                k = min(load, key=lambda i: (load[i], i if forward else -i))
                if load[k] >= depth:
                    return
                item = next(source, _END)
                if item is _END:
                    exhausted = True
                    return
                pending[call(self.actors[k], item)] = (k, item)
                load[k] += 1
                sent += 1

        fill()
        while pending:
            if ctx is not None:
                ctx.check()
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.25)
            for ref in ready:
                k, item = pending.pop(ref)
                load[k] -= 1
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as err:
                    raise unwrap(err) from None
                yield item, result
            fill()


_END = object()
