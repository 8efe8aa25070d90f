"""Pre-trade checks: one small pure function per rule, ``(intent, view, limits, now) -> result``.

A rule returns None (pass), a ``Cut`` (a smaller |qty| of the same sign, with its reason) or
a ``Reject`` (a reason code and a detail naming the value and the limit). Denials are values,
never exceptions. The engine runs them in ``PRE_TRADE_RULES`` order, feeding each cut to the
next rule. Cuts keep whole shares when the intent was whole shares; a cut to 0 is a reject.

Exposure means shares held plus open orders' remainders (the position if everything fills);
an order is *reducing* when it shrinks |exposure| without crossing zero. Reducing orders pass
the restricted-symbol and exposure checks: getting smaller is always allowed there.
Orders are valued at the last price when known, else at their ``ref_price``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from core.events import FillReason, OrderIntent, RiskReason, TradingState
from core.risk.limits import RiskLimits
from core.risk.view import RiskView

__all__ = [
    "PRE_TRADE_RULES",
    "RATE_WINDOW",
    "Cut",
    "Reject",
    "Rule",
    "RuleResult",
    "check_gross_exposure",
    "check_leverage",
    "check_open_orders",
    "check_order_notional",
    "check_order_rate",
    "check_position",
    "check_price_collar",
    "check_restricted",
    "check_state",
    "crosses_zero",
    "is_reducing",
]

RATE_WINDOW: Final = timedelta(minutes=1)
_EPS: Final = 1e-9  # absorbs float noise before flooring shares (199.99999999999997 -> 200)
_REL: Final = 1e-12  # relative slack when comparing a value with its limit


@dataclass(frozen=True, slots=True)
class Cut:
    """Pass with a smaller size: ``qty`` has the intent's sign and a smaller magnitude."""

    qty: float
    reason: RiskReason
    detail: str


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse the order, with the reason code and a detail naming the value and the limit."""

    reason: RiskReason
    detail: str


RuleResult = Cut | Reject | None
Rule = Callable[[OrderIntent, RiskView, RiskLimits, datetime], RuleResult]


# ------------------------------------------------------------------ helpers
def is_reducing(current: float, qty: float) -> bool:
    """Whether ``qty`` shrinks |current| without crossing zero (closing exactly counts)."""
    after = current + qty
    return current != 0 and abs(after) < abs(current) and after * current >= 0


def crosses_zero(current: float, qty: float) -> bool:
    """Whether ``qty`` takes a position through zero to the other side."""
    return current != 0 and (current + qty) * current < 0


def _q(x: float) -> str:
    return f"{x:g}"


def _m(x: float) -> str:
    return f"{x:,.2f}"


def _over(value: float, limit: float) -> bool:
    return value > limit * (1 + _REL) + _EPS


def _mark(intent: OrderIntent, view: RiskView) -> float:
    return view.price(intent.symbol) or intent.ref_price


def _reduce_only(intent: OrderIntent, current: float, reason: RiskReason, what: str) -> RuleResult:
    """Let a reducing order through, cut a zero-crossing one to a close, reject the rest."""
    if is_reducing(current, intent.qty):
        return None
    if crosses_zero(current, intent.qty):
        return Cut(
            -current, reason,
            f"{what}: qty {_q(intent.qty)} would cross zero from {_q(current)}; "
            f"cut to {_q(-current)} (close)",
        )  # fmt: skip
    return Reject(reason, f"{what}: qty {_q(intent.qty)} would increase |{_q(current)}|")


def _cut_to(
    intent: OrderIntent, current: float, allowed_abs: float, reason: RiskReason, detail: str
) -> RuleResult:
    """Cut ``intent`` so that |current + qty| <= allowed_abs, keeping its sign (or reject)."""
    q = math.copysign(max(allowed_abs, 0.0), intent.qty) - current
    if q * intent.qty <= 0:
        return Reject(reason, f"{detail}; no room left")
    size = min(abs(q), abs(intent.qty))
    if float(intent.qty).is_integer():
        size = float(math.floor(size + _EPS))
    if size <= 0:
        return Reject(reason, f"{detail}; cut to 0")
    if size >= abs(intent.qty):
        return None
    new = math.copysign(size, intent.qty)
    return Cut(new, reason, f"{detail}; cut to {_q(new)}")


def _equity_or_reject(intent: OrderIntent, view: RiskView, reason: RiskReason) -> float | Reject:
    equity = view.equity.get(intent.strategy_id)
    if equity is None or not math.isfinite(equity) or equity <= 0:
        return Reject(reason, f"strategy {intent.strategy_id} has no positive equity ({equity})")
    return equity


def _gross_except(view: RiskView, strategy_id: str, symbol: str | None) -> float | Reject:
    """Sum of |exposure| x price of a strategy, leaving out ``symbol`` (NO_PRICE if unpriced)."""
    total = 0.0
    for sym, exp in view.exposures(strategy_id):
        if sym == symbol or exp == 0:
            continue
        px = view.price(sym)
        if px is None:
            return Reject(RiskReason.NO_PRICE, f"no last price for held symbol {sym}")
        total += abs(exp) * px
    return total


# ------------------------------------------------------------------ the rules, in check order
def check_state(
    intent: OrderIntent, view: RiskView, limits: RiskLimits, now: datetime
) -> RuleResult:
    """HALTED rejects; REDUCING lets only reducing orders through (a crossing is cut to close).

    A FLATTEN intent (the engine's flatten) is reduce-only in every state, and passes even
    HALTED: a halt with flatten must still close positions, and the label can never be used
    to add exposure. The engine checks FLATTEN intents with this rule only.
    """
    state, scope = view.states.effective(intent.strategy_id, intent.symbol)
    current = view.exposure(intent.strategy_id, intent.symbol)
    if intent.reason is FillReason.FLATTEN:
        reason = RiskReason.HALTED if state is TradingState.HALTED else RiskReason.REDUCING_ONLY
        return _reduce_only(intent, current, reason, f"a flatten in {state.value} {scope}")
    if state is TradingState.ACTIVE:
        return None
    status = view.states.status(scope)
    who = f"{status.reason.value if status.reason else 'kill switch'} by {status.by}"
    if state is TradingState.HALTED:
        return Reject(RiskReason.HALTED, f"{scope} is halted ({who})")
    return _reduce_only(intent, current, RiskReason.REDUCING_ONLY, f"{scope} is reducing ({who})")


def check_restricted(
    intent: OrderIntent, view: RiskView, limits: RiskLimits, now: datetime
) -> RuleResult:
    """A restricted symbol may only be reduced (a crossing is cut to close)."""
    if intent.symbol not in limits.restricted_symbols:
        return None
    current = view.exposure(intent.strategy_id, intent.symbol)
    return _reduce_only(
        intent, current, RiskReason.RESTRICTED_SYMBOL, f"{intent.symbol} is a restricted symbol"
    )


def check_price_collar(
    intent: OrderIntent, view: RiskView, limits: RiskLimits, now: datetime
) -> RuleResult:
    """Reject an order whose ref_price is more than ``price_collar_pct`` from the last price."""
    if limits.price_collar_pct is None:
        return None
    last = view.price(intent.symbol)
    if last is None:
        return Reject(RiskReason.NO_PRICE, f"no last price for {intent.symbol} to collar against")
    deviation = abs(intent.ref_price - last) / last * 100.0
    if _over(deviation, limits.price_collar_pct):
        return Reject(
            RiskReason.PRICE_COLLAR,
            f"ref_price {_m(intent.ref_price)} is {deviation:.2f}% from last {_m(last)} "
            f"> price_collar_pct {limits.price_collar_pct:g}%",
        )
    return None


def check_order_notional(
    intent: OrderIntent, view: RiskView, limits: RiskLimits, now: datetime
) -> RuleResult:
    """Cut an order whose |qty| x price exceeds ``max_order_notional``."""
    if limits.max_order_notional is None:
        return None
    px = _mark(intent, view)
    notional = abs(intent.qty) * px
    if not _over(notional, limits.max_order_notional):
        return None
    size = limits.max_order_notional / px
    detail = (
        f"notional {_m(notional)} > max_order_notional {_m(limits.max_order_notional)} "
        f"at price {_m(px)}"
    )
    return _cut_to(intent, 0.0, size, RiskReason.MAX_ORDER_NOTIONAL, detail)


def check_position(
    intent: OrderIntent, view: RiskView, limits: RiskLimits, now: datetime
) -> RuleResult:
    """Cut so that |position| x price stays within ``max_position_pct`` of strategy equity."""
    if limits.max_position_pct is None:
        return None
    current = view.exposure(intent.strategy_id, intent.symbol)
    if is_reducing(current, intent.qty):
        return None
    equity = _equity_or_reject(intent, view, RiskReason.MAX_POSITION)
    if isinstance(equity, Reject):
        return equity
    px = _mark(intent, view)
    cap = limits.max_position_pct / 100.0 * equity
    after = abs(current + intent.qty) * px
    if not _over(after, cap):
        return None
    detail = (
        f"position {_m(after)} would exceed max_position_pct {limits.max_position_pct:g}% "
        f"of equity {_m(equity)} ({_m(cap)})"
    )
    return _cut_to(intent, current, cap / px, RiskReason.MAX_POSITION, detail)


def check_gross_exposure(
    intent: OrderIntent, view: RiskView, limits: RiskLimits, now: datetime
) -> RuleResult:
    """Cut so that the strategy's gross exposure stays within ``max_gross_exposure_pct``."""
    if limits.max_gross_exposure_pct is None:
        return None
    current = view.exposure(intent.strategy_id, intent.symbol)
    if is_reducing(current, intent.qty):
        return None
    equity = _equity_or_reject(intent, view, RiskReason.MAX_GROSS_EXPOSURE)
    if isinstance(equity, Reject):
        return equity
    others = _gross_except(view, intent.strategy_id, intent.symbol)
    if isinstance(others, Reject):
        return others
    px = _mark(intent, view)
    cap = limits.max_gross_exposure_pct / 100.0 * equity
    after = others + abs(current + intent.qty) * px
    if not _over(after, cap):
        return None
    detail = (
        f"gross exposure {_m(after)} would exceed max_gross_exposure_pct "
        f"{limits.max_gross_exposure_pct:g}% of equity {_m(equity)} ({_m(cap)})"
    )
    return _cut_to(intent, current, (cap - others) / px, RiskReason.MAX_GROSS_EXPOSURE, detail)


def check_leverage(
    intent: OrderIntent, view: RiskView, limits: RiskLimits, now: datetime
) -> RuleResult:
    """Cut so that all strategies' gross exposure / total equity stays within ``max_leverage``."""
    if limits.max_leverage is None:
        return None
    current = view.exposure(intent.strategy_id, intent.symbol)
    if is_reducing(current, intent.qty):
        return None
    total_equity = view.total_equity
    if not math.isfinite(total_equity) or total_equity <= 0:
        return Reject(RiskReason.MAX_LEVERAGE, f"no positive total equity ({total_equity})")
    others = 0.0
    for sid in sorted(set(view.strategies()) | {intent.strategy_id}):
        part = _gross_except(view, sid, intent.symbol if sid == intent.strategy_id else None)
        if isinstance(part, Reject):
            return part
        others += part
    px = _mark(intent, view)
    cap = limits.max_leverage * total_equity
    after = others + abs(current + intent.qty) * px
    if not _over(after, cap):
        return None
    detail = (
        f"leverage {after / total_equity:.4g}x (gross {_m(after)}) would exceed max_leverage "
        f"{limits.max_leverage:g}x of total equity {_m(total_equity)}"
    )
    return _cut_to(intent, current, (cap - others) / px, RiskReason.MAX_LEVERAGE, detail)


def check_open_orders(
    intent: OrderIntent, view: RiskView, limits: RiskLimits, now: datetime
) -> RuleResult:
    """Reject when the strategy already has ``max_open_orders`` open orders."""
    if limits.max_open_orders is None:
        return None
    n = len(view.open_orders.get(intent.strategy_id, ()))
    if n >= limits.max_open_orders:
        return Reject(
            RiskReason.MAX_OPEN_ORDERS,
            f"strategy {intent.strategy_id} has {n} open orders, max_open_orders "
            f"{limits.max_open_orders}",
        )
    return None


def check_order_rate(
    intent: OrderIntent, view: RiskView, limits: RiskLimits, now: datetime
) -> RuleResult:
    """Reject when the strategy sent ``max_orders_per_minute`` orders in the 60 s before now."""
    if limits.max_orders_per_minute is None:
        return None
    n = sum(1 for t in view.order_times.get(intent.strategy_id, ()) if now - t < RATE_WINDOW)
    if n >= limits.max_orders_per_minute:
        return Reject(
            RiskReason.ORDER_RATE,
            f"strategy {intent.strategy_id} sent {n} orders in the last 60 s, "
            f"max_orders_per_minute {limits.max_orders_per_minute}",
        )
    return None


PRE_TRADE_RULES: Final[tuple[Rule, ...]] = (
    check_state,
    check_restricted,
    check_price_collar,
    check_order_notional,
    check_position,
    check_gross_exposure,
    check_leverage,
    check_open_orders,
    check_order_rate,
)
