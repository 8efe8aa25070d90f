"""Run a strategy through the simulator: the one backtest path the CLI, API and searches share."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.config import BacktestSpec, DataSpec
from core.errors import ConfigError
from core.panel import WidePanel
from core.sim import BacktestResult, SimConfig, run_backtest
from strategies.base import Strategy
from strategies.registry import get_strategy

__all__ = ["backtest", "load_panel", "make_strategy", "run_spec"]


def _parse_bound(value: str, name: str) -> np.datetime64:
    try:
        return np.datetime64(value, "us")
    except ValueError:
        raise ConfigError(f"{name} {value!r} is not an ISO date or datetime") from None


def load_panel(data: DataSpec) -> WidePanel:
    """Load, validate and window the bars a spec names (synthetic when no path is given)."""
    from core.data.loaders import load_wide
    from core.data.synthetic import synthetic_wide

    if data.paths:
        panel, _report = load_wide(data.paths, symbol=data.symbol, policy=data.bad_bars)
    else:
        panel = synthetic_wide(data.synthetic_symbols, data.synthetic_bars, seed=data.seed)
    ts = panel.timestamps
    lo = 0 if data.start is None else int(np.searchsorted(ts, _parse_bound(data.start, "start")))
    hi = (
        len(ts)
        if data.end is None
        else int(np.searchsorted(ts, _parse_bound(data.end, "end"), side="right"))
    )
    if hi - lo < 2:
        raise ConfigError(
            f"the window start={data.start} end={data.end} leaves {max(hi - lo, 0)} bars; "
            "a backtest needs at least 2"
        )
    return panel if (lo, hi) == (0, len(ts)) else panel.slice(lo, hi)


def make_strategy(name: str, params: dict[str, Any]) -> Strategy:
    """Instantiate a registered strategy with validated parameters."""
    return get_strategy(name)(**params)


def backtest(strategy: Strategy, panel: WidePanel, sim: SimConfig) -> BacktestResult:
    """Evaluate the strategy on the whole panel and simulate its weights."""
    return run_backtest(panel, strategy.checked_weights(panel), sim)


def run_spec(spec: BacktestSpec) -> tuple[Strategy, BacktestResult]:
    """Load the data, build the strategy and run the backtest a spec describes."""
    strategy = make_strategy(spec.strategy, spec.params)
    return strategy, backtest(strategy, load_panel(spec.data), spec.sim)
