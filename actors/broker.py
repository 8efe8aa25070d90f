"""The ``broker`` actor: a thin shell around ``core.paper.PaperEngine`` (paper trading).

Only the ``risk`` actor calls the broker. Per bar it calls ``step``: the approved orders of
bar t (``submit``), then bar t+1's fills at the open and intrabar stops, marks at the close and
the ``bar_processed`` marker (``on_bar``), all journaled in one transaction before the
answer. Every order must have an approving verdict in the journal (else ``order_rejected`` /
``not_approved``), and an order id seen before creates nothing new. A restarted broker
rebuilds every sub-account from the journal's broker events and the feed's last bar and closes
(docs/live.md, "Restarts"). The Alpaca broker comes later behind the same methods.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import ray

from actors.common import (
    FEED,
    ActorShell,
    Handles,
    all_strategies,
    exclusive,
    open_journal,
    pack,
    unpack,
    warm_up,
)
from actors.retry import call_sync
from core import metric_names as mn
from core.events import (
    BarSlice,
    BrokerRejectReason,
    Decision,
    EventKind,
    FillReason,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    Scope,
)
from core.journal import Approval
from core.paper import BarReport, PaperEngine, resume_bars
from core.run_config import RunConfig, StrategyConfig

__all__ = ["BROKER_KINDS", "Broker", "is_not_approved"]

log = logging.getLogger("raytrader.broker")

SOURCE = "broker"
BROKER_KINDS = (
    EventKind.ORDER_ACCEPTED, EventKind.ORDER_FILLED, EventKind.ORDER_REJECTED,
    EventKind.ORDER_CANCELED,
)  # fmt: skip
_STOPS = (FillReason.STOP_LOSS, FillReason.TAKE_PROFIT)
_APPROVING = frozenset({Decision.APPROVED.value, Decision.MODIFIED.value})
_TIMINGS_KEPT = 200_000


def is_not_approved(event: object) -> bool:
    """Whether an event is the broker's refusal of an order risk never approved (such orders
    never enter the paper engine, so a rebuild skips them)."""
    return isinstance(event, OrderRejected) and event.reason is BrokerRejectReason.NOT_APPROVED


def _approves(approval: Approval | None, order: OrderIntent) -> bool:
    """Whether a journaled decision approves exactly this order (strategy, symbol, qty)."""
    return (
        approval is not None
        and approval.decision in _APPROVING
        and approval.strategy_id == order.strategy_id
        and approval.symbol == order.symbol
        and approval.approved_qty == order.qty
    )


class _Batch:
    """The journal rows of one broker call and the bars whose first fills they hold: one
    transaction for the call (``Broker._journaled``)."""

    def __init__(self) -> None:
        self.rows: list[Any] = []
        self.filled: list[int] = []


class Broker(ActorShell):
    """Paper sub-accounts of every strategy, driven by the feed's bars (see module doc).

    Args:
        config: the run's config (strategies with their symbols and sim settings, broker).
        journal_path: the journal file.
    """

    #: Risk, the broker's only caller, reaches it on the wire (``actors.wire``).
    WIRE_METHODS = frozenset({"on_bar", "step", "submit", "cancel", "open_account", "warm"})
    COLLECT_AFTER = frozenset({"step"})

    def __init__(self, config: RunConfig, journal_path: str, *, fingerprint: str = "") -> None:
        self._mutex = threading.RLock()  # the wire's threads and Ray's take turns
        self._fingerprint = fingerprint
        self._config = config
        self._actor = Handles()
        self._journal = open_journal(journal_path, config.journal.synchronous)
        self._fill_commit_ns: dict[int, int] = {}
        self._init_telemetry(SOURCE, self._journal)
        warm_up(config.strategies)
        self._rebuild()

    # ------------------------------------------------------------------ restart
    def _new_engine(self) -> PaperEngine:
        engine = PaperEngine(self._config.broker.paper_options())
        for strategy in all_strategies(self._config, self._journal):
            engine.open_account(strategy.id, strategy.symbols, strategy.sim)
        return engine

    def _rebuild(self) -> None:
        """Start-up and crash recovery: every sub-account from the journal (one code path)."""
        engine = self._new_engine()
        last = self._journal.max_bar(EventKind.BAR_PROCESSED)
        if last is not None:
            events = [e.event for e in self._journal.read(BROKER_KINDS)
                      if not is_not_approved(e.event)]  # fmt: skip
            marks = call_sync(
                self._actor(FEED).resume_marks, last, resume_bars(events), name=FEED,
                restart_wait_s=self._config.runtime.restart_wait_s, probe=self._actor(FEED).pid,
            )  # fmt: skip
            engine.rebuild(events, marks=marks)  # type: ignore[arg-type]
        self._engine = engine

    def _append(self, events: Sequence[Any]) -> None:
        """Journal events in one transaction; on failure the engine (already changed) is
        thrown away and rebuilt from the journal, then the error is raised."""
        if not events:
            return
        try:
            self._telemetry.append(events)
        except BaseException:
            self._rebuild()
            raise

    # ------------------------------------------------------------------ the bar
    @exclusive
    def warm(self, bar: BarSlice | bytes) -> None:
        """``PaperEngine.warm`` on ``bar`` (the last bar, may be packed): changes nothing."""
        try:
            self._engine.warm(unpack(bar))
        except Exception as exc:  # the bar itself will meet it
            log.debug("broker: warm-up failed: %s", exc)

    @ray.method(max_task_retries=0)
    @exclusive
    def on_bar(self, bar: BarSlice | bytes) -> bytes:
        """Docs/live.md step 2 for every sub-account; idempotent per bar.

        Returns, packed (``actors.common.unpack``), ``{"report": BarReport, "fill_counts":
        {strategy: fills so far}, "quiet": [...]}``; the counts let each host check that its
        ledger has every fill of its sub-account; ``quiet`` names the sub-accounts the next
        bar's open cannot touch (``PaperEngine.quiet``).
        """
        batch = _Batch()
        with self._journaled(batch):
            report = self._on_bar(unpack(bar), batch)
        return pack({"report": report, **self._after()})

    @ray.method(max_task_retries=0)
    @exclusive
    def step(self, orders: list[OrderIntent] | bytes, next_bar: BarSlice | bytes | None) -> bytes:
        """One bar's end and the next bar's open in one call (risk's per-bar call): ``submit``
        the approved orders, then ``on_bar(next_bar)`` when one is given. Idempotent like
        both. Returns, packed, ``submit``'s answer plus ``report`` (None without a next bar),
        ``fill_counts`` and ``quiet`` as ``on_bar``'s. Both parts are journaled in one
        transaction (a commit a bar, not two)."""
        batch = _Batch()
        with self._journaled(batch):
            out = self._submit(unpack(orders), batch)
            out["report"] = None if next_bar is None else self._on_bar(unpack(next_bar), batch)
        return pack({**out, **self._after()})

    @contextlib.contextmanager
    def _journaled(self, batch: _Batch) -> Iterator[None]:
        """Journal what the block put in ``batch`` in one transaction when it ends, then stamp
        its first fills' commit time. If the block fails, the engine (which may hold changes
        never journaled) is rebuilt from the journal before the error is raised."""
        try:
            yield
        except BaseException:
            self._rebuild()
            raise
        self._append(batch.rows)
        for bar_index in batch.filled:
            self._stamp(bar_index)

    def _on_bar(self, bar: BarSlice, batch: _Batch) -> BarReport:
        last = self._engine.last_bar_index
        if last is not None and bar.index <= last:
            return self._journaled_report(bar.index)
        report = self._engine.on_bar(bar)
        batch.rows += [*report.events, report.processed()]
        if report.fills:
            batch.filled.append(bar.index)
        return report

    def _journaled_report(self, t: int) -> BarReport:
        """Bar t's report as journaled (the bar was processed before a restart)."""
        marker = next(iter(self._journal.read([EventKind.BAR_PROCESSED], bar_index=t)), None)
        if marker is None:
            raise RuntimeError(f"bar {t} is at or before the broker's last bar but not journaled")
        events = [
            e.event for e in self._journal.read(BROKER_KINDS, bar_index=t)
            if e.seq < marker.seq and e.kind is not EventKind.ORDER_ACCEPTED
        ]  # fmt: skip
        stopped: dict[str, list[str]] = {}
        for event in events:
            if isinstance(event, OrderFilled) and event.reason in _STOPS:
                stopped.setdefault(event.strategy_id, []).append(event.symbol)
        processed = marker.event
        return BarReport(
            bar_index=t, bar_ts=processed.bar_ts, events=tuple(events),  # type: ignore[attr-defined]
            equity=processed.equity, cash=processed.cash,  # type: ignore[attr-defined]
            stopped={sid: tuple(s) for sid, s in stopped.items()},
        )  # fmt: skip

    def _stamp(self, bar_index: int) -> None:
        """Remember when a bar's first fills were committed (W5 latency benchmark)."""
        if bar_index not in self._fill_commit_ns and len(self._fill_commit_ns) < _TIMINGS_KEPT:
            self._fill_commit_ns[bar_index] = time.time_ns()

    # ------------------------------------------------------------------ orders
    @ray.method(max_task_retries=0)
    @exclusive
    def submit(self, orders: list[OrderIntent] | bytes) -> bytes:
        """Accept approved orders (``fill=close`` accounts fill now, at the last bar's close).

        Every new id needs an approving verdict in the journal with the same strategy,
        symbol and quantity, else it is refused (``not_approved``) and never reaches the
        engine. A known id creates nothing; its journaled fills are returned again, so a
        caller that lost an answer gets its fills.

        Returns, packed, ``{"events": new events, "fills": fills of every submitted id}``.
        """
        batch = _Batch()
        with self._journaled(batch):
            out = self._submit(unpack(orders), batch)
        return pack(out)

    def _submit(self, orders: list[OrderIntent], batch: _Batch) -> dict[str, Any]:
        if not orders:
            return {"events": [], "fills": []}
        admitted, refused = [], []
        for order in orders:
            known = self._engine.order(order.client_order_id) is not None
            if known or _approves(self._journal.approval(order.client_order_id), order):
                admitted.append(order)
            else:
                refused.append(OrderRejected(
                    client_order_id=order.client_order_id, strategy_id=order.strategy_id,
                    symbol=order.symbol, qty=order.qty, reason=BrokerRejectReason.NOT_APPROVED,
                    detail="no approving risk verdict in the journal", bar_index=order.bar_index,
                ))  # fmt: skip
        report = self._engine.submit(admitted)
        events = [*refused, *report.events]
        batch.rows += events
        fills = list(report.fills)
        for coid in report.duplicates:
            fills += [e.event for e in self._journal.read([EventKind.ORDER_FILLED],
                                                          client_order_id=coid)]  # fmt: skip
        if report.fills:
            batch.filled.append(report.fills[0].bar_index)
        return {"events": events, "fills": fills}

    @ray.method(max_task_retries=0)
    @exclusive
    def cancel(
        self,
        ids: list[str] | None = None,
        scope: str | None = None,
        increasing_only: bool = False,
        why: str = "canceled",
    ) -> list[Any]:
        """Cancel open orders matching every filter given (ids, scope, exposure-increasing);
        the cancellations are journaled before the answer."""
        events = self._engine.cancel(
            ids, scope=Scope.parse(scope) if scope else None, increasing_only=increasing_only,
            why=why,
        )  # fmt: skip
        self._append(events)
        return events

    @ray.method(max_task_retries=0)
    @exclusive
    def open_account(self, strategy: dict[str, Any]) -> dict[str, Any]:
        """Open a launched strategy's sub-account (risk calls it; idempotent): it trades
        from the next bar with its configured cash."""
        config = StrategyConfig.model_validate(strategy)
        if config.id not in self._engine.strategies:
            self._engine.open_account(config.id, config.symbols, config.sim)
        return self._engine.ledger(config.id).snapshot()

    # ------------------------------------------------------------------ queries
    def _refresh_gauges(self) -> None:
        """Realized P&L per strategy (additive across strategies)."""
        rec = self._telemetry.recorder
        for sid in self._engine.strategies:
            rec.set(mn.PNL_REALIZED, self._engine.ledger(sid).realized_pnl, strategy=sid)

    def _after(self) -> dict[str, Any]:
        """Fill counts and quiet sub-accounts now: what the next bar's open starts from."""
        return {"fill_counts": self._fill_counts(), "quiet": sorted(self._engine.quiet())}

    def _fill_counts(self) -> dict[str, int]:
        """Fills applied per sub-account so far."""
        return {sid: self._engine.ledger(sid).n_fills for sid in self._engine.strategies}

    @exclusive
    def fill_counts(self) -> dict[str, int]:
        """Fills applied per sub-account so far."""
        return self._fill_counts()

    @exclusive
    def last_bar(self) -> int | None:
        """The last bar processed (None before the first)."""
        return self._engine.last_bar_index

    @exclusive
    def account(self, strategy_id: str) -> dict[str, Any]:
        """One sub-account's ledger snapshot (cash, equity, positions, pnl, commission)."""
        return self._engine.ledger(strategy_id).snapshot()

    @exclusive
    def accounts(self) -> dict[str, dict[str, Any]]:
        """Every sub-account's ledger snapshot."""
        return {sid: self._engine.ledger(sid).snapshot() for sid in self._engine.strategies}

    @exclusive
    def positions(self) -> dict[str, dict[str, float]]:
        """Signed shares per strategy and symbol (flat symbols left out)."""
        return {sid: self._engine.ledger(sid).positions() for sid in self._engine.strategies}

    @exclusive
    def open_orders(self, strategy_id: str | None = None) -> list[dict[str, Any]]:
        """Open orders, as plain dicts."""
        return [o.model_dump(mode="json") for o in self._engine.open_orders(strategy_id)]

    @exclusive
    def trades(self, strategy_id: str) -> list[dict[str, Any]]:
        """A sub-account's trades as ``raytrader backtest --json`` prints them."""
        return self._engine.ledger(strategy_id).trades()

    @exclusive
    def rejected_orders(self, strategy_id: str) -> list[dict[str, Any]]:
        """A sub-account's rejected orders as ``raytrader backtest --json`` prints them."""
        return self._engine.ledger(strategy_id).rejected_orders()

    @exclusive
    def timings(self) -> dict[int, int]:
        """Bar index -> wall ns when its first fill was committed (benchmarks)."""
        return dict(self._fill_commit_ns)
