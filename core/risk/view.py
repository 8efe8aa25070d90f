"""What the pre-trade rules may look at: positions, equity, prices, open orders, order times.

The risk actor builds a ``RiskView`` from the broker's latest report (positions and equity
per strategy sub-account, last prices, open orders); the engine adds its own trading states
and order times, and updates a working copy as it approves a batch, so the second intent of
a batch sees the first one's exposure.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from core.risk.state import TradingStates

__all__ = ["OpenOrder", "RiskView"]


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """An order the broker holds that has not fully filled; ``qty`` is the signed remainder."""

    client_order_id: str
    symbol: str
    qty: float


@dataclass(slots=True)
class RiskView:
    """A snapshot of the account as the rules see it (per strategy sub-account).

    Attributes:
        positions: strategy -> symbol -> signed shares.
        equity: strategy -> equity (cash plus positions at the last close).
        prices: symbol -> last trade/close price.
        open_orders: strategy -> its open orders.
        order_times: strategy -> when its recent orders were approved (runtime clock);
            the engine fills this from its own record.
        states: the trading states of every scope; the engine fills this in.
    """

    positions: dict[str, dict[str, float]] = field(default_factory=dict)
    equity: dict[str, float] = field(default_factory=dict)
    prices: dict[str, float] = field(default_factory=dict)
    open_orders: dict[str, list[OpenOrder]] = field(default_factory=dict)
    order_times: dict[str, list[datetime]] = field(default_factory=dict)
    states: TradingStates = field(default_factory=TradingStates)

    def position(self, strategy_id: str, symbol: str) -> float:
        """Shares held (0 when none)."""
        return self.positions.get(strategy_id, {}).get(symbol, 0.0)

    def exposure(self, strategy_id: str, symbol: str) -> float:
        """Shares held plus the signed remainder of open orders: the position if all fill."""
        pending = sum(o.qty for o in self.open_orders.get(strategy_id, ()) if o.symbol == symbol)
        return self.position(strategy_id, symbol) + pending

    def exposures(self, strategy_id: str) -> Iterator[tuple[str, float]]:
        """(symbol, exposure) for every symbol a strategy holds or has open orders in."""
        symbols = set(self.positions.get(strategy_id, {}))
        symbols.update(o.symbol for o in self.open_orders.get(strategy_id, ()))
        for symbol in sorted(symbols):
            yield symbol, self.exposure(strategy_id, symbol)

    def strategies(self) -> list[str]:
        """Every strategy the view knows of, sorted."""
        return sorted(set(self.positions) | set(self.equity) | set(self.open_orders))

    @property
    def total_equity(self) -> float:
        """The account's equity: the sum over strategy sub-accounts."""
        return math.fsum(self.equity.values())

    def price(self, symbol: str) -> float | None:
        """The last price, or None when unknown or not a positive finite number."""
        px = self.prices.get(symbol)
        return px if px is not None and math.isfinite(px) and px > 0 else None

    def working_copy(
        self, states: TradingStates, order_times: dict[str, list[datetime]]
    ) -> RiskView:
        """A copy the engine may update while deciding a batch (the caller's view untouched)."""
        return RiskView(
            positions={s: dict(p) for s, p in self.positions.items()},
            equity=dict(self.equity),
            prices=dict(self.prices),
            open_orders={s: list(o) for s, o in self.open_orders.items()},
            order_times={s: list(t) for s, t in order_times.items()},
            states=states,
        )

    def add_order(self, strategy_id: str, order: OpenOrder, at: datetime) -> None:
        """Count an order just approved as open and as sent at ``at``."""
        self.open_orders.setdefault(strategy_id, []).append(order)
        self.order_times.setdefault(strategy_id, []).append(at)
