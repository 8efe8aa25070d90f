"""Stress tests: the strategy on shocked bars and in historical windows, against risk limits.

Shocks (all symbols, every price field of a bar scaled by one factor so bars stay valid):

- ``gap``: an overnight gap of ``size`` percent at the first bar on/after ``start``: that bar
  and every later one are scaled by ``1 + size/100`` (close[t-1] -> open[t] jumps).
- ``vol``: close-to-close log returns in ``start..end`` multiplied by ``size``; later bars
  continue from the shocked level.
- ``correlation``: in ``start..end`` every symbol's log return becomes the cross-sectional
  mean log return rescaled to that symbol's own volatility in the window: correlation 1,
  volatilities kept.
- ``historical``: no shock; the backtest runs only over ``start..end`` (with the history
  before it as the strategy's warm-up).

Each scenario is one ``raytrader backtest`` portfolio. Reported: P&L and return over the
evaluation period (the whole data for shocks, the window for history), P&L inside the shock
window, max drawdown, the worst bar, and breaches of two limits: a bar losing more than
``max_daily_loss_pct`` of equity, and drawdown from peak beyond ``max_drawdown_pct``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from core.errors import ConfigError
from core.panel import WidePanel
from core.sim import SimConfig, run_backtest
from optimization.context import JobContext
from optimization.specs import ShockKind, ShockSpec, StressSpec
from strategies.base import Strategy

__all__ = ["StressResult", "apply_shock", "default_scenarios", "run_stress", "shock_window"]

_HISTORY = (
    ("dot-com bust", "2000-03-01", "2002-10-31"),
    ("financial crisis", "2007-10-01", "2009-03-31"),
    ("covid crash", "2020-02-15", "2020-04-30"),
)


def _index(panel: WidePanel, date: str, what: str) -> int:
    try:
        ts = np.datetime64(date, "us")
    except ValueError:
        raise ConfigError(f"{what}: {date!r} is not an ISO date") from None
    return int(np.searchsorted(panel.timestamps, ts))


def shock_window(panel: WidePanel, shock: ShockSpec) -> tuple[int, int]:
    """Bar range ``[lo, hi)`` a scenario covers; ConfigError naming it if outside the data."""
    lo = _index(panel, str(shock.start), f"scenario {shock.label!r} start")
    if shock.kind is ShockKind.GAP:
        hi = lo + 1
    else:
        end = np.datetime64(str(shock.end), "us") + np.timedelta64(1, "D")
        hi = int(np.searchsorted(panel.timestamps, end))
    first = np.datetime_as_string(panel.timestamps[0], unit="D")
    last = np.datetime_as_string(panel.timestamps[-1], unit="D")
    need = 1 if shock.kind is ShockKind.GAP else 2
    if lo < 1 or hi > panel.n_bars or hi - lo < need:
        raise ConfigError(
            f"scenario {shock.label!r}: its window does not lie inside the data "
            f"({first} .. {last}, and a shock needs a bar before it)"
        )
    return lo, hi


def _scaled(panel: WidePanel, factor: np.ndarray) -> WidePanel:
    """Every price field of bar t, symbol s multiplied by ``factor[t, s]``."""
    f = np.where(np.isfinite(factor), factor, 1.0)
    return WidePanel(panel.timestamps, panel.symbols, panel.open * f, panel.high * f,
                     panel.low * f, panel.close * f, panel.volume)  # fmt: skip


def _factor_from_returns(panel: WidePanel, lo: int, hi: int, new_log: np.ndarray) -> np.ndarray:
    """Scale factors that give log returns ``new_log`` (bars lo..hi) and keep later bars' own."""
    old_log = np.log(panel.close[lo:hi] / panel.close[lo - 1 : hi - 1])
    delta = np.nan_to_num(new_log - old_log)
    factor = np.ones_like(panel.close)
    factor[lo:hi] = np.exp(np.cumsum(delta, axis=0))
    factor[hi:] = factor[hi - 1]
    return factor


def apply_shock(panel: WidePanel, shock: ShockSpec) -> WidePanel:
    """The panel with a shock applied (historical windows return the panel unchanged)."""
    lo, hi = shock_window(panel, shock)
    if shock.kind is ShockKind.HISTORICAL:
        return panel
    if shock.kind is ShockKind.GAP:
        factor = np.ones_like(panel.close)
        factor[lo:] = 1.0 + float(shock.size or 0.0) / 100.0
        return _scaled(panel, factor)
    log_ret = np.log(panel.close[lo:hi] / panel.close[lo - 1 : hi - 1])
    if shock.kind is ShockKind.VOL:
        return _scaled(panel, _factor_from_returns(panel, lo, hi, log_ret * float(shock.size)))
    with np.errstate(invalid="ignore", divide="ignore"):
        market = np.nanmean(log_ret, axis=1, keepdims=True)
        scale = np.nanstd(log_ret, axis=0, keepdims=True) / np.nanstd(market)
    new = np.where(np.isfinite(log_ret), (market - np.nanmean(market)) * scale
                   + np.nanmean(log_ret, axis=0, keepdims=True), np.nan)  # fmt: skip
    return _scaled(panel, _factor_from_returns(panel, lo, hi, new))


