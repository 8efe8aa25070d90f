"""The path-dependent backtest loop, compiled with numba.

One call simulates many portfolios ("groups") side by side, in parallel threads. A group is a
contiguous run of columns sharing one cash balance; each column trades one price series
(``price_col``) with its own target weights. A parameter sweep is many one-column groups over
shared price arrays; a portfolio backtest is one group of many columns. The per-bar order of
events is docs/semantics.md, step by step.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from core.accounting_nb import (
    ST_AVG,
    ST_HAS_PEND,
    ST_LAST_CLOSE,
    ST_PEND,
    ST_POS,
    ST_STOPPED,
    ST_TGT,
    SUM_DOWNSIDE,
    SUM_EXPOSURE_BARS,
    SUM_FINAL_EQ,
    SUM_MAX_DD,
    SUM_MEAN_R,
    SUM_N_BARS,
    SUM_STD_R,
    apply_fill_nb,
    record_rejection_nb,
)
from core.fills_nb import (
    NO_STOP,
    commission_nb,
    gap_stop_nb,
    increases_exposure_nb,
    intrabar_stop_nb,
    slipped_price_nb,
    target_shares_nb,
)

__all__ = ["count_target_changes_nb", "simulate_nb"]

REJ_INSUFFICIENT_CASH = 0  # RejectReason codes
REJ_INSUFFICIENT_MARGIN = 1
REJ_NO_PRICE = 2
FLOAT_TOL = 1e-9  # relative slack in affordability checks, so float rounding never rejects


@njit(cache=True, error_model="numpy")
def count_target_changes_nb(weights: np.ndarray) -> np.ndarray:
    """Per column, how often the carried target changes (bounds the records a run can make)."""
    n_bars, n_cols = weights.shape
    out = np.zeros(n_cols, np.int64)
    for j in range(n_cols):
        carried = 0.0
        for t in range(n_bars):
            w = weights[t, j]
            if w == w and w != carried:
                carried = w
                out[j] += 1
    return out


@njit(cache=True, error_model="numpy")
def _mark_nb(state: np.ndarray, j: int, price: float) -> float:
    """Mark price of column j: the given price when finite, else the last close seen."""
    if price == price:
        return price
    return state[j, ST_LAST_CLOSE]


@njit(cache=True, error_model="numpy")
def _equity_nb(
    state: np.ndarray, prices: np.ndarray, price_col: np.ndarray, c0: int, c1: int, cash: float
) -> float:
    """Cash plus every position marked at ``prices`` (last close where NaN)."""
    eq = cash
    for j in range(c0, c1):
        pos = state[j, ST_POS]
        if pos != 0:
            eq += pos * _mark_nb(state, j, prices[price_col[j]])
    return eq


@njit(cache=True, error_model="numpy")
def _gross_except_nb(
    state: np.ndarray, prices: np.ndarray, price_col: np.ndarray, c0: int, c1: int, skip: int
) -> float:
    """Gross exposure of every column but ``skip``, marked at ``prices``."""
    gross = 0.0
    for j in range(c0, c1):
        pos = state[j, ST_POS]
        if j != skip and pos != 0:
            gross += abs(pos) * _mark_nb(state, j, prices[price_col[j]])
    return gross


@njit(cache=True, error_model="numpy")
def _execute_pending_nb(
    g, c0, c1, t, prices, price_col, cash, state, summary, leverage, comm_rate, comm_fixed,
    slip, trades, trade_base, trade_cap, n_trades, rejected, rej_base, rej_cap, n_rejected,
):  # fmt: skip
    """Fill the group's pending orders at ``prices``: sells first, then buys, in column order."""
    for phase in range(2):
        for j in range(c0, c1):
            if state[j, ST_HAS_PEND] == 0.0:
                continue
            qty = state[j, ST_PEND]
            if (phase == 0) != (qty < 0):
                continue
            state[j, ST_HAS_PEND] = 0.0
            if state[j, ST_STOPPED] != 0.0:
                continue  # an exit by stop wins over a same-bar signal
            raw = prices[price_col[j]]
            if raw != raw:
                record_rejection_nb(
                    rejected, n_rejected, g, rej_base, rej_cap, j, t, qty, REJ_NO_PRICE, summary[g]
                )
                continue
            price = slipped_price_nb(raw, qty, slip)
            comm = commission_nb(qty, price, comm_rate, comm_fixed)
            pos = state[j, ST_POS]
            if increases_exposure_nb(pos, qty):
                eq = _equity_nb(state, prices, price_col, c0, c1, cash)
                slack = FLOAT_TOL * abs(eq)
                if qty > 0 and cash - qty * price - comm < -(leverage - 1.0) * eq - slack:
                    record_rejection_nb(
                        rejected, n_rejected, g, rej_base, rej_cap, j, t, qty,
                        REJ_INSUFFICIENT_CASH, summary[g],
                    )  # fmt: skip
                    continue
                gross = _gross_except_nb(state, prices, price_col, c0, c1, j)
                if gross + abs(pos + qty) * price > leverage * eq + slack:
                    record_rejection_nb(
                        rejected, n_rejected, g, rej_base, rej_cap, j, t, qty,
                        REJ_INSUFFICIENT_MARGIN, summary[g],
                    )  # fmt: skip
                    continue
            cash += apply_fill_nb(
                state, j, qty, price, comm, t, 0, summary[g], trades, n_trades, g,
                trade_base, trade_cap,
            )  # fmt: skip
            if state[j, ST_LAST_CLOSE] != state[j, ST_LAST_CLOSE]:
                state[j, ST_LAST_CLOSE] = state[j, ST_AVG]  # no close seen yet: mark at entry
    return cash


