"""The risk actor's own book of every strategy sub-account, fed by the broker's events.

The pre-trade rules look at positions, equity, prices and open orders (``RiskView``); the
consecutive-losses breaker needs the pnl of every closed trade. ``RiskBook`` keeps one
``Ledger`` per strategy (the broker's accounting, fed the same fills in the same order, so its
floats are the broker's), the open orders from accepted / filled / canceled / rejected events,
and the last price of every symbol. A restarted risk actor rebuilds it from the journal's
broker events; nothing here is journaled by itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel

from core.events import OrderAccepted, OrderCanceled, OrderFilled, OrderRejected
from core.ledger import Ledger
from core.risk.view import OpenOrder, RiskView

__all__ = ["RiskBook"]

_REL = 1e-12


class RiskBook:
    """Positions, equity, open orders and last prices per strategy, from broker events."""

    def __init__(self) -> None:
        self._ledgers: dict[str, Ledger] = {}
        self._open: dict[str, dict[str, OpenOrder]] = {}
        self.prices: dict[str, float] = {}

    def open_account(self, strategy_id: str, symbols: Sequence[str], cash: float) -> None:
        """Track a strategy's sub-account (its symbols and starting cash, as the broker's)."""
        if strategy_id not in self._ledgers:
            self._ledgers[strategy_id] = Ledger(symbols, cash)
            self._open[strategy_id] = {}

    @property
    def strategies(self) -> tuple[str, ...]:
        """Strategy ids tracked."""
        return tuple(self._ledgers)

    def ledger(self, strategy_id: str) -> Ledger:
        """A strategy's ledger as risk sees it."""
        return self._ledgers[strategy_id]

    def apply(self, event: BaseModel) -> float | None:
        """Apply one broker event; returns the pnl of the trade a fill closed, else None.

        Events of strategies not tracked are ignored (the broker refused them).
        """
        sid = getattr(event, "strategy_id", None)
        if sid not in self._ledgers:
            return None
        orders = self._open[sid]
        match event:
            case OrderAccepted():
                orders[event.client_order_id] = OpenOrder(
                    event.client_order_id, event.symbol, event.qty
                )
            case OrderFilled():
                applied = self._ledgers[sid].apply(event)
                order = orders.get(event.client_order_id)
                if order is not None and applied is not None:
                    left = order.qty - event.qty
                    if abs(left) <= _REL * abs(order.qty):
                        del orders[event.client_order_id]
                    else:
                        orders[event.client_order_id] = OpenOrder(order.client_order_id,
                                                                  order.symbol, left)  # fmt: skip
                return None if applied is None else applied.closed_pnl
            case OrderCanceled() | OrderRejected():
                orders.pop(event.client_order_id, None)
        return None

    def apply_all(self, events: Iterable[BaseModel]) -> list[tuple[str, float]]:
        """Apply events in order; returns ``(strategy_id, pnl)`` of each trade they closed."""
        closed = []
        for event in events:
            pnl = self.apply(event)
            if pnl is not None:
                closed.append((event.strategy_id, pnl))  # type: ignore[attr-defined]
        return closed

    def replay(
        self, entries: Iterable[tuple[int, BaseModel]], counted_through: int
    ) -> list[tuple[str, float]]:
        """Apply journaled ``(seq, event)`` pairs in order (a restart's rebuild); returns
        the trades closed by the events after seq ``counted_through``: those no journaled
        mark has counted yet, which the next bar's marks must count (risk passes them on)."""
        uncounted = []
        for seq, event in entries:
            pnl = self.apply(event)
            if pnl is not None and seq > counted_through:
                uncounted.append((event.strategy_id, pnl))  # type: ignore[attr-defined]
        return uncounted

    def mark(self, prices: Mapping[str, float]) -> None:
        """Take a bar's finite, positive prices as the last prices and the ledgers' marks."""
        fresh = {s: p for s, p in prices.items() if math.isfinite(p) and p > 0}
        self.prices.update(fresh)
        for ledger in self._ledgers.values():
            ledger.set_last_closes(fresh)

    def has_open_orders(self) -> bool:
        """Whether any strategy has an open order (cheap: the bar path asks every bar)."""
        return any(self._open.values())

    def open_orders(self, strategy_id: str | None = None) -> list[tuple[str, OpenOrder]]:
        """``(strategy_id, order)`` of every open order, of one strategy or all."""
        sids = self._open if strategy_id is None else [strategy_id]
        return [(sid, order) for sid in sids for order in self._open.get(sid, {}).values()]

    def view(self) -> RiskView:
        """A fresh ``RiskView`` for the rules (the engine fills in states and order times)."""
        return RiskView(
            positions={sid: ledger.positions() for sid, ledger in self._ledgers.items()},
            equity={sid: ledger.equity() for sid, ledger in self._ledgers.items()},
            prices=dict(self.prices),
            open_orders={sid: list(o.values()) for sid, o in self._open.items() if o},
        )
