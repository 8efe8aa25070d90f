"""The paper broker's fill model: the backtest kernel's steps 1-2, bar by bar, per sub-account.

``PaperEngine`` holds one sub-account (a ``Ledger``) per strategy with that strategy's
``SimConfig`` and symbol order, and fills its orders with the scalar functions of
``core.fills_nb`` and the kernel's own equity marking, in the kernel's order of events
(docs/semantics.md): gap stops at the open, pending orders at the open (sells first, then buys,
in symbol order), intrabar stops, then the mark at the close. With the realism options off
(the default) a bar-by-bar run gives the backtest's trades and equity to the last bit.

The broker actor is a thin shell around one engine: ``on_bar`` per feed bar, ``submit`` for
approved orders, ``cancel`` for kill switches, ``rebuild`` from the journal after a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.accounting_nb import ST_POS
from core.errors import RaytraderError
from core.events import (
    BarProcessed,
    BarSlice,
    BrokerRejectReason,
    FillReason,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    Scope,
)
from core.fills_nb import increases_exposure_nb
from core.ledger import Ledger
from core.orders import Order
from core.panel import WidePanel
from core.paper_account import (
    BarContext,
    PaperOptions,
    SubAccount,
    rejected_record,
    stop_order_id,
)
from core.sim import SimConfig

__all__ = [
    "BarOrderError",
    "BarReport",
    "OrderLike",
    "PaperEngine",
    "PaperOptions",
    "ResumeMarks",
    "SubmitReport",
    "bar_slice",
    "resume_bars",
    "stop_order_id",
]

BrokerEvent = OrderAccepted | OrderFilled | OrderRejected | OrderCanceled
_STOP_REASONS = (FillReason.STOP_LOSS, FillReason.TAKE_PROFIT)  # exits the volume cap ignores


class BarOrderError(RaytraderError, ValueError):
    """A bar arrived out of order: its index is at or before one already processed."""


class OrderLike(Protocol):
    """What ``PaperEngine.submit`` needs of an approved order (``OrderIntent`` has it)."""

    client_order_id: str
    strategy_id: str
    symbol: str
    qty: float
    reason: FillReason


class BarReport(BaseModel):
    """What one bar did to every sub-account: events in order, equity and cash at the close.

    ``events`` holds fills, rejections and cancellations in the order the engine made them;
    ``stopped`` names, per strategy, the symbols a stop closed on this bar. With
    ``fill=close`` the equity is before this bar's close fills (they come with ``submit``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    bar_index: int = Field(ge=0)
    bar_ts: datetime
    events: tuple[OrderFilled | OrderRejected | OrderCanceled, ...] = ()
    equity: dict[str, float]
    cash: dict[str, float]
    stopped: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @property
    def fills(self) -> list[OrderFilled]:
        """Every fill of the bar, in order."""
        return [e for e in self.events if isinstance(e, OrderFilled)]

    @property
    def rejections(self) -> list[OrderRejected]:
        """Every rejection of the bar, in order."""
        return [e for e in self.events if isinstance(e, OrderRejected)]

    @property
    def cancellations(self) -> list[OrderCanceled]:
        """Every cancellation of the bar, in order."""
        return [e for e in self.events if isinstance(e, OrderCanceled)]

    def fills_for(self, strategy_id: str) -> list[OrderFilled]:
        """One strategy's fills, in order: what its host applies."""
        return [e for e in self.fills if e.strategy_id == strategy_id]

    def processed(self) -> BarProcessed:
        """The journal's ``bar_processed`` marker of this bar (equity and cash at the close)."""
        return BarProcessed(
            bar_index=self.bar_index, bar_ts=self.bar_ts, equity=self.equity, cash=self.cash
        )