@njit(cache=True, error_model="numpy")
def _stop_exit_nb(g, j, t, code, price, state, summary, comm_rate, comm_fixed, trades,
                  trade_base, trade_cap, n_trades):  # fmt: skip
    """Close column j's whole position at a stop price and mark it stopped for this bar."""
    qty = -state[j, ST_POS]
    comm = commission_nb(qty, price, comm_rate, comm_fixed)
    state[j, ST_STOPPED] = 1.0
    return apply_fill_nb(
        state, j, qty, price, comm, t, code, summary[g], trades, n_trades, g, trade_base, trade_cap
    )


@njit(cache=True, error_model="numpy", inline="always")
def _stats_step_nb(eq, prev_eq, peak, max_dd, dd_floor, sum_r, sum_r2, down2):  # fmt: skip
    """Fold one bar's equity into the streaming statistics; returns them updated.

    An unchanged equity adds a zero return: nothing to accumulate. ``dd_floor`` is the equity
    below which a new maximum drawdown starts, ``peak * (1 - max_dd)``.
    """
    if eq != prev_eq:
        r = eq / prev_eq - 1.0
        prev_eq = eq
        sum_r += r
        sum_r2 += r * r
        neg = min(r, 0.0)  # branch-free: the sign of a return is a coin flip
        down2 += neg * neg
        if eq > peak:
            peak = eq
            dd_floor = peak * (1.0 - max_dd)
        elif eq < dd_floor:
            max_dd = 1.0 - eq / peak
            dd_floor = eq
    return prev_eq, peak, max_dd, dd_floor, sum_r, sum_r2, down2


@njit(cache=True, error_model="numpy")
def _finish_summary_nb(row, final_eq, max_dd, sum_r, sum_r2, down2, exposure, n_bars):
    """Write a portfolio's streaming statistics into its summary row."""
    row[SUM_FINAL_EQ] = final_eq
    row[SUM_MAX_DD] = max_dd
    mean_r = sum_r / n_bars
    row[SUM_MEAN_R] = mean_r
    var = (sum_r2 - sum_r * mean_r) / (n_bars - 1) if n_bars > 1 else math.nan
    row[SUM_STD_R] = math.sqrt(max(var, 0.0))
    row[SUM_DOWNSIDE] = math.sqrt(down2 / n_bars)
    row[SUM_EXPOSURE_BARS] = exposure
    row[SUM_N_BARS] = n_bars


