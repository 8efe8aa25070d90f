"""SMA crossover: long on an up-cross of SMA(fast) over SMA(slow), flat on a down-cross.

An event strategy: 1 where the fast mean crosses above the slow one, 0 where it crosses
below, NaN elsewhere (the previous target stands). A tie (within 1e-10 relative) is no cross,
and nothing is bought at the first bar where both means exist.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.errors import ConfigError
from core.panel import WidePanel
from strategies.base import Strategy
from strategies.indicators import TOL, cross_signal_batch_nb, cross_signal_nb, sma_nb
from strategies.params import IntParam

__all__ = ["SmaCrossover"]


class SmaCrossover(Strategy):
    """Trend following on two simple moving averages of the close."""

    name = "sma_crossover"
    description = "Long when SMA(fast) crosses above SMA(slow), flat when it crosses below."

    fast = IntParam(
        10, low=1, high=1000, step=5, search_low=5, search_high=50, doc="fast SMA window (bars)"
    )
    slow = IntParam(
        30, low=2, high=5000, step=10, search_low=20, search_high=200, doc="slow SMA window (bars)"
    )

    def check(self) -> None:
        """The fast window must be shorter than the slow one."""
        if not self.fast < self.slow:
            raise ConfigError(
                f"strategy {self.name}: fast={self.fast} must be less than slow={self.slow}"
            )

    @property
    def lookback(self) -> int:
        """Bars until SMA(slow) exists."""
        return int(self.slow)

    def target_weights(self, panel: WidePanel) -> np.ndarray:
        """1.0 on an up-cross, 0.0 on a down-cross, NaN elsewhere (T x N)."""
        out = np.empty((panel.n_bars, panel.n_symbols))
        cross_signal_nb(sma_nb(panel.close, self.fast), sma_nb(panel.close, self.slow), out, TOL)
        return out

    @classmethod
    def target_weights_batch(
        cls,
        panel: WidePanel,
        param_sets: list[dict[str, Any]],
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """A whole sweep: each distinct window's SMA once, then one kernel fills every pair.

        Column ``p * N + s`` holds set p on symbol s, bitwise equal to ``target_weights``.
        """
        sets = [cls(**params) for params in param_sets]
        out = cls.batch_out(panel, len(sets), out)
        if not sets:
            return out
        windows = sorted({s.fast for s in sets} | {s.slow for s in sets})
        where = {w: k for k, w in enumerate(windows)}
        stack = np.empty((len(windows), panel.n_bars, panel.n_symbols))
        close = np.ascontiguousarray(panel.close, dtype=np.float64)
        for k, window in enumerate(windows):
            stack[k] = sma_nb(close, window)
        fast_idx = np.array([where[s.fast] for s in sets], dtype=np.int64)
        slow_idx = np.array([where[s.slow] for s in sets], dtype=np.int64)
        cross_signal_batch_nb(stack, fast_idx, slow_idx, out, TOL)
        return out
