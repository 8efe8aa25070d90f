"""Walk-forward analysis: in-sample search, out-of-sample test, fold after fold.

Windows are bars (``"504"``) or calendar periods (``"2y"``, ``"6m"``, ``"13w"``, ``"90d"``).
Rolling folds train on the ``train`` window just before each test window; anchored folds
train on everything from the first bar. Test windows follow each other without overlap and a
fold exists only if its whole test window lies inside the data. Per fold, the in-sample best
set (the search of ``optimization.search`` on the train bars, selected by the first metric) is
tested out of sample with the train window as its history; the out-of-sample returns are
stitched into one equity curve. Walk-forward efficiency is mean OOS metric / mean IS metric
over the folds. The deflated Sharpe ratio and PBO (``optimization.overfitting``) are computed
over the distinct parameter sets the folds evaluated (at most ``max_candidates``), each
backtested on the whole data: DSR for the one with the best full-sample Sharpe, with N = the
number of candidates and V = the variance of their per-bar Sharpe ratios.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
import polars as pl
from optuna.trial import TrialState

from core.errors import ConfigError
from core.panel import WidePanel
from optimization.context import JobContext, Progress
from optimization.metrics import direction
from optimization.overfitting import deflated_sharpe, pbo_cscv, sharpe
from optimization.samplers import Proposer, make_sampler
from optimization.search import (
    ATTR,
    TrialStatus,
    default_batch_size,
    drive_study,
    quiet_optuna,
)
from optimization.space import check_fixed, ensure_nonempty, search_specs
from optimization.specs import WalkForwardSpec, WindowMode
from optimization.workers import WorkerPool
from strategies.base import Strategy
from strategies.params import Param

__all__ = ["Fold", "WalkForwardResult", "make_folds", "run_walkforward"]

_PERIOD = re.compile(r"^\s*(\d+)\s*([dwmy])\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Fold:
    """Half-open bar ranges ``[lo, hi)`` of one fold's train and test windows."""

    index: int
    train_lo: int
    train_hi: int
    test_lo: int
    test_hi: int


def _offset(text: str, option: str) -> int | pd.DateOffset:
    text = str(text).strip()
    if text.isdigit():
        if int(text) < 2:
            raise ConfigError(f"{option} {text}: a window needs at least 2 bars")
        return int(text)
    m = _PERIOD.match(text)
    if m is None or int(m.group(1)) == 0:
        raise ConfigError(
            f"{option} {text!r}: expected a number of bars (504) or a period like 2y, 6m, 13w, 90d"
        )
    n, unit = int(m.group(1)), m.group(2).lower()
    return {"d": pd.DateOffset(days=n), "w": pd.DateOffset(weeks=n),
            "m": pd.DateOffset(months=n), "y": pd.DateOffset(years=n)}[unit]  # fmt: skip


def make_folds(
    timestamps: np.ndarray, train: str, test: str, mode: WindowMode = WindowMode.ROLLING
) -> list[Fold]:
    """The folds of a walk-forward over these timestamps; ConfigError if none fits."""
    n = len(timestamps)
    tr, te = _offset(train, "--train"), _offset(test, "--test")
    if isinstance(tr, int) != isinstance(te, int):
        raise ConfigError(
            f"--train {train} and --test {test}: give both in bars or both as periods"
        )
    bounds: list[tuple[int, int, int]] = []  # (train_lo, test_lo, test_hi)
    if isinstance(tr, int) and isinstance(te, int):
        if tr >= n:
            raise ConfigError(f"--train {tr} bars is not shorter than the data ({n} bars)")
        test_lo = tr
        while test_lo + te <= n:
            bounds.append(
                (0 if mode is WindowMode.ANCHORED else test_lo - tr, test_lo, test_lo + te)
            )
            test_lo += te
    else:
        ts = pd.DatetimeIndex(np.asarray(timestamps).astype("datetime64[ns]"))
        first, last = ts[0], ts[-1]
        start = first + tr
        if start > last:
            raise ConfigError(
                f"--train {train} is longer than the data ({first:%Y-%m-%d} .. {last:%Y-%m-%d})"
            )
        k = 0
        while True:
            t0, t1 = start + k * te, start + (k + 1) * te
            if t1 > last + pd.Timedelta(days=1):
                break
            lo = int(ts.searchsorted(t0))
            hi = int(ts.searchsorted(t1))
            train_lo = 0 if mode is WindowMode.ANCHORED else int(ts.searchsorted(t0 - tr))
            if hi - lo >= 2:
                bounds.append((train_lo, lo, hi))
            k += 1
    if not bounds:
        raise ConfigError(
            f"no walk-forward fold fits: --train {train} plus --test {test} is longer than the "
            f"data ({n} bars)"
        )
    return [Fold(i, a, b, b, c) for i, (a, b, c) in enumerate(bounds)]


