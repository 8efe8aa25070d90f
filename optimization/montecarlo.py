"""Monte Carlo of one backtest: bootstrap its returns or reshuffle its trades, on Ray tasks.

Seeding: paths are grouped in fixed blocks of ``PATHS_PER_BLOCK``; block b's generator is
``numpy.random.SeedSequence(seed, spawn_key=(b,))`` and gives every path of the block its own
64-bit key (the SplitMix64 stream of that path). Blocks are dealt to Ray tasks in contiguous
ranges, so the same seed gives the same numbers for any number of workers.

The backtest is ``raytrader backtest``'s: one portfolio over every symbol, the strategy's
parameters as given (defaults otherwise). Statistics: quantiles of final return, max drawdown
and Sharpe; probability of ruin (equity ever below ``ruin`` x initial); VaR and CVaR of the
final return at ``alpha``; fan-chart quantiles of equity at up to ``FAN_POINTS`` steps, over
the first ``FAN_PATHS`` paths (the per-path statistics use every path).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import ray

from core.errors import ConfigError
from optimization.context import JobContext
from optimization.montecarlo_nb import bootstrap_paths_nb, reshuffle_trades_nb
from optimization.specs import MonteCarloMethod, MonteCarloSpec

__all__ = [
    "FAN_PATHS",
    "FAN_POINTS",
    "PATHS_PER_BLOCK",
    "QUANTILES",
    "MonteCarloResult",
    "path_keys",
    "run_montecarlo",
    "run_paths",
    "simulate_blocks",
    "summarize",
]

PATHS_PER_BLOCK = 1024
FAN_POINTS = 50
#: Paths whose equity the fan chart records. The fan is the bulk of what tasks send back
#: (50 floats a path against 4 statistics): capped, a run of 50,000 short paths sends 5.6 MB
#: instead of 21.6, and the chart's 5-95% bands from 10,000 paths are within about 0.2
#: percentage points of probability of the full run's (binomial standard error at 5%).
FAN_PATHS = 10_000
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
_FIELDS = ("final_return", "max_drawdown", "sharpe", "min_equity")


def path_keys(seed: int, block: int, n_paths: int) -> np.ndarray:
    """The 64-bit stream keys of the first ``n_paths`` paths of block ``block``."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(block,)))
    return rng.integers(0, 2**64 - 1, size=n_paths, dtype=np.uint64, endpoint=True)


def fan_steps(steps: int, points: int = FAN_POINTS) -> np.ndarray:
    """Step indices recorded for the fan chart: evenly spaced, the last step included."""
    return np.unique(np.linspace(0, steps - 1, min(points, steps)).round().astype(np.int64))


