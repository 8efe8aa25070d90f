"""The metric vocabulary of searches and sweeps, their directions, and aggregation over symbols.

A per-symbol strategy backtests each parameter set once per symbol (each on its own cash); the
set's score is the **mean across symbols** of the per-symbol metric (NaN symbols, e.g. a Sharpe
with no trades, are left out of the mean) and its trade count is the **sum** of closed trades
over the symbols. A cross-sectional strategy (momentum, pairs) is one portfolio per set, so
its metrics are the portfolio's own.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from enum import StrEnum

import numpy as np

from core.errors import ConfigError

__all__ = [
    "Metric",
    "aggregate",
    "direction",
    "feasible",
    "parse_metrics",
    "worst_first",
]


class Metric(StrEnum):
    """Objectives a search can optimize (names of ``core.stats.summary_stats`` outputs)."""

    SHARPE = "sharpe"
    SORTINO = "sortino"
    CALMAR = "calmar"
    CAGR = "cagr"
    TOTAL_RETURN = "total_return"
    FINAL_EQUITY = "final_equity"
    MAX_DRAWDOWN = "max_drawdown"
    PROFIT_FACTOR = "profit_factor"
    WIN_RATE = "win_rate"
    EXPECTANCY = "expectancy"


_MINIMIZED = frozenset({Metric.MAX_DRAWDOWN})
_SUMMED = frozenset({"n_trades", "n_rejected", "total_commission"})


def direction(metric: Metric) -> str:
    """``"minimize"`` for max_drawdown, ``"maximize"`` for everything else."""
    return "minimize" if metric in _MINIMIZED else "maximize"


def parse_metrics(values: str | Iterable[str], where: str = "--metric") -> list[Metric]:
    """Metrics from names (a comma-separated string or a list); ConfigError naming the bad one."""
    names = values.split(",") if isinstance(values, str) else list(values)
    out: list[Metric] = []
    for raw in names:
        for name in str(raw).split(","):
            name = name.strip().lower()
            if not name:
                continue
            try:
                metric = Metric(name)
            except ValueError:
                known = ", ".join(m.value for m in Metric)
                raise ConfigError(f"unknown metric {name!r} in {where}; known: {known}") from None
            if metric in out:
                raise ConfigError(f"metric {name!r} given twice in {where}")
            out.append(metric)
    if not out:
        raise ConfigError(f"{where} needs at least one metric")
    return out


def aggregate(metrics: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-set values from (sets x columns) metrics: counts summed, everything else nan-mean."""
    out: dict[str, np.ndarray] = {}
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN, silently
        for name, arr in metrics.items():
            arr = np.asarray(arr, dtype=np.float64)
            if arr.ndim == 1:
                out[name] = arr
            elif name in _SUMMED:
                out[name] = arr.sum(axis=1)
            else:
                out[name] = np.nanmean(arr, axis=1)
    return out


def feasible(agg: Mapping[str, np.ndarray], min_trades: int) -> np.ndarray:
    """True where a set has at least ``min_trades`` closed trades (summed over symbols)."""
    trades = np.asarray(agg["n_trades"], dtype=np.float64)
    return trades >= min_trades


def worst_first(values: np.ndarray, metric: Metric) -> np.ndarray:
    """Values turned into "higher is better" (negated for minimized metrics), NaN -> -inf."""
    vals = np.asarray(values, dtype=np.float64)
    vals = -vals if direction(metric) == "minimize" else vals.copy()
    vals[np.isnan(vals)] = -np.inf
    return vals
