"""The backtest API: a validated config, the numba kernel call, and results people can read.

``run_backtest`` simulates one portfolio with full records (trades, rejections, equity);
``simulate_batch`` runs many portfolios in one kernel call and keeps only what is asked for,
which is what parameter sweeps use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.accounting_nb import (
    REJECTED_DTYPE,
    ST_AVG,
    ST_ENTRY_COMM,
    ST_ENTRY_T,
    ST_LAST_CLOSE,
    ST_POS,
    SUMMARY_FIELDS,
    TRADE_DTYPE,
    new_state,
)
from core.errors import ConfigError, StrategyError
from core.panel import WidePanel
from core.sim_nb import count_target_changes_nb, simulate_nb
from core.stats import Stats, compute_stats, periods_per_year
from core.types import Bps, ExitReason, FillMode, NonNegFloat, RebalanceMode, RejectReason

__all__ = [
    "BacktestResult",
    "BatchResult",
    "SimConfig",
    "closed_trade_dicts",
    "open_trade_dicts",
    "rejection_dict",
    "run_backtest",
    "simulate_batch",
]


class SimConfig(BaseModel):
    """Simulation settings; see docs/semantics.md for what each one does."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cash: float = Field(100_000.0, gt=0, description="starting cash")
    fill: FillMode = FillMode.NEXT_OPEN
    size_pct: float = Field(1.0, gt=0, le=100, description="fraction of equity a weight of 1 buys")
    fractional: bool = False
    commission_bps: Bps = 0.0
    commission_fixed: NonNegFloat = 0.0
    slippage_bps: Bps = 0.0
    stop_loss_pct: float | None = Field(None, gt=0, lt=100)
    take_profit_pct: float | None = Field(None, gt=0)
    leverage: float = Field(1.0, ge=1.0, le=100.0)
    rebalance: RebalanceMode = RebalanceMode.ON_CHANGE
    min_trade_pct: float = Field(0.0, ge=0, le=100)
    periods_per_year: float | None = Field(None, gt=0, description="override the inferred value")


@dataclass(frozen=True)
class BatchResult:
    """Raw kernel output for many portfolios: summary rows plus whatever records were asked for."""

    summary: np.ndarray  # (G x len(SUMMARY_FIELDS))
    equity: np.ndarray | None  # (T x G) or None
    cash: np.ndarray | None  # (T x G) or None
    positions: np.ndarray | None  # (T x C) shares after each bar, or None
    trades: np.ndarray | None  # TRADE_DTYPE records, grouped per portfolio
    trade_base: np.ndarray
    n_trades: np.ndarray
    rejected: np.ndarray | None
    rej_base: np.ndarray
    n_rejected: np.ndarray
    state: np.ndarray  # final per-column state (positions, entry prices)

    def field(self, name: str) -> np.ndarray:
        """One summary field across portfolios, by name (see SUMMARY_FIELDS)."""
        return self.summary[:, SUMMARY_FIELDS.index(name)]