def simulate_blocks(
    data: np.ndarray, method: str, paths: int, steps: int, block_length: float, seed: int,
    ppy: float, cash: float, first_block: int, last_block: int, threads: int | None = None,
    fan_paths: int = FAN_PATHS,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Paths of blocks ``first_block:last_block`` (Ray-free; a Ray task calls this); ``fan``
    holds the equity of those among the run's first ``fan_paths`` paths."""
    if threads is not None:
        import numba

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    keys = np.concatenate([
        path_keys(seed, b, min(PATHS_PER_BLOCK, paths - b * PATHS_PER_BLOCK))
        for b in range(first_block, last_block)
    ])  # fmt: skip
    n = len(keys)
    fs = fan_steps(steps)
    out = {k: np.empty(n) for k in _FIELDS}
    fan = np.empty((min(n, max(0, fan_paths - first_block * PATHS_PER_BLOCK)), len(fs)))
    args = (out["final_return"], out["max_drawdown"], out["sharpe"], out["min_equity"], fan)
    if method == MonteCarloMethod.TRADES:
        reshuffle_trades_nb(data, cash, keys, ppy, fs, *args)
    else:
        p_new = 1.0 if method == MonteCarloMethod.IID else 1.0 / block_length
        bootstrap_paths_nb(data, keys, steps, p_new, ppy, fs, *args)
    out["fan"] = fan
    return out


#: One remote function for the process: building it per call re-pickles and re-exports the
#: function to the cluster each time (milliseconds of every run here).
_simulate_remote = ray.remote(num_cpus=1, max_retries=0)(simulate_blocks)


def task_layout(workers: int, nodes: int) -> list[int]:
    """Numba threads of each Ray task for ``workers`` CPUs over ``nodes`` nodes: one task per
    node (at most one per CPU), the CPUs shared out as evenly as they go. A task's round trip
    and its result's trip through the object store cost milliseconds, as much as a few
    hundred paths, so threads inside a task are cheaper than more tasks on the same node."""
    tasks = max(1, min(workers, nodes))
    return [workers // tasks + (1 if i < workers % tasks else 0) for i in range(tasks)]


def _cpu_nodes() -> int:
    """Alive nodes of the cluster that have CPUs."""
    return max(1, sum(1 for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU")))


def run_paths(
    data: np.ndarray, method: MonteCarloMethod, paths: int, steps: int, block_length: float,
    seed: int, ppy: float, cash: float, workers: int, ctx: JobContext | None = None,
    layout: list[int] | None = None, fan_paths: int = FAN_PATHS,
) -> dict[str, np.ndarray]:  # fmt: skip
    """All paths on ``workers`` CPUs: contiguous block ranges, one Ray task per node with
    that node's share of the CPUs as numba threads (``task_layout``; ``layout`` sets the
    threads of each task instead); the blocks' seeds make the numbers the same for any
    layout. ``fan`` has a row for each of the first ``fan_paths`` paths."""
    ctx = ctx or JobContext()
    n_blocks = math.ceil(paths / PATHS_PER_BLOCK)
    threads = layout or task_layout(min(workers, n_blocks), _cpu_nodes())
    threads = threads[:n_blocks]
    # Each task takes blocks in proportion to its threads.
    cuts = np.cumsum([0, *threads]) / sum(threads) * n_blocks
    edges = np.unique(cuts.round().astype(int))
    # Returns or trade P&L are a few kB: passed inline, a put would only add a round trip.
    arr = np.ascontiguousarray(data, dtype=np.float64)
    args = (method.value, paths, steps, block_length, seed, ppy, cash)
    pending = {
        _simulate_remote.options(num_cpus=k).remote(arr, *args, int(a), int(b), k, fan_paths): i
        for i, ((a, b), k) in enumerate(zip(itertools.pairwise(edges), threads, strict=False))
    }  # fmt: skip
    parts: dict[int, dict[str, np.ndarray]] = {}
    try:
        while pending:
            ctx.check()
            # Wait for all, but wake every 0.25 s to check for cancellation and report what
            # has finished; one get for all ready parts (a get per part costs a round trip).
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0.25)
            if ready:
                for r, part in zip(ready, ray.get(ready), strict=True):
                    parts[pending.pop(r)] = part
                ctx.report(sum(len(p["final_return"]) for p in parts.values()), paths)
    finally:
        for r in pending:
            ray.cancel(r, force=True)
    order = sorted(parts)
    return {k: np.concatenate([parts[i][k] for i in order]) for k in (*_FIELDS, "fan")}


def summarize(sim: dict[str, np.ndarray], ruin: float, alpha: float) -> dict[str, Any]:
    """Quantiles, probability of ruin, VaR/CVaR of the final return."""
    final = sim["final_return"]
    q = np.quantile(final, alpha)
    out: dict[str, Any] = {
        f"{name}_quantiles": {str(p): float(np.nanquantile(sim[name], p)) for p in QUANTILES}
        for name in ("final_return", "max_drawdown", "sharpe")
    }
    out.update(
        paths=len(final), mean_final_return=float(final.mean()),
        prob_ruin=float(np.mean(sim["min_equity"] < ruin)), ruin_level=ruin,
        prob_loss=float(np.mean(final < 0)), alpha=alpha, var=float(-q),
        cvar=float(-final[final <= q].mean()),
    )  # fmt: skip
    return out


@dataclass
class MonteCarloResult:
    """Per-path statistics, the fan chart and the summary."""

    stats: dict[str, Any]
    paths: pl.DataFrame
    fan: pl.DataFrame

    def summary(self) -> dict[str, Any]:
        """JSON-able result."""
        return self.stats


def run_montecarlo(spec: MonteCarloSpec, ctx: JobContext | None = None) -> MonteCarloResult:
    """Backtest once, then simulate ``spec.paths`` paths on Ray tasks."""
    from core.stats import periods_per_year
    from optimization.runtime import ensure_ray, resolve_workers
    from strategies.backtest import backtest, load_panel
    from strategies.registry import get_strategy

    strategy = get_strategy(spec.strategy)(**spec.params)
    panel = load_panel(spec.data)
    result = backtest(strategy, panel, spec.sim)
    equity = result.equity
    returns = equity / np.concatenate(([spec.sim.cash], equity[:-1])) - 1.0
    ppy = spec.sim.periods_per_year or periods_per_year(panel.timestamps)
    if spec.method is MonteCarloMethod.TRADES:
        data = np.array([t["pnl"] for t in result.trades if t["exit_time"] is not None])
        if len(data) < 2:
            raise ConfigError(
                f"--method trades needs at least 2 closed trades; {strategy!r} made {len(data)}"
            )
        steps = len(data)
        years = len(returns) / ppy
        ppy_path = steps / years if years > 0 else float(steps)
    else:
        data, steps, ppy_path = returns, spec.horizon or len(returns), ppy
    ensure_ray()
    sim = run_paths(data, spec.method, spec.paths, steps, spec.block_length, spec.seed,
                    ppy_path, spec.sim.cash, resolve_workers(spec.workers), ctx)  # fmt: skip
    stats = summarize(sim, spec.ruin, spec.alpha)
    stats.update(
        strategy=strategy.name, params=strategy.params, method=spec.method.value,
        seed=spec.seed, steps=steps, block_length=spec.block_length, fan_paths=len(sim["fan"]),
        backtest_total_return=result.stats.total_return,
        backtest_max_drawdown=result.stats.max_drawdown, backtest_sharpe=result.stats.sharpe,
    )  # fmt: skip
    fs = fan_steps(steps)
    fan = pl.DataFrame({"step": fs, **{
        f"q{int(p * 100):02d}": np.quantile(sim["fan"], p, axis=0) * spec.sim.cash
        for p in (0.05, 0.25, 0.5, 0.75, 0.95)}})  # fmt: skip
    paths = pl.DataFrame({k: sim[k] for k in _FIELDS})
    return MonteCarloResult(stats, paths, fan)
