"""A live run's result per strategy, from the journal: the object ``raytrader backtest`` prints.

The journal holds every fill and broker rejection of a strategy and the ``bar_processed``
mark of every bar the broker finished. ``journal_result`` replays the fills bar by bar
through a ``Ledger`` (the backtest kernel's accounting), marks at each bar's close after the
bar's fills (the kernel's equity, also after ``fill=close`` fills, which ``bar_processed`` of
that bar precedes), and builds a ``core.sim.BacktestResult`` from it, so
``result.to_dict()`` is the backtest's JSON code, not a second copy of it: trades, rejected
orders, final equity, commission, drawdown and the statistics compare field by field.
"""

from __future__ import annotations

import numpy as np

from core.accounting_nb import ST_POS
from core.events import BrokerRejectReason, EventKind, OrderFilled, OrderRejected
from core.journal import Journal
from core.ledger import Ledger
from core.panel import WidePanel
from core.run_config import StrategyConfig
from core.sim import BacktestResult
from core.stats import compute_stats, periods_per_year

__all__ = ["journal_result", "processed_bars"]


def processed_bars(journal: Journal) -> int:
    """How many bars the broker finished (bars 0..n-1 have a ``bar_processed`` mark)."""
    last = journal.max_bar(EventKind.BAR_PROCESSED)
    return 0 if last is None else last + 1


def journal_result(journal: Journal, strategy: StrategyConfig, panel: WidePanel) -> BacktestResult:
    """One strategy's result over the bars processed so far.

    Args:
        journal: the run's journal.
        strategy: the strategy's config (symbols, sim settings, cash).
        panel: the feed's bars as emitted (``feed.history``); row t is bar t.

    Raises:
        ValueError: no bar was processed yet, or the panel is shorter than the journal.
    """
    n = processed_bars(journal)
    if n == 0:
        raise ValueError("no bar processed yet: nothing to report")
    if panel.n_bars < n:
        raise ValueError(f"the panel has {panel.n_bars} bars, the journal {n}")
    sub = panel.slice(0, n).select(list(strategy.symbols))
    ledger = Ledger(strategy.symbols, strategy.sim.cash)
    by_bar: dict[int, list[OrderFilled]] = {}
    for fill in journal.fills(strategy=strategy.id):
        by_bar.setdefault(fill.bar_index, []).append(fill)
    for entry in journal.read([EventKind.ORDER_REJECTED], strategy=strategy.id):
        event: OrderRejected = entry.event  # type: ignore[assignment]
        if event.reason is not BrokerRejectReason.NOT_APPROVED and event.bar_index < n:
            t, ts = event.bar_index, sub.timestamps[event.bar_index]
            ledger.record_rejection(event.symbol, event.qty, t, event.reason.value, ts)
    equity, cash = np.empty(n), np.empty(n)
    positions = np.empty((n, len(strategy.symbols)))
    exposure = 0
    for t in range(n):
        for fill in by_bar.get(t, ()):
            ledger.apply(fill)
        ledger.mark(sub.close[t])
        equity[t], cash[t] = ledger.equity(), ledger.cash
        held = ledger.state[:, ST_POS]
        positions[t] = held
        exposure += bool(held.any())
    closed = ledger.closed_trades()
    pnl = np.array([t["pnl"] for t in closed], dtype=np.float64)
    ppy = strategy.sim.periods_per_year or periods_per_year(sub.timestamps)
    stats = compute_stats(equity, strategy.sim.cash, pnl, exposure, ppy)
    return BacktestResult(
        config=strategy.sim, symbols=sub.symbols, timestamps=sub.timestamps, equity=equity,
        cash=cash, positions=positions, trades=closed + ledger.open_positions(),
        rejected=ledger.rejected_orders(), stats=stats, total_commission=ledger.total_commission,
    )  # fmt: skip
