"""Counters derived from journal appends (``actors.event_metrics``), on a real SQLite journal.

The expected counts are worked out by hand from the event list: each new row counts once,
a resend (the same dedup key) counts nothing, an order's statuses count once each.
"""

from __future__ import annotations

from pathlib import Path

from actors.event_metrics import EventMetrics, side_of
from actors.metrics import MetricsRecorder
from core import metric_names as mn
from core.events import (
    BarQuarantined,
    BreakerTripped,
    BrokerRejectReason,
    Decision,
    FillReason,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    RiskReason,
    RiskVerdict,
    Scope,
    TradingState,
    TradingStateChanged,
)
from core.journal import Journal
from core.types import BadBarRule, Side
from tests.kit.risk import T0


def _verdict(coid: str, decision: Decision) -> RiskVerdict:
    reasons = () if decision is Decision.APPROVED else (RiskReason.MAX_POSITION,)
    return RiskVerdict(client_order_id=coid, strategy_id="s1", symbol="AAPL", decision=decision,
                       requested_qty=10.0, approved_qty=0.0 if reasons else 10.0,
                       reasons=reasons, bar_index=0, decided_at=T0)  # fmt: skip


def _fill(coid: str, n: int, qty: float, order_qty: float) -> OrderFilled:
    return OrderFilled(
        fill_id=f"{coid}:{n}", client_order_id=coid, strategy_id="s1", symbol="AAPL", qty=qty,
        price=100.0, commission=1.0, reason=FillReason.SIGNAL, bar_index=1, bar_ts=T0,
        order_qty=order_qty,
    )  # fmt: skip


def _accepted(coid: str, qty: float) -> OrderAccepted:
    return OrderAccepted(client_order_id=coid, strategy_id="s1", symbol="AAPL", qty=qty,
                         reason=FillReason.SIGNAL, bar_index=0)  # fmt: skip


def test_new_rows_count_once_resends_not_at_all_and_statuses_once_each(tmp_path: Path) -> None:
    rec = MetricsRecorder("broker", mirror_to_ray=False)
    with Journal(tmp_path / "j.sqlite") as journal:
        em = EventMetrics(rec, journal, "broker")
        g = Scope.parse("global")
        events = [
            _verdict("a", Decision.APPROVED), _verdict("b", Decision.REJECTED),
            _accepted("a", 10.0), _fill("a", 0, 4.0, 10.0), _fill("a", 1, 3.0, 10.0),
            _fill("a", 2, 3.0, 10.0),  # a: partially filled (once), then filled
            _accepted("c", -5.0), _fill("c", 0, -5.0, -5.0),  # c: a sell filled at once
            _accepted("d", 2.0), _fill("d", 0, 1.0, 2.0),
            OrderCanceled(client_order_id="d", strategy_id="s1", symbol="AAPL",
                          remaining_qty=1.0, why="kill", bar_index=1),
            OrderRejected(client_order_id="e", strategy_id="s1", symbol="AAPL", qty=3.0,
                          reason=BrokerRejectReason.INSUFFICIENT_CASH, bar_index=1),
            BarQuarantined(symbol="AAPL", bar_index=3, bar_ts=T0, rule=BadBarRule.NOT_FINITE),
            BreakerTripped(scope=g, breaker=RiskReason.DRAWDOWN, value=0.2, limit=0.1,
                           new_state=TradingState.HALTED, bar_index=3),
            TradingStateChanged(scope=g, old=TradingState.ACTIVE, new=TradingState.HALTED,
                                by="breaker"),
        ]  # fmt: skip
        assert all(not a.duplicate for a in em.append(events))
        resent = em.append(events[:12])  # every one with a natural key: written before
        assert all(a.duplicate for a in resent)
        assert sum(1 for _ in journal.read()) == len(events)  # the resend wrote nothing

    def v(metric, **labels):
        return rec.value(metric, **labels)

    assert v(mn.RISK_DECISIONS, decision="approved", reason="none") == 1
    assert v(mn.RISK_DECISIONS, decision="rejected", reason="max_position") == 1
    buy = {"strategy": "s1", "side": "buy"}
    assert v(mn.ORDERS, **buy, status="new") == 2  # a, d
    assert v(mn.ORDERS, strategy="s1", side="sell", status="new") == 1  # c
    assert v(mn.ORDERS, **buy, status="partially_filled") == 2  # a once, d once
    assert v(mn.ORDERS, **buy, status="filled") == 1  # a
    assert v(mn.ORDERS, strategy="s1", side="sell", status="filled") == 1  # c
    assert v(mn.ORDERS, **buy, status="canceled") == 1  # d
    assert v(mn.ORDERS, **buy, status="rejected") == 1  # e
    assert v(mn.FILLS, strategy="s1", reason="signal") == 5  # a three times, c, d
    assert v(mn.BAD_BARS, reason="not_finite") == 1
    assert v(mn.BREAKER_TRIPS, breaker="drawdown") == 1
    assert v(mn.TRADING_STATE, scope="global") == 2  # halted
    assert v(mn.JOURNAL_APPEND_SECONDS) == 2  # two transactions timed


def test_side_is_taken_from_the_sign() -> None:
    assert side_of(3.0) is Side.BUY and side_of(-0.5) is Side.SELL


def test_counts_of_a_held_call_wait_for_its_flush(tmp_path: Path) -> None:
    # Inside a wire call the recorder holds: the rows are journaled at once, while the
    # counting (labels derived event by event) waits for the answer to have gone. Counts by
    # hand: one approval, one accepted buy, one fill completing it.
    rec = MetricsRecorder("broker", mirror_to_ray=False)
    with Journal(tmp_path / "j.sqlite") as journal:
        em = EventMetrics(rec, journal, "broker")
        rec.hold()
        em.append([_verdict("a", Decision.APPROVED), _accepted("a", 2.0),
                   _fill("a", 0, 2.0, 2.0)])  # fmt: skip
        assert sum(1 for _ in journal.read()) == 3
        assert rec.value(mn.FILLS, strategy="s1", reason="signal") is None
        assert rec.value(mn.RISK_DECISIONS, decision="approved", reason="none") is None
        rec.flush()
    assert rec.value(mn.RISK_DECISIONS, decision="approved", reason="none") == 1
    assert rec.value(mn.ORDERS, strategy="s1", side="buy", status="new") == 1
    assert rec.value(mn.ORDERS, strategy="s1", side="buy", status="filled") == 1
    assert rec.value(mn.FILLS, strategy="s1", reason="signal") == 1
    assert rec.value(mn.JOURNAL_APPEND_SECONDS) == 1
