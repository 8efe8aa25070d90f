"""Performance statistics of an equity curve and its trades (formulas in docs/semantics.md)."""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict

__all__ = ["Stats", "compute_stats", "periods_per_year", "summary_stats"]

_DAY_US = 86_400_000_000


class Stats(BaseModel):
    """The statistics a quant expects from one backtest; NaN where undefined (e.g. no trades)."""

    model_config = ConfigDict(frozen=True)

    total_return: float
    cagr: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    volatility: float
    win_rate: float
    profit_factor: float
    expectancy: float
    n_trades: int
    exposure: float
    var_95: float
    cvar_95: float
    periods_per_year: float

    def to_json_dict(self) -> dict[str, float | int | None]:
        """JSON-safe dict: non-finite values become null."""
        out: dict[str, float | int | None] = {}
        for key, value in self.model_dump().items():
            out[key] = value if isinstance(value, int) or math.isfinite(value) else None
        return out


def periods_per_year(timestamps: np.ndarray) -> float:
    """Bars per year from the bar interval: 252 daily, 52 weekly, 12 monthly, 252 x bars/day."""
    ts = np.asarray(timestamps).astype("datetime64[us]").astype(np.int64)
    if len(ts) < 2:
        return 252.0
    step = float(np.median(np.diff(ts)))
    if step >= 25 * _DAY_US:
        return 12.0
    if step >= 5 * _DAY_US:
        return 52.0
    if step >= 0.75 * _DAY_US:
        return 252.0
    days = ts // _DAY_US  # timestamps are sorted: a day's bars are one run
    edges = np.concatenate(([0], np.flatnonzero(np.diff(days)) + 1, [len(days)]))
    return 252.0 * float(np.median(np.diff(edges)))


def _ratio(num: float, den: float) -> float:
    if den == 0 or not math.isfinite(den):
        return math.inf if num > 0 else (math.nan if num == 0 else -math.inf)
    return num / den


def compute_stats(
    equity: np.ndarray,
    initial_cash: float,
    closed_pnl: np.ndarray,
    exposure_bars: int,
    ppy: float,
) -> Stats:
    """Statistics of one equity curve (marked at each bar's close) and its closed trades' pnl."""
    equity = np.asarray(equity, dtype=np.float64)
    n = len(equity)
    prev = np.concatenate(([initial_cash], equity[:-1]))
    r = equity / prev - 1.0
    mean = float(r.mean()) if n else math.nan
    std = float(r.std(ddof=1)) if n > 1 else math.nan
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))) if n else math.nan
    final = float(equity[-1]) if n else initial_cash
    cagr = (final / initial_cash) ** (ppy / n) - 1.0 if n and final > 0 else -1.0
    peaks = np.maximum.accumulate(np.concatenate(([initial_cash], equity)))
    max_dd = float(np.max(1.0 - np.concatenate(([initial_cash], equity)) / peaks))
    pnl = np.asarray(closed_pnl, dtype=np.float64)
    wins = pnl[pnl > 0]
    losses = pnl[pnl <= 0]
    q05 = float(np.quantile(r, 0.05)) if n else math.nan
    return Stats(
        total_return=final / initial_cash - 1.0,
        cagr=cagr,
        sharpe=_ratio(mean, std) * math.sqrt(ppy) if n > 1 else math.nan,
        sortino=_ratio(mean, downside) * math.sqrt(ppy) if n else math.nan,
        calmar=_ratio(cagr, max_dd),
        max_drawdown=max_dd,
        volatility=std * math.sqrt(ppy) if n > 1 else math.nan,
        win_rate=len(wins) / len(pnl) if len(pnl) else math.nan,
        profit_factor=_ratio(float(wins.sum()), float(-losses.sum())) if len(pnl) else math.nan,
        expectancy=float(pnl.mean()) if len(pnl) else math.nan,
        n_trades=len(pnl),
        exposure=exposure_bars / n if n else math.nan,
        var_95=-q05 + 0.0,
        cvar_95=-float(r[r <= q05].mean()) if n else math.nan,
        periods_per_year=ppy,
    )


def summary_stats(
    summary: np.ndarray, initial_cash: np.ndarray, ppy: float
) -> dict[str, np.ndarray]:
    """Vectorized statistics of many runs from the kernel's streaming summary rows (no VaR)."""
    from core.accounting_nb import SUMMARY_FIELDS

    col = {name: summary[:, i] for i, name in enumerate(SUMMARY_FIELDS)}
    n = col["n_bars"]
    final = col["final_equity"]
    with np.errstate(divide="ignore", invalid="ignore"):
        growth = np.where(final > 0, final / initial_cash, np.nan)
        cagr = np.where(final > 0, growth ** (ppy / n) - 1.0, -1.0)
        sharpe = col["mean_return"] / col["std_return"] * math.sqrt(ppy)
        sortino = col["mean_return"] / col["downside_dev"] * math.sqrt(ppy)
        calmar = cagr / col["max_drawdown"]
        n_closed = col["n_closed"]
        return {
            "final_equity": final,
            "total_return": final / initial_cash - 1.0,
            "cagr": cagr,
            "sharpe": sharpe,
            "sortino": sortino,
            "calmar": calmar,
            "max_drawdown": col["max_drawdown"],
            "n_trades": n_closed,
            "win_rate": col["n_wins"] / n_closed,
            "profit_factor": col["gross_profit"] / col["gross_loss"],
            "expectancy": (col["gross_profit"] - col["gross_loss"]) / n_closed,
            "exposure": col["exposure_bars"] / n,
            "total_commission": col["total_commission"],
            "n_rejected": col["n_rejected"],
        }
