"""Breaker trip checks and the marks they compare against, as pure functions (hand numbers)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from core.events import BreakerTripped, RiskMark, RiskMarkKind, RiskReason, TradingState
from core.risk.breakers import (
    MarkBook,
    Trip,
    check_consecutive_losses,
    check_daily_loss,
    check_drawdown,
    check_stale_data,
    loss_pct,
    next_streak,
)
from core.risk.limits import RiskLimits
from core.risk.state import GLOBAL, strategy_scope, symbol_scope
from tests.kit.risk import T0

D1, D2 = date(2024, 1, 2), date(2024, 1, 3)


def test_loss_pct() -> None:
    assert loss_pct(100_000, 95_000) == 5.0  # (100,000 - 95,000) / 100,000
    assert loss_pct(100_000, 110_000) == -10.0  # above the reference: a negative loss
    assert loss_pct(0, 5) == 0.0  # no positive reference: nothing to measure against


def test_daily_loss_no_trip_trip_and_configured_state() -> None:
    limits = RiskLimits(daily_loss_pct=5)
    # (100,000 - 95,001) / 100,000 = 4.999% < 5%
    assert check_daily_loss(GLOBAL, 95_001, 100_000, limits) is None
    # (100,000 - 95,000) / 100,000 = 5% reaches the limit
    assert check_daily_loss(GLOBAL, 95_000, 100_000, limits) == Trip(
        RiskReason.DAILY_LOSS, GLOBAL, 5.0, 5.0, TradingState.HALTED
    )
    reducing = RiskLimits(daily_loss_pct=5, daily_loss_state=TradingState.REDUCING)
    trip = check_daily_loss(GLOBAL, 90_000, 100_000, reducing)
    assert trip is not None and trip.state is TradingState.REDUCING and trip.value == 10.0
    assert check_daily_loss(GLOBAL, 1, 100_000, RiskLimits()) is None  # switched off
    assert check_daily_loss(GLOBAL, 1, None, limits) is None  # no day start yet


def test_drawdown_no_trip_and_trip() -> None:
    limits = RiskLimits(max_drawdown_pct=10)
    s1 = strategy_scope("s1")
    # (120,000 - 108,001) / 120,000 = 9.9992% < 10%
    assert check_drawdown(s1, 108_001, 120_000, limits) is None
    # (120,000 - 108,000) / 120,000 = 10%
    trip = check_drawdown(s1, 108_000, 120_000, limits)
    assert trip == Trip(RiskReason.DRAWDOWN, s1, pytest.approx(10.0), 10.0, TradingState.HALTED)


def test_consecutive_losses_trip_with_cooldown_end() -> None:
    limits = RiskLimits(max_consecutive_losses=3, cooldown_bars=2,
                        consecutive_losses_state=TradingState.REDUCING)  # fmt: skip
    assert check_consecutive_losses("s1", 2, limits, bar_index=5) is None
    # tripped on bar 5 for 2 bars (5 and 6): trading again from bar 5 + 2 = 7
    assert check_consecutive_losses("s1", 3, limits, bar_index=5) == Trip(
        RiskReason.CONSECUTIVE_LOSSES, strategy_scope("s1"), 3.0, 3.0, TradingState.REDUCING, 7
    )
    until_resumed = RiskLimits(max_consecutive_losses=3)
    trip = check_consecutive_losses("s1", 4, until_resumed, bar_index=5)
    assert trip is not None and trip.until_bar is None


def test_stale_data_trips_strictly_after_the_limit() -> None:
    limits = RiskLimits(stale_data_seconds=3 * 86_400)  # three days
    assert check_stale_data("AAPL", T0, T0 + timedelta(days=3), limits) is None  # exactly 3 d
    trip = check_stale_data("AAPL", T0, T0 + timedelta(days=3, seconds=1), limits)
    assert trip == Trip(RiskReason.STALE_DATA, symbol_scope("AAPL"), 259_201.0, 259_200.0,
                        TradingState.HALTED)  # fmt: skip


@pytest.mark.parametrize(
    ("start", "pnls", "expected"),
    [
        (0, [-1.0, -2.0], 2),
        (2, [-1.0], 3),
        (2, [5.0], 0),  # a win resets
        (2, [0.0], 0),  # break-even is not a loss
        (0, [-1.0, 5.0, -1.0], 1),
        (4, [], 4),
    ],
)
def test_next_streak(start: int, pnls: list[float], expected: int) -> None:
    assert next_streak(start, pnls) == expected


def test_day_start_is_the_previous_bars_equity_and_peaks_only_rise() -> None:
    book = MarkBook()
    first = book.marks_for(GLOBAL, 0, D1, 100_000.0)  # nothing before: its own equity
    assert [(m.kind, m.value) for m in first] == [
        (RiskMarkKind.DAY_START, 100_000.0), (RiskMarkKind.PEAK, 100_000.0),
    ]  # fmt: skip
    for mark in first:
        book.apply(mark)
    book.observe(GLOBAL, 0, 100_000.0)
    book.observe(GLOBAL, 1, 102_000.0)  # bar 1, same day: a new peak, no new day
    assert [(m.kind, m.value) for m in book.marks_for(GLOBAL, 1, D1, 102_000.0)] == [
        (RiskMarkKind.PEAK, 102_000.0)
    ]
    book.apply(book.marks_for(GLOBAL, 1, D1, 102_000.0)[0])
    # bar 2 opens day 2: its start equity is bar 1's close equity, 102,000, not bar 2's 97,000
    day2 = book.marks_for(GLOBAL, 2, D2, 97_000.0)
    assert day2 == [RiskMark(kind=RiskMarkKind.DAY_START, scope=GLOBAL, value=102_000.0,
                             bar_index=2, day=D2)]  # fmt: skip


def test_loss_streak_marks_only_changes_and_a_trip_consumes_the_streak() -> None:
    book = MarkBook()
    assert book.streak_mark("s1", [5.0], 0, D1) is None  # 0 -> 0: no mark
    mark = book.streak_mark("s1", [-1.0, -1.0], 1, D1)
    assert mark is not None and mark.value == 2.0 and mark.scope == strategy_scope("s1")
    book.apply(mark)
    assert book.streak == {"s1": 2}
    tripped = BreakerTripped(
        scope=strategy_scope("s1"), breaker=RiskReason.CONSECUTIVE_LOSSES, value=2, limit=2,
        new_state=TradingState.HALTED, bar_index=1,
    )  # fmt: skip
    book.apply(tripped)
    assert book.streak == {"s1": 0}
