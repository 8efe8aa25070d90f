"""Hand-written, single-purpose numba loops: the practical speed limit for W1 and W2.

Each computes SMA(fast) and SMA(slow) with running sums, detects crossovers with the same
1e-10 tie tolerance as raytrader, and trades all-in long-only at the close with a
proportional fee -- nothing else (no stops, no shared cash, no records).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

TOL = 1e-10


@njit(cache=True, error_model="numpy")
def sma_cross_all_in_nb(close: np.ndarray, fast: int, slow: int, fee: float, cash0: float) -> float:
    """Final equity of one SMA-crossover run on one price series (close fills, all-in long)."""
    n = close.shape[0]
    sum_f = 0.0
    sum_s = 0.0
    prev_state = 0  # cmp of fast vs slow at t-1: +1, -1, 0 (tie), 2 = undefined
    prev_state = 2
    cash = cash0
    shares = 0.0
    for t in range(n):
        c = close[t]
        sum_f += c
        sum_s += c
        if t >= fast:
            sum_f -= close[t - fast]
        if t >= slow:
            sum_s -= close[t - slow]
        if t < slow - 1:
            continue
        mf = sum_f / fast
        ms = sum_s / slow
        diff = mf - ms
        tol = TOL * abs(ms)
        state = 1 if diff > tol else (-1 if diff < -tol else 0)
        if prev_state != 2:
            if state == 1 and prev_state <= 0 and shares == 0.0:
                shares = cash / (c * (1.0 + fee))
                cash -= shares * c * (1.0 + fee)
            elif state == -1 and prev_state >= 0 and shares > 0.0:
                cash += shares * c * (1.0 - fee)
                shares = 0.0
        prev_state = state
    return cash + shares * close[n - 1]


@njit(parallel=True, cache=True, error_model="numpy")
def sma_grid_all_in_nb(
    close: np.ndarray, fast: np.ndarray, slow: np.ndarray, fee: float, cash0: float
) -> np.ndarray:
    """Final equity of every (pair, symbol): column p * n_symbols + s, in parallel threads."""
    n_sym = close.shape[1]
    n_runs = len(fast) * n_sym
    out = np.empty(n_runs)
    closes = np.asfortranarray(close)
    for k in prange(n_runs):
        p = k // n_sym
        s = k % n_sym
        out[k] = sma_cross_all_in_nb(closes[:, s], fast[p], slow[p], fee, cash0)
    return out


@njit(parallel=True, cache=True, error_model="numpy")
def mc_paths_nb(returns: np.ndarray, keys: np.ndarray, steps: int) -> np.ndarray:
    """W3: i.i.d. bootstrap paths, one SplitMix64 stream per path key (the stream raytrader
    uses, so the numbers are identical), written apart from raytrader's kernel. Per path the
    same statistics as raytrader's (final return, max drawdown, Sharpe, minimum equity) but
    no fan chart: columns of the (paths x 4) result, annualized with 252.
    """
    n = returns.shape[0]
    out = np.empty((keys.shape[0], 4))
    golden = np.uint64(0x9E3779B97F4A7C15)
    m1 = np.uint64(0xBF58476D1CE4E5B9)
    m2 = np.uint64(0x94D049BB133111EB)
    for p in prange(keys.shape[0]):
        x = keys[p]
        eq = 1.0
        peak = 1.0
        worst = 0.0
        low = 1.0
        s = 0.0
        s2 = 0.0
        for _ in range(steps):
            x = x + golden
            z = (x ^ (x >> np.uint64(30))) * m1
            z = (z ^ (z >> np.uint64(27))) * m2
            z = z ^ (z >> np.uint64(31))
            r = returns[int(float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0) * n)]
            eq *= 1.0 + r
            s += r
            s2 += r * r
            peak = max(peak, eq)
            worst = max(worst, 1.0 - eq / peak)
            low = min(low, eq)
        mean = s / steps
        out[p, 0] = eq - 1.0
        out[p, 1] = worst
        out[p, 2] = mean / np.sqrt((s2 - steps * mean * mean) / (steps - 1)) * np.sqrt(252.0)
        out[p, 3] = low
    return out
