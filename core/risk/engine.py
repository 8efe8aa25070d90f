"""The risk engine: trading states, breakers and pre-trade rules behind one object, no Ray.

The ``Risk`` actor is a thin shell around a ``RiskEngine``: it journals every event the
engine returns (before answering), feeds ``on_bar`` the broker's marks, gates intents with
``check`` and forwards what is approved. Every change of journaled state goes through
``apply``, the same method a restarted actor uses to replay the journal (``rebuild``), so
start-up and crash recovery are one code path and no restart resets a halt, a day-start
equity, an equity peak, a loss streak or a decided verdict.

Not journaled, rebuilt from the next bars instead: last prices and stale-data clocks (a
clock starts at the first bar the engine sees). Equities for the next day-start are replayed
from ``bar_processed``. Every ``snapshot_every`` bars the engine journals all its marks as one
``RiskMarksSnapshot``; ``from_journal`` starts from the last one and reads only the marks and
``bar_processed`` rows after it, so a restart does not grow with the length of the run.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel

from core.events import (
    BarProcessed,
    BreakerTripped,
    Decision,
    EventKind,
    FillReason,
    KillMode,
    KillSwitchEngaged,
    KillSwitchReleased,
    LimitsChanged,
    OrderIntent,
    RiskMark,
    RiskMarks,
    RiskMarksSnapshot,
    RiskReason,
    RiskVerdict,
    Scope,
    TradingStateChanged,
    make_client_order_id,
)
from core.risk.breakers import (
    MarkBook,
    Trip,
    check_consecutive_losses,
    check_daily_loss,
    check_drawdown,
    check_stale_data,
)
from core.risk.limits import RiskLimits
from core.risk.rules import PRE_TRADE_RULES, RATE_WINDOW, Reject, check_state, is_reducing
from core.risk.state import BREAKER, GLOBAL, TradingStates, rank, strategy_scope
from core.risk.view import OpenOrder, RiskView

__all__ = ["MARKS_SNAPSHOT_EVERY", "REBUILD_KINDS", "FlattenOrders", "RiskEngine"]

#: Bars between two ``RiskMarksSnapshot`` rows: a restart reads at most this many bars'
#: ``bar_processed`` and marks rows (and every row of the other kinds: verdicts, states).
MARKS_SNAPSHOT_EVERY: Final = 500

REBUILD_KINDS: Final[tuple[EventKind, ...]] = (
    EventKind.TRADING_STATE_CHANGED,
    EventKind.BREAKER_TRIPPED,
    EventKind.KILL_SWITCH_ENGAGED,
    EventKind.KILL_SWITCH_RELEASED,
    EventKind.LIMITS_CHANGED,
    EventKind.RISK_MARK,
    EventKind.RISK_MARKS,
    EventKind.RISK_MARKS_SNAPSHOT,
    EventKind.RISK_DECISION,
    EventKind.BAR_PROCESSED,
)
#: The kinds a ``RiskMarksSnapshot`` stands for: before the last snapshot, none is read.
_MARK_KINDS: Final = (
    EventKind.RISK_MARK, EventKind.RISK_MARKS, EventKind.RISK_MARKS_SNAPSHOT,
    EventKind.BAR_PROCESSED,
)  # fmt: skip
_STATE_KINDS: Final = tuple(k for k in REBUILD_KINDS if k not in _MARK_KINDS)


@dataclass(frozen=True, slots=True)
class FlattenOrders:
    """What a flatten needs: closing intents (reason FLATTEN) and positions without a price.

    A position without a last price cannot be given a ``ref_price``; it is listed in
    ``unpriced`` (strategy, symbol) for the caller to report, never silently skipped.
    """

    close: tuple[OrderIntent, ...]
    unpriced: tuple[tuple[str, str], ...]


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


class RiskEngine:
    """Trading states, limits, breakers and the order gate of the risk actor.

    Not thread-safe: one engine per actor, called one method at a time (Ray's default).

    Args:
        limits: the configured limits; journaled ``LimitsChanged`` events replace them.
        snapshot_every: bars between two ``RiskMarksSnapshot`` events from ``on_bar``.
    """

    def __init__(
        self, limits: RiskLimits | None = None, *, snapshot_every: int = MARKS_SNAPSHOT_EVERY
    ) -> None:
        if snapshot_every < 1:
            raise ValueError(f"snapshot_every must be at least 1, got {snapshot_every}")
        self._snapshot_every = snapshot_every
        self._snapshot_bar: int | None = None
        self._limits = limits if limits is not None else RiskLimits()
        self._effective: dict[str, RiskLimits] = {}
        self.states = TradingStates()
        self.marks = MarkBook()
        self._verdicts: dict[str, RiskVerdict] = {}
        self._order_times: dict[str, deque[datetime]] = {}
        self._last_bar: int | None = None
        self._fresh_at: dict[str, datetime] = {}
        self.last_prices: dict[str, float] = {}

    @classmethod
    def rebuild(
        cls, events: Iterable[Any], limits: RiskLimits | None = None,
        *, snapshot_every: int = MARKS_SNAPSHOT_EVERY,
    ) -> RiskEngine:  # fmt: skip
        """A fresh engine with journal events replayed in order (events or journal ``Entry``s).

        Read them with ``journal.read(REBUILD_KINDS)``, or let ``from_journal`` skip what
        the last marks snapshot stands for.
        """
        engine = cls(limits, snapshot_every=snapshot_every)
        for item in events:
            engine.apply(getattr(item, "event", item))
        return engine

    @classmethod
    def from_journal(
        cls, journal: Any, limits: RiskLimits | None = None,
        *, snapshot_every: int = MARKS_SNAPSHOT_EVERY,
    ) -> RiskEngine:  # fmt: skip
        """``rebuild`` from a ``core.journal.Journal``: every row of the state kinds (states,
        kills, limits, verdicts, trips), and the marks and ``bar_processed`` rows from the last
        ``RiskMarksSnapshot`` on, merged in journal order. The snapshot replaces the marks the
        rows before it built, so skipping them gives the engine a full replay gives."""
        last = journal.last(EventKind.RISK_MARKS_SNAPSHOT)
        since = 0 if last is None else last.seq - 1  # exclusive: the snapshot itself is read
        rows = heapq.merge(
            journal.read(_STATE_KINDS), journal.read(_MARK_KINDS, since_seq=since),
            key=lambda entry: entry.seq,
        )  # fmt: skip
        return cls.rebuild(rows, limits, snapshot_every=snapshot_every)

    # ------------------------------------------------------------------ queries
    @property
    def limits(self) -> RiskLimits:
        """The global limits with their per-strategy overrides."""
        return self._limits

    @property
    def last_bar(self) -> int | None:
        """The last bar ``on_bar`` handled (or a replayed event carried); later bars only."""
        return self._last_bar

    def limits_for(self, strategy_id: str) -> RiskLimits:
        """A strategy's effective limits (cached until the limits change)."""
        eff = self._effective.get(strategy_id)
        if eff is None:
            eff = self._effective[strategy_id] = self._limits.for_strategy(strategy_id)
        return eff

    def verdict_for(self, client_order_id: str) -> RiskVerdict | None:
        """The decided verdict of an order id, if any."""
        return self._verdicts.get(client_order_id)

    def snapshot(self) -> dict[str, object]:
        """Everything the journal must restore, as plain data: a rebuilt engine equals this."""
        return {
            "limits": self._limits.to_dict(),
            "states": self.states.snapshot(),
            "marks": self.marks.snapshot(),
            "verdicts": dict(sorted(self._verdicts.items())),
            "order_times": {s: list(t) for s, t in sorted(self._order_times.items()) if t},
        }

    # ------------------------------------------------------------------ per bar
    def on_bar(
        self,
        bar_index: int,
        bar_ts: datetime,
        equity: Mapping[str, float],
        *,
        prices: Mapping[str, float] | None = None,
        closed_trades: Iterable[tuple[str, float]] = (),
        fresh_symbols: Iterable[str] | None = None,
    ) -> list[BaseModel]:
        """Update marks and clocks for one bar and trip breakers; returns the events, applied.

        Args:
            bar_index: the feed's bar index (a bar already handled returns []: idempotent).
            bar_ts: the bar's timestamp: the runtime clock (its UTC date starts days).
            equity: strategy -> equity at this close (the broker's ``bar_processed``).
            prices: symbol -> this bar's close (NaN or missing: no fresh bar).
            closed_trades: (strategy_id, pnl) of trades closed on this bar, in order.
            fresh_symbols: symbols with a valid bar now; default: finite ``prices``.

        Returns:
            Lifted restrictions, the bar's marks (one ``RiskMarks``, when any), then trips
            (BreakerTripped + TradingStateChanged), then every ``snapshot_every`` bars a
            ``RiskMarksSnapshot``.
        """
        for sid, value in equity.items():
            if not math.isfinite(value):
                raise ValueError(f"equity[{sid!r}] must be a finite number, got {value!r}")
        if self._last_bar is not None and bar_index <= self._last_bar:
            return []
        now = _utc(bar_ts)
        day = now.date()
        events: list[BaseModel] = []

        def emit(event: BaseModel) -> None:
            self.apply(event)
            events.append(event)

        fresh = self._clocks(now, prices or {}, fresh_symbols)
        events.extend(self._lift(bar_index, fresh))
        scoped = [(GLOBAL, math.fsum(equity.values()), self._limits)]
        scoped += [(strategy_scope(s), equity[s], self.limits_for(s)) for s in sorted(equity)]
        book = self.marks
        marks = [m for scope, eq, _ in scoped for m in book.marks_for(scope, bar_index, day, eq)]
        by_strategy: dict[str, list[float]] = {}
        for sid, pnl in closed_trades:
            by_strategy.setdefault(sid, []).append(pnl)
        for sid in sorted(by_strategy):
            streak = book.streak_mark(sid, by_strategy[sid], bar_index, day)
            if streak is not None:
                marks.append(streak)
        if marks:  # none depends on another: each scope's own, so applied together
            emit(RiskMarks(bar_index=bar_index, day=day, marks=tuple(marks)))
        for scope, eq, _ in scoped:
            book.observe(scope, bar_index, eq)
        self._trip_all(bar_index, now, scoped, emit)
        base = self._snapshot_bar
        if bar_index + 1 - (0 if base is None else base + 1) >= self._snapshot_every:
            emit(book.to_snapshot(bar_index))  # after the trips: a trip resets a streak
        self._last_bar = bar_index
        return events

    def freshness(self) -> dict[str, tuple[datetime, float | None]]:
        """Each symbol's stale-data clock (its last fresh bar's time) and last price."""
        return {s: (at, self.last_prices.get(s)) for s, at in self._fresh_at.items()}

    def resume_clocks(self, freshness: Mapping[str, tuple[datetime, float | None]]) -> None:
        """Set the stale-data clocks and last prices a restart lost (they are not journaled;
        the feed's history or the engine before a rebuild tells them): without them a symbol
        going stale would get its whole allowance again from the first bar after the restart.
        """
        for symbol, (at, price) in freshness.items():
            self._fresh_at[symbol] = _utc(at)
            if price is not None:
                self.last_prices[symbol] = price

    def _clocks(
        self, now: datetime, prices: Mapping[str, float], fresh_symbols: Iterable[str] | None
    ) -> set[str]:
        def ok(p: float) -> bool:
            return math.isfinite(p) and p > 0

        if fresh_symbols is None:
            fresh = {s for s, p in prices.items() if ok(p)}
        else:
            fresh = set(fresh_symbols)
        for symbol, px in prices.items():
            if ok(px) and symbol in fresh:
                self.last_prices[symbol] = px
            self._fresh_at.setdefault(symbol, now)
        for symbol in fresh:
            self._fresh_at[symbol] = now
        return fresh

    def _lift(self, bar_index: int, fresh: set[str]) -> list[BaseModel]:
        """Breakers end their own restrictions: cooldowns that are over, stale symbols now fresh."""
        lifted: list[BaseModel] = []
        for scope, status in sorted(self.states.restricted().items(), key=lambda i: str(i[0])):
            event = None
            if status.reason is RiskReason.CONSECUTIVE_LOSSES and (
                status.until_bar is not None and bar_index >= status.until_bar
            ):
                event = self.states.lift(scope, status.reason, f"cooldown over at bar {bar_index}")
            elif status.reason is RiskReason.STALE_DATA and scope.name in fresh:
                event = self.states.lift(scope, status.reason, "fresh bar")
            if event is not None:  # lift() applied it
                lifted.append(event)
        return lifted

    def _trip_all(
        self,
        bar_index: int,
        now: datetime,
        scoped: list[tuple[Scope, float, RiskLimits]],
        emit: Callable[[BaseModel], None],
    ) -> None:
        trips: list[Trip | None] = []
        for scope, eq, lim in scoped:
            start = self.marks.day_start.get(scope)
            trips.append(check_daily_loss(scope, eq, start[1] if start else None, lim))
            trips.append(check_drawdown(scope, eq, self.marks.peak.get(scope), lim))
        for sid in sorted(self.marks.streak):
            streak = self.marks.streak[sid]
            trips.append(check_consecutive_losses(sid, streak, self.limits_for(sid), bar_index))
        for symbol in sorted(self._fresh_at):
            trips.append(check_stale_data(symbol, self._fresh_at[symbol], now, self._limits))
        for trip in trips:
            if trip is None:
                continue
            old = self.states.state(trip.scope)
            if rank(trip.state) <= rank(old):
                continue  # already as restricted (by this breaker, another, or an operator)
            emit(BreakerTripped(
                scope=trip.scope, breaker=trip.breaker, value=trip.value, limit=trip.limit,
                new_state=trip.state, until_bar=trip.until_bar, bar_index=bar_index,
            ))  # fmt: skip
            emit(TradingStateChanged(
                scope=trip.scope, old=old, new=trip.state, reason=trip.breaker, by=BREAKER,
                detail=f"{trip.breaker.value} {trip.value:.6g} vs limit {trip.limit:g}",
            ))  # fmt: skip

    # ------------------------------------------------------------------ the gate
    def check(
        self,
        intents: Sequence[OrderIntent | Mapping[str, Any]],
        view: RiskView | None = None,
        now: datetime | None = None,
    ) -> list[RiskVerdict]:
        """Decide a batch of intents; one verdict each, in the input order, all applied.

        Reducing intents are decided first (as the broker fills sells first), then the rest,
        each group in input order; each approval counts against the next intents' exposure,
        open orders and rate. An intent is decided without its strategy's open orders on its
        symbol from earlier bars (those in ``view``): the broker replaces them when it accepts
        it. An order id decided before gets its recorded verdict back.
        A malformed intent raises pydantic's ValidationError naming the field.

        Args:
            intents: ``OrderIntent``s (or dicts validated into them).
            view: positions, equity, prices and open orders; empty when None.
            now: the runtime clock (the bar clock in replay); also the verdicts' ``decided_at``.
        """
        parsed = [
            i if isinstance(i, OrderIntent) else OrderIntent.model_validate(i) for i in intents
        ]
        now = _utc(now) if now is not None else datetime.now(UTC)
        base = view if view is not None else RiskView()
        times = {s: list(t) for s, t in self._order_times.items()}
        work = base.working_copy(self.states, times)
        order = sorted(
            range(len(parsed)),
            key=lambda i: (
                not is_reducing(base.exposure(parsed[i].strategy_id, parsed[i].symbol),
                                parsed[i].qty),
                i,
            ),
        )  # fmt: skip
        earlier = {o.client_order_id for orders in base.open_orders.values() for o in orders}
        out: dict[int, RiskVerdict] = {}
        for i in order:
            intent = parsed[i]
            recorded = self._verdicts.get(intent.client_order_id)
            if recorded is not None:
                out[i] = recorded
                continue
            # the broker cancels the strategy's open orders on the symbol from earlier bars
            # when it accepts this one (core.paper: "replaced"): decide without them
            mine = work.open_orders.get(intent.strategy_id, [])
            replaced = [o for o in mine
                        if o.symbol == intent.symbol and o.client_order_id in earlier]  # fmt: skip
            if replaced:
                work.open_orders[intent.strategy_id] = [o for o in mine if o not in replaced]
            verdict = self._decide(intent, work, now)
            self.apply(verdict)
            if verdict.decision is Decision.REJECTED and replaced:  # never sent: they stand
                work.open_orders[intent.strategy_id] += replaced
            if verdict.decision is not Decision.REJECTED:
                order_ = OpenOrder(intent.client_order_id, intent.symbol, verdict.approved_qty)
                work.add_order(intent.strategy_id, order_, now)
            out[i] = verdict
        return [out[i] for i in range(len(parsed))]

    def _decide(self, intent: OrderIntent, view: RiskView, now: datetime) -> RiskVerdict:
        limits = self.limits_for(intent.strategy_id)
        rules = (check_state,) if intent.reason is FillReason.FLATTEN else PRE_TRADE_RULES
        current, reasons, details = intent, [], []
        for rule in rules:
            result = rule(current, view, limits, now)
            if result is None:
                continue
            if isinstance(result, Reject):
                return self._verdict(intent, Decision.REJECTED, 0.0, [result.reason],
                                     [*details, result.detail], now)  # fmt: skip
            current = current.model_copy(update={"qty": result.qty})
            reasons.append(result.reason)
            details.append(result.detail)
        decision = Decision.MODIFIED if reasons else Decision.APPROVED
        return self._verdict(intent, decision, current.qty, reasons, details, now)

    @staticmethod
    def _verdict(
        intent: OrderIntent,
        decision: Decision,
        qty: float,
        reasons: list[RiskReason],
        details: list[str],
        now: datetime,
    ) -> RiskVerdict:
        return RiskVerdict(
            client_order_id=intent.client_order_id, strategy_id=intent.strategy_id,
            symbol=intent.symbol, decision=decision, requested_qty=intent.qty,
            approved_qty=qty, reasons=tuple(reasons), detail="; ".join(details),
            bar_index=intent.bar_index, decided_at=now,
        )  # fmt: skip

    # ------------------------------------------------------------------ operator commands
    def kill(
        self, scope: Scope | str, mode: KillMode, *, flatten: bool = False, by: str
    ) -> list[BaseModel]:
        """Halt or reduce a scope now; the events are applied (journal them before answering).

        The caller then cancels ``orders_to_cancel(scope, view, flatten=...)`` at the broker
        and, with ``flatten``, checks and forwards ``flatten_orders(...).close``.
        """
        scope = Scope.parse(scope) if isinstance(scope, str) else scope
        return self.states.kill(scope, KillMode(mode), flatten=flatten, by=by)

    def resume(self, scope: Scope | str, *, by: str) -> list[BaseModel]:
        """Set one scope ACTIVE again (a breaker whose condition holds re-trips next bar)."""
        scope = Scope.parse(scope) if isinstance(scope, str) else scope
        return self.states.resume(scope, by=by)

    def set_limits(self, limits: RiskLimits | Mapping[str, Any], *, by: str) -> LimitsChanged:
        """Replace the limits in full (validated: ValidationError names the field)."""
        new = limits if isinstance(limits, RiskLimits) else RiskLimits.model_validate(limits)
        event = LimitsChanged(limits=new.to_dict(), by=by)
        self.apply(event)
        return event

    def orders_to_cancel(self, scope: Scope, view: RiskView, *, flatten: bool) -> list[str]:
        """Open orders a kill cancels in ``scope``: all with flatten, else those adding exposure."""
        out = []
        for sid in view.strategies():
            for order in view.open_orders.get(sid, ()):
                if not scope.covers(sid, order.symbol):
                    continue
                pos = view.position(sid, order.symbol)
                if flatten or abs(pos + order.qty) > abs(pos):
                    out.append(order.client_order_id)
        return out

    def flatten_orders(
        self, scope: Scope, view: RiskView, *, bar_index: int, bar_ts: datetime, nonce: int = 0
    ) -> FlattenOrders:
        """Closing intents (reason FLATTEN) for every position in ``scope``.

        Order ids are deterministic in (strategy, symbol, bar, nonce), so a retried flatten
        resubmits the same ids; pass a new ``nonce`` for a second flatten on the same bar.
        """
        close, unpriced = [], []
        for sid in view.strategies():
            for symbol, pos in sorted(view.positions.get(sid, {}).items()):
                if pos == 0 or not scope.covers(sid, symbol):
                    continue
                px = view.price(symbol)
                if px is None:
                    unpriced.append((sid, symbol))
                    continue
                coid = make_client_order_id(f"{sid}#flatten", symbol, _utc(bar_ts), nonce)
                close.append(OrderIntent(
                    client_order_id=coid, strategy_id=sid, symbol=symbol, qty=-pos,
                    bar_index=bar_index, bar_ts=bar_ts, ref_price=px, reason=FillReason.FLATTEN,
                ))  # fmt: skip
        return FlattenOrders(tuple(close), tuple(unpriced))

    # ------------------------------------------------------------------ events -> state
    def apply(self, event: BaseModel) -> None:
        """Apply one event, live or replayed; kinds the engine does not keep are ignored."""
        match event:
            case TradingStateChanged() | KillSwitchEngaged() | KillSwitchReleased():
                self.states.apply(event)
            case BreakerTripped():
                self.states.apply(event)
                self.marks.apply(event)
                self._seen_bar(event.bar_index)
            case RiskMark() | RiskMarks():
                self.marks.apply(event)
                self._seen_bar(event.bar_index)
            case RiskMarksSnapshot():
                self.marks.apply(event)
                self._seen_bar(event.bar_index)
                self._snapshot_bar = event.bar_index
            case LimitsChanged():
                self._limits = RiskLimits.model_validate(event.limits)
                self._effective.clear()
            case RiskVerdict():
                self._verdicts[event.client_order_id] = event
                if event.decision is not Decision.REJECTED:
                    self._sent(event.strategy_id, _utc(event.decided_at))
            case BarProcessed():
                total = math.fsum(event.equity.values())
                self.marks.observe(GLOBAL, event.bar_index, total)
                for sid, eq in event.equity.items():
                    self.marks.observe(strategy_scope(sid), event.bar_index, eq)

    def _seen_bar(self, bar_index: int | None) -> None:
        if bar_index is not None and (self._last_bar is None or bar_index > self._last_bar):
            self._last_bar = bar_index

    def _sent(self, strategy_id: str, at: datetime) -> None:
        times = self._order_times.setdefault(strategy_id, deque())
        times.append(at)
        while times and at - times[0] >= RATE_WINDOW:
            times.popleft()
