"""The fill model as scalar numba functions, shared by the backtest kernel and the paper broker.

Prices, costs, sizing and stop levels live here once, so a backtest and a live paper run
cannot disagree about how an order fills (see docs/semantics.md).
"""

from __future__ import annotations

import math

from numba import njit

__all__ = [
    "NO_STOP",
    "STOP_LOSS_HIT",
    "TAKE_PROFIT_HIT",
    "commission_nb",
    "gap_stop_nb",
    "increases_exposure_nb",
    "intrabar_stop_nb",
    "slipped_price_nb",
    "stop_levels_nb",
    "target_shares_nb",
]

NO_STOP = -1
STOP_LOSS_HIT = 1  # equals ExitReason.STOP_LOSS
TAKE_PROFIT_HIT = 2  # equals ExitReason.TAKE_PROFIT


@njit(cache=True, error_model="numpy")
def slipped_price_nb(price: float, qty: float, slip: float) -> float:
    """Market fill price: slippage (a fraction) moves the price against the trader."""
    if qty > 0:
        return price * (1.0 + slip)
    return price * (1.0 - slip)


@njit(cache=True, error_model="numpy")
def commission_nb(qty: float, price: float, rate: float, fixed: float) -> float:
    """Commission of one fill: a rate of traded notional plus a fixed fee per order."""
    return abs(qty) * price * rate + fixed


@njit(cache=True, error_model="numpy")
def target_shares_nb(
    target: float, equity: float, size_pct: float, close: float, fractional: bool
) -> float:
    """Shares a target weight asks for: ``target * equity * size_pct / close``, toward zero."""
    raw = target * equity * size_pct / close
    if fractional:
        return raw
    if raw >= 0:
        return math.floor(raw)
    return -math.floor(-raw)


@njit(cache=True, error_model="numpy")
def increases_exposure_nb(pos: float, qty: float) -> bool:
    """Whether a fill leaves the position long and larger, or short and larger."""
    after = pos + qty
    if qty > 0:
        return after > 0 and after > max(pos, 0.0)
    if qty < 0:
        return after < 0 and after < min(pos, 0.0)
    return False


@njit(cache=True, error_model="numpy")
def stop_levels_nb(entry: float, pos: float, sl: float, tp: float) -> tuple[float, float]:
    """Stop-loss and take-profit prices (NaN when off) for a position; sl/tp are fractions."""
    if pos > 0:
        return entry * (1.0 - sl), entry * (1.0 + tp)
    return entry * (1.0 + sl), entry * (1.0 - tp)


@njit(cache=True, error_model="numpy")
def gap_stop_nb(
    pos: float, entry: float, sl: float, tp: float, open_: float, slip: float
) -> tuple[int, float]:
    """Stop decided by the open alone (a gap through a level): (code, fill price) or NO_STOP."""
    if pos == 0 or math.isnan(open_):
        return NO_STOP, math.nan
    sl_level, tp_level = stop_levels_nb(entry, pos, sl, tp)
    if pos > 0:
        if open_ <= sl_level:  # NaN level compares False: stop off
            return STOP_LOSS_HIT, slipped_price_nb(open_, -pos, slip)
        if open_ >= tp_level:
            return TAKE_PROFIT_HIT, open_
    else:
        if open_ >= sl_level:
            return STOP_LOSS_HIT, slipped_price_nb(open_, -pos, slip)
        if open_ <= tp_level:
            return TAKE_PROFIT_HIT, open_
    return NO_STOP, math.nan


@njit(cache=True, error_model="numpy")
def intrabar_stop_nb(
    pos: float,
    entry: float,
    sl: float,
    tp: float,
    open_: float,
    high: float,
    low: float,
    slip: float,
    check_gap: bool,
) -> tuple[int, float]:
    """Stop reached within the bar: stop-loss first, the open when it gapped through (check_gap)."""
    if pos == 0 or math.isnan(high) or math.isnan(low):
        return NO_STOP, math.nan
    if check_gap:
        code, price = gap_stop_nb(pos, entry, sl, tp, open_, slip)
        if code != NO_STOP:
            return code, price
    sl_level, tp_level = stop_levels_nb(entry, pos, sl, tp)
    if pos > 0:
        if low <= sl_level:
            return STOP_LOSS_HIT, slipped_price_nb(sl_level, -pos, slip)
        if high >= tp_level:
            return TAKE_PROFIT_HIT, tp_level
    else:
        if high >= sl_level:
            return STOP_LOSS_HIT, slipped_price_nb(sl_level, -pos, slip)
        if low <= tp_level:
            return TAKE_PROFIT_HIT, tp_level
    return NO_STOP, math.nan
