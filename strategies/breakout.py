"""Donchian breakout: long when the close clears the previous ``window`` bars' highest high,
flat when it falls through their lowest low.

The channel is built from bars t-window .. t-1 only, so bar t's own range never moves the level
it is tested against. Comparisons are strict beyond the 1e-10 relative tolerance.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from core.panel import WidePanel
from strategies.base import Strategy
from strategies.indicators import TOL, cmp_tol_nb, rolling_max_nb, rolling_min_nb
from strategies.params import IntParam

__all__ = ["Breakout", "donchian_signal_nb"]


@njit(cache=True)
def donchian_signal_nb(
    close: np.ndarray, high: np.ndarray, low: np.ndarray, window: int, out: np.ndarray, tol: float
) -> None:
    """Breakout weights (T x N) against the channel of the previous ``window`` bars.

    1.0 when close > max(high[t-window:t]), 0.0 when close < min(low[t-window:t]), NaN
    elsewhere or while the channel is undefined.
    """
    upper = rolling_max_nb(high, window)
    lower = rolling_min_nb(low, window)
    n_bars, n_cols = close.shape
    for t in range(n_bars):
        for j in range(n_cols):
            out[t, j] = np.nan
            if t == 0 or math.isnan(close[t, j]):
                continue
            hh = upper[t - 1, j]
            ll = lower[t - 1, j]
            if math.isnan(hh) or math.isnan(ll):
                continue
            if cmp_tol_nb(close[t, j], hh, tol) > 0:
                out[t, j] = 1.0
            elif cmp_tol_nb(close[t, j], ll, tol) < 0:
                out[t, j] = 0.0


class Breakout(Strategy):
    """Donchian channel breakout on the previous ``window`` bars."""

    name = "breakout"
    description = "Long above the prior window's highest high, flat below its lowest low."

    window = IntParam(
        20, low=2, high=500, step=5, search_low=10, search_high=100, doc="channel length (bars)"
    )

    @property
    def lookback(self) -> int:
        """Bars until the channel of the previous ``window`` bars exists for bar t."""
        return int(self.window) + 1

    def target_weights(self, panel: WidePanel) -> np.ndarray:
        """1.0 on a close above the channel, 0.0 below it, NaN elsewhere (T x N)."""
        out = np.empty((panel.n_bars, panel.n_symbols))
        donchian_signal_nb(
            np.ascontiguousarray(panel.close, dtype=np.float64),
            np.ascontiguousarray(panel.high, dtype=np.float64),
            np.ascontiguousarray(panel.low, dtype=np.float64),
            self.window,
            out,
            TOL,
        )
        return out
