"""The risk engine end to end: breakers trip by themselves and gate orders; kill, resume and
flatten; idempotent bars and verdicts; batches; bad input. Fixed bar clock, no network."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError

from core.events import (
    BreakerTripped,
    Decision,
    FillReason,
    KillMode,
    LimitsChanged,
    RiskMark,
    RiskMarks,
    RiskReason,
    Scope,
    TradingState,
    TradingStateChanged,
)
from core.risk import OpenOrder, RiskEngine, RiskLimits, RiskView
from core.risk.state import GLOBAL, strategy_scope, symbol_scope
from tests.kit.risk import T0, intent, view

A, R, H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
PRICES = {"AAPL": 100.0, "MSFT": 100.0}


def bar(
    engine: RiskEngine,
    i: int,
    equity: float | Mapping[str, float],
    *,
    day: int | None = None,
    prices: Mapping[str, float] = PRICES,
    trades: list[tuple[str, float]] | None = None,
) -> list[BaseModel]:
    """Bar ``i`` at T0 + ``day`` days (default: one bar a day)."""
    ts = T0 + timedelta(days=i if day is None else day)
    eq = {"s1": equity} if isinstance(equity, float | int) else equity
    return engine.on_bar(i, ts, eq, prices=prices, closed_trades=trades or [])


def changes(events: list[BaseModel]) -> list[TradingStateChanged]:
    return [e for e in events if isinstance(e, TradingStateChanged)]


def trips(events: list[BaseModel]) -> list[tuple[str, RiskReason, TradingState]]:
    return [(str(e.scope), e.breaker, e.new_state) for e in events if isinstance(e, BreakerTripped)]


def held(**positions: float) -> RiskView:
    return view(positions={"s1": dict(positions)}, prices=dict(PRICES))


def check1(engine: RiskEngine, qty: float, v: RiskView | None = None, **kw: object):
    return engine.check([intent(qty, **kw)], v or held(), T0)[0]  # type: ignore[arg-type]


# ------------------------------------------------------------------ daily loss
def test_daily_loss_trips_at_the_limit_and_halts() -> None:
    engine = RiskEngine(RiskLimits(daily_loss_pct=5))
    bar(engine, 0, 100_000.0)
    # day 2 starts from day 1's close, 100,000; 96,000 is 4% down: no trip, orders pass
    assert trips(bar(engine, 1, 96_000.0)) == []
    assert check1(engine, 10).decision is Decision.APPROVED
    # still day 2 (T0 is 21:00 UTC, so 1 h later is the same date): 95,000 is
    # (100,000 - 95,000) / 100,000 = 5% down
    events = engine.on_bar(2, T0 + timedelta(days=1, hours=1), {"s1": 95_000.0}, prices=PRICES)
    assert trips(events) == [("global", RiskReason.DAILY_LOSS, H),
                             ("strategy:s1", RiskReason.DAILY_LOSS, H)]  # fmt: skip
    rej = check1(engine, 10)
    assert (rej.decision, rej.reasons) == (Decision.REJECTED, (RiskReason.HALTED,))
    assert rej.detail == "global is halted (daily_loss by breaker)"


def test_daily_loss_to_reducing_approves_cuts_and_rejects() -> None:
    engine = RiskEngine(RiskLimits(daily_loss_pct=5, daily_loss_state=R))
    bar(engine, 0, 100_000.0)
    bar(engine, 1, 94_000.0)  # 6% below the day start of 100,000
    v = held(AAPL=100)
    assert check1(engine, -40, v).decision is Decision.APPROVED
    cut = check1(engine, -150, v)  # would cross zero: cut to close the 100
    assert (cut.decision, cut.approved_qty, cut.reasons) == (
        Decision.MODIFIED, -100, (RiskReason.REDUCING_ONLY,))  # fmt: skip
    assert check1(engine, 10, v).reasons == (RiskReason.REDUCING_ONLY,)


def test_a_new_day_starts_from_the_previous_days_last_equity() -> None:
    engine = RiskEngine(RiskLimits(daily_loss_pct=5))
    bar(engine, 0, 100_000.0, day=0)
    bar(engine, 1, 102_000.0, day=0)  # day 1 closes at 102,000
    # day 2: (102,000 - 97,000) / 102,000 = 4.90%: no trip (vs 100,000 it would be 3%)
    assert trips(bar(engine, 2, 97_000.0, day=1)) == []
    assert engine.marks.day_start[GLOBAL] == ((T0 + timedelta(days=1)).date(), 102_000.0)
    # (102,000 - 96,900) / 102,000 = 5.00%: trips
    assert trips(bar(engine, 3, 96_900.0, day=1))[0][:2] == ("global", RiskReason.DAILY_LOSS)


def test_global_loss_uses_total_equity_and_strategy_loss_its_own() -> None:
    # s1 loses 10% of 50,000 = 5,000; the account loses 5,000 / 100,000 = 5%; s2 flat
    engine = RiskEngine(RiskLimits(daily_loss_pct=6))
    bar(engine, 0, {"s1": 50_000.0, "s2": 50_000.0})
    assert trips(bar(engine, 1, {"s1": 45_000.0, "s2": 50_000.0})) == [
        ("strategy:s1", RiskReason.DAILY_LOSS, H)]  # fmt: skip


def test_a_resumed_breaker_whose_condition_holds_trips_again_unless_the_limit_changes() -> None:
    engine = RiskEngine(RiskLimits(daily_loss_pct=5))
    bar(engine, 0, 100_000.0)
    bar(engine, 1, 94_000.0)
    engine.resume("global", by="op")
    engine.resume("strategy:s1", by="op")
    again = engine.on_bar(2, T0 + timedelta(days=1, hours=1), {"s1": 94_000.0}, prices=PRICES)
    assert len(trips(again)) == 2  # still 6% down on the same day
    engine.set_limits(RiskLimits(daily_loss_pct=10), by="op")
    engine.resume("global", by="op")
    engine.resume("strategy:s1", by="op")
    assert trips(engine.on_bar(3, T0 + timedelta(days=1, hours=2), {"s1": 94_000.0})) == []


# ------------------------------------------------------------------ drawdown
def test_drawdown_from_the_peak_trips_and_rejects() -> None:
    engine = RiskEngine(RiskLimits(max_drawdown_pct=10))
    bar(engine, 0, 100_000.0)
    bar(engine, 1, 120_000.0)  # the peak
    assert trips(bar(engine, 2, 110_000.0)) == []  # (120,000 - 110,000) / 120,000 = 8.33%
    assert check1(engine, 10).decision is Decision.APPROVED
    assert len(trips(bar(engine, 3, 108_000.0))) == 2  # 12,000 / 120,000 = 10%
    assert check1(engine, 10).reasons == (RiskReason.HALTED,)
    assert engine.marks.peak[GLOBAL] == 120_000.0


# ------------------------------------------------------------------ consecutive losses
def test_consecutive_losses_trip_hold_for_the_cooldown_then_lift() -> None:
    limits = RiskLimits(max_consecutive_losses=3, cooldown_bars=2, consecutive_losses_state=R)
    engine = RiskEngine(limits)
    bar(engine, 3, 1e5, trades=[("s1", -10.0), ("s1", -5.0)])  # streak 2
    bar(engine, 4, 1e5, trades=[("s1", 1.0)])  # a win: streak 0
    assert engine.marks.streak == {"s1": 0}
    events = bar(engine, 5, 1e5, trades=[("s1", -1.0)] * 3)  # streak 3: trips on bar 5
    assert trips(events) == [("strategy:s1", RiskReason.CONSECUTIVE_LOSSES, R)]
    assert engine.states.status(strategy_scope("s1")).until_bar == 7  # 5 + 2 cooldown bars
    assert engine.marks.streak == {"s1": 0}  # the trip consumed the streak
    bar(engine, 6, 1e5)
    v = held(AAPL=100)
    assert check1(engine, -40, v).decision is Decision.APPROVED  # reducing passes
    assert check1(engine, 10, v).reasons == (RiskReason.REDUCING_ONLY,)
    lifted = changes(bar(engine, 7, 1e5))
    assert lifted == [TradingStateChanged(scope=strategy_scope("s1"), old=R, new=A,
                                          reason=RiskReason.CONSECUTIVE_LOSSES, by="breaker",
                                          detail="cooldown over at bar 7")]  # fmt: skip
    assert check1(engine, 10, v).decision is Decision.APPROVED


# ------------------------------------------------------------------ stale data
def test_stale_data_halts_only_that_symbol_until_a_fresh_bar() -> None:
    engine = RiskEngine(RiskLimits(stale_data_seconds=3 * 86_400))
    nan = float("nan")
    bar(engine, 0, 1e5)  # both fresh at T0
    for i in (1, 2, 3):  # AAPL has no bar on days 1-3
        assert trips(bar(engine, i, 1e5, prices={"AAPL": nan, "MSFT": 100.0})) == []
    # day 4: AAPL's last bar is 4 days old > 3 days
    events = bar(engine, 4, 1e5, prices={"AAPL": nan, "MSFT": 100.0})
    assert trips(events) == [("symbol:AAPL", RiskReason.STALE_DATA, H)]
    assert check1(engine, 10).reasons == (RiskReason.HALTED,)
    assert check1(engine, 10, symbol="MSFT").decision is Decision.APPROVED
    lifted = changes(bar(engine, 5, 1e5))  # AAPL fresh again
    assert [(str(e.scope), e.new) for e in lifted] == [("symbol:AAPL", A)]
    assert check1(engine, 10).decision is Decision.APPROVED
    assert engine.last_prices == {"AAPL": 100.0, "MSFT": 100.0}


def test_a_rebuilt_engine_given_the_clocks_trips_a_stale_symbol_when_the_live_one_does() -> None:
    # The clocks are not journaled: a rebuild starts them again unless it is given them
    # (what a restarted risk actor takes from the feed's history). By hand: AAPL's last bar
    # is day 0, the allowance 3 days, so day 4 trips it (4 > 3) in the live engine; a rebuilt
    # engine left to start AAPL's clock at day 2 would wait for day 6.
    limits = RiskLimits(stale_data_seconds=3 * 86_400)
    nan = float("nan")
    live = RiskEngine(limits)
    journal = bar(live, 0, 1e5)
    journal += bar(live, 1, 1e5, prices={"AAPL": nan, "MSFT": 100.0})
    rebuilt = RiskEngine.rebuild(journal, limits)
    rebuilt.resume_clocks(live.freshness())
    assert rebuilt.freshness() == live.freshness() == {
        "AAPL": (T0, 100.0), "MSFT": (T0 + timedelta(days=1), 100.0),
    }  # fmt: skip
    for engine in (live, rebuilt):
        for i in (2, 3):
            assert trips(bar(engine, i, 1e5, prices={"AAPL": nan, "MSFT": 100.0})) == []
        events = bar(engine, 4, 1e5, prices={"AAPL": nan, "MSFT": 100.0})
        assert trips(events) == [("symbol:AAPL", RiskReason.STALE_DATA, H)]


def test_a_fresh_bar_does_not_lift_an_operators_kill() -> None:
    engine = RiskEngine(RiskLimits(stale_data_seconds=86_400))
    bar(engine, 0, 1e5)
    bar(engine, 2, 1e5, prices={"MSFT": 100.0})  # AAPL 2 days old: stale
    engine.kill("symbol:AAPL", KillMode.HALT, by="op")
    assert changes(bar(engine, 3, 1e5)) == []
    assert engine.states.state(symbol_scope("AAPL")) is H


def test_a_breaker_never_loosens_a_stricter_state() -> None:
    engine = RiskEngine(RiskLimits(daily_loss_pct=5, daily_loss_state=R))
    engine.kill("global", KillMode.HALT, by="op")
    bar(engine, 0, 100_000.0)
    assert trips(bar(engine, 1, 90_000.0)) == [("strategy:s1", RiskReason.DAILY_LOSS, R)]
    assert engine.states.state(GLOBAL) is H  # not REDUCING


# ------------------------------------------------------------------ marks and idempotency
def test_on_bar_emits_marks_and_is_idempotent_per_bar() -> None:
    engine = RiskEngine()
    events = bar(engine, 0, 100_000.0)
    (marks,) = [e for e in events if isinstance(e, RiskMarks)]  # one row for the bar's marks
    assert (marks.bar_index, marks.day) == (0, T0.date())
    # the first bar starts the day at its own equity and is the first peak, for each scope
    assert [(m.kind.value, str(m.scope), m.value) for m in marks.marks] == [
        ("day_start", "global", 100_000.0), ("peak", "global", 100_000.0),
        ("day_start", "strategy:s1", 100_000.0), ("peak", "strategy:s1", 100_000.0),
    ]  # fmt: skip
    assert not any(isinstance(e, RiskMark) for e in events)
    # bar 1, same day, equity up: a new peak for both scopes, no new day start; two losing
    # trades: the streak mark 0 -> 2, in the same row
    (marks,) = [e for e in bar(engine, 1, 101_000.0, day=0, trades=[("s1", -1.0)] * 2)
                if isinstance(e, RiskMarks)]  # fmt: skip
    assert [(m.kind.value, str(m.scope), m.value) for m in marks.marks] == [
        ("peak", "global", 101_000.0), ("peak", "strategy:s1", 101_000.0),
        ("loss_streak", "strategy:s1", 2.0),
    ]  # fmt: skip
    assert bar(engine, 2, 100_500.0, day=0) == []  # same day, below the peak: no marks at all
    assert bar(engine, 2, 50_000.0, day=0) == []  # the same bar again changes nothing
    assert engine.last_bar == 2


def test_a_decided_order_id_gets_its_recorded_verdict_back() -> None:
    engine = RiskEngine()
    first = engine.check([intent(10, coid="x1")], held(), T0)[0]
    engine.kill("global", KillMode.HALT, by="op")
    again = engine.check([intent(10, coid="x1")], held(), T0 + timedelta(hours=1))[0]
    assert again == first and again.decision is Decision.APPROVED
    assert engine.verdict_for("x1") == first


def test_a_duplicate_order_id_within_a_batch_gets_one_decision() -> None:
    engine = RiskEngine(RiskLimits(max_open_orders=1))
    a, b = engine.check([intent(10, coid="d"), intent(10, coid="d")], held(), T0)
    assert a == b and a.decision is Decision.APPROVED


def test_an_intent_is_decided_without_the_open_orders_it_replaces() -> None:
    # s1 holds 300 AAPL at 100 (equity 100,000) and a buy's remainder of 700 is open from an
    # earlier bar (a volume cap). The broker cancels that remainder when it accepts a new AAPL
    # order (core.paper, "replaced"), so a buy of 100 more is decided on 300 + 100 = 400
    # shares = 40,000 <= 50% of equity, not on 1,100, and the one open order does not count
    # against max_open_orders 1.
    limits = RiskLimits(max_position_pct=50, max_open_orders=1)
    v = held(AAPL=300.0)
    v.open_orders = {"s1": [OpenOrder("rest", "AAPL", 700.0)]}
    verdict = RiskEngine(limits).check([intent(100)], v, T0)[0]
    assert (verdict.decision, verdict.approved_qty) == (Decision.APPROVED, 100)
    # An intent risk rejects is never sent, so what it would have replaced stays open: the
    # restricted AAPL order leaves the remainder counted, and MSFT then meets max_open_orders.
    engine = RiskEngine(limits.model_copy(update={"restricted_symbols": ("AAPL",)}))
    aapl, msft = engine.check([intent(100), intent(10, symbol="MSFT")], v, T0)
    assert aapl.decision is Decision.REJECTED and RiskReason.RESTRICTED_SYMBOL in aapl.reasons
    assert (msft.decision, msft.reasons) == (Decision.REJECTED, (RiskReason.MAX_OPEN_ORDERS,))


def test_a_verdict_carries_the_clock_and_the_bar() -> None:
    v = RiskEngine().check([intent(10, bar=42)], held(), T0 + timedelta(seconds=5))[0]
    assert (v.decided_at, v.bar_index, v.requested_qty) == (T0 + timedelta(seconds=5), 42, 10)


def test_a_batch_decides_reductions_first_and_answers_in_input_order() -> None:
    # gross limit 50% of 100,000 = 50,000, fully used by MSFT 500 x 100
    engine = RiskEngine(RiskLimits(max_gross_exposure_pct=50))
    buy, sell = intent(200), intent(-200, symbol="MSFT")
    out = engine.check([buy, sell], held(MSFT=500), T0)
    # the sell first frees 20,000 (MSFT 300 x 100 = 30,000); then AAPL 200 x 100 fits exactly
    assert [v.client_order_id for v in out] == [buy.client_order_id, sell.client_order_id]
    assert [v.decision for v in out] == [Decision.APPROVED, Decision.APPROVED]


# ------------------------------------------------------------------ kill, resume, flatten
def test_a_kill_takes_effect_on_the_very_next_check_and_resume_undoes_it() -> None:
    engine = RiskEngine()
    events = engine.kill("strategy:s1", KillMode.HALT, by="op")
    assert [type(e).__name__ for e in events] == ["TradingStateChanged", "KillSwitchEngaged"]
    assert check1(engine, 10).reasons == (RiskReason.HALTED,)
    assert check1(engine, 10, strategy="s2").decision is Decision.APPROVED  # other strategy
    engine.resume("strategy:s1", by="op")
    assert check1(engine, 10).decision is Decision.APPROVED


def test_flatten_closes_every_position_in_scope_even_when_halted() -> None:
    engine = RiskEngine(RiskLimits(max_order_notional=1.0, max_open_orders=1))
    v = view(positions={"s1": {"AAPL": 100.0, "MSFT": -50.0, "ZZZ": 5.0}, "s2": {"AAPL": 30.0}},
             equity={"s1": 1e5, "s2": 1e5}, prices=dict(PRICES))  # fmt: skip
    engine.kill("strategy:s1", KillMode.HALT, flatten=True, by="op")
    plan = engine.flatten_orders(Scope.parse("strategy:s1"), v, bar_index=9, bar_ts=T0)
    assert [(i.symbol, i.qty, i.reason) for i in plan.close] == [
        ("AAPL", -100.0, FillReason.FLATTEN), ("MSFT", 50.0, FillReason.FLATTEN)]  # fmt: skip
    assert plan.unpriced == (("s1", "ZZZ"),)  # no last price: reported, not skipped silently
    # a flatten is checked against the state only: the tiny notional and open-order limits
    # do not hold it back
    verdicts = engine.check(list(plan.close), v, T0)
    assert [(x.decision, x.approved_qty) for x in verdicts] == [
        (Decision.APPROVED, -100.0), (Decision.APPROVED, 50.0)]  # fmt: skip
    again = engine.flatten_orders(Scope.parse("strategy:s1"), v, bar_index=9, bar_ts=T0)
    # deterministic ids: a retried flatten resubmits the same orders (the broker dedups)
    assert [i.client_order_id for i in again.close] == [i.client_order_id for i in plan.close]
    other = engine.flatten_orders(Scope.parse("strategy:s1"), v, bar_index=9, bar_ts=T0, nonce=1)
    assert {i.client_order_id for i in other.close}.isdisjoint(
        {i.client_order_id for i in plan.close})  # fmt: skip


def test_orders_to_cancel_on_kill() -> None:
    engine = RiskEngine()
    v = held(AAPL=100)
    v.open_orders = {
        "s1": [OpenOrder("add", "AAPL", 10.0), OpenOrder("cut", "AAPL", -10.0)],
        "s2": [OpenOrder("other", "AAPL", 10.0)],
    }
    v.equity["s2"] = 1e5
    scope = Scope.parse("strategy:s1")
    assert engine.orders_to_cancel(scope, v, flatten=False) == ["add"]  # only what adds exposure
    assert engine.orders_to_cancel(scope, v, flatten=True) == ["add", "cut"]
    assert engine.orders_to_cancel(Scope.parse("symbol:AAPL"), v, flatten=True) == [
        "add", "cut", "other"]  # fmt: skip


# ------------------------------------------------------------------ limits and bad input
def test_set_limits_returns_the_event_and_applies_it() -> None:
    engine = RiskEngine()
    new = {"max_position_pct": 10, "strategies": {"s2": {"max_position_pct": None}}}
    event = engine.set_limits(new, by="op")
    assert isinstance(event, LimitsChanged) and event.by == "op"
    assert event.limits["strategies"] == {"s2": {"max_position_pct": None}}
    assert engine.limits_for("s1").max_position_pct == 10
    assert engine.limits_for("s2").max_position_pct is None


def test_bad_limits_and_bad_intents_are_validation_errors_naming_the_field() -> None:
    engine = RiskEngine()
    with pytest.raises(ValidationError, match="max_position_pct"):
        engine.set_limits({"max_position_pct": "lots"}, by="op")
    assert engine.limits == RiskLimits()  # unchanged
    good = intent(1).model_dump()
    assert engine.check([good], held(), T0)[0].decision is Decision.APPROVED
    with pytest.raises(ValidationError, match="qty"):
        engine.check([{**good, "client_order_id": "z", "qty": 0}], held(), T0)
    with pytest.raises(ValidationError, match="ref_price"):
        engine.check([{**good, "client_order_id": "z", "ref_price": -1}], held(), T0)


def test_a_denial_is_a_value_never_an_exception() -> None:
    # every rule on at once, an empty view (no equity, no prices): only verdicts come back
    limits = RiskLimits(max_order_notional=1, max_position_pct=1, max_gross_exposure_pct=1,
                        max_leverage=1, max_open_orders=1, max_orders_per_minute=1,
                        price_collar_pct=1, restricted_symbols=["AAPL"])  # fmt: skip
    out = RiskEngine(limits).check([intent(5), intent(-5, symbol="MSFT")], RiskView(), T0)
    assert [v.decision for v in out] == [Decision.REJECTED, Decision.REJECTED]
    assert [v.reasons for v in out] == [(RiskReason.RESTRICTED_SYMBOL,), (RiskReason.NO_PRICE,)]


def test_non_finite_equity_is_refused_at_the_boundary() -> None:
    with pytest.raises(ValueError, match=r"equity\['s1'\] must be a finite number"):
        RiskEngine().on_bar(0, T0, {"s1": float("nan")})
