"""Rich renderings of a live run: the table ``raytrader demo`` updates while it runs, and the
summary ``raytrader run`` / ``demo`` print at the end."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from core.sim import BacktestResult

__all__ = ["live_table", "summary_tables"]

_STATE_STYLE = {
    "running": "green", "paused": "yellow", "stopped": "dim", "failed": "bold red",
    "active": "green", "reducing": "yellow", "halted": "bold red", "done": "green",
}  # fmt: skip


def _fmt(value: float | int | None, kind: str = "num") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if kind == "pct":
        return f"{value * 100:,.2f}%"
    if kind == "money":
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.3f}"


def _state(value: str | None) -> Text:
    value = value or "-"
    return Text(value, style=_STATE_STYLE.get(value, ""))


def _positions(ledger: dict[str, Any]) -> str:
    held = ledger.get("positions", {})
    if not held:
        return "flat"
    return ", ".join(f"{sym} {qty:+,.0f}" for sym, qty in sorted(held.items()))


def _scope_state(risk: dict[str, Any], scope: str) -> str:
    for item in risk.get("scopes", []):
        if item["scope"] == scope:
            return str(item["state"])
    return "active"


def _restriction(item: dict[str, Any]) -> str:
    """A restricted scope of risk's ``state()``: ``strategy:x halted (why by whom[, until
    bar n])``."""
    why = item.get("reason") or ("kill switch" if item.get("kill_mode") else "")
    until = f", until bar {item['until_bar']:,}" if item.get("until_bar") is not None else ""
    return f"{item['scope']} {item['state']} ({why} by {item.get('by') or 'system'}{until})"


def live_table(feed: dict[str, Any], hosts: list[dict[str, Any]], risk: dict[str, Any]) -> Group:
    """Progress, then one row per strategy: state, positions, equity, P&L, risk state."""
    done, bars = feed.get("next_bar", 0), max(feed.get("bars", 1), 1)
    rate = feed.get("bars_per_s")
    head = Text.assemble(
        ("feed ", "bold"), _state(feed.get("state")),
        f"  bar {done:,}/{bars:,} ({done / bars:.0%})  {feed.get('current_ts') or ''}",
        f"  {rate:,.0f} bars/s" if rate else "",
        ("  risk ", "bold"), _state(risk.get("global_state")),
    )  # fmt: skip
    table = Table(expand=False)
    # closed round trips (the summary's trades also count a position still open at the end)
    for col in ("strategy", "state", "risk", "positions", "equity", "P&L", "return", "closed",
                "intents"):  # fmt: skip
        table.add_column(col, justify="right" if col in ("equity", "P&L", "return") else "left")
    for host in hosts:
        ledger = host.get("ledger", {})
        start = ledger.get("initial_cash") or math.nan
        equity = ledger.get("equity", math.nan)
        pnl = equity - start
        table.add_row(
            host["id"], _state(host["state"]),
            _state(_scope_state(risk, f"strategy:{host['id']}")), _positions(ledger),
            _fmt(equity, "money"), Text(_fmt(pnl, "money"), style="green" if pnl >= 0 else "red"),
            _fmt(pnl / start, "pct"), _fmt(ledger.get("n_closed_trades", 0)),
            _fmt(host.get("counts", {}).get("intents", 0)),
        )  # fmt: skip
    return Group(head, table)


def summary_tables(
    results: dict[str, BacktestResult],
    hosts: dict[str, dict[str, Any]],
    feed: dict[str, Any],
    risk: dict[str, Any],
    decisions: list[dict[str, Any]],
    journal_path: str,
) -> Group:
    """End-of-run summary: per strategy results, risk decisions, bad bars, the journal."""
    table = Table(title="live run (paper) summary")
    for col in ("strategy", "state", "final equity", "return", "max DD", "Sharpe", "trades",
                "commission", "rejected"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("strategy", "state") else "right")
    for sid, result in results.items():
        s = result.stats
        table.add_row(
            sid, _state(hosts.get(sid, {}).get("state")), _fmt(result.final_equity, "money"),
            _fmt(s.total_return, "pct"), _fmt(s.max_drawdown, "pct"), _fmt(s.sharpe),
            _fmt(len(result.trades)), _fmt(result.total_commission, "money"),
            _fmt(len(result.rejected)),
        )  # fmt: skip
    lines = [table]
    counts = ", ".join(
        f"{d['decision']}{'/' + d['reason'] if d['reason'] else ''} {d['count']}"
        for d in decisions
    )  # fmt: skip
    restricted = "".join(f", {_restriction(item)}" for item in risk.get("scopes", []))
    lines.append(Text(f"risk: {risk.get('global_state')}{restricted}; decisions: "
                      f"{counts or 'none'}"))  # fmt: skip
    for sid, host in hosts.items():
        if host.get("error"):
            lines.append(Text(f"strategy {sid} failed: {host['error']}", style="red"))
    bad = feed.get("quarantined") or {}
    quarantined = ", ".join(f"{rule} {n}" for rule, n in bad.items()) or "none"
    lines.append(Text(
        f"feed: {feed.get('state')}, {feed.get('next_bar', 0):,}/{feed.get('bars', 0):,} bars"
        f"; quarantined bars: {quarantined}"
    ))  # fmt: skip
    if feed.get("error"):
        lines.append(Text(f"feed error: {feed['error']}", style="red"))
    lines.append(Text(f"journal: {journal_path}", style="dim"))
    return Group(*lines)
