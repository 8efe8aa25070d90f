"""Grid sweeps: every valid combination, in chunks of many sets per worker call, streamed.

The driver never holds more than one row per parameter set (its metrics aggregated over
symbols), the top-k sets by the chosen metric and running summary statistics; per-symbol rows
only with ``per_symbol``, and equity curves never (the report recomputes the top few). Chunks
come back in completion order and are folded in as they arrive.
"""

from __future__ import annotations

import heapq
import itertools
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from optimization.context import JobContext
from optimization.metrics import Metric, direction, feasible
from optimization.space import (
    check_fixed,
    ensure_nonempty,
    grid_size,
    grid_values,
    iter_grid,
)
from optimization.specs import SweepSpec
from optimization.workers import WorkerPool

__all__ = ["SweepResult", "default_chunk_size", "run_sweep"]

_COLUMNS = (
    "sharpe", "sortino", "calmar", "cagr", "total_return", "max_drawdown", "profit_factor",
    "win_rate", "expectancy", "final_equity", "n_trades", "exposure", "total_commission",
)  # fmt: skip


@dataclass
class SweepResult:
    """One row per parameter set, the top-k, and the sweep's shape."""

    strategy: str
    metric: Metric
    grid: dict[str, list[Any]]
    table: pl.DataFrame
    top: list[dict[str, Any]]
    n_sets: int
    n_feasible: int
    per_symbol: pl.DataFrame | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-able description: grid, counts, distribution of the metric, top-k."""
        vals = self.table.filter(pl.col("feasible"))[self.metric.value].to_numpy()
        vals = vals[np.isfinite(vals)]
        dist = (
            {q: float(np.quantile(vals, float(q))) for q in ("0.05", "0.25", "0.5", "0.75", "0.95")}
            if len(vals)
            else {}
        )
        return {
            "strategy": self.strategy,
            "metric": self.metric.value,
            "direction": direction(self.metric),
            "grid": self.grid,
            "n_sets": self.n_sets,
            "n_feasible": self.n_feasible,
            "metric_quantiles": dist,
            "top": self.top,
        }


#: Grids of at most this many combinations (before constraints) are listed in memory once.
_LISTED_GRID = 20_000

#: At most this many sets per call by default: bounds a call's reply (per-symbol rows too)
#: and keeps the progress bar moving on large grids.
MAX_DEFAULT_CHUNK = 1_000


def default_chunk_size(n_sets: int, workers: int) -> int:
    """Two calls per worker, at most ``MAX_DEFAULT_CHUNK`` sets each: with two in flight a
    worker never waits for the driver, and each call costs ~10 ms of Ray and driver time on
    shared cores (four per worker cost W2-sweep ~5% of its scaling)."""
    return max(1, min(MAX_DEFAULT_CHUNK, math.ceil(n_sets / (workers * 2))))


def _window_order(
    strategy_cls: type[Any], fixed: dict[str, Any], values: dict[str, list[Any]]
) -> Iterator[dict[str, Any]]:
    """The grid with its longest value list outermost (params keep their order): a chunk
    then spans few of that key's values and all of the rest, so the indicators a worker
    computes for its chunks (one SMA per window) overlap less with the other workers'."""
    keys = list(values)
    outer_first = dict(sorted(values.items(), key=lambda kv: -len(kv[1])))
    if list(outer_first) == keys:
        yield from iter_grid(strategy_cls, fixed, values)
        return
    for params in iter_grid(strategy_cls, fixed, outer_first):
        yield {**fixed, **{k: params[k] for k in keys}}


