"""Position accounting in numba: apply a fill to a position, write trade and rejection records.

State per simulated column is one row of a float64 array (``STATE_*`` indices); per-portfolio
counters are one row of the summary array (``SUM_*``). Both the backtest kernel and the paper
broker mutate them through these functions only.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "REJECTED_DTYPE",
    "STATE_WIDTH",
    "SUMMARY_FIELDS",
    "TRADE_DTYPE",
    "apply_fill_nb",
    "new_state",
    "record_rejection_nb",
]

# Per-column state (one float64 row per simulated column).
ST_POS = 0  # signed shares
ST_AVG = 1  # average entry price of the open position
ST_ENTRY_T = 2  # bar index the position opened
ST_ENTRY_COMM = 3  # entry commission not yet allocated to closed trades
ST_TGT = 4  # carried target weight
ST_PEND = 5  # pending order quantity (next_open fills)
ST_HAS_PEND = 6  # 1.0 when an order is pending
ST_LAST_CLOSE = 7  # last finite close, for marking
ST_STOPPED = 8  # 1.0 when a stop exit happened on the current bar
STATE_WIDTH = 9

# Per-portfolio summary (one float64 row per group).
SUMMARY_FIELDS = (
    "final_equity",
    "max_drawdown",
    "mean_return",
    "std_return",
    "downside_dev",
    "n_closed",
    "n_wins",
    "gross_profit",
    "gross_loss",
    "total_commission",
    "n_rejected",
    "n_fills",
    "exposure_bars",
    "n_bars",
)
SUM_FINAL_EQ = 0
SUM_MAX_DD = 1
SUM_MEAN_R = 2
SUM_STD_R = 3
SUM_DOWNSIDE = 4
SUM_N_CLOSED = 5
SUM_N_WINS = 6
SUM_GROSS_PROFIT = 7
SUM_GROSS_LOSS = 8
SUM_TOTAL_COMM = 9
SUM_N_REJECTED = 10
SUM_N_FILLS = 11
SUM_EXPOSURE_BARS = 12
SUM_N_BARS = 13

TRADE_DTYPE = np.dtype(
    [
        ("col", np.int64),
        ("side", np.int64),  # +1 long, -1 short
        ("qty", np.float64),
        ("entry_t", np.int64),
        ("entry_price", np.float64),
        ("exit_t", np.int64),  # -1 while open
        ("exit_price", np.float64),
        ("entry_commission", np.float64),
        ("exit_commission", np.float64),
        ("pnl", np.float64),
        ("exit_reason", np.int64),  # ExitReason code, -1 while open
    ],
    align=True,
)
REJECTED_DTYPE = np.dtype(
    [("col", np.int64), ("t", np.int64), ("qty", np.float64), ("reason", np.int64)], align=True
)


def new_state(n_cols: int) -> np.ndarray:
    """Fresh per-column state: flat, target 0, nothing pending, no close seen."""
    state = np.zeros((n_cols, STATE_WIDTH))
    state[:, ST_LAST_CLOSE] = np.nan
    state[:, ST_ENTRY_T] = -1
    return state


@njit(cache=True, error_model="numpy")
def _write_trade(
    trades: np.ndarray,
    k: int,
    col: int,
    side: int,
    qty: float,
    entry_t: int,
    entry_price: float,
    exit_t: int,
    exit_price: float,
    entry_comm: float,
    exit_comm: float,
    pnl: float,
    reason: int,
) -> None:
    rec = trades[k]
    rec["col"] = col
    rec["side"] = side
    rec["qty"] = qty
    rec["entry_t"] = entry_t
    rec["entry_price"] = entry_price
    rec["exit_t"] = exit_t
    rec["exit_price"] = exit_price
    rec["entry_commission"] = entry_comm
    rec["exit_commission"] = exit_comm
    rec["pnl"] = pnl
    rec["exit_reason"] = reason


@njit(cache=True, error_model="numpy")
def apply_fill_nb(
    state: np.ndarray,
    j: int,
    qty: float,
    price: float,
    comm: float,
    t: int,
    reason: int,
    summary_row: np.ndarray,
    trades: np.ndarray,
    n_trades: np.ndarray,
    g: int,
    trade_base: int,
    trade_cap: int,
) -> float:
    """Apply a fill of ``qty`` at ``price`` to column j; record the closed part; return cash delta.

    Reductions close part of the trade at the average entry price with a pro-rata share of
    the entry commission; a fill through zero closes the old trade and opens a new one, its
    commission split between the two by quantity.
    """
    pos = state[j, ST_POS]
    summary_row[SUM_TOTAL_COMM] += comm
    summary_row[SUM_N_FILLS] += 1
    if pos == 0 or (pos > 0) == (qty > 0):
        new_pos = pos + qty
        if pos == 0:
            state[j, ST_AVG] = price
            state[j, ST_ENTRY_T] = t
            state[j, ST_ENTRY_COMM] = comm
        else:
            state[j, ST_AVG] = (state[j, ST_AVG] * abs(pos) + price * abs(qty)) / abs(new_pos)
            state[j, ST_ENTRY_COMM] += comm
        state[j, ST_POS] = new_pos
        return -(qty * price) - comm

    closed = min(abs(qty), abs(pos))
    side = 1 if pos > 0 else -1
    entry_share = state[j, ST_ENTRY_COMM] * (closed / abs(pos))
    exit_comm = comm * (closed / abs(qty))
    pnl = side * (price - state[j, ST_AVG]) * closed - entry_share - exit_comm
    summary_row[SUM_N_CLOSED] += 1
    if pnl > 0:
        summary_row[SUM_N_WINS] += 1
        summary_row[SUM_GROSS_PROFIT] += pnl
    else:
        summary_row[SUM_GROSS_LOSS] -= pnl
    k = n_trades[g]
    if k < trade_cap:
        _write_trade(
            trades, trade_base + k, j, side, closed, int(state[j, ST_ENTRY_T]),
            state[j, ST_AVG], t, price, entry_share, exit_comm, pnl, reason,
        )  # fmt: skip
    n_trades[g] = k + 1
    new_pos = pos + qty
    if abs(qty) > abs(pos):  # through zero: the rest opens a new trade
        state[j, ST_AVG] = price
        state[j, ST_ENTRY_T] = t
        state[j, ST_ENTRY_COMM] = comm - exit_comm
    elif new_pos == 0:
        state[j, ST_AVG] = 0.0
        state[j, ST_ENTRY_T] = -1
        state[j, ST_ENTRY_COMM] = 0.0
    else:
        state[j, ST_ENTRY_COMM] -= entry_share
    state[j, ST_POS] = new_pos
    return -(qty * price) - comm


@njit(cache=True, error_model="numpy")
def record_rejection_nb(
    rejected: np.ndarray,
    n_rejected: np.ndarray,
    g: int,
    base: int,
    cap: int,
    j: int,
    t: int,
    qty: float,
    reason: int,
    summary_row: np.ndarray,
) -> None:
    """Count a rejected order and record it while the group's buffer has room."""
    summary_row[SUM_N_REJECTED] += 1
    k = n_rejected[g]
    if k < cap:
        rec = rejected[base + k]
        rec["col"] = j
        rec["t"] = t
        rec["qty"] = qty
        rec["reason"] = reason
    n_rejected[g] = k + 1