def _record_caps(
    weights: np.ndarray, group_len: np.ndarray, every_bar: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Record capacity and base offset per group: each order or stop makes at most one record."""
    if every_bar:
        per_col = np.full(weights.shape[1], weights.shape[0])
    else:
        per_col = count_target_changes_nb(weights)
    per_col = 2 * per_col.astype(np.int64) + 2
    starts = np.concatenate(([0], np.cumsum(group_len)[:-1]))
    caps = np.add.reduceat(per_col, starts) if len(starts) else np.zeros(0, np.int64)
    bases = np.concatenate(([0], np.cumsum(caps)[:-1])).astype(np.int64)
    return caps.astype(np.int64), bases


def _stop_fraction(pct: float | None, n_cols: int, override: np.ndarray | None) -> np.ndarray:
    if override is not None:
        return np.ascontiguousarray(override, dtype=np.float64) / 100.0
    return np.full(n_cols, np.nan if pct is None else pct / 100.0)


def simulate_batch(
    panel: WidePanel,
    weights: np.ndarray,
    config: SimConfig,
    *,
    price_col: np.ndarray | None = None,
    group_len: np.ndarray | None = None,
    stop_loss_pct: np.ndarray | None = None,
    take_profit_pct: np.ndarray | None = None,
    record_equity: bool = False,
    record_trades: bool = False,
    record_detail: bool = False,
) -> BatchResult:
    """Simulate many portfolios in one kernel call.

    Column j of ``weights`` trades price column ``price_col[j]`` (default j); ``group_len``
    splits columns into portfolios with their own cash (default: one portfolio of all
    columns). Per-column stop arrays (percent, NaN = off) override the config's stops.
    """
    n_bars, n_cols = weights.shape
    if n_bars != panel.n_bars:
        raise ConfigError(f"weights have {n_bars} bars, the panel has {panel.n_bars}")
    price_col = np.arange(n_cols) if price_col is None else np.asarray(price_col, np.int64)
    group_len = np.array([n_cols]) if group_len is None else np.asarray(group_len, np.int64)
    if int(group_len.sum()) != n_cols or len(price_col) != n_cols:
        raise ConfigError("group_len must sum to, and price_col match, the number of columns")
    n_groups = len(group_len)
    every_bar = config.rebalance is RebalanceMode.EVERY_BAR
    if record_trades:
        caps, bases = _record_caps(weights, group_len, every_bar)
    else:
        caps = np.zeros(n_groups, np.int64)
        bases = np.zeros(n_groups, np.int64)
    trades = np.zeros(int(caps.sum()), dtype=TRADE_DTYPE)
    rejected = np.zeros(int(caps.sum()), dtype=REJECTED_DTYPE)
    n_trades = np.zeros(n_groups, np.int64)
    n_rejected = np.zeros(n_groups, np.int64)
    state = new_state(n_cols)
    summary = np.zeros((n_groups, len(SUMMARY_FIELDS)))
    equity = np.empty((n_bars, n_groups), order="F") if record_equity else np.empty((1, 1))
    cash = np.empty((n_bars, n_groups), order="F") if record_detail else np.empty((1, 1))
    positions = np.empty((n_bars, n_cols)) if record_detail else np.empty((1, 1))
    group_start = np.concatenate(([0], np.cumsum(group_len)[:-1])).astype(np.int64)
    simulate_nb(
        panel.open, panel.high, panel.low, panel.close, weights, price_col.astype(np.int64),
        group_start, group_len, np.full(n_groups, config.cash),
        _stop_fraction(config.stop_loss_pct, n_cols, stop_loss_pct),
        _stop_fraction(config.take_profit_pct, n_cols, take_profit_pct),
        config.fill is FillMode.CLOSE, config.size_pct, config.fractional,
        config.commission_bps / 1e4, config.commission_fixed, config.slippage_bps / 1e4,
        config.leverage, every_bar, config.min_trade_pct / 100.0, state, summary, equity,
        record_equity, cash, positions, record_detail, trades, bases, caps, n_trades, rejected,
        bases, caps, n_rejected,
    )  # fmt: skip
    return BatchResult(
        summary=summary,
        equity=equity if record_equity else None,
        cash=cash if record_detail else None,
        positions=positions if record_detail else None,
        trades=trades if record_trades else None,
        trade_base=bases,
        n_trades=n_trades,
        rejected=rejected if record_trades else None,
        rej_base=bases,
        n_rejected=n_rejected,
        state=state,
    )


def _iso(ts: np.datetime64) -> str:
    return str(np.datetime_as_string(ts.astype("datetime64[s]"), unit="s")) + "Z"


def _iso_many(ts: np.ndarray) -> list[str]:
    """ISO 8601 UTC strings for many timestamps at once."""
    return [f"{x}Z" for x in np.datetime_as_string(ts.astype("datetime64[s]"), unit="s")]


@dataclass(frozen=True)
class BacktestResult:
    """One portfolio's backtest: equity curve, trades (closed, then open), rejections, stats."""

    config: SimConfig
    symbols: tuple[str, ...]
    timestamps: np.ndarray
    equity: np.ndarray
    cash: np.ndarray
    positions: np.ndarray  # (T x N) shares held after each bar
    trades: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    stats: Stats
    total_commission: float

    @property
    def final_equity(self) -> float:
        """Equity at the last bar's close, open positions marked to it."""
        return float(self.equity[-1]) if len(self.equity) else self.config.cash

    def to_dict(self, *, equity_curve: bool = False) -> dict[str, Any]:
        """The JSON object of ``raytrader backtest --json`` (see DESIGN.md)."""
        out: dict[str, Any] = {
            "symbols": list(self.symbols),
            "start": _iso(self.timestamps[0]) if len(self.timestamps) else None,
            "end": _iso(self.timestamps[-1]) if len(self.timestamps) else None,
            "bars": len(self.timestamps),
            "initial_cash": self.config.cash,
            "final_equity": self.final_equity,
            "total_commission": self.total_commission,
            "max_drawdown": self.stats.max_drawdown,
            "trades": self.trades,
            "rejected_orders": self.rejected,
            "stats": self.stats.to_json_dict(),
        }
        if equity_curve:
            out["equity_curve"] = [
                {"timestamp": _iso(ts), "equity": float(eq)}
                for ts, eq in zip(self.timestamps, self.equity, strict=True)
            ]
        return out


def closed_trade_dicts(
    recs: np.ndarray, col_symbols: Sequence[str], timestamps: np.ndarray
) -> list[dict[str, Any]]:
    """Closed-trade records (TRADE_DTYPE) as the ``trades`` dicts of ``backtest --json``.

    ``col_symbols[col]`` names a record's column; ``timestamps[t]`` is bar t's time. Shared by
    the backtest and the live ledger, so both print the same objects.
    """
    labels = {int(r): r.label for r in ExitReason}
    columns = zip(
        recs["col"].tolist(), recs["side"].tolist(), recs["qty"].tolist(),
        _iso_many(timestamps[recs["entry_t"]]), recs["entry_price"].tolist(),
        _iso_many(timestamps[recs["exit_t"]]), recs["exit_price"].tolist(),
        (recs["entry_commission"] + recs["exit_commission"]).tolist(), recs["pnl"].tolist(),
        recs["exit_reason"].tolist(), strict=True,
    )  # fmt: skip
    return [
        {
            "symbol": col_symbols[col],
            "side": "long" if side > 0 else "short",
            "qty": qty,
            "entry_time": entry_time,
            "entry_price": entry_price,
            "exit_time": exit_time,
            "exit_price": exit_price,
            "commission": comm,
            "pnl": pnl,
            "exit_reason": labels[reason],
        }
        for col, side, qty, entry_time, entry_price, exit_time, exit_price, comm, pnl, reason
        in columns
    ]


def open_trade_dicts(
    state: np.ndarray, col_symbols: Sequence[str], timestamps: np.ndarray
) -> list[dict[str, Any]]:
    """Open positions of a per-column state array, marked to their last close, as trade dicts
    with a null exit (pnl = marked profit minus the entry commission not yet allocated)."""
    out = []
    for j, row in enumerate(state):
        pos = row[ST_POS]
        if pos == 0:
            continue
        side = 1.0 if pos > 0 else -1.0
        pnl = side * (row[ST_LAST_CLOSE] - row[ST_AVG]) * abs(pos) - row[ST_ENTRY_COMM]
        out.append(
            {
                "symbol": col_symbols[j],
                "side": "long" if pos > 0 else "short",
                "qty": float(abs(pos)),
                "entry_time": _iso(timestamps[int(row[ST_ENTRY_T])]),
                "entry_price": float(row[ST_AVG]),
                "exit_time": None,
                "exit_price": None,
                "commission": float(row[ST_ENTRY_COMM]),
                "pnl": float(pnl),
                "exit_reason": None,
            }
        )
    return out


def rejection_dict(
    symbol: str, timestamp: np.datetime64, qty: float, reason: str
) -> dict[str, Any]:
    """One entry of ``rejected_orders`` in ``backtest --json``."""
    return {"symbol": symbol, "time": _iso(timestamp), "qty": float(qty), "reason": reason}


def _trade_dicts(
    batch: BatchResult, panel: WidePanel, price_col: np.ndarray
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Closed trades from the kernel records, then open positions marked to the last close."""
    assert batch.trades is not None
    recs = batch.trades[: int(batch.n_trades[0])]
    col_symbols = [panel.symbols[p] for p in price_col]
    out = closed_trade_dicts(recs, col_symbols, panel.timestamps)
    out.extend(open_trade_dicts(batch.state, col_symbols, panel.timestamps))
    return out, recs["pnl"].astype(np.float64)


def check_weights(weights: np.ndarray, panel: WidePanel) -> np.ndarray:
    """Weights as C-contiguous float64 (T x N), each in [-1, 1] or NaN."""
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    if weights.shape != (panel.n_bars, panel.n_symbols):
        raise StrategyError(
            f"weights shape {weights.shape} != panel shape {(panel.n_bars, panel.n_symbols)}"
        )
    bad = np.abs(weights) > 1.0
    if bad.any():
        t, s = np.argwhere(bad)[0]
        raise StrategyError(
            f"weight {float(weights[t, s])!r} for {panel.symbols[s]} outside [-1, 1]",
            bar_ts=str(panel.timestamps[t]),
        )
    return weights


def run_backtest(panel: WidePanel, weights: np.ndarray, config: SimConfig) -> BacktestResult:
    """Simulate one portfolio holding every symbol of the panel, with full records."""
    weights = check_weights(weights, panel)
    if panel.n_bars == 0:
        raise ConfigError("cannot backtest an empty panel (no bars)")
    price_col = np.arange(panel.n_symbols)
    batch = simulate_batch(
        panel, weights, config, record_equity=True, record_trades=True, record_detail=True
    )
    assert batch.equity is not None and batch.rejected is not None
    assert batch.cash is not None and batch.positions is not None
    trades, closed_pnl = _trade_dicts(batch, panel, price_col)
    rejected = [
        rejection_dict(
            panel.symbols[price_col[r["col"]]],
            panel.timestamps[r["t"]],
            r["qty"],
            RejectReason(int(r["reason"])).label,
        )
        for r in batch.rejected[: int(batch.n_rejected[0])]
    ]
    ppy = config.periods_per_year or periods_per_year(panel.timestamps)
    exposure = int(batch.field("exposure_bars")[0])
    equity = np.ascontiguousarray(batch.equity[:, 0])
    stats = compute_stats(equity, config.cash, closed_pnl, exposure, ppy)
    total_comm = float(batch.field("total_commission")[0])
    if not math.isfinite(total_comm):
        raise StrategyError("commission total is not finite; check prices and config")
    return BacktestResult(
        config=config,
        symbols=panel.symbols,
        timestamps=panel.timestamps,
        equity=equity,
        cash=np.ascontiguousarray(batch.cash[:, 0]),
        positions=batch.positions,
        trades=trades,
        rejected=rejected,
        stats=stats,
        total_commission=total_comm,
    )