@dataclass
class WalkForwardResult:
    """Per-fold selections and OOS results, the stitched equity, WFE, DSR and PBO."""

    strategy: str
    metric: str
    folds: pl.DataFrame
    equity: pl.DataFrame
    stats: dict[str, Any]
    candidates: pl.DataFrame

    def summary(self) -> dict[str, Any]:
        """JSON-able result."""
        return {"strategy": self.strategy, "metric": self.metric, **self.stats,
                "folds": self.folds.to_dicts()}  # fmt: skip


def _fold_search(
    spec: WalkForwardSpec, strategy_cls: type[Strategy], fixed: dict[str, Any],
    specs: dict[str, Param[Any]], pool: WorkerPool, fold: Fold, ctx: JobContext, seed: int,
) -> tuple[dict[str, Any] | None, float, optuna.Study]:  # fmt: skip
    """The in-sample search of one fold: its best set (by the first metric) and value."""
    study = optuna.create_study(
        directions=[direction(m) for m in spec.metrics], sampler=make_sampler(spec.sampler, seed)
    )
    proposer = Proposer(study, strategy_cls, specs, fixed, spec.sampler, seed)
    batch = spec.batch_size or default_batch_size(spec.trials, len(pool.actors))
    drive_study(study, proposer, strategy_cls, spec.metrics, spec.min_trades, pool, spec.trials,
                batch, ctx, fold.train_lo, fold.train_hi)  # fmt: skip
    ok = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not ok:
        return None, math.nan, study
    sign = -1.0 if direction(spec.metrics[0]) == "minimize" else 1.0
    best = max(ok, key=lambda t: sign * t.values[0])
    return {**fixed, **best.params}, float(best.values[0]), study


