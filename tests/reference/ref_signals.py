"""Reference indicators and signals in plain Python (no numpy), from /work/shared/DESIGN.md.

These are deliberately naive (each SMA window summed afresh, RSI as a plain loop) so that they are
an independent check of the product's vectorized strategies.
"""

from __future__ import annotations

import math

NAN = float("nan")


def _isnan(x: float) -> bool:
    """True for NaN."""
    return x != x


def sma(values: list[float], n: int) -> list[float]:
    """Simple moving average over ``n`` values; NaN for the first ``n - 1`` entries.

    Each window is summed afresh with ``math.fsum`` (exactly rounded), so no rolling-sum drift.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    out = [NAN] * len(values)
    for t in range(n - 1, len(values)):
        out[t] = math.fsum(values[t - n + 1 : t + 1]) / n
    return out


def wilder_rsi(close: list[float], period: int) -> list[float]:
    """Wilder's RSI; first value at index ``period``, NaN before.

    Seed: simple mean of the first ``period`` gains/losses (changes ``close[i] - close[i-1]``
    for ``i = 1..period``); then ``avg = avg * (1 - 1/p) + x / p``.
    ``RSI = 100 - 100 / (1 + avg_gain / avg_loss)``; with ``avg_loss == 0`` it is 100 if
    ``avg_gain > 0`` else 50.
    """
    if period < 1:
        raise ValueError("period must be >= 1")
    T = len(close)
    out = [NAN] * T
    if period >= T:
        return out
    gains = [0.0] * T
    losses = [0.0] * T
    for i in range(1, T):
        d = close[i] - close[i - 1]
        gains[i] = d if d > 0 else 0.0
        losses[i] = -d if d < 0 else 0.0
    p = period
    avg_gain = math.fsum(gains[1 : p + 1]) / p
    avg_loss = math.fsum(losses[1 : p + 1]) / p
    out[p] = _rsi_value(avg_gain, avg_loss)
    for i in range(p + 1, T):
        avg_gain = avg_gain * (1 - 1 / p) + gains[i] / p
        avg_loss = avg_loss * (1 - 1 / p) + losses[i] / p
        out[i] = _rsi_value(avg_gain, avg_loss)
    return out


def _rsi_value(avg_gain: float, avg_loss: float) -> float:
    """RSI from the two averages, with the ``avg_loss == 0`` convention."""
    if avg_loss == 0:
        return 100.0 if avg_gain > 0 else 50.0
    return 100 - 100 / (1 + avg_gain / avg_loss)


def cmp_tol(a: float, b: float, tol: float = 1e-10) -> int:
    """+1 if ``a - b > tol*|b|``, -1 if ``b - a > tol*|b|``, else 0 (a tie)."""
    band = tol * abs(b)
    if a - b > band:
        return 1
    if b - a > band:
        return -1
    return 0


def sma_crossover_weights(close: list[float], fast: int, slow: int) -> list[float]:
    """1.0 where the fast SMA crosses above the slow one, 0.0 where it crosses below, else NaN.

    Up-cross at t: ``cmp(fast[t], slow[t]) == +1`` and ``cmp(fast[t-1], slow[t-1]) <= 0``;
    down-cross: ``== -1`` and ``>= 0``; all four values defined.
    """
    f = sma(close, fast)
    s = sma(close, slow)
    out = [NAN] * len(close)
    for t in range(1, len(close)):
        if _isnan(f[t]) or _isnan(s[t]) or _isnan(f[t - 1]) or _isnan(s[t - 1]):
            continue
        now = cmp_tol(f[t], s[t])
        before = cmp_tol(f[t - 1], s[t - 1])
        if now == 1 and before <= 0:
            out[t] = 1.0
        elif now == -1 and before >= 0:
            out[t] = 0.0
    return out


def rsi_reversion_weights(
    close: list[float], period: int, lower: float, upper: float
) -> list[float]:
    """1.0 when RSI crosses below ``lower``, 0.0 when it crosses above ``upper``, else NaN.

    Below: ``rsi[t-1] >= lower`` and ``rsi[t] < lower``; above: ``rsi[t-1] <= upper`` and
    ``rsi[t] > upper`` (comparisons with ``cmp_tol``). If both fire, the exit (0.0) wins.
    """
    r = wilder_rsi(close, period)
    out = [NAN] * len(close)
    for t in range(1, len(close)):
        if _isnan(r[t]) or _isnan(r[t - 1]):
            continue
        enter = cmp_tol(r[t - 1], lower) >= 0 and cmp_tol(r[t], lower) == -1
        leave = cmp_tol(r[t - 1], upper) <= 0 and cmp_tol(r[t], upper) == 1
        if leave:
            out[t] = 0.0
        elif enter:
            out[t] = 1.0
    return out
