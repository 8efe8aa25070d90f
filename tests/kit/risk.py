"""Builders for risk tests: intents, views and a fixed clock."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from core.events import FillReason, OrderIntent
from core.risk.view import OpenOrder, RiskView

__all__ = ["T0", "intent", "view"]

T0 = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)  # a fixed bar clock: 2024-01-02 21:00 UTC
_ids = itertools.count()


def intent(
    qty: float,
    *,
    symbol: str = "AAPL",
    strategy: str = "s1",
    price: float = 100.0,
    coid: str | None = None,
    reason: FillReason = FillReason.SIGNAL,
    bar: int = 0,
    ts: datetime = T0,
) -> OrderIntent:
    """An order intent with a fresh client_order_id unless one is given."""
    return OrderIntent(
        client_order_id=coid or f"c{next(_ids)}", strategy_id=strategy, symbol=symbol, qty=qty,
        bar_index=bar, bar_ts=ts, ref_price=price, reason=reason, created_at=ts,
    )  # fmt: skip


def view(
    *,
    positions: dict[str, dict[str, float]] | None = None,
    equity: dict[str, float] | None = None,
    prices: dict[str, float] | None = None,
    open_orders: dict[str, list[OpenOrder]] | None = None,
) -> RiskView:
    """A RiskView; by default strategy s1 with 100,000 equity and AAPL at 100."""
    return RiskView(
        positions=positions or {},
        equity={"s1": 100_000.0} if equity is None else equity,
        prices={"AAPL": 100.0} if prices is None else prices,
        open_orders=open_orders or {},
    )