def _chunks(it: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def run_sweep(
    spec: SweepSpec, ctx: JobContext | None = None, pool: WorkerPool | None = None
) -> SweepResult:
    """Evaluate every valid grid point on Ray workers (a given ``pool`` is reused, not closed)."""
    from optimization.runtime import ensure_ray, resolve_workers
    from strategies.backtest import load_panel
    from strategies.registry import get_strategy

    ctx = ctx or JobContext()
    strategy_cls = get_strategy(spec.strategy)
    fixed = check_fixed(strategy_cls, spec.params)
    values = grid_values(strategy_cls, fixed, spec.grid)
    ensure_nonempty(strategy_cls, fixed, values)
    # A grid of modest size is listed once (its constraints checked once); a huge one is
    # counted in a first pass and streamed, so the driver never holds it.
    grid: list[dict[str, Any]] | None = None
    if grid_size(values) <= _LISTED_GRID:
        grid = list(_window_order(strategy_cls, fixed, values))
        n_sets = len(grid)
    else:
        n_sets = sum(1 for _ in iter_grid(strategy_cls, fixed, values))
    keys = list(values)
    own_pool = pool is None
    if pool is None:
        panel = load_panel(spec.data)
        ensure_ray()
        pool = WorkerPool(spec.strategy, panel, spec.sim, resolve_workers(spec.workers))
    chunk = spec.chunk_size or default_chunk_size(n_sets, len(pool.actors))
    sign = -1.0 if direction(spec.metric) == "minimize" else 1.0
    key_columns: dict[str, list[Any]] = {k: [] for k in keys}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in (*_COLUMNS, "feasible")}
    per_symbol: list[pl.DataFrame] = []
    top: list[tuple[float, int, dict[str, Any]]] = []
    done = n_feasible = 0
    best: float | None = None

    job = uuid.uuid4().hex  # the workers share indicators between this sweep's chunks only

    def submit(actor: Any, sets: list[dict[str, Any]]) -> Any:
        return actor.evaluate.remote(sets, 0, None, spec.per_symbol, job)

    try:
        ctx.report(0, n_sets, message=f"{len(pool.actors)} workers, {chunk} sets per call")
        sets_iter = _chunks(iter(grid) if grid is not None else _window_order(
            strategy_cls, fixed, values), chunk)  # fmt: skip
        for sets, (agg, raw) in pool.stream(sets_iter, submit, ctx):
            # Folded by whole arrays: the driver shares the CPUs with the workers, and a
            # per-set Python loop here was time taken from a worker on every chunk.
            ok = feasible(agg, spec.min_trades)
            score = sign * np.asarray(agg[spec.metric.value], dtype=np.float64)
            for k in keys:
                key_columns[k].extend(p[k] for p in sets)
            for k in _COLUMNS:
                parts[k].append(np.asarray(agg[k], dtype=np.float64) if k in agg
                                else np.full(len(sets), math.nan))  # fmt: skip
            parts["feasible"].append(ok)
            ranked_here = np.flatnonzero(ok & ~np.isnan(score))
            if len(ranked_here):
                # the chunk's best k (ties: earlier set first), then into the running top-k
                order = np.lexsort((ranked_here, -score[ranked_here]))[: spec.top_k]
                for i in ranked_here[order].tolist():
                    item = (float(score[i]), -(done + i), sets[i])
                    (heapq.heappush if len(top) < spec.top_k else heapq.heappushpop)(top, item)
                chunk_best = sign * float(score[ranked_here[order[0]]])
                if best is None or sign * chunk_best > sign * best:
                    best = chunk_best
            if raw is not None:
                frame = {k: np.repeat([p[k] for p in sets], raw["sharpe"].shape[1]) for k in keys}
                n_cols = raw["sharpe"].shape[1]
                names = pool.symbols if n_cols > 1 and pool.symbols else ("portfolio",)
                labels = names if len(names) == n_cols else tuple(map(str, range(n_cols)))
                # the labels' Series repeated by reference: numpy str arrays cost the driver
                # (which shares the CPUs with the workers) several ms per chunk to convert
                column = pl.Series("symbol", labels, dtype=pl.String)
                frame["symbol"] = pl.concat([column] * len(sets))
                frame.update({k: raw[k].reshape(-1) for k in _COLUMNS if k in raw})
                per_symbol.append(pl.DataFrame(frame))
            n_feasible += int(ok.sum())
            done += len(sets)
            ctx.report(done, n_sets, best)
    finally:
        if own_pool:
            pool.close()
    ranked = sorted(top, key=lambda x: (-x[0], -x[1]))
    top_rows = [
        {"rank": r + 1, "params": {**fixed, **p}, spec.metric.value: sign * s}
        for r, (s, _, p) in enumerate(ranked)
    ]
    rows: dict[str, Any] = dict(key_columns)
    for k, arrays in parts.items():
        rows[k] = np.concatenate(arrays) if arrays else np.empty(0, bool if k == "feasible"
                                                                 else np.float64)  # fmt: skip
    table = pl.DataFrame(rows, infer_schema_length=None)
    return SweepResult(
        strategy=strategy_cls.name, metric=spec.metric, grid=values, table=table, top=top_rows,
        n_sets=n_sets, n_feasible=n_feasible,
        per_symbol=pl.concat(per_symbol) if per_symbol else None,
    )  # fmt: skip
