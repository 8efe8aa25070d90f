"""What each journaled event counts: the live actors' counters, derived from their appends.

Every counter a live actor exports is incremented here, from the events it has just written to
the journal, and only for rows that were new (an idempotent resend writes nothing and counts
nothing). So ``/metrics`` and the journal agree by construction: ``orders_total{status="new"}``
is the number of ``order_accepted`` rows this process wrote, ``risk_decisions_total`` the
``risk_decision`` rows, ``fills_total`` the ``order_filled`` rows. Counters restart at zero
with the process, as Prometheus expects (``rate()`` handles resets).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from actors.metrics import MetricsRecorder
from core import metric_names as mn
from core.events import (
    BarQuarantined,
    BreakerTripped,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    RiskVerdict,
    TradingStateChanged,
)
from core.journal import Appended, Journal
from core.types import Side

__all__ = ["EventMetrics", "side_of"]

_EPS = 1e-9  # shares: a fill this close to the order's remainder completes it


def side_of(qty: float) -> Side:
    """The side of a signed quantity (positive buys)."""
    return Side.BUY if qty > 0 else Side.SELL


class EventMetrics:
    """Appends to the journal, timing each transaction, and counts what was new.

    Args:
        recorder: the actor's recorder.
        journal: the actor's journal connection.
        source: the journal ``source`` of every row this actor writes.
    """

    def __init__(self, recorder: MetricsRecorder, journal: Journal, source: str) -> None:
        self.recorder = recorder
        self._journal = journal
        self._source = source
        self._filled: dict[str, float] = {}  # client_order_id -> shares filled so far

    def append(
        self, events: Sequence[BaseModel], *, dedup_keys: Sequence[Any] | None = None
    ) -> list[Appended]:
        """``journal.append_many`` timed in ``journal_append_seconds``; new rows counted
        (after a wire call's answer when its recordings are held: ``MetricsRecorder.defer``)."""
        if not events:
            return []
        start = time.perf_counter()
        try:
            appended = self._journal.append_many(events, source=self._source,
                                                 dedup_keys=dedup_keys)  # fmt: skip
        finally:
            self.recorder.observe(mn.JOURNAL_APPEND_SECONDS, time.perf_counter() - start)
        self.recorder.defer("event counters", self.count, events, appended)
        return appended

    def count(self, events: Sequence[BaseModel], appended: Sequence[Appended]) -> None:
        """Increment the counters of every event whose row was new: one increment per series
        touched (a bar's fills of one strategy add up before they reach the recorder)."""
        incs: dict[tuple[str, tuple[tuple[str, object], ...]], int] = {}
        for event, row in zip(events, appended, strict=True):
            if not row.duplicate:
                self._count(event, incs)
        for (metric, labels), amount in incs.items():
            self.recorder.inc(metric, amount, **dict(labels))

    def _count(self, event: BaseModel, incs: dict[Any, int]) -> None:
        def inc(metric: Any, **labels: object) -> None:
            key = (metric.name, tuple(labels.items()))
            incs[key] = incs.get(key, 0) + 1

        match event:
            case RiskVerdict():
                reason = event.reasons[0] if event.reasons else mn.NO_REASON
                inc(mn.RISK_DECISIONS, decision=event.decision, reason=reason)
            case BreakerTripped():
                inc(mn.BREAKER_TRIPS, breaker=event.breaker)
            case TradingStateChanged():
                self.recorder.set(mn.TRADING_STATE, mn.TRADING_STATE_VALUE[event.new],
                                  scope=str(event.scope))  # fmt: skip
            case OrderAccepted():
                inc(mn.ORDERS, **_order(event.strategy_id, event.qty, OrderStatus.NEW))
            case OrderRejected():
                inc(mn.ORDERS, **_order(event.strategy_id, event.qty, OrderStatus.REJECTED))
            case OrderCanceled():
                self._filled.pop(event.client_order_id, None)
                inc(mn.ORDERS, **_order(event.strategy_id, event.remaining_qty,
                                        OrderStatus.CANCELED))  # fmt: skip
            case OrderFilled():
                inc(mn.FILLS, strategy=event.strategy_id, reason=event.reason)
                before = self._filled.pop(event.client_order_id, None)
                done = (before or 0.0) + abs(event.qty)
                if done >= abs(event.order_qty) - _EPS:
                    inc(mn.ORDERS, **_order(event.strategy_id, event.qty, OrderStatus.FILLED))
                    return
                self._filled[event.client_order_id] = done
                if before is None:  # once per status an order reaches
                    inc(mn.ORDERS, **_order(event.strategy_id, event.qty,
                                            OrderStatus.PARTIALLY_FILLED))  # fmt: skip
            case BarQuarantined():
                inc(mn.BAD_BARS, reason=event.rule)


def _order(strategy_id: str, qty: float, status: OrderStatus) -> dict[str, object]:
    """The labels of ``orders_total`` for one order event."""
    return {"strategy": strategy_id, "side": side_of(qty), "status": status}
