"""The Ray Tune path (``--engine tune``): a Tuner with OptunaSearch, one trial = one batch.

For users who want Tune's schedulers, dashboards and experiment records. One trial evaluates
one parameter set across every symbol of the panel in one kernel call; the panel reaches the
trials through the object store (``tune.with_parameters``). Tune costs about 1.5 s per trial
on a small machine, so the default engine (batched ask/tell on worker actors) is far faster
for sweeps of thousands. Invalid sets (constraints), sets below ``min_trades`` and undefined
metrics report NaN, which Optuna records as failed trials.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import numpy as np
import polars as pl

from core.panel import WidePanel
from core.sim import SimConfig
from optimization.context import JobCancelledError, JobContext
from optimization.metrics import direction
from optimization.samplers import make_sampler
from optimization.search import RECORDED, SearchResult, TrialStatus
from optimization.specs import OptimizeSpec
from strategies.base import Strategy
from strategies.params import Param

__all__ = ["run_tune", "tune_trainable"]

_CONTEXTS: dict[str, tuple[JobContext, int]] = {}


def tune_trainable(
    config: dict[str, Any], panel: WidePanel, strategy: str, sim: SimConfig,
    fixed: dict[str, Any], metrics: list[str], min_trades: int,
) -> None:  # fmt: skip
    """One Tune trial: one parameter set across the panel's symbols, reported once."""
    from ray import tune

    from optimization.evaluation import window_metrics
    from optimization.metrics import aggregate
    from strategies.registry import get_strategy

    cls = get_strategy(strategy)
    params = {**fixed, **config}
    if not cls.is_valid(params):
        tune.report({**dict.fromkeys(metrics, math.nan), "status": TrialStatus.INVALID.value})
        return
    agg = aggregate(window_metrics(cls, panel, [params], sim))
    out = {k: float(agg[k][0]) for k in RECORDED if k in agg}
    status = TrialStatus.INFEASIBLE if out["n_trades"] < min_trades else TrialStatus.OK
    if status is TrialStatus.OK and any(math.isnan(out[m]) for m in metrics):
        status = TrialStatus.UNDEFINED
    if status is not TrialStatus.OK:
        out.update(dict.fromkeys(metrics, math.nan))
    tune.report({**out, "status": status.value})


class _Space:
    """Define-by-run search space (picklable: Tune checkpoints its searcher)."""

    def __init__(self, strategy: str, names: list[str]) -> None:
        self.strategy, self.names = strategy, names

    def __call__(self, trial: Any) -> None:
        from strategies.registry import get_strategy

        specs = get_strategy(self.strategy).param_specs()
        for name in self.names:
            specs[name].suggest(trial)


def _stopper(key: str) -> Any:
    """A Tune stopper that ends the experiment when the job is cancelled."""
    from ray import tune

    class CancelStopper(tune.Stopper):
        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return False

        def stop_all(self) -> bool:
            from optimization import tune_engine

            entry = tune_engine._CONTEXTS.get(key)
            return entry is not None and entry[0].cancelled

    CancelStopper.__module__ = __name__
    return CancelStopper()


def _progress_callback(key: str) -> Any:
    """A Tune callback that reports finished trials to the job's context."""
    from ray import tune

    class ProgressCallback(tune.Callback):
        def __init__(self) -> None:
            self.done = 0

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            from optimization import tune_engine

            self.done += 1
            entry = tune_engine._CONTEXTS.get(key)
            if entry is not None:
                entry[0].report(self.done, entry[1])

    return ProgressCallback()


def _front(values: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of ``values`` (columns oriented by ``signs``)."""
    v = values * signs
    keep = []
    for i in range(len(v)):
        dominated = np.any(np.all(v >= v[i], axis=1) & np.any(v > v[i], axis=1))
        if not dominated:
            keep.append(i)
    return np.array(keep, dtype=int)


def run_tune(
    spec: OptimizeSpec, strategy_cls: type[Strategy], fixed: dict[str, Any],
    specs: dict[str, Param[Any]], panel: WidePanel, workers: int, ctx: JobContext,
) -> SearchResult:  # fmt: skip
    """Run ``spec.trials`` Tune trials, at most ``workers`` at a time."""
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    metrics = [m.value for m in spec.metrics]
    modes = [direction(m)[:3] for m in spec.metrics]

    space = _Space(spec.strategy, list(specs))
    single = len(metrics) == 1
    searcher = OptunaSearch(
        space=space, metric=metrics[0] if single else metrics, mode=modes[0] if single else modes,
        sampler=make_sampler(spec.sampler, spec.seed, len(metrics)),
    )  # fmt: skip
    key = uuid.uuid4().hex
    _CONTEXTS[key] = (ctx, spec.trials)  # Tune pickles its config: pass a key, not the context

    trainable = tune.with_parameters(
        tune_trainable, panel=panel, strategy=spec.strategy, sim=spec.sim, fixed=fixed,
        metrics=metrics, min_trades=spec.min_trades,
    )  # fmt: skip
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=spec.trials,
                                    max_concurrent_trials=workers),
        run_config=tune.RunConfig(name=f"raytrader-{strategy_cls.name}", stop=_stopper(key),
                                  callbacks=[_progress_callback(key)], verbose=0),
    )  # fmt: skip
    try:
        grid = tuner.fit()
    finally:
        _CONTEXTS.pop(key, None)
    if ctx.cancelled:
        raise JobCancelledError("tune search cancelled")
    rows = []
    for i, res in enumerate(grid):
        m = res.metrics or {}
        row = {"number": i, "state": "complete" if res.error is None else "fail",
               "status": m.get("status", "error")}  # fmt: skip
        row.update({f"param_{k}": v for k, v in (res.config or {}).items()})
        row.update({k: m.get(k) for k in RECORDED})
        rows.append(row)
    trials = pl.DataFrame(rows, infer_schema_length=None)
    ok = trials.filter(pl.col("status") == TrialStatus.OK.value)
    best: list[dict[str, Any]] = []
    if ok.height:
        vals = ok.select(metrics).to_numpy().astype(float)
        signs = np.array([1.0 if mode == "max" else -1.0 for mode in modes])
        picks = _front(vals, signs) if not single else [int(np.argmax(vals[:, 0] * signs[0]))]
        for i in picks:
            r = ok.row(int(i), named=True)
            best.append({"number": r["number"],
                         "params": {**fixed, **{k: r[f"param_{k}"] for k in specs}},
                         "values": {k: r[k] for k in metrics}})  # fmt: skip
    counts = {str(k): int(v) for k, v in zip(*np.unique(trials["status"], return_counts=True),
                                             strict=True)}  # fmt: skip
    return SearchResult(
        strategy=strategy_cls.name, metrics=list(spec.metrics), sampler=spec.sampler.value,
        seed=spec.seed, sampler_seed=spec.seed, engine="tune", trials=trials, best=best,
        counts={**counts, "this_run": trials.height},
    )  # fmt: skip