class SubmitReport(BaseModel):
    """The answer to ``submit``: the new events, and the current record of every submitted id
    (a resubmitted id gets its existing record and creates nothing)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    events: tuple[BrokerEvent, ...] = ()
    orders: tuple[Order, ...] = ()
    duplicates: tuple[str, ...] = ()

    @property
    def fills(self) -> list[OrderFilled]:
        """Fills made now (``fill=close``), in order."""
        return [e for e in self.events if isinstance(e, OrderFilled)]


@dataclass(frozen=True, slots=True)
class ResumeMarks:
    """What a rebuilt broker takes from the bars beside its journal: bar ``t`` as emitted
    (the last processed), each symbol's last finite close at or before it (the mark of a NaN
    bar), and the times of the bars asked for (its rejections'). A few values, where the
    whole history would grow with the run (``ReplaySource.resume_marks``)."""

    last_bar: BarSlice
    closes: dict[str, float]
    times: dict[int, np.datetime64]

    @classmethod
    def of(cls, history: WidePanel, bars: Iterable[int] = ()) -> ResumeMarks:
        """From bars ``0..t`` (row i = bar i; at least one) and the bars whose times to keep."""
        last = history.n_bars - 1
        rows = history.last_close_rows()
        closes = {s: float(history.close[rows[i], i])
                  for i, s in enumerate(history.symbols) if rows[i] >= 0}  # fmt: skip
        times = {int(b): history.timestamps[b] for b in bars if 0 <= b <= last}
        return cls(bar_slice(history, last), closes, times)


def resume_bars(events: Iterable[object]) -> list[int]:
    """The bars whose times a rebuild from ``events`` needs: its rejections' (a rejection is
    replayed without one)."""
    return sorted({e.bar_index for e in events if isinstance(e, OrderRejected)})


def bar_slice(panel: WidePanel, t: int) -> BarSlice:
    """Bar ``t`` of a wide panel as the ``BarSlice`` a feed sends: its five fields copied
    into the rows of one block, as an unpickled bar has them (``BarSlice.__reduce__``)."""
    block = np.stack((panel.open[t], panel.high[t], panel.low[t], panel.close[t],
                      panel.volume[t])).astype(np.float64, copy=False)  # fmt: skip
    return BarSlice(t, panel.timestamps[t], panel.symbols, *block, block)


class PaperEngine:
    """Paper fills for many strategy sub-accounts, driven by bars (see the module docstring)."""

    def __init__(self, options: PaperOptions | None = None) -> None:
        self.options = options or PaperOptions()
        self._accounts: dict[str, SubAccount] = {}
        self._orphans: dict[str, Order] = {}  # refused before acceptance (unknown strategy)
        self._last_bar: BarSlice | None = None
        self._last_index: int | None = None
        self._last_report: BarReport | None = None
        self._ctx: BarContext | None = None

    # ----------------------------------------------------------------- accounts
    def open_account(self, strategy_id: str, symbols: Sequence[str], config: SimConfig) -> Ledger:
        """Add a strategy's sub-account (its cash, fill model and symbol order) and return its
        ledger. Sub-accounts are processed in the order they were opened."""
        if strategy_id in self._accounts:
            raise RaytraderError(f"strategy {strategy_id!r} already has a sub-account")
        account = SubAccount(strategy_id, symbols, config)
        self._accounts[strategy_id] = account
        return account.ledger

    @property
    def strategies(self) -> tuple[str, ...]:
        """Strategy ids with a sub-account, in processing order."""
        return tuple(self._accounts)

    @property
    def last_bar_index(self) -> int | None:
        """Index of the last bar processed (None before the first)."""
        return self._last_index

    def ledger(self, strategy_id: str) -> Ledger:
        """A strategy's sub-account ledger."""
        return self._account(strategy_id).ledger

    def equity(self, strategy_id: str) -> float:
        """A sub-account's equity at its last marks (after any close fills)."""
        return self._account(strategy_id).ledger.equity()

    def open_orders(self, strategy_id: str | None = None) -> list[Order]:
        """Open orders (NEW or PARTIALLY_FILLED), of one strategy or all, in acceptance order."""
        accounts = self._accounts.values() if strategy_id is None else [self._account(strategy_id)]
        return [o for a in accounts for o in a.open.values()]

    def quiet(self) -> frozenset[str]:
        """Sub-accounts the next bar's open cannot touch: no open order and no position a
        stop could close. Their hosts may evaluate that bar while the broker opens it (the
        feed checks the open's report before it trusts such an answer)."""
        return frozenset(
            sid for sid, account in self._accounts.items()
            if not account.open
            and not (account.has_stops and account.ledger.state[:, ST_POS].any())
        )  # fmt: skip

    def order(self, client_order_id: str) -> Order | None:
        """The current record of an order, or None when the id is unknown."""
        for account in self._accounts.values():
            found = account.orders.get(client_order_id)
            if found is not None:
                return found
        return self._orphans.get(client_order_id)

    def _account(self, strategy_id: str) -> SubAccount:
        try:
            return self._accounts[strategy_id]
        except KeyError:
            raise RaytraderError(f"no sub-account for strategy {strategy_id!r}") from None

    # ----------------------------------------------------------------- the bar
    def on_bar(self, bar: BarSlice) -> BarReport:
        """Steps 1-2 of docs/semantics.md for every sub-account, then the mark at the close.

        Processing the last bar again returns its report; an older bar raises BarOrderError.
        """
        if self._last_index is not None and bar.index <= self._last_index:
            if bar.index == self._last_index and self._last_report is not None:
                return self._last_report
            raise BarOrderError(f"bar {bar.index} arrives after bar {self._last_index}")
        ctx = BarContext.of(bar)
        events: list[OrderFilled | OrderRejected | OrderCanceled] = []
        equity: dict[str, float] = {}
        cash: dict[str, float] = {}
        stopped: dict[str, tuple[str, ...]] = {}
        for sid, account in self._accounts.items():
            self._account_bar(account, bar, ctx, events)
            equity[sid] = account.ledger.equity()
            cash[sid] = account.ledger.cash
            if account.has_stops and account.stopped.any():  # only a stop sets it
                stopped[sid] = tuple(account.symbols[j] for j in np.flatnonzero(account.stopped))
        report = BarReport(
            bar_index=bar.index, bar_ts=ctx.time, events=tuple(events), equity=equity,
            cash=cash, stopped=stopped,
        )  # fmt: skip
        self._last_bar, self._last_index, self._last_report, self._ctx = bar, bar.index, report, ctx
        return report

    def warm(self, bar: BarSlice) -> None:
        """Run the cheap part of a bar's path on ``bar`` changing no state (each account's
        prices and equity): a paced feed has it done just before a bar is due."""
        BarContext.of(bar)
        for account in self._accounts.values():
            account.prices(bar)
            account.ledger.equity()

    def _account_bar(
        self, account: SubAccount, bar: BarSlice, ctx: BarContext, events: list
    ) -> None:
        """One sub-account's bar: gap stops and open fills (next_open), intrabar stops, mark;
        with fill=close, orders still open from earlier bars fill at this close."""
        px = account.prices(bar)
        if account.has_stops:  # only a stop pass sets it
            account.stopped[:] = False
        if not account.fill_close:
            if account.has_stops:
                account.stop_pass(px, ctx, True, events)
            if account.open:
                account.work(list(account.open.values()), px.open, px, ctx, self.options, events)
        if account.has_stops:
            account.stop_pass(px, ctx, False, events)
        account.ledger.mark(px.close)
        if account.fill_close and account.open:
            account.work(list(account.open.values()), px.close, px, ctx, self.options, events)

    # ----------------------------------------------------------------- orders
    def submit(self, orders: Iterable[OrderLike], bar: BarSlice | None = None) -> SubmitReport:
        """Accept approved orders; ``fill=close`` accounts fill each batch now at this close.

        ``bar`` defaults to the last bar processed. ``fill=next_open`` orders wait for the next
        bar's open. An id seen before is answered with its record and creates nothing new. An
        accepted order replaces its strategy's open orders on its symbol from earlier bars
        (their remainder canceled, why ``replaced``).
        """
        bar = self._last_bar if bar is None else bar
        index = bar.index if bar is not None else 0
        ts = None if bar is None else np.datetime64(bar.timestamp, "us")
        events: list[BrokerEvent] = []
        ids: list[str] = []
        duplicates: list[str] = []
        batches: dict[str, list[Order]] = {}
        for intent in orders:
            ids.append(intent.client_order_id)
            if self.order(intent.client_order_id) is not None:
                duplicates.append(intent.client_order_id)
                continue
            accepted = self._accept(intent, index, ts, events)
            if accepted is not None and self._accounts[accepted.strategy_id].fill_close:
                batches.setdefault(accepted.strategy_id, []).append(accepted)
        for sid, batch in batches.items():
            self._fill_at_close(self._accounts[sid], batch, bar, events)
        records = tuple(o for o in (self.order(i) for i in ids) if o is not None)
        return SubmitReport(events=tuple(events), orders=records, duplicates=tuple(duplicates))

    def _accept(
        self, intent: OrderLike, index: int, ts: np.datetime64 | None, events: list
    ) -> Order | None:
        """Accept one order (OrderAccepted), or refuse it (OrderRejected) when it names an
        unknown strategy or symbol or has no usable quantity."""
        account = self._accounts.get(intent.strategy_id)
        qty = float(intent.qty)
        refusal, detail = None, ""
        if account is None:
            refusal = BrokerRejectReason.UNKNOWN_STRATEGY
            detail = f"no sub-account for strategy {intent.strategy_id!r}"
        elif intent.symbol not in account.ledger.index:
            refusal = BrokerRejectReason.UNKNOWN_SYMBOL
            detail = f"strategy {intent.strategy_id!r} does not trade {intent.symbol!r}"
        elif not (np.isfinite(qty) and qty != 0):
            refusal = BrokerRejectReason.BROKER_REFUSED
            detail = f"qty {qty!r} is not a finite nonzero number"
        fields = {
            "client_order_id": intent.client_order_id, "strategy_id": intent.strategy_id,
            "symbol": intent.symbol, "qty": qty, "bar_index": index,
        }  # fmt: skip
        if refusal is not None:
            rejected = OrderRejected(reason=refusal, detail=detail, **fields)
            events.append(rejected)
            if account is None:
                self._orphans[intent.client_order_id] = rejected_record(rejected)
            else:
                account.store(rejected_record(rejected))
                account.ledger.record_rejection(intent.symbol, qty, index, refusal.value, ts)
            return None
        assert account is not None
        # A newer decision replaces an older one: the remainder of the strategy's open orders
        # on the symbol from earlier bars (left by max_volume_pct or fill_probability) is
        # canceled, so the position goes to the newest target, not to the sum of every order
        # sent (the host sizes target - position). Never met with the options off.
        for old in [o for o in account.open.values()
                    if o.symbol == intent.symbol and o.bar_index < index]:  # fmt: skip
            account.cancel(old, "replaced", index, events)
        order = Order(reason=intent.reason, **fields)
        account.store(order)
        events.append(OrderAccepted(reason=intent.reason, **fields))
        return order

    def _fill_at_close(
        self, account: SubAccount, batch: list[Order], bar: BarSlice | None, events: list
    ) -> None:
        """Fill a fill=close batch at the bar's close (sells first); no bar: no price."""
        if bar is None:
            ctx = BarContext(0, None, None)
            for order in batch:
                account.refuse(order, BrokerRejectReason.NO_PRICE, ctx, events)
            return
        ctx = self._ctx if bar is self._last_bar and self._ctx is not None else BarContext.of(bar)
        px = account.prices(bar)
        account.ledger.mark(px.close)  # a no-op for the bar just processed
        account.work(batch, px.close, px, ctx, self.options, events)

    def cancel(
        self,
        ids: Iterable[str] | None = None,
        *,
        scope: Scope | None = None,
        where: Callable[[Order], bool] | None = None,
        increasing_only: bool = False,
        why: str = "canceled",
    ) -> list[OrderCanceled]:
        """Cancel open orders that match every filter given: ids, a scope, a predicate, and
        (``increasing_only``) only those that would increase their position's exposure."""
        wanted = None if ids is None else set(ids)
        events: list[OrderCanceled] = []
        for account in self._accounts.values():
            for order in list(account.open.values()):
                if wanted is not None and order.client_order_id not in wanted:
                    continue
                if scope is not None and not scope.covers(order.strategy_id, order.symbol):
                    continue
                if where is not None and not where(order):
                    continue
                pos = account.ledger.position(order.symbol)
                if increasing_only and not increases_exposure_nb(pos, order.remaining_qty):
                    continue
                index = order.bar_index if self._last_index is None else self._last_index
                account.cancel(order, why, index, events)
        return events

    # ----------------------------------------------------------------- restart
    def rebuild(
        self,
        events: Iterable[OrderAccepted | OrderFilled | OrderRejected | OrderCanceled],
        history: WidePanel | None = None,
        *,
        marks: ResumeMarks | None = None,
    ) -> None:
        """Reconstruct every sub-account and open order from journaled events in sequence.

        Accounts must be opened first (same configs); their ledgers are replaced, so ask
        ``ledger(sid)`` again. ``marks`` (or ``history``, the feed's bars 0..t, row i = bar
        i, from which they are taken) restore what fills cannot tell: each symbol's last
        close (the mark of a NaN bar), the last bar processed (t), which symbols a stop
        closed on it, and the times of rejections (``resume_bars`` names the bars).
        """
        if history is not None and marks is not None:
            raise ValueError("rebuild takes the bars as history or as marks, not both")
        events = list(events)
        self._accounts = {
            sid: SubAccount(sid, a.symbols, a.config) for sid, a in self._accounts.items()
        }
        self._orphans = {}
        used_bar = -1  # the newest bar with fills of orders, and the volume they took there
        used: dict[str, float] = {}
        for event in events:
            if not isinstance(event, OrderAccepted | OrderFilled | OrderRejected | OrderCanceled):
                raise TypeError(f"rebuild takes broker order events, got {type(event).__name__}")
            if isinstance(event, OrderFilled) and event.reason not in _STOP_REASONS:
                if event.bar_index > used_bar:
                    used_bar, used = event.bar_index, {}
                if event.bar_index == used_bar:
                    used[event.symbol] = used.get(event.symbol, 0.0) + abs(event.qty)
            account = self._accounts.get(event.strategy_id)
            if account is None:
                if isinstance(event, OrderRejected):
                    self._orphans[event.client_order_id] = rejected_record(event)
                    continue
                raise RaytraderError(f"journal names unknown strategy {event.strategy_id!r}")
            if isinstance(event, OrderAccepted):
                account.store(Order.accepted(event))
            else:
                account.replay(event)
        self._last_bar = self._last_index = self._last_report = self._ctx = None
        if history is not None and history.n_bars > 0:
            marks = ResumeMarks.of(history, resume_bars(events))
        if marks is not None:
            self._restore_marks(marks)
            if self._ctx is not None and self._ctx.index == used_bar:
                # what orders took of this bar's volume before the restart: the close's
                # fills (fill=close, a step not journaled yet) get only the rest, as they
                # would have without it
                self._ctx.used = used

    def _restore_marks(self, marks: ResumeMarks) -> None:
        """Last closes, last bar, this bar's stop flags and the rejections' times."""
        last = marks.last_bar.index
        for account in self._accounts.values():
            account.ledger.set_last_closes(marks.closes)
            account.ledger.resolve_times(marks.times)
            account.stopped[:] = account.stop_bar == last
        self._last_bar = marks.last_bar
        self._last_index = last
        self._ctx = BarContext.of(marks.last_bar)
