"""The live runtime's vocabulary: commands, decisions and events that cross actor boundaries.

Every message between the feed, the strategy hosts, the risk actor and the broker, and every
row of the journal, is one of these frozen models (or a ``BarSlice``). Commands are named in
the imperative (``OrderIntent`` asks for an order), events in the past tense (``OrderFilled``).
Vocabularies are StrEnums because they cross process and wire boundaries and serve as metric
labels. See docs/live.md for who sends what to whom.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.types import BadBarRule

__all__ = [
    "BAR_FIELDS",
    "BarDone",
    "BarProcessed",
    "BarQuarantined",
    "BarSlice",
    "BreakerTripped",
    "BrokerRejectReason",
    "Decision",
    "DropReason",
    "EventKind",
    "FillReason",
    "IntentDropped",
    "KillMode",
    "KillSwitchEngaged",
    "KillSwitchReleased",
    "LimitsChanged",
    "OrderAccepted",
    "OrderCanceled",
    "OrderFilled",
    "OrderIntent",
    "OrderRejected",
    "OrderStatus",
    "RiskMark",
    "RiskMarkKind",
    "RiskMarks",
    "RiskMarksSnapshot",
    "RiskReason",
    "RiskVerdict",
    "Scope",
    "ScopeKind",
    "StrategyLaunched",
    "StrategyState",
    "StrategyStateChanged",
    "TradingState",
    "TradingStateChanged",
    "make_client_order_id",
    "utc_now",
]


def utc_now() -> datetime:
    """The wall clock as an aware UTC datetime."""
    return datetime.now(UTC)


# ------------------------------------------------------------------ vocabularies
class TradingState(StrEnum):
    """What a scope may trade: everything, only exposure-reducing orders, or nothing."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


class ScopeKind(StrEnum):
    """Where a trading state or kill switch applies."""

    GLOBAL = "global"
    STRATEGY = "strategy"
    SYMBOL = "symbol"


class KillMode(StrEnum):
    """What a kill switch does to its scope: stop everything, or allow only reductions."""

    HALT = "halt"
    REDUCE = "reduce"


class Decision(StrEnum):
    """The risk actor's answer to one order intent."""

    APPROVED = "approved"
    MODIFIED = "modified"
    REJECTED = "rejected"


class RiskReason(StrEnum):
    """Why the risk actor cut or rejected an order, or why a breaker tripped (metric label)."""

    HALTED = "halted"
    REDUCING_ONLY = "reducing_only"
    RESTRICTED_SYMBOL = "restricted_symbol"
    PRICE_COLLAR = "price_collar"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    MAX_POSITION = "max_position"
    MAX_GROSS_EXPOSURE = "max_gross_exposure"
    MAX_LEVERAGE = "max_leverage"
    MAX_OPEN_ORDERS = "max_open_orders"
    ORDER_RATE = "order_rate"
    DAILY_LOSS = "daily_loss"
    DRAWDOWN = "drawdown"
    CONSECUTIVE_LOSSES = "consecutive_losses"
    STALE_DATA = "stale_data"
    NO_PRICE = "no_price"
    STRATEGY_NOT_RUNNING = "strategy_not_running"


class OrderStatus(StrEnum):
    """Broker-side order lifecycle (see ``ORDER_TRANSITIONS`` in core.orders)."""

    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"


class FillReason(StrEnum):
    """Why a fill happened: the strategy's order, a protective stop, or a flatten."""

    SIGNAL = "signal"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    FLATTEN = "flatten"


class BrokerRejectReason(StrEnum):
    """Why the broker refused an order the risk actor approved."""

    INSUFFICIENT_CASH = "insufficient_cash"
    INSUFFICIENT_MARGIN = "insufficient_margin"
    NO_PRICE = "no_price"
    NOT_APPROVED = "not_approved"
    UNKNOWN_STRATEGY = "unknown_strategy"
    UNKNOWN_SYMBOL = "unknown_symbol"
    BROKER_REFUSED = "broker_refused"


class StrategyState(StrEnum):
    """A strategy instance's lifecycle as its host reports it."""

    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FAILED = "failed"