@njit(cache=True, error_model="numpy")
def _run_group_nb(
    g, c0, c1, open_, high, low, close, weights, price_col, cash0, sl, tp, fill_close, size_pct,
    fractional, comm_rate, comm_fixed, slip, leverage, every_bar, min_trade_frac, state, summary,
    equity_out, record_equity, cash_out, pos_out, record_detail, trades, trade_base, trade_cap,
    n_trades, rejected, rej_base, rej_cap, n_rejected,
):  # fmt: skip
    """Simulate one portfolio over every bar; see docs/semantics.md for the order of events."""
    n_bars = close.shape[0]
    cash = cash0
    prev_eq = cash0
    peak = cash0
    max_dd = 0.0
    dd_floor = cash0  # equity below this sets a new max drawdown: peak * (1 - max_dd)
    sum_r = 0.0
    sum_r2 = 0.0
    down2 = 0.0
    exposure = 0.0
    n_pending = 0
    has_stops = False
    for j in range(c0, c1):
        if sl[j] == sl[j] or tp[j] == tp[j]:
            has_stops = True
    for t in range(n_bars):
        if has_stops:
            for j in range(c0, c1):
                state[j, ST_STOPPED] = 0.0
        # 1. open: gap stops, then the orders decided on the previous close
        if not fill_close:
            if has_stops:
                for j in range(c0, c1):
                    pos = state[j, ST_POS]
                    if pos != 0:
                        code, price = gap_stop_nb(
                            pos, state[j, ST_AVG], sl[j], tp[j], open_[t, price_col[j]], slip
                        )
                        if code != NO_STOP:
                            cash += _stop_exit_nb(g, j, t, code, price, state, summary, comm_rate,
                                                  comm_fixed, trades, trade_base, trade_cap,
                                                  n_trades)  # fmt: skip
            if n_pending > 0:
                cash = _execute_pending_nb(
                    g, c0, c1, t, open_[t], price_col, cash, state, summary, leverage, comm_rate,
                    comm_fixed, slip, trades, trade_base, trade_cap, n_trades, rejected, rej_base,
                    rej_cap, n_rejected,
                )  # fmt: skip
                n_pending = 0
        # 2. intrabar stops (with fill=close, a gap through a level is decided here)
        if has_stops:
            for j in range(c0, c1):
                pos = state[j, ST_POS]
                if pos != 0 and state[j, ST_STOPPED] == 0.0:
                    p = price_col[j]
                    code, price = intrabar_stop_nb(
                        pos, state[j, ST_AVG], sl[j], tp[j], open_[t, p], high[t, p], low[t, p],
                        slip, fill_close,
                    )  # fmt: skip
                    if code != NO_STOP:
                        cash += _stop_exit_nb(g, j, t, code, price, state, summary, comm_rate,
                                              comm_fixed, trades, trade_base, trade_cap,
                                              n_trades)  # fmt: skip
        # 3. close: mark, turn target changes into orders
        eq = cash
        held = False
        for j in range(c0, c1):
            c = close[t, price_col[j]]
            if c == c:
                state[j, ST_LAST_CLOSE] = c
            pos = state[j, ST_POS]
            if pos != 0:
                eq += pos * state[j, ST_LAST_CLOSE]
                held = True
        for j in range(c0, c1):
            w = weights[t, j]
            prev = state[j, ST_TGT]
            if w == w:
                state[j, ST_TGT] = w
            elif not every_bar:
                continue
            target = state[j, ST_TGT]
            if (not every_bar and target == prev) or state[j, ST_STOPPED] != 0.0:
                continue
            c = close[t, price_col[j]]
            if c != c:
                continue
            qty = target_shares_nb(target, eq, size_pct, c, fractional) - state[j, ST_POS]
            if qty == 0 or (every_bar and abs(qty) * c < min_trade_frac * eq):
                continue
            state[j, ST_PEND] = qty
            state[j, ST_HAS_PEND] = 1.0
            n_pending += 1
        if fill_close and n_pending > 0:
            cash = _execute_pending_nb(
                g, c0, c1, t, close[t], price_col, cash, state, summary, leverage, comm_rate,
                comm_fixed, slip, trades, trade_base, trade_cap, n_trades, rejected, rej_base,
                rej_cap, n_rejected,
            )  # fmt: skip
            n_pending = 0
            # 4. re-mark after close fills (cash moved by costs, positions changed)
            eq = cash
            held = False
            for j in range(c0, c1):
                pos = state[j, ST_POS]
                if pos != 0:
                    eq += pos * state[j, ST_LAST_CLOSE]
                    held = True
        if record_equity:
            equity_out[t, g] = eq
        if record_detail:
            cash_out[t, g] = cash
            for j in range(c0, c1):
                pos_out[t, j] = state[j, ST_POS]
        if held:
            exposure += 1.0
        prev_eq, peak, max_dd, dd_floor, sum_r, sum_r2, down2 = _stats_step_nb(
            eq, prev_eq, peak, max_dd, dd_floor, sum_r, sum_r2, down2
        )
    _finish_summary_nb(summary[g], prev_eq, max_dd, sum_r, sum_r2, down2, exposure, n_bars)

