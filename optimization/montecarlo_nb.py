"""Numba kernels of the Monte Carlo paths: one pass per path, statistics kept on the fly.

Every path draws from its own SplitMix64 stream seeded with a 64-bit key (derived from the
job's seed by ``optimization.montecarlo.path_keys``), so a path's numbers do not depend on
the thread or worker that computes it. Equity is relative (starts at 1).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["bootstrap_paths_nb", "reshuffle_trades_nb", "splitmix64_nb"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_UNIT = 1.0 / 9007199254740992.0  # 2**-53


@njit(cache=True, inline="always")
def splitmix64_nb(state: np.uint64) -> tuple[np.uint64, np.uint64]:
    """Advance a SplitMix64 state; returns (new state, 64 random bits)."""
    state = state + _GOLDEN
    z = state
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return state, z ^ (z >> _S31)


@njit(cache=True, inline="always")
def _unit(bits: np.uint64) -> float:
    """A uniform float in [0, 1) from the top 53 bits."""
    return float(bits >> _S11) * _UNIT


@njit(cache=True, inline="always")
def _finish(s: float, s2: float, n: int, ppy: float) -> float:
    if n < 2:
        return np.nan
    mean = s / n
    var = (s2 - n * mean * mean) / (n - 1)
    return mean / math.sqrt(var) * math.sqrt(ppy) if var > 0 else np.nan


@njit(parallel=True, cache=True, error_model="numpy")
def bootstrap_paths_nb(
    returns: np.ndarray,
    keys: np.ndarray,
    steps: int,
    p_new_block: float,
    ppy: float,
    fan_steps: np.ndarray,
    final: np.ndarray,
    max_dd: np.ndarray,
    sharpe: np.ndarray,
    min_equity: np.ndarray,
    fan: np.ndarray,
) -> None:
    """Resample ``returns`` into ``len(keys)`` paths of ``steps`` bars.

    ``p_new_block`` = 1 draws every bar independently (i.i.d. bootstrap); below 1 it is the
    stationary bootstrap of Politis & Romano: each bar starts a new block at a uniform index
    with that probability, else continues the block (wrapping around the end). Outputs per
    path: final return, max drawdown, annualized Sharpe of the path's returns, minimum
    equity, and equity after each bar index in ``fan_steps`` (sorted).
    """
    n = returns.shape[0]
    n_fan = fan_steps.shape[0]
    iid = p_new_block >= 1.0
    for p in prange(keys.shape[0]):
        state = keys[p]
        eq = 1.0
        peak = 1.0
        mdd = 0.0
        low = 1.0
        s = 0.0
        s2 = 0.0
        idx = 0
        k = 0
        nxt = fan_steps[0] if n_fan > 0 else -1
        for t in range(steps):
            state, bits = splitmix64_nb(state)
            if iid:
                idx = int(_unit(bits) * n)
            elif t == 0 or _unit(bits) < p_new_block:
                state, bits = splitmix64_nb(state)
                idx = int(_unit(bits) * n)
            else:
                idx += 1
                if idx == n:
                    idx = 0
            r = returns[idx]
            eq *= 1.0 + r
            s += r
            s2 += r * r
            # max/min, not ifs: branch-free running statistics run about twice as fast here
            # (the branches are data-dependent and mispredict); the values are the same.
            peak = max(peak, eq)
            mdd = max(mdd, 1.0 - eq / peak)
            low = min(low, eq)
            if t == nxt:
                fan[p, k] = eq
                k += 1
                nxt = fan_steps[k] if k < n_fan else -1
        final[p] = eq - 1.0
        max_dd[p] = mdd
        sharpe[p] = _finish(s, s2, steps, ppy)
        min_equity[p] = low


@njit(parallel=True, cache=True, error_model="numpy")
def reshuffle_trades_nb(
    pnl: np.ndarray,
    cash: float,
    keys: np.ndarray,
    ppy: float,
    fan_steps: np.ndarray,
    final: np.ndarray,
    max_dd: np.ndarray,
    sharpe: np.ndarray,
    min_equity: np.ndarray,
    fan: np.ndarray,
) -> None:
    """Replay the closed trades' pnl in a random order (Fisher-Yates) per path.

    The final return is the same on every path (a sum does not depend on order); drawdown,
    minimum equity and the per-trade Sharpe (annualized with ``ppy`` trades a year) do.
    """
    n = pnl.shape[0]
    n_fan = fan_steps.shape[0]
    for p in prange(keys.shape[0]):
        state = keys[p]
        order = np.arange(n)
        for i in range(n - 1, 0, -1):
            state, bits = splitmix64_nb(state)
            j = int(_unit(bits) * (i + 1))
            order[i], order[j] = order[j], order[i]
        eq = 1.0
        peak = 1.0
        mdd = 0.0
        low = 1.0
        s = 0.0
        s2 = 0.0
        k = 0
        for t in range(n):
            r = pnl[order[t]] / cash / eq
            eq += pnl[order[t]] / cash
            s += r
            s2 += r * r
            peak = max(peak, eq)  # starts at 1 and never falls, so the division is safe
            mdd = max(mdd, 1.0 - eq / peak)
            low = min(low, eq)
            if k < n_fan and fan_steps[k] == t:
                fan[p, k] = eq
                k += 1
        final[p] = eq - 1.0
        max_dd[p] = mdd
        sharpe[p] = _finish(s, s2, n, ppy)
        min_equity[p] = low