def _returns(
    pool: WorkerPool, sets: list[dict[str, Any]], lo: int, hi: int, warm: int, ctx: JobContext
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-bar returns (bars x sets) and metrics of sets on ``lo:hi``, chunked over workers."""
    chunks = list(enumerate(sets[i : i + 32] for i in range(0, len(sets), 32)))
    out: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}

    def submit(actor: Any, item: tuple[int, list[dict[str, Any]]]) -> Any:
        return actor.returns.remote(item[1], lo, hi, warm)

    for (i, _), res in pool.stream(chunks, submit, ctx):
        out[i] = res
    order = range(len(chunks))
    rets = np.hstack([out[i][0] for i in order])
    agg = {k: np.concatenate([out[i][1][k] for i in order]) for k in out[0][1]}
    return rets, agg


def _day(panel: WidePanel, i: int) -> str:
    return str(np.datetime_as_string(panel.timestamps[i], unit="D"))


def _fold_row(panel: WidePanel, fold: Fold, metric: str, is_value: float) -> dict[str, Any]:
    return {
        "fold": fold.index, "train_start": _day(panel, fold.train_lo),
        "train_end": _day(panel, fold.train_hi - 1), "test_start": _day(panel, fold.test_lo),
        "test_end": _day(panel, fold.test_hi - 1), "train_bars": fold.train_hi - fold.train_lo,
        "test_bars": fold.test_hi - fold.test_lo, "params": None, f"is_{metric}": is_value,
        f"oos_{metric}": math.nan, "oos_total_return": math.nan,
    }  # fmt: skip


def run_walkforward(spec: WalkForwardSpec, ctx: JobContext | None = None) -> WalkForwardResult:
    """Run the walk-forward a spec describes on Ray workers."""
    from optimization.runtime import ensure_ray, resolve_workers
    from strategies.backtest import load_panel
    from strategies.registry import get_strategy

    ctx = ctx or JobContext()
    quiet_optuna()
    strategy_cls = get_strategy(spec.strategy)
    fixed = check_fixed(strategy_cls, spec.params)
    specs = search_specs(strategy_cls, fixed)
    ensure_nonempty(strategy_cls, fixed, {k: s.grid() for k, s in specs.items()})
    panel = load_panel(spec.data)
    folds = make_folds(panel.timestamps, spec.train, spec.test, spec.mode)
    metric = spec.metrics[0].value
    ensure_ray()
    rows: list[dict[str, Any]] = []
    pieces: list[tuple[int, np.ndarray]] = []
    seen: dict[tuple, dict[str, Any]] = {}
    total = len(folds) * spec.trials
    with WorkerPool(spec.strategy, panel, spec.sim, resolve_workers(spec.workers)) as pool:
        for fold in folds:

            def relay(p: Progress, f: Fold = fold) -> None:
                ctx.report(f.index * spec.trials + p.done, total, p.best,
                           f"fold {f.index + 1}/{len(folds)}")  # fmt: skip

            sub = JobContext(on_progress=relay, cancel_event=ctx.cancel_event)
            best, is_value, study = _fold_search(
                spec, strategy_cls, fixed, specs, pool, fold, sub, spec.seed + fold.index
            )
            for t in study.get_trials(deepcopy=False):
                if t.user_attrs.get(ATTR, {}).get("status") in (
                    TrialStatus.OK,
                    TrialStatus.INFEASIBLE,
                ):
                    seen.setdefault(tuple(sorted(t.params.items())), {**fixed, **t.params})
            row = _fold_row(panel, fold, metric, is_value)
            if best is not None:
                warm = fold.test_lo - fold.train_lo
                rets, agg = _returns(pool, [best], fold.test_lo, fold.test_hi, warm, ctx)
                row["params"] = json.dumps(best)
                row[f"oos_{metric}"] = float(agg[metric][0])
                row["oos_total_return"] = float(np.prod(1.0 + rets[:, 0]) - 1.0)
                pieces.append((fold.test_lo, rets[:, 0]))
            rows.append(row)
        candidates = list(seen.values())[: spec.max_candidates]
        ctx.report(total, total, message=f"full-sample backtests of {len(candidates)} candidates")
        full = (
            _returns(pool, candidates, 0, panel.n_bars, 0, ctx)[0] if len(candidates) > 1 else None
        )
    return _assemble(spec, strategy_cls.name, panel, rows, pieces, candidates, full, metric)


def _overfitting(spec: WalkForwardSpec, full: np.ndarray, candidates: list[dict[str, Any]]) -> dict:
    """DSR of the best full-sample candidate and PBO over all candidates."""
    srs = np.nan_to_num(sharpe(full, axis=0), nan=0.0)
    best = int(np.argmax(srs))
    dsr = deflated_sharpe(full[:, best], len(candidates), float(np.var(srs, ddof=1)))
    splits = min(spec.pbo_splits, max(2, full.shape[0] // 8 * 2))
    pbo = pbo_cscv(full, n_splits=splits)
    return {
        "dsr": dsr.dsr, "dsr_sharpe_per_bar": dsr.sharpe, "dsr_sr0": dsr.sr0,
        "dsr_var_sharpe": dsr.var_sharpe, "dsr_skew": dsr.skew, "dsr_kurtosis": dsr.kurtosis,
        "dsr_n_obs": dsr.n_obs, "dsr_best_params": candidates[best], "pbo": pbo.pbo,
        "pbo_splits": pbo.n_splits, "pbo_combinations": len(pbo.logits),
    }  # fmt: skip


def _assemble(
    spec: WalkForwardSpec, name: str, panel: WidePanel, rows: list[dict[str, Any]],
    pieces: list[tuple[int, np.ndarray]], candidates: list[dict[str, Any]],
    full: np.ndarray | None, metric: str,
) -> WalkForwardResult:  # fmt: skip
    folds = pl.DataFrame(rows, infer_schema_length=None)
    idx = np.concatenate([np.arange(lo, lo + len(r)) for lo, r in pieces]) if pieces else []
    oos = np.concatenate([r for _, r in pieces]) if pieces else np.zeros(0)
    equity = spec.sim.cash * np.cumprod(1.0 + oos)
    eq = pl.DataFrame({"timestamp": panel.timestamps[np.asarray(idx, dtype=np.int64)],
                       "return": oos, "equity": equity})  # fmt: skip
    is_vals, oos_vals = folds[f"is_{metric}"].to_numpy(), folds[f"oos_{metric}"].to_numpy()
    good = np.isfinite(is_vals) & np.isfinite(oos_vals)
    mean_is = float(np.mean(is_vals[good])) if good.any() else math.nan
    mean_oos = float(np.mean(oos_vals[good])) if good.any() else math.nan
    stats: dict[str, Any] = {
        "mode": spec.mode.value, "train": spec.train, "test": spec.test, "n_folds": len(rows),
        "trials_per_fold": spec.trials, "sampler": spec.sampler.value, "seed": spec.seed,
        f"mean_is_{metric}": mean_is, f"mean_oos_{metric}": mean_oos,
        "walk_forward_efficiency": mean_oos / mean_is if mean_is else math.nan,
        "oos_total_return": float(equity[-1] / spec.sim.cash - 1) if len(equity) else math.nan,
        "oos_sharpe_per_bar": float(sharpe(oos)) if len(oos) > 1 else math.nan,
        "n_candidates": len(candidates),
    }  # fmt: skip
    cand = pl.DataFrame({"params": [json.dumps(c) for c in candidates]})
    if full is not None:
        stats.update(_overfitting(spec, full, candidates))
        srs = np.nan_to_num(sharpe(full, axis=0), nan=0.0)
        cand = cand.with_columns(pl.Series("full_sharpe_per_bar", srs))
    return WalkForwardResult(name, metric, folds, eq, stats, cand)