class RiskMarkKind(StrEnum):
    """What a ``RiskMark`` records: a day's start equity, a new equity peak, a loss streak."""

    DAY_START = "day_start"
    PEAK = "peak"
    LOSS_STREAK = "loss_streak"  # consecutive losing closed trades of a strategy


class DropReason(StrEnum):
    """Why a strategy host dropped an intent instead of sending it to the risk actor."""

    RISK_DOWN = "risk_down"  # on_risk_down: drop
    BUFFER_FULL = "buffer_full"  # on_risk_down: buffer, and risk_buffer_limit was reached


class EventKind(StrEnum):
    """The kinds of journal rows; each has one payload model (``EVENT_MODELS`` in core.journal)."""

    BAR_QUARANTINED = "bar_quarantined"
    BAR_PROCESSED = "bar_processed"  # broker: fills and marks of one bar are durable
    BAR_DONE = "bar_done"  # feed: every host has handled the bar (the replay cursor)
    RISK_DECISION = "risk_decision"
    INTENT_DROPPED = "intent_dropped"
    ORDER_ACCEPTED = "order_accepted"
    ORDER_REJECTED = "order_rejected"
    ORDER_CANCELED = "order_canceled"
    ORDER_FILLED = "order_filled"
    TRADING_STATE_CHANGED = "trading_state_changed"
    BREAKER_TRIPPED = "breaker_tripped"
    KILL_SWITCH_ENGAGED = "kill_switch_engaged"
    KILL_SWITCH_RELEASED = "kill_switch_released"
    LIMITS_CHANGED = "limits_changed"
    RISK_MARK = "risk_mark"  # one mark a row: what schema version 1 wrote (still read)
    RISK_MARKS = "risk_marks"  # every mark one bar called for, one row
    RISK_MARKS_SNAPSHOT = "risk_marks_snapshot"  # every mark risk holds, now and then
    STRATEGY_STATE_CHANGED = "strategy_state_changed"
    STRATEGY_LAUNCHED = "strategy_launched"  # a strategy added to a running system


# ------------------------------------------------------------------ scope
_SCOPE_NAME = r"^[A-Za-z0-9_.:\-/]{1,64}$"


class Scope(BaseModel):
    """``global``, ``strategy:<id>`` or ``symbol:<SYM>``; parse text with ``Scope.parse``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ScopeKind
    name: Annotated[str, Field(pattern=_SCOPE_NAME)] | None = None

    @model_validator(mode="after")
    def _name_matches_kind(self) -> Scope:
        if self.kind is ScopeKind.GLOBAL and self.name is not None:
            raise ValueError("the global scope takes no name")
        if self.kind is not ScopeKind.GLOBAL and not self.name:
            raise ValueError(f"scope {self.kind.value} needs a name: '{self.kind.value}:<name>'")
        return self

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Parse ``global``, ``strategy:<id>`` or ``symbol:<SYM>`` (ValueError naming the rule)."""
        kind, sep, name = text.strip().partition(":")
        try:
            scope_kind = ScopeKind(kind)
        except ValueError:
            raise ValueError(
                f"scope {text!r}: expected 'global', 'strategy:<id>' or 'symbol:<SYM>'"
            ) from None
        return cls(kind=scope_kind, name=name if sep else None)

    def __str__(self) -> str:
        return self.kind.value if self.name is None else f"{self.kind.value}:{self.name}"

    # Scopes key the risk engine's dicts, looked up many times a bar: compare the two fields
    # directly rather than through pydantic's generic field-by-field __eq__.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scope):
            return NotImplemented
        return self.kind is other.kind and self.name == other.name

    def __hash__(self) -> int:
        return hash((self.kind, self.name))

    def covers(self, strategy_id: str, symbol: str) -> bool:
        """Whether an order of ``strategy_id`` on ``symbol`` falls in this scope."""
        if self.kind is ScopeKind.GLOBAL:
            return True
        if self.kind is ScopeKind.STRATEGY:
            return self.name == strategy_id
        return self.name == symbol


