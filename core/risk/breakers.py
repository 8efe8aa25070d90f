"""Circuit breakers: pure trip checks, and the marks they compare against.

A breaker is level-triggered: it trips whenever its condition holds and its scope is less
restricted than the breaker's target state, so a restart (or an operator's resume while the
condition still holds) cannot silently disarm it. The marks (day-start equity, equity peak,
loss streak) change only through ``RiskMark``s, which the journal keeps (one ``RiskMarks`` row
a bar, and now and then a ``RiskMarksSnapshot`` of them all), so no rebuild resets them.

- daily loss: equity below the day-start equity by ``daily_loss_pct``; a new UTC date of the
  bar clock starts a day, and its start equity is the previous bar's equity (the last close
  of the previous day), or the first equity seen.
- drawdown: equity below its peak by ``max_drawdown_pct``.
- consecutive losses: ``max_consecutive_losses`` losing closed trades in a row (pnl < 0; any
  other result resets the streak); the trip consumes the streak and holds ``cooldown_bars``.
- stale data: a symbol without a fresh bar for more than ``stale_data_seconds``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from pydantic import BaseModel

from core.events import (
    BreakerTripped,
    RiskMark,
    RiskMarkKind,
    RiskMarks,
    RiskMarksSnapshot,
    RiskReason,
    Scope,
    TradingState,
)
from core.risk.limits import RiskLimits
from core.risk.state import strategy_scope, symbol_scope

__all__ = [
    "MarkBook",
    "Trip",
    "check_consecutive_losses",
    "check_daily_loss",
    "check_drawdown",
    "check_stale_data",
    "loss_pct",
    "next_streak",
]

_REL = 1e-12


@dataclass(frozen=True, slots=True)
class Trip:
    """A breaker's decision to restrict a scope: what, how far past which limit, to what."""

    breaker: RiskReason
    scope: Scope
    value: float
    limit: float
    state: TradingState
    until_bar: int | None = None


def loss_pct(reference: float, equity: float) -> float:
    """How far (%) ``equity`` is below ``reference`` (negative when above; 0 if no reference)."""
    if not reference > 0:
        return 0.0
    return (reference - equity) / reference * 100.0


def _at_least(value: float, limit: float) -> bool:
    return value >= limit * (1 - _REL)


def check_daily_loss(
    scope: Scope, equity: float, day_start: float | None, limits: RiskLimits
) -> Trip | None:
    """Trip when equity is ``daily_loss_pct`` or more below the day-start equity."""
    if limits.daily_loss_pct is None or day_start is None:
        return None
    loss = loss_pct(day_start, equity)
    if not _at_least(loss, limits.daily_loss_pct):
        return None
    return Trip(RiskReason.DAILY_LOSS, scope, loss, limits.daily_loss_pct, limits.daily_loss_state)


def check_drawdown(
    scope: Scope, equity: float, peak: float | None, limits: RiskLimits
) -> Trip | None:
    """Trip when equity is ``max_drawdown_pct`` or more below its peak."""
    if limits.max_drawdown_pct is None or peak is None:
        return None
    drawdown = loss_pct(peak, equity)
    if not _at_least(drawdown, limits.max_drawdown_pct):
        return None
    return Trip(
        RiskReason.DRAWDOWN, scope, drawdown, limits.max_drawdown_pct, limits.drawdown_state
    )


def check_consecutive_losses(
    strategy_id: str, streak: int, limits: RiskLimits, bar_index: int
) -> Trip | None:
    """Trip when a strategy's loss streak reaches ``max_consecutive_losses``.

    The restriction holds for ``cooldown_bars`` bars, counting the tripping bar: it is lifted
    at ``until_bar = bar_index + cooldown_bars`` (None: until an operator resumes).
    """
    n = limits.max_consecutive_losses
    if n is None or streak < n:
        return None
    until = None if limits.cooldown_bars is None else bar_index + limits.cooldown_bars
    return Trip(
        RiskReason.CONSECUTIVE_LOSSES, strategy_scope(strategy_id), float(streak), float(n),
        limits.consecutive_losses_state, until,
    )  # fmt: skip


def check_stale_data(
    symbol: str, last_fresh: datetime, now: datetime, limits: RiskLimits
) -> Trip | None:
    """Trip a symbol's scope when its last fresh bar is more than ``stale_data_seconds`` old."""
    if limits.stale_data_seconds is None:
        return None
    age = (now - last_fresh).total_seconds()
    if age <= limits.stale_data_seconds:
        return None
    return Trip(
        RiskReason.STALE_DATA, symbol_scope(symbol), age, limits.stale_data_seconds,
        limits.stale_data_state,
    )  # fmt: skip


