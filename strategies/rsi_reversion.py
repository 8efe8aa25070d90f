"""RSI mean reversion: buy when Wilder's RSI crosses below ``lower``, exit when it crosses above
``upper``.

An event strategy: 1 on the bar RSI falls through the oversold level, 0 on the bar it rises
through the overbought level, NaN elsewhere. Crosses are tolerance-aware (a touch is no cross).
"""

from __future__ import annotations

import numpy as np

from core.errors import ConfigError
from core.panel import WidePanel
from strategies.base import Strategy
from strategies.indicators import TOL, level_cross_signal_nb, wilder_rsi_nb
from strategies.params import FloatParam, IntParam

__all__ = ["RsiReversion"]


class RsiReversion(Strategy):
    """Long after an oversold cross of Wilder's RSI, flat after an overbought cross."""

    name = "rsi_reversion"
    description = "Long when RSI crosses below lower, flat when it crosses above upper."

    period = IntParam(14, low=2, high=200, search_low=5, search_high=30, doc="RSI period (bars)")
    lower = FloatParam(
        30.0, low=1.0, high=50.0, step=5.0, search_low=10.0, search_high=40.0,
        doc="oversold level: a cross below it buys",
    )  # fmt: skip
    upper = FloatParam(
        70.0, low=50.0, high=99.0, step=5.0, search_low=60.0, search_high=90.0,
        doc="overbought level: a cross above it exits",
    )  # fmt: skip

    def check(self) -> None:
        """The oversold level must lie below the overbought one."""
        if not self.lower < self.upper:
            raise ConfigError(
                f"strategy {self.name}: lower={self.lower} must be less than upper={self.upper}"
            )

    @property
    def lookback(self) -> int:
        """Bars until RSI exists (``period`` changes need ``period + 1`` closes)."""
        return int(self.period) + 1

    def target_weights(self, panel: WidePanel) -> np.ndarray:
        """1.0 on a cross below ``lower``, 0.0 on a cross above ``upper``, NaN elsewhere."""
        rsi = wilder_rsi_nb(np.ascontiguousarray(panel.close, dtype=np.float64), self.period)
        out = np.empty((panel.n_bars, panel.n_symbols))
        level_cross_signal_nb(rsi, float(self.lower), float(self.upper), out, TOL)
        return out
