"""Parameter search: Optuna ask/tell with batched asks, driving worker actors through Ray.

The driver asks the study for a batch of parameter sets, sends it to a free worker (each
evaluates the whole batch in one vectorized kernel call on bars it already holds), and tells
the results back as they arrive (``ray.wait``), so the sampler always sees everything
finished so far and every worker stays busy. Sets that break the strategy's constraints are
told PRUNED without evaluation; sets with fewer closed trades than ``min_trades`` (summed over
symbols) or an undefined metric are told PRUNED after it, with the reason in the trial's user
attribute ``raytrader``. A study in storage (``sqlite:///study.db``) resumes: ``trials`` is the
target total of evaluated trials, trials left RUNNING by a killed run are marked FAIL, and the
sampler is seeded with ``seed + trials already in the study`` so it does not replay its draws.
"""

from __future__ import annotations

import logging
import math
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import optuna
import polars as pl
from optuna.trial import TrialState

from core.errors import ConfigError
from optimization.context import JobContext
from optimization.metrics import Metric, direction
from optimization.samplers import Proposer, make_sampler
from optimization.space import check_fixed, ensure_nonempty, search_specs
from optimization.specs import Engine, OptimizeSpec, Sampler
from optimization.workers import WorkerPool
from strategies.base import Strategy

__all__ = [
    "ATTR",
    "RECORDED",
    "SearchResult",
    "TrialStatus",
    "default_batch_size",
    "drive_study",
    "quiet_optuna",
    "run_optimize",
    "study_result",
]

ATTR = "raytrader"


class TrialStatus(StrEnum):
    """Why a trial has its state (user attribute ``raytrader.status`` of every trial)."""

    OK = "ok"  # evaluated and told its values
    INVALID = "invalid"  # broke the strategy's constraints: pruned, never evaluated
    INFEASIBLE = "infeasible"  # fewer closed trades than min_trades: pruned after evaluation
    UNDEFINED = "undefined"  # a metric is NaN (e.g. Sharpe without trades): pruned


RECORDED = (
    "sharpe", "sortino", "calmar", "cagr", "total_return", "max_drawdown", "profit_factor",
    "win_rate", "expectancy", "final_equity", "n_trades", "exposure",
)  # fmt: skip
_EVALUATED = (TrialStatus.OK, TrialStatus.INFEASIBLE, TrialStatus.UNDEFINED)


