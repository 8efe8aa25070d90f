"""The journal's row format: one payload model per kind, natural dedup keys, indexed columns.

Also folds an order's rows (decision, acceptance, fills, cancel/reject) into one ``OrderRow``
for status and the control API. Pure functions over ``core.events`` models; ``core.journal``
re-exports the public names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel

from core.events import (
    BarDone,
    BarProcessed,
    BarQuarantined,
    BreakerTripped,
    Decision,
    EventKind,
    FillReason,
    IntentDropped,
    KillSwitchEngaged,
    KillSwitchReleased,
    LimitsChanged,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    RiskMark,
    RiskMarks,
    RiskMarksSnapshot,
    RiskReason,
    RiskVerdict,
    ScopeKind,
    StrategyLaunched,
    StrategyStateChanged,
    TradingStateChanged,
)

__all__ = ["EVENT_MODELS", "OrderRow", "columns", "fold_orders", "kind_of", "natural_key"]

EVENT_MODELS: Final[dict[EventKind, type[BaseModel]]] = {
    EventKind.BAR_QUARANTINED: BarQuarantined,
    EventKind.BAR_PROCESSED: BarProcessed,
    EventKind.BAR_DONE: BarDone,
    EventKind.RISK_DECISION: RiskVerdict,
    EventKind.INTENT_DROPPED: IntentDropped,
    EventKind.ORDER_ACCEPTED: OrderAccepted,
    EventKind.ORDER_REJECTED: OrderRejected,
    EventKind.ORDER_CANCELED: OrderCanceled,
    EventKind.ORDER_FILLED: OrderFilled,
    EventKind.TRADING_STATE_CHANGED: TradingStateChanged,
    EventKind.BREAKER_TRIPPED: BreakerTripped,
    EventKind.KILL_SWITCH_ENGAGED: KillSwitchEngaged,
    EventKind.KILL_SWITCH_RELEASED: KillSwitchReleased,
    EventKind.LIMITS_CHANGED: LimitsChanged,
    EventKind.RISK_MARK: RiskMark,
    EventKind.RISK_MARKS: RiskMarks,
    EventKind.RISK_MARKS_SNAPSHOT: RiskMarksSnapshot,
    EventKind.STRATEGY_STATE_CHANGED: StrategyStateChanged,
    EventKind.STRATEGY_LAUNCHED: StrategyLaunched,
}
_KIND_OF: Final[dict[type[BaseModel], EventKind]] = {m: k for k, m in EVENT_MODELS.items()}


@dataclass(frozen=True, slots=True)
class OrderRow:
    """One order's story folded from its events: the risk decision and the latest status.

    ``status`` is None while the broker has not seen the order (rejected by risk, or not yet
    forwarded); ``avg_price`` is None before the first fill. ``reason`` says what sent it (the
    strategy, a stop exit, a kill's flatten; None before the broker has it), ``order_qty`` is
    the quantity the broker holds (a stop exit has no verdict: only this), and ``detail`` why
    it ended where it did (the broker's rejection or cancellation, or risk's verdict).
    """

    client_order_id: str
    strategy_id: str
    symbol: str
    bar_index: int | None
    requested_qty: float | None
    decision: Decision | None
    reasons: tuple[RiskReason, ...]
    approved_qty: float | None
    status: OrderStatus | None
    filled_qty: float
    avg_price: float | None
    commission: float
    last_seq: int
    reason: FillReason | None = None
    order_qty: float | None = None
    detail: str = ""


def kind_of(event: BaseModel) -> EventKind:
    """The ``EventKind`` of an event model instance (TypeError for anything else)."""
    try:
        return _KIND_OF[type(event)]
    except KeyError:
        raise TypeError(f"{type(event).__name__} is not a journal event model") from None


def natural_key(event: BaseModel) -> str | None:
    """The dedup key that makes re-appending the same fact a no-op (None: no natural key).

    Operator and state-change events have none: two kill switches are two facts.
    """
    match event:
        case OrderFilled():
            return f"fill:{event.fill_id}"
        case RiskVerdict():
            return f"decision:{event.client_order_id}"
        case OrderAccepted():
            return f"accepted:{event.client_order_id}"
        case OrderRejected():
            return f"order_rejected:{event.client_order_id}"
        case OrderCanceled():
            return f"canceled:{event.client_order_id}"
        case IntentDropped():
            return f"dropped:{event.intent.client_order_id}"
        case BarProcessed():
            return f"bar_processed:{event.bar_index}"
        case StrategyLaunched():
            return f"launched:{event.strategy_id}"
        case BarDone():
            return f"bar_done:{event.bar_index}"
        case BarQuarantined():
            return f"quarantined:{event.bar_index}:{event.symbol}"
        case RiskMark():
            return f"mark:{event.kind.value}:{event.scope}:{event.bar_index}"
        case RiskMarks():
            return f"marks:{event.bar_index}"
        case RiskMarksSnapshot():
            return f"marks_snapshot:{event.bar_index}"
        case BreakerTripped() if event.bar_index is not None:
            return f"breaker:{event.breaker.value}:{event.scope}:{event.bar_index}"
    return None


_FIELDS: dict[type, frozenset[str]] = {}


def _field(model: BaseModel, name: str) -> Any:
    # Field names cached per class: pydantic's __getattr__ on a missing name is slow (~5 us).
    cls = type(model)
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = frozenset(cls.__pydantic_fields__)
    return getattr(model, name) if name in names else None


def columns(event: BaseModel) -> tuple[str | None, str | None, str | None, int | None]:
    """(strategy, symbol, client_order_id, bar_index) for the indexed columns of a row."""
    inner = _field(event, "intent")
    src = inner if inner is not None else event
    strategy, symbol = _field(src, "strategy_id"), _field(src, "symbol")
    coid, bar = _field(src, "client_order_id"), _field(src, "bar_index")
    scope = _field(event, "scope")
    if scope is not None and scope.kind is ScopeKind.STRATEGY:
        strategy = scope.name
    elif scope is not None and scope.kind is ScopeKind.SYMBOL:
        symbol = scope.name
    return strategy, symbol, coid, bar


class _OrderFold:
    """Mutable accumulator behind ``fold_orders``."""

    def __init__(self, coid: str, strategy_id: str, symbol: str) -> None:
        self.coid, self.strategy_id, self.symbol = coid, strategy_id, symbol
        self.bar_index: int | None = None
        self.verdict: RiskVerdict | None = None
        self.status: OrderStatus | None = None
        self.order_qty: float | None = None
        self.reason: FillReason | None = None
        self.detail = ""
        self.filled = self.notional = self.commission = 0.0
        self.last_seq = 0

    def apply(self, seq: int, event: BaseModel) -> None:
        """Account for one more event of this order."""
        self.last_seq = seq
        match event:
            case RiskVerdict():
                self.verdict, self.bar_index, self.detail = event, event.bar_index, event.detail
            case OrderAccepted():
                self.status, self.order_qty, self.reason = OrderStatus.NEW, event.qty, event.reason
                self.bar_index = event.bar_index if self.bar_index is None else self.bar_index
            case OrderRejected():
                self.status = OrderStatus.REJECTED
                self.detail = ": ".join(x for x in (event.reason.value, event.detail) if x)
            case OrderCanceled():
                self.status, self.detail = OrderStatus.CANCELED, event.why
            case OrderFilled():
                # a stop exit's first row is its fill: no verdict, no acceptance
                self.reason = self.reason or event.reason
                self.order_qty = event.order_qty if self.order_qty is None else self.order_qty
                self.bar_index = event.bar_index if self.bar_index is None else self.bar_index
                self.filled += event.qty
                self.notional += event.qty * event.price
                self.commission += event.commission
                whole = abs(self.filled) >= abs(event.order_qty) * (1 - 1e-12)
                self.status = OrderStatus.FILLED if whole else OrderStatus.PARTIALLY_FILLED

    def row(self) -> OrderRow:
        """The folded, immutable view."""
        v = self.verdict
        return OrderRow(
            client_order_id=self.coid, strategy_id=self.strategy_id, symbol=self.symbol,
            bar_index=self.bar_index,
            requested_qty=v.requested_qty if v else None, decision=v.decision if v else None,
            reasons=v.reasons if v else (), approved_qty=v.approved_qty if v else None,
            status=self.status, filled_qty=self.filled,
            avg_price=self.notional / self.filled if self.filled else None,
            commission=self.commission, last_seq=self.last_seq, reason=self.reason,
            order_qty=self.order_qty, detail=self.detail,
        )  # fmt: skip


def fold_orders(entries: Iterable[tuple[int, BaseModel]]) -> list[OrderRow]:
    """Fold (seq, event) pairs of order kinds into one row per order, in first-seen order."""
    folds: dict[str, _OrderFold] = {}
    for seq, event in entries:
        coid: str = event.client_order_id  # type: ignore[attr-defined]
        fold = folds.get(coid)
        if fold is None:
            fold = folds[coid] = _OrderFold(coid, event.strategy_id, event.symbol)  # type: ignore[attr-defined]
        fold.apply(seq, event)
    return [f.row() for f in folds.values()]
