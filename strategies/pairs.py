"""Pairs trading: a rolling OLS hedge ratio and a z-score of the residual, traded on crosses.

With a = first symbol, b = second, over the ``window`` bars ending at t (inclusive):
beta = cov(a, b) / var(b) (ddof=1), alpha = mean(a) - beta * mean(b),
z_t = (a_t - alpha - beta * b_t) / std(residuals, ddof=1). z crossing above +entry_z shorts the
spread, below -entry_z buys it; crossing below +exit_z or above -exit_z goes flat; an entry on
the bar of an exit wins. Spread weights are in dollar terms and sum to 1 in absolute value.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from core.errors import ConfigError
from core.panel import WidePanel
from strategies.base import Strategy
from strategies.indicators import TOL, cross_event_nb
from strategies.params import FloatParam, IntParam

__all__ = ["Pairs", "pairs_signal_nb", "rolling_hedge_nb"]


@njit(cache=True)
def rolling_hedge_nb(a: np.ndarray, b: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling OLS of a on b: (beta, z) per bar, exact two-pass sums over each window.

    NaN where the window holds a NaN, var(b) is 0, or the residual spread is 0 (below 1e-10
    of a's own spread: a perfect fit, whose z would be float noise).
    """
    n_bars = a.shape[0]
    beta = np.full(n_bars, np.nan)
    z = np.full(n_bars, np.nan)
    for t in range(window - 1, n_bars):
        lo = t - window + 1
        sum_a = 0.0
        sum_b = 0.0
        for i in range(lo, t + 1):
            sum_a += a[i]
            sum_b += b[i]
        if math.isnan(sum_a) or math.isnan(sum_b):
            continue
        mean_a = sum_a / window
        mean_b = sum_b / window
        cov = 0.0
        var_a = 0.0
        var_b = 0.0
        for i in range(lo, t + 1):
            cov += (a[i] - mean_a) * (b[i] - mean_b)
            var_a += (a[i] - mean_a) ** 2
            var_b += (b[i] - mean_b) ** 2
        cov /= window - 1
        var_a /= window - 1
        var_b /= window - 1
        if var_b == 0.0:
            continue
        slope = cov / var_b
        alpha = mean_a - slope * mean_b
        mean_r = 0.0
        for i in range(lo, t + 1):
            mean_r += a[i] - alpha - slope * b[i]
        mean_r /= window
        var_r = 0.0
        for i in range(lo, t + 1):
            var_r += (a[i] - alpha - slope * b[i] - mean_r) ** 2
        std_r = math.sqrt(var_r / (window - 1))
        if std_r <= TOL * math.sqrt(var_a) or std_r == 0.0:
            continue
        beta[t] = slope
        z[t] = (a[t] - alpha - slope * b[t]) / std_r
    return beta, z


@njit(cache=True)
def pairs_signal_nb(
    z: np.ndarray,
    beta: np.ndarray,
    price_a: np.ndarray,
    price_b: np.ndarray,
    entry_z: float,
    exit_z: float,
    out: np.ndarray,
    tol: float,
) -> None:
    """Spread events into ``out`` (T x 2): entries with dollar-neutral-by-beta weights, exits 0."""
    n_bars = z.shape[0]
    out[:] = np.nan
    for t in range(1, n_bars):
        zp, zt = z[t - 1], z[t]
        short = cross_event_nb(zp, entry_z, zt, entry_z, tol) > 0
        long = cross_event_nb(zp, -entry_z, zt, -entry_z, tol) < 0
        flat = (
            cross_event_nb(zp, exit_z, zt, exit_z, tol) < 0
            or cross_event_nb(zp, -exit_z, zt, -exit_z, tol) > 0
        )
        if long or short:
            gross = price_a[t] + abs(beta[t]) * price_b[t]
            side = 1.0 if long else -1.0
            out[t, 0] = side * price_a[t] / gross
            out[t, 1] = -side * beta[t] * price_b[t] / gross
        elif flat:
            out[t, 0] = 0.0
            out[t, 1] = 0.0


class Pairs(Strategy):
    """Mean reversion of a rolling-OLS spread between exactly two symbols."""

    name = "pairs"
    cross_sectional = True
    description = "Trade the z-score of a rolling hedge-ratio spread between two symbols."
    n_symbols = 2

    window = IntParam(
        60, low=5, high=1000, step=10, search_low=20, search_high=250, doc="OLS window (bars)"
    )
    entry_z = FloatParam(
        2.0, low=0.1, high=10.0, step=0.25, search_low=1.0, search_high=3.0,
        doc="|z| beyond which the spread is entered",
    )  # fmt: skip
    exit_z = FloatParam(
        0.5, low=0.0, high=10.0, step=0.25, search_low=0.0, search_high=1.5,
        doc="|z| within which the spread is closed",
    )  # fmt: skip

    def check(self) -> None:
        """The exit band must lie inside the entry band."""
        if not self.exit_z < self.entry_z:
            raise ConfigError(
                f"strategy {self.name}: exit_z={self.exit_z} must be less than "
                f"entry_z={self.entry_z}"
            )

    @property
    def lookback(self) -> int:
        """Bars until z exists for two consecutive bars."""
        return int(self.window) + 1

    def target_weights(self, panel: WidePanel) -> np.ndarray:
        """Spread entry weights, (0, 0) on exits, NaN elsewhere (T x 2)."""
        if panel.n_symbols != 2:
            raise ConfigError(
                f"strategy {self.name} needs exactly 2 symbols, got {panel.n_symbols}: "
                f"{', '.join(panel.symbols)}"
            )
        close = np.ascontiguousarray(panel.close, dtype=np.float64)
        a = np.ascontiguousarray(close[:, 0])
        b = np.ascontiguousarray(close[:, 1])
        beta, z = rolling_hedge_nb(a, b, self.window)
        out = np.empty((panel.n_bars, 2))
        pairs_signal_nb(z, beta, a, b, float(self.entry_z), float(self.exit_z), out, TOL)
        return out