def default_scenarios(panel: WidePanel) -> list[ShockSpec]:
    """Historical crises inside the data, plus a -20% gap, vol x3 and correlation 1 mid-data."""
    day = lambda i: str(np.datetime_as_string(panel.timestamps[i], unit="D"))  # noqa: E731
    n = panel.n_bars
    first, last = panel.timestamps[0], panel.timestamps[-1]
    out = [
        ShockSpec(kind=ShockKind.HISTORICAL, name=name, start=a, end=b)
        for name, a, b in _HISTORY
        if first < np.datetime64(a) and np.datetime64(b) <= last
    ]
    mid, width = n // 2, max(5, n // 20)
    out += [
        ShockSpec(kind=ShockKind.GAP, start=day(mid), size=-20.0),
        ShockSpec(kind=ShockKind.VOL, start=day(mid), end=day(min(n - 1, mid + width)), size=3.0),
        ShockSpec(kind=ShockKind.CORRELATION, start=day(mid), end=day(min(n - 1, mid + width))),
    ]
    if panel.n_symbols < 2:
        out = [s for s in out if s.kind is not ShockKind.CORRELATION]
    return out


def _breaches(panel: WidePanel, equity: np.ndarray, cash: float, daily: float,
              max_dd: float) -> dict[str, Any]:  # fmt: skip
    prev = np.concatenate(([cash], equity[:-1]))
    ret = equity / prev - 1.0
    peak = np.maximum.accumulate(np.concatenate(([cash], equity)))[1:]
    dd = 1.0 - equity / peak
    loss_bars = np.flatnonzero(ret < -daily / 100.0)
    dd_bars = np.flatnonzero(dd > max_dd / 100.0)
    day = lambda i: str(np.datetime_as_string(panel.timestamps[i], unit="D"))  # noqa: E731
    return {
        "worst_bar": float(ret.min()) if len(ret) else math.nan,
        "daily_loss_breaches": len(loss_bars),
        "first_daily_loss_breach": day(loss_bars[0]) if len(loss_bars) else None,
        "drawdown_breach": bool(len(dd_bars)),
        "first_drawdown_breach": day(dd_bars[0]) if len(dd_bars) else None,
    }


def _run(strategy: Strategy, panel: WidePanel, sim: SimConfig, lo: int, hi: int):
    """Backtest bars lo:hi with weights computed on the history up to hi."""
    weights = strategy.checked_weights(panel.slice(0, hi))[lo:]
    return run_backtest(panel.slice(lo, hi), weights, sim)


@dataclass
class StressResult:
    """One row per scenario (the baseline first) and every scenario's equity curve."""

    table: pl.DataFrame
    equity: pl.DataFrame
    limits: dict[str, float]

    def summary(self) -> dict[str, Any]:
        """JSON-able result."""
        return {"limits": self.limits, "scenarios": self.table.to_dicts()}


def run_stress(spec: StressSpec, ctx: JobContext | None = None) -> StressResult:
    """Backtest the baseline and every scenario (single backtests: no Ray needed)."""
    from strategies.backtest import load_panel
    from strategies.registry import get_strategy

    ctx = ctx or JobContext()
    strategy = get_strategy(spec.strategy)(**spec.params)
    panel = load_panel(spec.data)
    scenarios = [ShockSpec(kind=ShockKind.HISTORICAL, name="baseline",
                           start=_day(panel, 1), end=_day(panel, panel.n_bars - 1))]  # fmt: skip
    scenarios += list(spec.scenarios) or default_scenarios(panel)
    rows, curves = [], []
    for k, shock in enumerate(scenarios):
        ctx.check()
        lo, hi = (0, panel.n_bars) if k == 0 else shock_window(panel, shock)
        if shock.kind is ShockKind.HISTORICAL:
            res, eval_lo = _run(strategy, panel, spec.sim, lo, hi), lo
        else:
            res, eval_lo = _run(strategy, apply_shock(panel, shock), spec.sim, 0, panel.n_bars), 0
        eq = res.equity
        before = eq[lo - eval_lo - 1] if lo - eval_lo >= 1 else spec.sim.cash
        window_pnl = float(eq[hi - eval_lo - 1] - before)
        sub = panel.slice(eval_lo, eval_lo + len(eq))
        rows.append({
            "scenario": shock.label if k else "baseline", "kind": shock.kind.value,
            "start": _day(panel, lo), "end": _day(panel, hi - 1),
            "pnl": res.final_equity - spec.sim.cash, "total_return": res.stats.total_return,
            "window_pnl": window_pnl, "max_drawdown": res.stats.max_drawdown,
            "sharpe": res.stats.sharpe, "n_trades": res.stats.n_trades,
            **_breaches(sub, eq, spec.sim.cash, spec.max_daily_loss_pct, spec.max_drawdown_pct),
        })  # fmt: skip
        curves.append(pl.DataFrame({"scenario": [rows[-1]["scenario"]] * len(eq),
                                    "timestamp": res.timestamps, "equity": eq}))  # fmt: skip
        ctx.report(k + 1, len(scenarios))
    limits = {"max_daily_loss_pct": spec.max_daily_loss_pct,
              "max_drawdown_pct": spec.max_drawdown_pct}  # fmt: skip
    return StressResult(pl.DataFrame(rows, infer_schema_length=None), pl.concat(curves), limits)


def _day(panel: WidePanel, i: int) -> str:
    return str(np.datetime_as_string(panel.timestamps[i], unit="D"))