# ------------------------------------------------------------------ bars
#: A bar's fields, in the order of the rows of its block (``BarSlice.block``).
BAR_FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class BarSlice:
    """Every symbol's bar at one timestamp of a feed: the unit the live runtime moves.

    ``index`` counts bars of the feed from 0 (the backtest's ``t``); ``timestamp`` is UTC
    (numpy datetime64[us]). A symbol without a bar here, or whose bar was quarantined, has
    NaN in every field, exactly like a gap in the backtest's wide panel.
    """

    index: int
    timestamp: np.datetime64
    symbols: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    block: np.ndarray | None = field(default=None, repr=False, compare=False)
    """The five fields as the rows of one (5, n) array, when they are (an unpickled bar)."""

    def select(self, symbols: tuple[str, ...]) -> BarSlice:
        """The same bar restricted to (and ordered as) ``symbols``; unknown symbols get NaN."""
        where = {s: i for i, s in enumerate(self.symbols)}
        idx = np.array([where.get(s, -1) for s in symbols], dtype=np.int64)

        def pick(arr: np.ndarray) -> np.ndarray:
            out = np.full(len(symbols), np.nan)
            ok = idx >= 0
            out[ok] = arr[idx[ok]]
            return out

        return BarSlice(
            self.index, self.timestamp, symbols, pick(self.open), pick(self.high),
            pick(self.low), pick(self.close), pick(self.volume),
        )  # fmt: skip

    @property
    def time(self) -> datetime:
        """The timestamp as an aware UTC datetime (microseconds, like ``datetime``)."""
        return self.timestamp.astype("datetime64[us]").item().replace(tzinfo=UTC)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle as the index, the timestamp's integer and unit, the symbols and the five
        fields as one block of float64 bytes: unpickling then makes one array instead of
        five, the cost that counts when a bar wakes a dozen idle processes (docs/live.md)."""
        unit, step = np.datetime_data(self.timestamp.dtype)
        block = self.block
        if block is None:
            block = np.stack([getattr(self, f) for f in BAR_FIELDS])
        stamp = int(self.timestamp.view(np.int64))
        return _bar_from_block, (self.index, stamp, f"{step}{unit}", self.symbols,
                                 block.astype(np.float64, copy=False).tobytes())  # fmt: skip


def _bar_from_block(
    index: int, stamp: int, unit: str, symbols: tuple[str, ...], block: bytes
) -> BarSlice:
    """``BarSlice.__reduce__``'s inverse: the five fields are read-only rows of one block."""
    rows = np.frombuffer(block, dtype=np.float64).reshape(5, len(symbols))
    ts = np.datetime64(stamp, unit)
    return BarSlice(index, ts, symbols, rows[0], rows[1], rows[2], rows[3], rows[4], rows)


def make_client_order_id(strategy_id: str, symbol: str, bar_ts: datetime, seq: int) -> str:
    """Deterministic order id from (strategy, symbol, bar timestamp, sequence).

    Re-deciding the same bar after a restart yields the same id, so the risk actor and the
    broker recognize a resubmission instead of placing a second order. 32 hex characters
    behind ``rt-`` fit every broker's limit (Alpaca allows 128).
    """
    key = f"{strategy_id}|{symbol}|{bar_ts.astimezone(UTC).isoformat()}|{seq}"
    return "rt-" + hashlib.sha256(key.encode()).hexdigest()[:32]


