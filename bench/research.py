"""W2 through ``sweep`` on 1 and 2 workers, W3 Monte Carlo, W4 Optuna search (DESIGN.md).

- W2-sweep: the 17,400-backtest grid through ``optimization.sweep.run_sweep`` on warm worker
  actors (1 or 2), per-symbol final equities returned so the sum matches W2's hand loop.
- W3: 10,000 i.i.d. bootstrap paths x 2,520 steps of one seeded return series: raytrader on
  Ray (its layout: one task per node with the node's CPUs as numba threads; and 2 one-thread
  tasks, the layout of two nodes) and in-process (2 numba threads), a hand numba loop with the same
  per-path SplitMix64 streams and statistics, written path by path as one would first write
  it (identical numbers; no fan chart; raytrader's kernel runs 256 paths side by side so its
  loops vectorize), and plain
  numpy (final return only, another RNG: comparable within sampling error). Value: the final
  return of every path.
- W4: 500 TPE trials (seed 0) maximizing the mean Sharpe of SMA crossover over W2's 100
  symbols x 2,520 bars: raytrader's batched ask/tell on 2 (or 1) warm workers, plain in-process
  Optuna calling the same evaluator one set per trial, and naive Ray Tune (one trial per
  set, OptunaSearch, 24 trials timed and the time scaled to 500). Value: best Sharpe found.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

W3_PATHS, W3_STEPS = 10_000, 2_520
W4_TRIALS, W4_NAIVE = 500, 24


def _ray(cpus: int = 2) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from optimization.runtime import ensure_ray

    ensure_ray(cpus)


# ---------------------------------------------------------------------------- W2 via sweep
def w2_sweep(workers: int) -> Callable[[], np.ndarray]:
    """run_sweep over the W2 grid on ``workers`` warm actors."""
    from bench.workloads import _sim_config, w2_panel
    from optimization.specs import SweepSpec
    from optimization.sweep import run_sweep
    from optimization.workers import WorkerPool

    _ray()
    cfg = _sim_config()
    pool = WorkerPool("sma_crossover", w2_panel(), cfg, workers)
    spec = SweepSpec(strategy="sma_crossover", sim=cfg, per_symbol=True)

    def run() -> np.ndarray:
        res = run_sweep(spec, pool=pool)
        assert res.per_symbol is not None
        return res.per_symbol.sort("fast", "slow", "symbol")["final_equity"].to_numpy()

    return run


# ---------------------------------------------------------------------------- W3
def w3_returns() -> np.ndarray:
    """One seeded daily return series (2,520 bars)."""
    return np.random.default_rng(3).normal(0.0004, 0.012, W3_STEPS)


def w3_raytrader_ray(layout: list[int] | None = None) -> Callable[[], np.ndarray]:
    """run_paths on 2 CPUs, all statistics and the fan chart: its own layout (one task per
    node, here one task with two numba threads), or ``layout``'s tasks."""
    from optimization.montecarlo import run_paths
    from optimization.specs import MonteCarloMethod

    _ray()
    r = w3_returns()
    return lambda: run_paths(r, MonteCarloMethod.IID, W3_PATHS, W3_STEPS, 20.0, 0, 252.0, 1.0,
                             workers=2, layout=layout)["final_return"]  # fmt: skip


