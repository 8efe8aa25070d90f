"""Cross-sectional momentum: every ``rebalance_every`` bars hold the ``top_k`` symbols with the
best trailing return over ``lookback`` bars, equally weighted.

Rebalance bars are t >= lookback with (t - lookback) % rebalance_every == 0. There the top_k
symbols by ``close[t] / close[t - lookback] - 1`` (NaN returns excluded, ties in symbol order)
get 1/top_k and every other symbol 0; a symbol with no close at t gets NaN (keeps its target).
Every other bar is NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from core.panel import WidePanel
from strategies.base import Strategy
from strategies.params import IntParam

__all__ = ["Momentum", "momentum_weights_nb"]


@njit(cache=True)
def momentum_weights_nb(
    close: np.ndarray, lookback: int, top_k: int, every: int, out: np.ndarray
) -> None:
    """Fill ``out`` (T x N) with the rebalance weights described in the module docstring."""
    n_bars, n_sym = close.shape
    out[:] = np.nan
    returns = np.empty(n_sym)
    valid = np.empty(n_sym, dtype=np.int64)
    weight = 1.0 / top_k
    for t in range(lookback, n_bars, every):
        n_valid = 0
        for s in range(n_sym):
            now = close[t, s]
            out[t, s] = np.nan if math.isnan(now) else 0.0
            ret = now / close[t - lookback, s] - 1.0
            if not math.isnan(ret):
                valid[n_valid] = s
                returns[n_valid] = ret
                n_valid += 1
        # A stable sort of the negated returns: best first, equal returns in symbol order.
        order = np.argsort(-returns[:n_valid], kind="mergesort")
        for rank in range(min(top_k, n_valid)):
            out[t, valid[order[rank]]] = weight


class _WarmupLookbackParam(IntParam):
    """The ``lookback`` parameter of ``Momentum``; on an instance the attribute is the warm-up.

    The parameter shares its name with ``Strategy.lookback`` (the warm-up every caller reads),
    so ``momentum.lookback`` is ``params["lookback"] + 1`` while the grid, the CLI
    (``-p lookback=126``) and Optuna see an ordinary integer parameter named ``lookback``.
    """

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return int(obj._params[self.name]) + 1


class Momentum(Strategy):
    """Equal-weight the ``top_k`` best trailing performers, re-ranked on a fixed schedule."""

    name = "momentum"
    cross_sectional = True
    description = "Hold the top_k symbols by trailing return, rebalanced every N bars."

    lookback = _WarmupLookbackParam(
        126, low=2, high=1000, step=21, search_low=21, search_high=252,
        doc="trailing-return window (bars); the attribute on an instance is the warm-up",
    )  # fmt: skip
    top_k = IntParam(3, low=1, high=1000, search_low=1, search_high=10, doc="symbols held")
    rebalance_every = IntParam(
        21, low=1, high=1000, step=7, search_low=7, search_high=63, doc="bars between rebalances"
    )

    @property
    def return_window(self) -> int:
        """The ``lookback`` parameter: bars of the trailing return."""
        return int(self._params["lookback"])

    def target_weights(self, panel: WidePanel) -> np.ndarray:
        """1/top_k for the leaders and 0 for the rest on rebalance bars, NaN elsewhere."""
        out = np.empty((panel.n_bars, panel.n_symbols))
        momentum_weights_nb(
            np.ascontiguousarray(panel.close, dtype=np.float64),
            self.return_window,
            int(self.top_k),
            int(self.rebalance_every),
            out,
        )
        return out
