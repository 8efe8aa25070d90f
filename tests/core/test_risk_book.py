"""RiskBook: the risk actor's own positions, open orders, closed pnl and prices from broker
events. Expected numbers are worked out by hand in the comments."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from core.events import FillReason, OrderAccepted, OrderCanceled, OrderFilled, OrderRejected
from core.risk.book import RiskBook
from core.risk.view import OpenOrder

TS = datetime(2024, 1, 2, tzinfo=UTC)


def accepted(coid: str, qty: float, symbol: str = "A", sid: str = "s1") -> OrderAccepted:
    return OrderAccepted(client_order_id=coid, strategy_id=sid, symbol=symbol, qty=qty,
                         reason=FillReason.SIGNAL, bar_index=0)  # fmt: skip


def filled(coid: str, qty: float, price: float, n: int = 1, order_qty: float | None = None,
           symbol: str = "A", bar: int = 1) -> OrderFilled:  # fmt: skip
    return OrderFilled(
        fill_id=f"{coid}:{n}", client_order_id=coid, strategy_id="s1", symbol=symbol, qty=qty,
        price=price, commission=1.0, reason=FillReason.SIGNAL, bar_index=bar, bar_ts=TS,
        order_qty=order_qty if order_qty is not None else qty,
    )  # fmt: skip


def book() -> RiskBook:
    b = RiskBook()
    b.open_account("s1", ["A", "B"], 10_000.0)
    return b


def test_orders_open_on_acceptance_shrink_on_partial_fills_and_close() -> None:
    b = book()
    b.apply(accepted("o1", 100))
    b.apply(filled("o1", 40, 10.0, order_qty=100))
    assert b.open_orders() == [("s1", OpenOrder("o1", "A", 60.0))]
    b.apply(filled("o1", 60, 10.0, n=2, order_qty=100))
    assert b.open_orders() == []
    b.apply(accepted("o2", 5, "B"))
    b.apply(accepted("o3", 7, "B"))
    b.apply(OrderCanceled(client_order_id="o2", strategy_id="s1", symbol="B", remaining_qty=5,
                          why="kill_switch", bar_index=1))  # fmt: skip
    b.apply(OrderRejected(client_order_id="o3", strategy_id="s1", symbol="B", qty=7,
                          reason="insufficient_cash", bar_index=1))  # fmt: skip
    assert b.open_orders() == []


def test_a_closing_fill_reports_its_trade_pnl_once() -> None:
    b = book()
    b.apply(accepted("o1", 10))
    assert b.apply(filled("o1", 10, 100.0)) is None  # opens: nothing closed
    b.apply(accepted("o2", -10))
    # sold 10 at 90 after buying at 100: -100, minus 1 + 1 commission = -102
    closed = b.apply_all([filled("o2", -10, 90.0, bar=2)])
    assert closed == [("s1", -102.0)]
    assert b.apply(filled("o2", -10, 90.0, bar=2)) is None  # the same fill id again


def test_the_view_marks_positions_at_the_last_valid_prices() -> None:
    b = book()
    b.apply(accepted("o1", 10))
    b.apply(filled("o1", 10, 100.0))  # cash 10000 - 1000 - 1 = 8999
    b.mark({"A": 110.0, "B": math.nan})
    b.mark({"A": math.nan, "B": 5.0})  # A keeps 110
    view = b.view()
    assert view.positions == {"s1": {"A": 10.0}}
    assert view.prices == {"A": 110.0, "B": 5.0}
    assert view.equity == {"s1": 8999.0 + 10 * 110.0}
    assert b.apply(accepted("x", 1, sid="other")) is None  # untracked strategies are ignored