# ------------------------------------------------------------------ commands and decisions
class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _finite(value: float, name: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


class OrderIntent(_Frozen):
    """A strategy host asks for a market order of ``qty`` shares (signed: + buys, - sells)."""

    client_order_id: str = Field(min_length=1, max_length=128)
    strategy_id: str
    symbol: str
    qty: float
    bar_index: int = Field(ge=0)
    bar_ts: datetime
    ref_price: float = Field(gt=0, description="the close the order was sized on")
    reason: FillReason = FillReason.SIGNAL
    created_at: datetime = Field(default_factory=utc_now)

    @field_validator("qty")
    @classmethod
    def _nonzero(cls, value: float) -> float:
        _finite(value, "qty")
        if value == 0:
            raise ValueError("qty must not be zero")
        return value


class RiskVerdict(_Frozen):
    """The risk actor's decision on one intent; ``approved_qty`` is 0 when rejected."""

    client_order_id: str
    strategy_id: str
    symbol: str
    decision: Decision
    requested_qty: float
    approved_qty: float
    reasons: tuple[RiskReason, ...] = ()
    detail: str = ""
    bar_index: int = Field(ge=0)
    decided_at: datetime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _consistent(self) -> RiskVerdict:
        if self.decision is Decision.REJECTED and self.approved_qty != 0:
            raise ValueError("a rejected order has approved_qty 0")
        if self.decision is not Decision.REJECTED and self.approved_qty == 0:
            raise ValueError("an approved or modified order has a nonzero approved_qty")
        if self.decision is not Decision.APPROVED and not self.reasons:
            raise ValueError(f"a {self.decision.value} decision needs at least one reason")
        return self


# ------------------------------------------------------------------ broker events
class OrderAccepted(_Frozen):
    """The broker took an approved order; it fills at the next open or at this close."""

    client_order_id: str
    strategy_id: str
    symbol: str
    qty: float
    reason: FillReason
    bar_index: int
    accepted_at: datetime = Field(default_factory=utc_now)


class OrderRejected(_Frozen):
    """The broker refused an order (the whole order: no resizing, no retry)."""

    client_order_id: str
    strategy_id: str
    symbol: str
    qty: float
    reason: BrokerRejectReason
    detail: str = ""
    bar_index: int


class OrderCanceled(_Frozen):
    """An open order was canceled (by a kill switch, a stop on the same bar, or a stop)."""

    client_order_id: str
    strategy_id: str
    symbol: str
    remaining_qty: float
    why: str
    bar_index: int


class OrderFilled(_Frozen):
    """Shares changed hands. ``fill_id`` is unique: ``<client_order_id>:<n>`` per order."""

    fill_id: str
    client_order_id: str
    strategy_id: str
    symbol: str
    qty: float
    price: float = Field(gt=0)
    commission: float = Field(ge=0)
    reason: FillReason
    bar_index: int = Field(ge=0)
    bar_ts: datetime
    order_qty: float  # the whole order, so partial fills can be told from complete ones

    @field_validator("qty")
    @classmethod
    def _nonzero(cls, value: float) -> float:
        _finite(value, "qty")
        if value == 0:
            raise ValueError("a fill has a nonzero qty")
        return value


# ------------------------------------------------------------------ risk and control events
class TradingStateChanged(_Frozen):
    """A scope's trading state changed, by whom (a token name, ``breaker``, ``system``)."""

    scope: Scope
    old: TradingState
    new: TradingState
    reason: RiskReason | None = None
    by: str
    detail: str = ""


class BreakerTripped(_Frozen):
    """A circuit breaker switched a scope's state by itself."""

    scope: Scope
    breaker: RiskReason
    value: float
    limit: float
    new_state: TradingState
    until_bar: int | None = None  # cooldown end, when the breaker has one
    bar_index: int | None = Field(None, ge=0)  # the bar whose marks tripped it


class KillSwitchEngaged(_Frozen):
    """An operator's kill switch: a scope halted or reduce-only, optionally flattened."""

    scope: Scope
    mode: KillMode
    flatten: bool
    by: str


class KillSwitchReleased(_Frozen):
    """An operator resumed a scope that a kill switch or breaker had stopped."""

    scope: Scope
    by: str


class LimitsChanged(_Frozen):
    """Risk limits replaced, in full (``limits`` is the new ``RiskLimits`` as a dict)."""

    limits: dict[str, Any]
    by: str


class StrategyStateChanged(_Frozen):
    """A strategy instance changed lifecycle state; FAILED carries the traceback."""

    strategy_id: str
    old: StrategyState | None
    new: StrategyState
    by: str = "system"
    error: str | None = None
    traceback: str | None = None


class StrategyLaunched(_Frozen):
    """A strategy instance added to a running system by an operator; ``config`` is its
    ``StrategyConfig`` as JSON, so every actor that restarts opens its accounts again."""

    strategy_id: str
    config: dict[str, Any]
    by: str


# ------------------------------------------------------------------ feed, broker and host markers
def _finite_map(values: dict[str, float], name: str) -> dict[str, float]:
    for key, value in values.items():
        _finite(value, f"{name}[{key!r}]")
    return values


class BarQuarantined(_Frozen):
    """A symbol's bar broke a validation rule and was set to NaN in its slice (policy reject)."""

    symbol: str
    bar_index: int = Field(ge=0)
    bar_ts: datetime
    rule: BadBarRule
    detail: str = ""


class BarProcessed(_Frozen):
    """The broker's fills and marks of one bar are durable; equity and cash per strategy."""

    bar_index: int = Field(ge=0)
    bar_ts: datetime
    equity: dict[str, float]
    cash: dict[str, float]

    @field_validator("equity", "cash")
    @classmethod
    def _finite_values(cls, value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        return _finite_map(value, info.field_name or "value")


class BarDone(_Frozen):
    """Every host has handled the bar: the feed's replay cursor."""

    bar_index: int = Field(ge=0)
    bar_ts: datetime


class IntentDropped(_Frozen):
    """A host dropped an intent it could not send to the risk actor (never sent elsewhere)."""

    intent: OrderIntent
    why: DropReason
    detail: str = ""


class RiskMark(_Frozen):
    """A risk reference that no restart may reset: day-start equity, equity peak, loss streak.

    ``scope`` is ``global`` (total equity) or ``strategy:<id>``; ``day`` is the UTC date of the
    bar clock the mark belongs to.
    """

    kind: RiskMarkKind
    scope: Scope
    value: float
    bar_index: int = Field(ge=0)
    day: date

    @field_validator("value")
    @classmethod
    def _finite_value(cls, value: float) -> float:
        return _finite(value, "value")


class RiskMarks(_Frozen):
    """The marks one bar called for (day-start equities, new peaks, loss streaks), journaled as
    one row: a daily bar starts a day for every scope, and one row costs a fraction of a dozen
    (docs/live.md, "Cold bars"). Each mark belongs to this bar and day."""

    bar_index: int = Field(ge=0)
    day: date
    marks: tuple[RiskMark, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_bar(self) -> RiskMarks:
        for mark in self.marks:
            if mark.bar_index != self.bar_index or mark.day != self.day:
                raise ValueError(
                    f"mark {mark.kind.value} of {mark.scope} is for bar {mark.bar_index} on"
                    f" {mark.day}, not bar {self.bar_index} on {self.day}"
                )
        return self


class RiskMarksSnapshot(_Frozen):
    """Every mark risk holds after bar ``bar_index``, and the last equities it saw (what a new
    day's start is taken from), keyed by scope text. Journaled every few hundred bars, so a
    restart reads the last one and only the marks rows after it: its cost does not grow
    with the run (docs/live.md, "Restarts")."""

    bar_index: int = Field(ge=0)
    day_start: dict[str, tuple[date, float]]
    peak: dict[str, float]
    streak: dict[str, Annotated[int, Field(ge=0)]]
    seen: dict[str, tuple[tuple[Annotated[int, Field(ge=0)], float], ...]]

    @model_validator(mode="after")
    def _scopes_and_values(self) -> RiskMarksSnapshot:
        for name in ("day_start", "peak", "seen", "streak"):
            for key in getattr(self, name):
                text = f"strategy:{key}" if name == "streak" else key  # streak: strategy ids
                try:
                    Scope.parse(text)
                except ValueError as exc:
                    raise ValueError(f"{name}[{key!r}] is not a scope: {exc}") from None
        for key, (_, value) in self.day_start.items():
            _finite(value, f"day_start[{key!r}]")
        _finite_map(self.peak, "peak")
        for key, pairs in self.seen.items():
            for _, value in pairs:
                _finite(value, f"seen[{key!r}]")
        return self
