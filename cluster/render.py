"""Rich renderings of results for the terminal."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table

from core.sim import BacktestResult
from strategies.base import Strategy

__all__ = ["render_backtest", "render_strategies"]


def _fmt(value: float | int | None, kind: str = "num") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if kind == "pct":
        return f"{value * 100:,.2f}%"
    if kind == "money":
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.3f}"


def render_backtest(
    console: Console, strategy: Strategy, result: BacktestResult, max_trades: int = 10
) -> None:
    """Summary table of one backtest plus its last trades."""
    s = result.stats
    table = Table(title=f"{strategy!r} on {', '.join(result.symbols)}", show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    period = f"{result.to_dict()['start'][:10]} .. {result.to_dict()['end'][:10]}"
    rows: list[tuple[str, str]] = [
        ("period", f"{period} ({len(result.timestamps):,} bars)"),
        ("initial cash", _fmt(result.config.cash, "money")),
        ("final equity", _fmt(result.final_equity, "money")),
        ("total return", _fmt(s.total_return, "pct")),
        ("CAGR", _fmt(s.cagr, "pct")),
        ("Sharpe", _fmt(s.sharpe)),
        ("Sortino", _fmt(s.sortino)),
        ("Calmar", _fmt(s.calmar)),
        ("max drawdown", _fmt(s.max_drawdown, "pct")),
        ("trades (closed)", _fmt(s.n_trades)),
        ("win rate", _fmt(s.win_rate, "pct")),
        ("profit factor", _fmt(s.profit_factor)),
        ("expectancy", _fmt(s.expectancy, "money")),
        ("exposure", _fmt(s.exposure, "pct")),
        ("VaR / CVaR 95% (per bar)", f"{_fmt(s.var_95, 'pct')} / {_fmt(s.cvar_95, 'pct')}"),
        ("commission", _fmt(result.total_commission, "money")),
        ("rejected orders", _fmt(len(result.rejected))),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    if result.trades:
        trades = Table(
            title=f"last {min(max_trades, len(result.trades))} of {len(result.trades)} trades"
        )
        for col in ("symbol", "side", "qty", "entry", "exit", "pnl", "reason"):
            trades.add_column(col, justify="right" if col in ("qty", "pnl") else "left")
        for t in result.trades[-max_trades:]:
            trades.add_row(
                t["symbol"], t["side"], f"{t['qty']:g}",
                f"{t['entry_time'][:10]} @ {t['entry_price']:.4f}",
                f"{t['exit_time'][:10]} @ {t['exit_price']:.4f}" if t["exit_time"] else "open",
                _fmt(t["pnl"], "money"), t["exit_reason"] or "-",
            )  # fmt: skip
        console.print(trades)


def render_strategies(console: Console, registry: dict[str, type[Strategy]]) -> None:
    """One table per built-in: parameters with type, default, valid range and search space."""
    for name, cls in registry.items():
        table = Table(title=f"{name}: {cls.description}", title_justify="left")
        for col in ("parameter", "default", "valid", "search space", "doc"):
            table.add_column(col)
        for key, spec in cls.param_specs().items():
            valid = f"[{spec.low}, {spec.high}]" if hasattr(spec, "low") else spec.space()
            table.add_row(key, repr(spec.default), valid, spec.space(), spec.doc)
        console.print(table)


def jsonable(value: Any) -> Any:
    """Replace non-finite floats by None so json.dumps emits valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value