def quiet_optuna() -> None:
    """Optuna logs one INFO line per trial; searches of thousands report through progress."""
    optuna.logging.set_verbosity(logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass
class SearchResult:
    """A finished (or cancelled) search: every trial, the best set(s), and how it was run."""

    strategy: str
    metrics: list[Metric]
    sampler: str
    seed: int
    sampler_seed: int
    engine: str
    trials: pl.DataFrame
    best: list[dict[str, Any]]
    counts: dict[str, int]
    study_name: str | None = None
    storage: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-able description of the search and its best set(s)."""
        return {
            "strategy": self.strategy,
            "metrics": [m.value for m in self.metrics],
            "directions": [direction(m) for m in self.metrics],
            "sampler": self.sampler,
            "seed": self.seed,
            "sampler_seed": self.sampler_seed,
            "engine": self.engine,
            "study_name": self.study_name,
            "storage": self.storage,
            "counts": self.counts,
            "best": self.best,
            **self.extra,
        }


def default_batch_size(n_trials: int, workers: int) -> int:
    """Sets per worker call: enough to amortize a call, few enough to keep the sampler fresh."""
    return int(np.clip(n_trials // (workers * 16), 1, 8))


def _evaluated(study: optuna.Study) -> int:
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get(ATTR, {}).get("status") in _EVALUATED
    )


class _Best:
    """Best value so far of the first objective, for the progress bar."""

    def __init__(self, metric: Metric) -> None:
        self.sign = -1.0 if direction(metric) == "minimize" else 1.0
        self.value: float | None = None

    def update(self, value: float) -> None:
        if self.value is None or self.sign * value > self.sign * self.value:
            self.value = value


def drive_study(
    study: optuna.Study,
    proposer: Proposer,
    strategy_cls: type[Strategy],
    metrics: Sequence[Metric],
    min_trades: int,
    pool: WorkerPool,
    n_evals: int,
    batch_size: int,
    ctx: JobContext,
    lo: int = 0,
    hi: int | None = None,
) -> Counter[str]:
    """Evaluate up to ``n_evals`` valid sets; trials still open on any exit are told FAIL."""
    counts: Counter[str] = Counter()
    open_trials: dict[int, optuna.Trial] = {}
    best = _Best(metrics[0])
    invalid_limit = max(1000, 20 * n_evals)
    state = {"asked": 0, "done": 0}

    def batches() -> Iterator[list[tuple[optuna.Trial, dict[str, Any]]]]:
        exhausted = False
        while state["asked"] < n_evals and not exhausted:
            batch: list[tuple[optuna.Trial, dict[str, Any]]] = []
            while len(batch) < batch_size and state["asked"] < n_evals:
                got = proposer.next()
                if got is None:
                    exhausted = True
                    break
                trial, params = got
                if not strategy_cls.is_valid(params):
                    trial.set_user_attr(ATTR, {"status": TrialStatus.INVALID.value})
                    study.tell(trial, state=TrialState.PRUNED)
                    counts[TrialStatus.INVALID] += 1
                    if counts[TrialStatus.INVALID] > invalid_limit:
                        raise ConfigError(
                            f"strategy {strategy_cls.name}: {counts['invalid']} sampled sets "
                            "broke its constraints; the valid part of the search space is "
                            "too small for this sampler (try --sampler grid)"
                        )
                    continue
                open_trials[trial.number] = trial
                batch.append((trial, params))
                state["asked"] += 1
            if batch:
                yield batch

    job = uuid.uuid4().hex  # the workers share indicators between this search's batches only

    def submit(actor: Any, batch: list[tuple[optuna.Trial, dict[str, Any]]]) -> Any:
        return actor.evaluate.remote([p for _, p in batch], lo, hi, False, job)

    try:
        for batch, (agg, _) in pool.stream(batches(), submit, ctx):
            for i, (trial, _params) in enumerate(batch):
                status = _tell(study, trial, agg, i, metrics, min_trades)
                counts[status] += 1
                open_trials.pop(trial.number, None)
                if status is TrialStatus.OK:
                    best.update(float(agg[metrics[0].value][i]))
            state["done"] += len(batch)
            ctx.report(state["done"], n_evals, best.value)
    finally:
        for trial in open_trials.values():
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
    return counts


def _tell(
    study: optuna.Study, trial: optuna.Trial, agg: dict[str, np.ndarray], i: int,
    metrics: Sequence[Metric], min_trades: int,
) -> TrialStatus:  # fmt: skip
    values = [float(agg[m.value][i]) for m in metrics]
    recorded = {k: _json_float(float(agg[k][i])) for k in RECORDED if k in agg}
    if float(agg["n_trades"][i]) < min_trades:
        status = TrialStatus.INFEASIBLE
    elif any(math.isnan(v) for v in values):
        status = TrialStatus.UNDEFINED
    else:
        status = TrialStatus.OK
    trial.set_user_attr(ATTR, {"status": status.value, "metrics": recorded})
    if status is TrialStatus.OK:
        study.tell(trial, values)
    else:
        study.tell(trial, state=TrialState.PRUNED)
    return status


def _default_study_name(spec: OptimizeSpec, strategy_cls: type[Strategy]) -> str:
    return f"{strategy_cls.name}-{'-'.join(m.value for m in spec.metrics)}"


def _open_study(spec: OptimizeSpec, strategy_cls: type[Strategy]) -> tuple[optuna.Study, int]:
    """Create, or (``resume``) load, the study; returns it and the sampler seed used."""
    directions = [direction(m) for m in spec.metrics]
    name = spec.study_name or _default_study_name(spec, strategy_cls)
    if spec.storage is None:
        sampler = make_sampler(spec.sampler, spec.seed, len(spec.metrics))
        study = optuna.create_study(directions=directions, sampler=sampler, study_name=name)
        return study, spec.seed
    try:
        names = optuna.study.get_all_study_names(storage=spec.storage)
    except Exception as exc:  # a malformed URL or an unreachable database
        raise ConfigError(f"--storage {spec.storage!r}: {type(exc).__name__}: {exc}") from exc
    if name in names and not spec.resume:
        raise ConfigError(
            f"study {name!r} already exists in {spec.storage}; add --resume to continue it "
            "or give a new --study-name"
        )
    if spec.resume and name not in names:
        raise ConfigError(
            f"--resume: no study {name!r} in {spec.storage} (it has: {', '.join(names) or 'none'})"
        )
    n_before = 0
    if spec.resume:
        loaded = optuna.load_study(study_name=name, storage=spec.storage)
        stored = loaded.user_attrs.get("spec", {})
        stored_dirs = [d.name.lower() for d in loaded.directions]
        if stored.get("strategy") != spec.strategy or stored_dirs != directions:
            raise ConfigError(
                f"--resume: study {name!r} was made for strategy {stored.get('strategy')!r} "
                f"and metrics {stored.get('metrics')}, not {spec.strategy!r} and "
                f"{[m.value for m in spec.metrics]}"
            )
        for t in loaded.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            loaded.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        n_before = len(loaded.get_trials(deepcopy=False))
    sampler_seed = spec.seed + n_before
    sampler = make_sampler(spec.sampler, sampler_seed, len(spec.metrics))
    study = optuna.create_study(
        storage=spec.storage, study_name=name, directions=directions, sampler=sampler,
        load_if_exists=spec.resume,
    )  # fmt: skip
    if not spec.resume:
        study.set_user_attr("spec", spec.model_dump(mode="json"))
    return study, sampler_seed


def study_result(
    study: optuna.Study, spec: OptimizeSpec, strategy_cls: type[Strategy], sampler_seed: int,
    counts: Counter[str],
) -> SearchResult:  # fmt: skip
    """Every trial of the study as a table, plus the best set (or the Pareto front)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        info = t.user_attrs.get(ATTR, {})
        row: dict[str, Any] = {"number": t.number, "state": t.state.name.lower(),
                               "status": info.get("status")}  # fmt: skip
        row.update({f"param_{k}": v for k, v in t.params.items()})
        row.update({k: info.get("metrics", {}).get(k) for k in RECORDED})
        rows.append(row)
    trials = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best_trials = []
    if complete:
        best_trials = study.best_trials if len(spec.metrics) > 1 else [study.best_trial]
    best = [
        {
            "number": t.number,
            "params": {**check_fixed(strategy_cls, spec.params), **t.params},
            "values": {m.value: v for m, v in zip(spec.metrics, t.values, strict=True)},
        }
        for t in best_trials
    ]
    total = Counter(
        t.user_attrs.get(ATTR, {}).get("status", t.state.name.lower())
        for t in study.get_trials(deepcopy=False)
    )
    return SearchResult(
        strategy=strategy_cls.name, metrics=list(spec.metrics), sampler=spec.sampler.value,
        seed=spec.seed, sampler_seed=sampler_seed, engine=spec.engine.value, trials=trials,
        best=best, counts={**{str(k): v for k, v in total.items()}, "this_run": int(sum(
            counts[s] for s in _EVALUATED))}, study_name=study.study_name,
        storage=spec.storage,
    )  # fmt: skip


def run_optimize(
    spec: OptimizeSpec, ctx: JobContext | None = None, pool: WorkerPool | None = None
) -> SearchResult:
    """Run the search a spec describes on Ray (started here unless already connected).

    A given ``pool`` (same strategy, bars and simulator settings) is used and left open.
    """
    from optimization.runtime import ensure_ray, resolve_workers
    from strategies.backtest import load_panel
    from strategies.registry import get_strategy

    ctx = ctx or JobContext()
    quiet_optuna()
    strategy_cls = get_strategy(spec.strategy)
    fixed = check_fixed(strategy_cls, spec.params)
    specs = search_specs(strategy_cls, fixed)
    ensure_nonempty(strategy_cls, fixed, {k: s.grid() for k, s in specs.items()})
    if spec.engine is Engine.TUNE:
        from optimization.tune_engine import run_tune

        panel = load_panel(spec.data)
        ensure_ray()
        return run_tune(spec, strategy_cls, fixed, specs, panel, resolve_workers(spec.workers), ctx)
    study, sampler_seed = _open_study(spec, strategy_cls)  # storage errors before Ray starts
    if pool is not None:
        return _drive(spec, ctx, strategy_cls, fixed, specs, pool, study, sampler_seed)
    panel = load_panel(spec.data)
    ensure_ray()
    with WorkerPool(spec.strategy, panel, spec.sim, resolve_workers(spec.workers)) as own:
        return _drive(spec, ctx, strategy_cls, fixed, specs, own, study, sampler_seed)


def _drive(
    spec: OptimizeSpec, ctx: JobContext, strategy_cls: type[Strategy], fixed: dict[str, Any],
    specs: dict[str, Any], pool: WorkerPool, study: optuna.Study, sampler_seed: int,
) -> SearchResult:  # fmt: skip
    n_evals = max(0, spec.trials - _evaluated(study))
    counts: Counter[str] = Counter()
    if n_evals:
        workers = len(pool.actors)
        proposer = Proposer(study, strategy_cls, specs, fixed, spec.sampler, sampler_seed)
        batch = spec.batch_size or default_batch_size(n_evals, workers)
        ctx.report(0, n_evals, message=f"{workers} workers, {batch} sets per call")
        counts = drive_study(
            study, proposer, strategy_cls, spec.metrics, spec.min_trades, pool, n_evals, batch, ctx
        )
    if spec.sampler is Sampler.GRID and n_evals and sum(counts.values()) < n_evals:
        ctx.report(n_evals, n_evals, message="grid exhausted")
    return study_result(study, spec, strategy_cls, sampler_seed, counts)