def w3_raytrader_local() -> Callable[[], np.ndarray]:
    """The same blocks in this process with 2 numba threads (no Ray)."""
    from optimization.montecarlo import PATHS_PER_BLOCK, simulate_blocks

    r = w3_returns()
    blocks = -(-W3_PATHS // PATHS_PER_BLOCK)
    return lambda: simulate_blocks(r, "iid", W3_PATHS, W3_STEPS, 20.0, 0, 252.0, 1.0, 0,
                                   blocks)["final_return"]  # fmt: skip


def w3_hand() -> Callable[[], np.ndarray]:
    """A hand-written numba loop on the same path keys (computed before timing)."""
    from bench.hand_nb import mc_paths_nb
    from optimization.montecarlo import PATHS_PER_BLOCK, path_keys

    r = w3_returns()
    keys = np.concatenate([
        path_keys(0, b, min(PATHS_PER_BLOCK, W3_PATHS - b * PATHS_PER_BLOCK))
        for b in range(-(-W3_PATHS // PATHS_PER_BLOCK))
    ])  # fmt: skip
    return lambda: mc_paths_nb(r, keys, W3_STEPS)[:, 0]


def w3_numpy() -> Callable[[], np.ndarray]:
    """Plain numpy, 1,000 paths at a time: random indices, gather, product."""
    r = w3_returns()

    def run() -> np.ndarray:
        rng = np.random.default_rng(0)
        out = [np.prod(1.0 + r[rng.integers(0, len(r), (1000, W3_STEPS))], axis=1) - 1.0
               for _ in range(W3_PATHS // 1000)]  # fmt: skip
        return np.concatenate(out)

    return run


# ---------------------------------------------------------------------------- W4
def _w4_setup() -> tuple[Any, Any]:
    from bench.workloads import _sim_config, w2_panel

    return w2_panel(), _sim_config()


def w4_parallel(workers: int = 2) -> Callable[[], np.ndarray]:
    """raytrader optimize's engine on warm worker actors (in-memory study).

    On 2 cores the driver's TPE sampling is itself a CPU-bound process: 1 worker plus the
    sampling driver fills the 2 cores without oversubscribing them.
    """
    from optimization.search import run_optimize
    from optimization.specs import OptimizeSpec
    from optimization.workers import WorkerPool

    _ray()
    panel, cfg = _w4_setup()
    pool = WorkerPool("sma_crossover", panel, cfg, workers)
    spec = OptimizeSpec(strategy="sma_crossover", sim=cfg, trials=W4_TRIALS, seed=0)

    def run() -> np.ndarray:
        res = run_optimize(spec, pool=pool)
        return np.array([res.best[0]["values"]["sharpe"], res.counts["this_run"]])

    return run


def _objective(panel: Any, cfg: Any) -> Callable[[Any], float]:
    import optuna

    from optimization.evaluation import window_metrics
    from optimization.metrics import aggregate
    from strategies.sma_crossover import SmaCrossover

    def objective(trial: Any) -> float:
        params = {k: s.suggest(trial) for k, s in SmaCrossover.param_specs().items()}
        if not SmaCrossover.is_valid(params):
            raise optuna.TrialPruned()
        return float(aggregate(window_metrics(SmaCrossover, panel, [params], cfg))["sharpe"][0])

    return objective


def w4_inprocess() -> Callable[[], np.ndarray]:
    """Plain Optuna: study.optimize in this process, one set per trial, same sampler and seed."""
    import optuna

    from optimization.search import quiet_optuna

    quiet_optuna()
    objective = _objective(*_w4_setup())

    def run() -> np.ndarray:
        study = optuna.create_study(direction="maximize",
                                    sampler=optuna.samplers.TPESampler(seed=0))  # fmt: skip
        n = 0
        while n < W4_TRIALS:  # count evaluated trials, as the parallel engine does
            study.optimize(objective, n_trials=W4_TRIALS - n)
            n = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
        return np.array([study.best_value, n])

    return run


def w4_naive_tune() -> Callable[[], dict[str, Any]]:
    """Ray Tune, one trial per parameter set; W4_NAIVE trials timed, time scaled to 500."""
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from optimization.search import quiet_optuna
    from optimization.tune_engine import _Space, tune_trainable
    from strategies.sma_crossover import SmaCrossover

    _ray()
    quiet_optuna()
    panel, cfg = _w4_setup()
    names = list(SmaCrossover.param_specs())

    def run() -> dict[str, Any]:
        search = OptunaSearch(space=_Space("sma_crossover", names), metric="sharpe",
                              mode="max", sampler=optuna.samplers.TPESampler(seed=0))  # fmt: skip
        trainable = tune.with_parameters(
            tune_trainable, panel=panel, strategy="sma_crossover", sim=cfg, fixed={},
            metrics=["sharpe"], min_trades=0,
        )  # fmt: skip
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            tune_config=tune.TuneConfig(search_alg=search, num_samples=W4_NAIVE,
                                        max_concurrent_trials=2),
            run_config=tune.RunConfig(verbose=0),
        )  # fmt: skip
        grid = tuner.fit()
        best = max((r.metrics.get("sharpe") or -np.inf) for r in grid)
        return {"values": np.array([best, W4_NAIVE]), "time_scale": W4_TRIALS / W4_NAIVE}

    return run


RESEARCH_WORKLOADS: dict[str, dict[str, Callable[[], Callable[[], Any]]]] = {
    "W2-sweep": {
        "sweep, 1 worker": lambda: w2_sweep(1),
        "sweep, 2 workers": lambda: w2_sweep(2),
    },
    "W3": {
        "raytrader on Ray (2 CPUs: 1 task x 2 threads)": w3_raytrader_ray,
        "raytrader on Ray, 2 tasks x 1 thread": lambda: w3_raytrader_ray([1, 1]),
        "raytrader kernel in-process (2 threads)": w3_raytrader_local,
        "hand numba loop": w3_hand,
        "numpy": w3_numpy,
    },
    "W4": {
        "raytrader parallel (2 workers)": w4_parallel,
        "raytrader parallel (1 worker + sampler)": lambda: w4_parallel(1),
        "optuna in-process": w4_inprocess,
        f"naive Ray Tune ({W4_NAIVE} trials, x{W4_TRIALS / W4_NAIVE:.2f})": w4_naive_tune,
    },
}
RESEARCH_UNITS = {"W2-sweep": 17_400, "W3": W3_PATHS * W3_STEPS, "W4": W4_TRIALS}
RESEARCH_UNIT_NAMES = {"W2-sweep": "backtests/s", "W3": "path-steps/s", "W4": "trials/s"}
#: The row each workload's "vs reference" column divides by.
REFERENCE = {"W2-sweep": "sweep, 1 worker", "W4": "optuna in-process"}