def next_streak(streak: int, pnls: Iterable[float]) -> int:
    """The loss streak after some closed trades, in order: a loss adds one, anything else resets."""
    for pnl in pnls:
        streak = streak + 1 if pnl < 0 else 0
    return streak


class MarkBook:
    """Day-start equity, equity peak and loss streak per scope; changed only by ``apply``.

    It also remembers the last few equities it saw per scope (from ``observe`` or replayed
    ``BarProcessed`` events): not marks, but what a new day's start equity is taken from.
    """

    def __init__(self) -> None:
        self.day_start: dict[Scope, tuple[date, float]] = {}
        self.peak: dict[Scope, float] = {}
        self.streak: dict[str, int] = {}
        self._seen: dict[Scope, list[tuple[int, float]]] = {}

    def observe(self, scope: Scope, bar_index: int, equity: float) -> None:
        """Remember a scope's equity at a bar (idempotent per bar; keeps the last three)."""
        seen = [(b, e) for b, e in self._seen.get(scope, []) if b != bar_index]
        seen.append((bar_index, equity))
        seen.sort()
        self._seen[scope] = seen[-3:]

    def previous(self, scope: Scope, bar_index: int) -> float | None:
        """The latest equity seen before ``bar_index``, or None."""
        earlier = [e for b, e in self._seen.get(scope, []) if b < bar_index]
        return earlier[-1] if earlier else None

    def marks_for(self, scope: Scope, bar_index: int, day: date, equity: float) -> list[RiskMark]:
        """The day-start and peak marks this bar's equity calls for (not applied)."""
        out: list[RiskMark] = []
        if not math.isfinite(equity):
            return out
        start = self.day_start.get(scope)
        if start is None or day > start[0]:
            prev = self.previous(scope, bar_index)
            value = equity if prev is None else prev
            out.append(RiskMark(kind=RiskMarkKind.DAY_START, scope=scope, value=value,
                                bar_index=bar_index, day=day))  # fmt: skip
        peak = self.peak.get(scope)
        if peak is None or equity > peak:
            out.append(RiskMark(kind=RiskMarkKind.PEAK, scope=scope, value=equity,
                                bar_index=bar_index, day=day))  # fmt: skip
        return out

    def streak_mark(
        self, strategy_id: str, pnls: Iterable[float], bar_index: int, day: date
    ) -> RiskMark | None:
        """The loss-streak mark after this bar's closed trades, when the streak changes."""
        old = self.streak.get(strategy_id, 0)
        new = next_streak(old, pnls)
        if new == old:
            return None
        return RiskMark(kind=RiskMarkKind.LOSS_STREAK, scope=strategy_scope(strategy_id),
                        value=float(new), bar_index=bar_index, day=day)  # fmt: skip

    def to_snapshot(self, bar_index: int) -> RiskMarksSnapshot:
        """Every mark and the equities seen, as the journal row a restart starts from."""
        return RiskMarksSnapshot(
            bar_index=bar_index,
            day_start={str(s): v for s, v in self.day_start.items()},
            peak={str(s): v for s, v in self.peak.items()},
            streak=dict(self.streak),
            seen={str(s): tuple(v) for s, v in self._seen.items()},
        )

    def apply(self, event: BaseModel) -> None:
        """Apply a ``RiskMark`` (a bar's ``RiskMarks``: each in turn), the streak reset of a
        consecutive-losses trip, or a ``RiskMarksSnapshot`` (which replaces everything)."""
        match event:
            case RiskMarks():
                for mark in event.marks:
                    self.apply(mark)
            case RiskMarksSnapshot():
                self.day_start = {Scope.parse(k): v for k, v in event.day_start.items()}
                self.peak = {Scope.parse(k): v for k, v in event.peak.items()}
                self.streak = dict(event.streak)
                self._seen = {Scope.parse(k): list(v) for k, v in event.seen.items()}
            case RiskMark(kind=RiskMarkKind.DAY_START):
                self.day_start[event.scope] = (event.day, event.value)
            case RiskMark(kind=RiskMarkKind.PEAK):
                self.peak[event.scope] = event.value
            case RiskMark(kind=RiskMarkKind.LOSS_STREAK) if event.scope.name:
                self.streak[event.scope.name] = int(event.value)
            case BreakerTripped(breaker=RiskReason.CONSECUTIVE_LOSSES) if event.scope.name:
                self.streak[event.scope.name] = 0

    def snapshot(self) -> dict[str, object]:
        """Plain data for comparing a live book with a rebuilt one (the marks only)."""
        return {
            "day_start": {str(s): v for s, v in sorted(self.day_start.items(), key=_name)},
            "peak": {str(s): v for s, v in sorted(self.peak.items(), key=_name)},
            "streak": dict(sorted(self.streak.items())),
        }


def _name(item: tuple[Scope, object]) -> str:
    return str(item[0])
