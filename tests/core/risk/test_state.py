"""Trading states at three scopes: precedence, kill and resume, and who may lift what."""

from __future__ import annotations

import pytest

from core.events import (
    BreakerTripped,
    KillMode,
    KillSwitchEngaged,
    KillSwitchReleased,
    RiskReason,
    Scope,
    TradingState,
    TradingStateChanged,
)
from core.risk.state import (
    GLOBAL,
    ScopeStatus,
    TradingStates,
    most_restrictive,
    strategy_scope,
    symbol_scope,
)

A, R, H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


def trip(scope: Scope, breaker: RiskReason, state: TradingState, until: int | None = None):
    return BreakerTripped(scope=scope, breaker=breaker, value=1.0, limit=1.0, new_state=state,
                          until_bar=until, bar_index=0)  # fmt: skip


def test_most_restrictive_orders_active_reducing_halted() -> None:
    assert most_restrictive() is A
    assert most_restrictive(A, R) is R
    assert most_restrictive(R, H, A) is H


def test_untouched_scopes_are_active() -> None:
    states = TradingStates()
    assert states.effective("s1", "AAPL") == (A, GLOBAL)
    assert states.status(strategy_scope("s1")) == ScopeStatus()
    assert states.restricted() == {}


@pytest.mark.parametrize(
    ("g", "st", "sy", "expected", "decider"),
    [
        (R, A, H, H, "symbol:AAPL"),  # the symbol's halt beats the global reduce
        (A, H, R, H, "strategy:s1"),
        (R, R, A, R, "global"),  # a tie names the broader scope
        (H, H, H, H, "global"),
        (A, A, R, R, "symbol:AAPL"),
    ],
)
def test_effective_state_is_the_most_restrictive_of_three_scopes(
    g: TradingState, st: TradingState, sy: TradingState, expected: TradingState, decider: str
) -> None:
    states = TradingStates()
    for scope, state in ((GLOBAL, g), (strategy_scope("s1"), st), (symbol_scope("AAPL"), sy)):
        if state is not A:
            states.kill(scope, KillMode.HALT if state is H else KillMode.REDUCE, flatten=False,
                        by="op")  # fmt: skip
    assert states.effective("s1", "AAPL") == (expected, Scope.parse(decider))


def test_a_strategy_scope_binds_only_its_strategy_a_symbol_scope_every_strategy() -> None:
    states = TradingStates()
    states.kill(strategy_scope("s1"), KillMode.HALT, flatten=False, by="op")
    states.kill(symbol_scope("MSFT"), KillMode.REDUCE, flatten=False, by="op")
    assert states.effective("s1", "AAPL")[0] is H
    assert states.effective("s2", "AAPL")[0] is A
    assert states.effective("s2", "MSFT")[0] is R


def test_kill_returns_the_state_change_and_the_kill_switch_event() -> None:
    states = TradingStates()
    events = states.kill(GLOBAL, KillMode.HALT, flatten=True, by="alice")
    assert events == [
        TradingStateChanged(scope=GLOBAL, old=A, new=H, by="alice",
                            detail="kill switch halt with flatten"),
        KillSwitchEngaged(scope=GLOBAL, mode=KillMode.HALT, flatten=True, by="alice"),
    ]  # fmt: skip
    assert states.status(GLOBAL) == ScopeStatus(H, None, "alice")
    assert states.kill_switches() == {GLOBAL: events[1]}


def test_a_kill_never_loosens_a_scope() -> None:
    states = TradingStates()
    states.kill(GLOBAL, KillMode.HALT, flatten=False, by="alice")
    events = states.kill(GLOBAL, KillMode.REDUCE, flatten=False, by="bob")
    assert [type(e) for e in events] == [KillSwitchEngaged]  # no state change
    assert states.status(GLOBAL) == ScopeStatus(H, None, "bob")


def test_resume_activates_only_its_own_scope() -> None:
    states = TradingStates()
    states.kill(GLOBAL, KillMode.HALT, flatten=False, by="op")
    states.kill(strategy_scope("s1"), KillMode.HALT, flatten=False, by="op")
    events = states.resume(GLOBAL, by="op")
    assert events == [
        TradingStateChanged(scope=GLOBAL, old=H, new=A, by="op", detail="resumed"),
        KillSwitchReleased(scope=GLOBAL, by="op"),
    ]
    assert states.effective("s1", "AAPL") == (H, strategy_scope("s1"))
    assert list(states.kill_switches()) == [strategy_scope("s1")]
    assert [type(e) for e in states.resume(GLOBAL, by="op")] == [KillSwitchReleased]


def test_resume_also_lifts_a_breaker() -> None:
    states = TradingStates()
    states.apply(trip(GLOBAL, RiskReason.DAILY_LOSS, H))
    assert states.status(GLOBAL) == ScopeStatus(H, RiskReason.DAILY_LOSS, "breaker")
    states.resume(GLOBAL, by="op")
    assert states.state(GLOBAL) is A


def test_a_breaker_lifts_only_its_own_restriction() -> None:
    states = TradingStates()
    aapl = symbol_scope("AAPL")
    states.apply(trip(aapl, RiskReason.STALE_DATA, H))
    assert states.lift(aapl, RiskReason.DAILY_LOSS, "x") is None  # not the daily-loss breaker's
    lifted = states.lift(aapl, RiskReason.STALE_DATA, "fresh bar")
    assert lifted is not None and (lifted.old, lifted.new) == (H, A)
    states.apply(trip(aapl, RiskReason.STALE_DATA, H))
    states.kill(aapl, KillMode.HALT, flatten=False, by="op")  # the operator takes it over
    assert states.lift(aapl, RiskReason.STALE_DATA, "fresh bar") is None
    assert states.state(aapl) is H


def test_a_breaker_trip_escalates_only_and_keeps_its_cooldown() -> None:
    states = TradingStates()
    s1 = strategy_scope("s1")
    states.apply(trip(s1, RiskReason.CONSECUTIVE_LOSSES, R, until=7))
    states.apply(TradingStateChanged(scope=s1, old=A, new=R, reason=RiskReason.CONSECUTIVE_LOSSES,
                                     by="breaker"))  # fmt: skip
    assert states.status(s1) == ScopeStatus(R, RiskReason.CONSECUTIVE_LOSSES, "breaker", 7)
    states.apply(trip(s1, RiskReason.DAILY_LOSS, H))  # a stricter breaker takes over
    assert states.status(s1) == ScopeStatus(H, RiskReason.DAILY_LOSS, "breaker", None)
    states.apply(trip(s1, RiskReason.CONSECUTIVE_LOSSES, R, until=9))  # looser: ignored
    assert states.status(s1).reason is RiskReason.DAILY_LOSS


def test_replaying_the_events_gives_the_same_states() -> None:
    live = TradingStates()
    events = []
    events += live.kill(GLOBAL, KillMode.REDUCE, flatten=False, by="op")
    events += live.kill(symbol_scope("AAPL"), KillMode.HALT, flatten=True, by="op")
    t = trip(strategy_scope("s1"), RiskReason.DRAWDOWN, H)
    live.apply(t)
    events.append(t)
    events += live.resume(symbol_scope("AAPL"), by="op")
    replayed = TradingStates()
    for event in events:
        replayed.apply(event)
    assert replayed.snapshot() == live.snapshot()


def test_scope_text_is_validated() -> None:
    with pytest.raises(ValueError, match="expected 'global'"):
        Scope.parse("account:1")
    with pytest.raises(ValueError, match="name"):  # the empty name fails its pattern
        Scope.parse("strategy:")
    with pytest.raises(ValueError, match="needs a name"):
        Scope(kind="symbol")
