"""``cluster.render_live``: what the live table and the end-of-run summary say, rendered."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from cluster.render_live import live_table, summary_tables


def _text(renderable: Any) -> str:
    console = Console(record=True, width=200)
    console.print(renderable)
    return console.export_text()


def test_the_summary_names_every_scope_risk_left_restricted_and_why() -> None:
    """A run that ends with a strategy halted by a breaker (the demo's rsi-nvda) and a symbol
    reduced by an operator's kill said only ``risk: active``."""
    risk = {"global_state": "active", "scopes": [
        {"scope": "strategy:rsi", "state": "halted", "reason": "drawdown", "by": "breaker",
         "until_bar": None, "kill_mode": None},
        {"scope": "strategy:sma", "state": "halted", "reason": "consecutive_losses",
         "by": "breaker", "until_bar": 1200, "kill_mode": None},
        {"scope": "symbol:NVDA", "state": "reducing", "reason": None, "by": "ops",
         "until_bar": None, "kill_mode": "reduce"},
    ]}  # fmt: skip
    decisions = [{"decision": "approved", "reason": None, "count": 3}]
    text = _text(summary_tables({}, {}, {"state": "done"}, risk, decisions, "/j.sqlite"))
    assert (
        "risk: active, strategy:rsi halted (drawdown by breaker), strategy:sma halted "
        "(consecutive_losses by breaker, until bar 1,200), symbol:NVDA reducing (kill switch by "
        "ops); decisions: approved 3"
    ) in text
    calm = _text(summary_tables({}, {}, {}, {"global_state": "active", "scopes": []}, [], "j"))
    assert "risk: active; decisions: none" in calm


def test_the_live_table_counts_closed_trades_under_that_name() -> None:
    """The summary's ``trades`` count a position still open at the end as one (as ``backtest
    --json``); the live table counts closed round trips, so it says ``closed``."""
    host = {"id": "sma", "state": "running", "counts": {"intents": 9},
            "ledger": {"initial_cash": 100.0, "equity": 110.0, "n_closed_trades": 4,
                       "positions": {"ORCL": 5.0}}}  # fmt: skip
    text = _text(live_table({"next_bar": 10, "bars": 20}, [host], {"global_state": "active"}))
    header = next(line for line in text.splitlines() if "strategy" in line)
    assert "closed" in header and "trades" not in header
    row = next(line for line in text.splitlines() if "sma" in line)
    assert row.split("│")[-3].strip() == "4" and "ORCL +5" in row  # closed, then intents 9
