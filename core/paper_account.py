"""One strategy's paper sub-account: the kernel's stop and order steps on a ``Ledger``.

``SubAccount`` applies docs/semantics.md steps 1-2 to one account with the scalar functions of
``core.fills_nb`` and the kernel's equity and gross-exposure marking (``core.sim_nb``), in the
kernel's order and with its float expressions, so that its floats equal the backtest's.
``core.paper.PaperEngine`` drives many of them bar by bar.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from numba import njit
from pydantic import BaseModel, ConfigDict, Field

from core.accounting_nb import ST_AVG, ST_POS
from core.events import (
    BAR_FIELDS,
    BarSlice,
    BrokerRejectReason,
    FillReason,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatus,
)
from core.fills_nb import (
    NO_STOP,
    STOP_LOSS_HIT,
    commission_nb,
    gap_stop_nb,
    increases_exposure_nb,
    intrabar_stop_nb,
    slipped_price_nb,
)
from core.ledger import Ledger
from core.orders import Order, fill_order, transition
from core.sim import SimConfig
from core.sim_nb import FLOAT_TOL, _equity_nb, _gross_except_nb  # the kernel's own
from core.types import FillMode

__all__ = [
    "BarContext",
    "PaperOptions",
    "Prices",
    "SubAccount",
    "SymbolSelector",
    "fill_draw",
    "rejected_record",
    "stop_order_id",
]

Event = OrderFilled | OrderRejected | OrderCanceled


class PaperOptions(BaseModel):
    """Realism options of the paper broker; the defaults keep exact backtest parity.

    Stop exits are never limited by volume or probability (they close the whole position,
    as in the backtest); ``commission_fixed`` is charged on an order's first fill only.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_volume_pct: float | None = Field(
        None, gt=0, le=100, description="percent of a bar's volume the broker may fill per bar"
    )
    fill_probability: float = Field(
        1.0, gt=0, le=1, description="chance that an open order fills on a given bar"
    )
    seed: int = Field(0, description="seed of the fill_probability draws")


def stop_order_id(strategy_id: str, symbol: str, bar_index: int, reason: FillReason) -> str:
    """Deterministic id of a broker-made stop exit (at most one per symbol and bar)."""
    key = f"{strategy_id}|{symbol}|bar:{bar_index}|{reason.value}"
    return "rt-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def fill_draw(seed: int, client_order_id: str, bar_index: int) -> float:
    """A uniform draw in [0, 1) keyed by (seed, order, bar): a rebuilt broker draws the same."""
    digest = hashlib.blake2b(f"{seed}|{client_order_id}|{bar_index}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") / 2.0**64