@njit(cache=True, error_model="numpy")
def _single_events_nb(
    g, j, t, p, cash, pos, last_close, pending, has_stops, open_, high, low, price_col, sl, tp,
    fill_close, slip, leverage, comm_rate, comm_fixed, state, summary, trades, trade_base,
    trade_cap, n_trades, rejected, rej_base, rej_cap, n_rejected,
):  # fmt: skip
    """Steps 1-2 of a bar for a one-column portfolio: gap stops, the pending fill, intrabar
    stops. Returns the new (cash, shares, last close, stopped on this bar)."""
    stopped = False
    if has_stops and pos != 0 and not fill_close:  # 1.1 gap stops at the open
        code, price = gap_stop_nb(pos, state[j, ST_AVG], sl[j], tp[j], open_[t, p], slip)
        if code != NO_STOP:
            cash += _stop_exit_nb(g, j, t, code, price, state, summary, comm_rate, comm_fixed,
                                  trades, trade_base, trade_cap, n_trades)  # fmt: skip
            pos = 0.0
            stopped = True
    if pending:  # 1.2 the order decided at the previous close (next_open only)
        if stopped:
            state[j, ST_HAS_PEND] = 0.0  # an exit by stop wins over a same-bar signal
        else:
            state[j, ST_LAST_CLOSE] = last_close
            state[j, ST_STOPPED] = 0.0
            cash = _execute_pending_nb(
                g, j, j + 1, t, open_[t], price_col, cash, state, summary, leverage, comm_rate,
                comm_fixed, slip, trades, trade_base, trade_cap, n_trades, rejected, rej_base,
                rej_cap, n_rejected,
            )  # fmt: skip
            pos = state[j, ST_POS]
            last_close = state[j, ST_LAST_CLOSE]
    if has_stops and pos != 0 and not stopped:  # 2. intrabar stops
        code, price = intrabar_stop_nb(
            pos, state[j, ST_AVG], sl[j], tp[j], open_[t, p], high[t, p], low[t, p], slip,
            fill_close,
        )  # fmt: skip
        if code != NO_STOP:
            cash += _stop_exit_nb(g, j, t, code, price, state, summary, comm_rate, comm_fixed,
                                  trades, trade_base, trade_cap, n_trades)  # fmt: skip
            pos = 0.0
            stopped = True
    return cash, pos, last_close, stopped


@njit(cache=True, error_model="numpy")
def _run_single_nb(
    g, j, open_, high, low, close, weights, price_col, cash0, sl, tp, fill_close, size_pct,
    fractional, comm_rate, comm_fixed, slip, leverage, every_bar, min_trade_frac, state, summary,
    equity_out, record_equity, cash_out, pos_out, record_detail, trades, trade_base, trade_cap,
    n_trades, rejected, rej_base, rej_cap, n_rejected,
):  # fmt: skip
    """One-column portfolio: the same events as _run_group_nb with the hot state in registers.

    Quiet bars (no order, no stop) touch only local variables; every event goes through the
    shared functions (fills, stops, rejections) after writing the locals back to ``state``.
    """
    n_bars = close.shape[0]
    p = price_col[j]
    cash = cash0
    prev_eq = cash0
    peak = cash0
    max_dd = 0.0
    dd_floor = cash0
    sum_r = 0.0
    sum_r2 = 0.0
    down2 = 0.0
    exposure = 0.0
    has_stops = sl[j] == sl[j] or tp[j] == tp[j]
    pos = state[j, ST_POS]
    tgt = state[j, ST_TGT]
    last_close = state[j, ST_LAST_CLOSE]
    pending = False
    t = -1
    while t + 1 < n_bars:
        t += 1
        if not (every_bar or pending or (has_stops and pos != 0)):
            # Quiet bars (no pending order, no live stop, target unchanged): only the mark and
            # the statistics. A tight loop of its own, so the rare-event code below does not
            # crowd the registers of the common case.
            while True:
                c = close[t, p]
                if c == c:
                    last_close = c
                w = weights[t, j]
                if w == w and w != tgt:
                    break  # a target change: this bar takes the full path below
                eq = cash + pos * last_close if pos != 0 else cash
                if record_equity:
                    equity_out[t, g] = eq
                if record_detail:
                    cash_out[t, g] = cash
                    pos_out[t, j] = pos
                if pos != 0:
                    exposure += 1.0
                prev_eq, peak, max_dd, dd_floor, sum_r, sum_r2, down2 = _stats_step_nb(
                    eq, prev_eq, peak, max_dd, dd_floor, sum_r, sum_r2, down2
                )
                t += 1
                if t == n_bars:
                    break
            if t == n_bars:
                break
        stopped = False
        if pending or (has_stops and pos != 0):  # rare: stops and fills live apart
            cash, pos, last_close, stopped = _single_events_nb(
                g, j, t, p, cash, pos, last_close, pending, has_stops, open_, high, low,
                price_col, sl, tp, fill_close, slip, leverage, comm_rate, comm_fixed, state,
                summary, trades, trade_base, trade_cap, n_trades, rejected, rej_base, rej_cap,
                n_rejected,
            )  # fmt: skip
            pending = False
        # 3. close
        c = close[t, p]
        if c == c:
            last_close = c
        eq = cash + pos * last_close if pos != 0 else cash
        w = weights[t, j]
        prev = tgt
        if w == w:
            tgt = w
        if (every_bar or tgt != prev) and not stopped and c == c:
            qty = target_shares_nb(tgt, eq, size_pct, c, fractional) - pos
            if qty != 0 and not (every_bar and abs(qty) * c < min_trade_frac * eq):
                state[j, ST_PEND] = qty
                state[j, ST_HAS_PEND] = 1.0
                if fill_close:
                    state[j, ST_LAST_CLOSE] = last_close
                    state[j, ST_STOPPED] = 0.0
                    cash = _execute_pending_nb(
                        g, j, j + 1, t, close[t], price_col, cash, state, summary, leverage,
                        comm_rate, comm_fixed, slip, trades, trade_base, trade_cap, n_trades,
                        rejected, rej_base, rej_cap, n_rejected,
                    )  # fmt: skip
                    pos = state[j, ST_POS]
                    last_close = state[j, ST_LAST_CLOSE]
                    eq = cash + pos * last_close if pos != 0 else cash
                else:
                    pending = True
        # 4. mark and statistics
        if record_equity:
            equity_out[t, g] = eq
        if record_detail:
            cash_out[t, g] = cash
            pos_out[t, j] = pos
        if pos != 0:
            exposure += 1.0
        prev_eq, peak, max_dd, dd_floor, sum_r, sum_r2, down2 = _stats_step_nb(
            eq, prev_eq, peak, max_dd, dd_floor, sum_r, sum_r2, down2
        )
    state[j, ST_POS] = pos
    state[j, ST_TGT] = tgt
    state[j, ST_LAST_CLOSE] = last_close
    _finish_summary_nb(summary[g], prev_eq, max_dd, sum_r, sum_r2, down2, exposure, n_bars)


@njit(parallel=True, cache=True, error_model="numpy")
def simulate_nb(
    open_, high, low, close, weights, price_col, group_start, group_len, cash0, sl, tp, fill_close,
    size_pct, fractional, comm_rate, comm_fixed, slip, leverage, every_bar, min_trade_frac, state,
    summary, equity_out, record_equity, cash_out, pos_out, record_detail, trades, trade_base,
    trade_cap, n_trades, rejected, rej_base, rej_cap, n_rejected,
):  # fmt: skip
    """Simulate every group in parallel; all outputs are preallocated by the caller.

    Prices are (T x P); weights, sl, tp, price_col and state are per column; cash0, group
    bounds, summary rows, record bases/caps and counters are per group. ``sl``/``tp`` are
    fractions (NaN = off); rates are fractions; ``equity_out`` and ``cash_out`` are (T x G) and
    ``pos_out`` (T x C) when recorded, dummies otherwise.
    """
    for g in prange(len(group_start)):
        c0 = group_start[g]
        if group_len[g] == 1:
            _run_single_nb(
                g, c0, open_, high, low, close, weights, price_col, cash0[g], sl, tp, fill_close,
                size_pct, fractional, comm_rate, comm_fixed, slip, leverage, every_bar,
                min_trade_frac, state, summary, equity_out, record_equity, cash_out, pos_out,
                record_detail, trades, trade_base[g], trade_cap[g], n_trades, rejected,
                rej_base[g], rej_cap[g], n_rejected,
            )  # fmt: skip
            continue
        _run_group_nb(
            g, c0, c0 + group_len[g], open_, high, low, close, weights, price_col, cash0[g], sl,
            tp, fill_close, size_pct, fractional, comm_rate, comm_fixed, slip, leverage,
            every_bar, min_trade_frac, state, summary, equity_out, record_equity, cash_out,
            pos_out, record_detail, trades, trade_base[g], trade_cap[g], n_trades, rejected,
            rej_base[g], rej_cap[g], n_rejected,
        )  # fmt: skip