@njit(cache=True, error_model="numpy")
def _scan_stops_nb(
    state: np.ndarray,
    sl: float,
    tp: float,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    slip: float,
    gap_only: bool,
    check_gap: bool,
    stopped: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Stop decisions (codes, fill prices) of every held column not yet stopped on this bar.

    A decision depends only on the column's own position and entry, so deciding every column
    first and applying the hits in column order afterwards is the kernel's loop, exactly.
    """
    n = state.shape[0]
    codes = np.full(n, NO_STOP)
    prices = np.full(n, np.nan)
    for j in range(n):
        pos = state[j, ST_POS]
        if pos == 0 or stopped[j]:
            continue
        if gap_only:
            code, price = gap_stop_nb(pos, state[j, ST_AVG], sl, tp, open_[j], slip)
        else:
            code, price = intrabar_stop_nb(
                pos, state[j, ST_AVG], sl, tp, open_[j], high[j], low[j], slip, check_gap
            )
        codes[j] = code
        prices[j] = price
    return codes, prices


class BarContext:
    """The bar being processed: index, timestamps, and the volume taken per symbol so far."""

    __slots__ = ("index", "time", "ts", "used")

    def __init__(self, index: int, ts: np.datetime64 | None, time: datetime | None) -> None:
        self.index = index
        self.ts = ts
        self.time = time
        self.used: dict[str, float] = {}

    @classmethod
    def of(cls, bar: BarSlice) -> BarContext:
        """The context of a feed bar."""
        return cls(bar.index, np.datetime64(bar.timestamp, "us"), bar.time)


class Prices:
    """One bar's fields in an account's symbol order (NaN where the bar lacks the symbol)."""

    __slots__ = ("block", "close", "high", "low", "open", "volume")

    def __init__(self, bar: BarSlice, idx: np.ndarray | None, complete: bool = False) -> None:
        self.block: np.ndarray | None = None  # the fields as rows of one array, when they are
        if bar.block is not None and (complete or idx is None):  # one gather, not five
            self.block = bar.block if idx is None else bar.block.take(idx, axis=1)
            self.open, self.high, self.low, self.close, self.volume = self.block
            return
        for name in BAR_FIELDS:
            arr = getattr(bar, name)
            if complete:  # every symbol is in the feed: one gather
                arr = np.asarray(arr, dtype=np.float64).take(idx)
            elif idx is not None:
                out = np.full(len(idx), np.nan)
                ok = idx >= 0
                out[ok] = arr[idx[ok]]
                arr = out
            setattr(self, name, np.ascontiguousarray(arr, dtype=np.float64))


class SymbolSelector:
    """Picks one account's symbols, in its order, out of feed bars (index cached per feed)."""

    def __init__(self, symbols: tuple[str, ...]) -> None:
        self.symbols = symbols
        self._feed_symbols: tuple[str, ...] | None = None
        self._idx: np.ndarray | None = None
        self._complete = False  # every symbol found in the feed's
        self._last: tuple[BarSlice, Prices] | None = None  # a bar is priced once per account

    def prices(self, bar: BarSlice) -> Prices:
        """The bar's fields in this selector's symbol order (read-only arrays: shared by every
        fill of the bar)."""
        if self._last is not None and self._last[0] is bar:
            return self._last[1]
        if bar.symbols is not self._feed_symbols and bar.symbols != self._feed_symbols:
            self._feed_symbols = bar.symbols
            if bar.symbols == self.symbols:
                self._idx = None
            else:
                where = {s: i for i, s in enumerate(bar.symbols)}
                self._idx = np.array([where.get(s, -1) for s in self.symbols], dtype=np.int64)
            self._complete = self._idx is not None and bool((self._idx >= 0).all())
        prices = Prices(bar, self._idx, self._complete)
        self._last = (bar, prices)
        return prices


class SubAccount:
    """One strategy's sub-account: its ledger, config in kernel units, orders and stop flags."""

    def __init__(self, strategy_id: str, symbols: Sequence[str], config: SimConfig) -> None:
        self.strategy_id = strategy_id
        self.config = config
        self.ledger = Ledger(symbols, config.cash)
        self.symbols = self.ledger.symbols
        self.n = len(self.symbols)
        self.price_col = np.arange(self.n, dtype=np.int64)
        self.sl = math.nan if config.stop_loss_pct is None else config.stop_loss_pct / 100.0
        self.tp = math.nan if config.take_profit_pct is None else config.take_profit_pct / 100.0
        self.has_stops = config.stop_loss_pct is not None or config.take_profit_pct is not None
        self.fill_close = config.fill is FillMode.CLOSE
        self.slip = config.slippage_bps / 1e4
        self.comm_rate = config.commission_bps / 1e4
        self.stopped = np.zeros(self.n, dtype=np.bool_)
        self.stop_bar = np.full(self.n, -1, dtype=np.int64)  # last bar a stop closed each symbol
        self.orders: dict[str, Order] = {}  # every order of the account, by id
        self.open: dict[str, Order] = {}  # open ones, in acceptance order
        self.selector = SymbolSelector(self.symbols)

    def prices(self, bar: BarSlice) -> Prices:
        """The bar's fields in this account's symbol order."""
        return self.selector.prices(bar)

    def store(self, order: Order) -> None:
        """Record an order's new state (open orders keep their acceptance position)."""
        self.orders[order.client_order_id] = order
        if order.is_terminal:
            self.open.pop(order.client_order_id, None)
        else:
            self.open[order.client_order_id] = order

    # ----------------------------------------------------------------- stops
    def stop_pass(self, px: Prices, bar: BarContext, gap_only: bool, events: list[Event]) -> None:
        """Step 1.1 (``gap_only``: decided by the open) or step 2 (intrabar) of the kernel."""
        state = self.ledger.state
        if not state[:, ST_POS].any():
            return
        codes, prices = _scan_stops_nb(
            state, self.sl, self.tp, px.open, px.high, px.low, self.slip, gap_only,
            self.fill_close, self.stopped,
        )  # fmt: skip
        for j in np.flatnonzero(codes != NO_STOP):
            self._stop_exit(int(j), int(codes[j]), float(prices[j]), bar, events)

    def _stop_exit(self, j: int, code: int, price: float, bar: BarContext, events: list) -> None:
        """Close column j's whole position at a stop price (the kernel's ``_stop_exit_nb``)."""
        qty = -self.ledger.state[j, ST_POS]
        comm = commission_nb(qty, price, self.comm_rate, self.config.commission_fixed)
        self.stopped[j] = True
        self.stop_bar[j] = bar.index
        reason = FillReason.STOP_LOSS if code == STOP_LOSS_HIT else FillReason.TAKE_PROFIT
        symbol = self.symbols[j]
        coid = stop_order_id(self.strategy_id, symbol, bar.index, reason)
        fill = OrderFilled(
            fill_id=f"{coid}:1", client_order_id=coid, strategy_id=self.strategy_id,
            symbol=symbol, qty=float(qty), price=price, commission=float(comm), reason=reason,
            bar_index=bar.index, bar_ts=bar.time, order_qty=float(qty),
        )  # fmt: skip
        self.ledger.apply(fill)
        events.append(fill)

    # ----------------------------------------------------------------- orders
    def work(
        self,
        orders: list[Order],
        prices: np.ndarray,
        px: Prices,
        bar: BarContext,
        options: PaperOptions,
        events: list[Event],
    ) -> None:
        """Fill ``orders`` at ``prices`` (the open or the close): sells first, then buys, each
        group in symbol order, each order checked against cash and margin as it comes."""
        col = self.ledger.index
        ordered = sorted(orders, key=lambda o: (o.remaining_qty > 0, col[o.symbol]))
        for order in ordered:
            self._work_one(order, prices, px, bar, options, events)

    def _work_one(
        self,
        order: Order,
        prices: np.ndarray,
        px: Prices,
        bar: BarContext,
        options: PaperOptions,
        events: list[Event],
    ) -> None:
        j = self.ledger.index[order.symbol]
        if self.stopped[j]:  # an exit by stop wins over a same-bar signal
            self.cancel(order, "stopped", bar.index, events)
            return
        raw = float(prices[j])
        if raw != raw:
            self.refuse(order, BrokerRejectReason.NO_PRICE, bar, events)
            return
        p = options.fill_probability
        if p < 1.0 and fill_draw(options.seed, order.client_order_id, bar.index) >= p:
            return  # not this bar: the order waits
        qty = order.remaining_qty
        if options.max_volume_pct is not None:
            qty = self._volume_cap(order.symbol, qty, float(px.volume[j]), bar, options)
            if qty == 0:
                return
        price = slipped_price_nb(raw, qty, self.slip)
        fixed = self.config.commission_fixed if order.n_fills == 0 else 0.0
        comm = commission_nb(qty, price, self.comm_rate, fixed)
        refusal = self._refusal(j, qty, price, comm, prices)
        if refusal is not None:
            self.refuse(order, refusal, bar, events)
            return
        self._fill(order, qty, price, comm, bar, events)
        bar.used[order.symbol] = bar.used.get(order.symbol, 0.0) + abs(qty)

    def _volume_cap(
        self, symbol: str, qty: float, volume: float, bar: BarContext, options: PaperOptions
    ) -> float:
        """The part of ``qty`` this bar's volume leaves room for (whole shares unless
        fractional); the room is shared by every account trading the symbol on this bar."""
        assert options.max_volume_pct is not None
        room = volume * options.max_volume_pct / 100.0 - bar.used.get(symbol, 0.0)
        if not self.config.fractional:
            room = math.floor(room) if room == room else room
        if not room > 0:
            return 0.0
        return qty if room >= abs(qty) else math.copysign(room, qty)

    def _refusal(
        self, j: int, qty: float, price: float, comm: float, prices: np.ndarray
    ) -> BrokerRejectReason | None:
        """The kernel's cash and margin checks for an exposure-increasing fill, or None."""
        state = self.ledger.state
        pos = state[j, ST_POS]
        if not increases_exposure_nb(pos, qty):
            return None
        cash = self.ledger.cash
        leverage = self.config.leverage
        eq = _equity_nb(state, prices, self.price_col, 0, self.n, cash)
        slack = FLOAT_TOL * abs(eq)
        if qty > 0 and cash - qty * price - comm < -(leverage - 1.0) * eq - slack:
            return BrokerRejectReason.INSUFFICIENT_CASH
        gross = _gross_except_nb(state, prices, self.price_col, 0, self.n, j)
        if gross + abs(pos + qty) * price > leverage * eq + slack:
            return BrokerRejectReason.INSUFFICIENT_MARGIN
        return None

    def _fill(
        self, order: Order, qty: float, price: float, comm: float, bar: BarContext, events: list
    ) -> None:
        updated = fill_order(order, qty)
        fill = OrderFilled(
            fill_id=f"{order.client_order_id}:{updated.n_fills}",
            client_order_id=order.client_order_id, strategy_id=self.strategy_id,
            symbol=order.symbol, qty=qty, price=price, commission=comm, reason=order.reason,
            bar_index=bar.index, bar_ts=bar.time, order_qty=order.qty,
        )  # fmt: skip
        self.ledger.apply(fill)
        self.store(updated)
        events.append(fill)

    def refuse(
        self, order: Order, reason: BrokerRejectReason, bar: BarContext, events: list
    ) -> None:
        """Reject a NEW order whole; a partly filled one has its remainder canceled."""
        if order.status is not OrderStatus.NEW:
            self.cancel(order, reason.value, bar.index, events)
            return
        self.store(transition(order, OrderStatus.REJECTED, detail=reason.value))
        self.ledger.record_rejection(order.symbol, order.qty, bar.index, reason.value, bar.ts)
        rejected = OrderRejected(
            client_order_id=order.client_order_id, strategy_id=self.strategy_id,
            symbol=order.symbol, qty=order.qty, reason=reason, bar_index=bar.index,
        )  # fmt: skip
        events.append(rejected)

    def cancel(self, order: Order, why: str, bar_index: int, events: list) -> None:
        """Cancel an open order's remainder."""
        remaining = order.remaining_qty
        self.store(transition(order, OrderStatus.CANCELED, detail=why))
        canceled = OrderCanceled(
            client_order_id=order.client_order_id, strategy_id=self.strategy_id,
            symbol=order.symbol, remaining_qty=remaining, why=why, bar_index=bar_index,
        )  # fmt: skip
        events.append(canceled)

    # ----------------------------------------------------------------- rebuild
    def replay(self, event: Event) -> None:
        """Re-apply one journaled event (fills through the ledger, the rest to the orders)."""
        order = self.orders.get(event.client_order_id)
        if isinstance(event, OrderFilled):
            self.ledger.apply(event)
            if event.reason in (FillReason.STOP_LOSS, FillReason.TAKE_PROFIT):
                self.stop_bar[self.ledger.index[event.symbol]] = event.bar_index
            if order is not None and not order.is_terminal:
                self.store(fill_order(order, event.qty))
            return
        if isinstance(event, OrderCanceled):
            if order is not None and not order.is_terminal:
                self.store(transition(order, OrderStatus.CANCELED, detail=event.why))
            return
        if order is not None and not order.is_terminal:
            self.store(transition(order, OrderStatus.REJECTED, detail=event.reason.value))
        elif order is None:
            self.store(rejected_record(event))
        self.ledger.record_rejection(event.symbol, event.qty, event.bar_index, event.reason.value)


def rejected_record(event: OrderRejected) -> Order:
    """The order record of an order refused before it was accepted (unknown strategy, ...)."""
    return Order(
        client_order_id=event.client_order_id, strategy_id=event.strategy_id,
        symbol=event.symbol, qty=event.qty, status=OrderStatus.REJECTED,
        bar_index=max(event.bar_index, 0), detail=event.reason.value,
    )  # fmt: skip
