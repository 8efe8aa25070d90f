"""Strategy builders for tests: a strategy that replays a given weight array."""

from __future__ import annotations

import numpy as np

from core.panel import WidePanel
from strategies.base import Strategy


class FixedWeights(Strategy):
    """Replays a precomputed (T x N) weight array: row t is its opinion at bar t.

    Causal by construction (the last row of a prefix is that prefix's bar), so the backtest
    and a live host see the same weights.
    """

    name = "fixed_weights"

    def __init__(self, weights: np.ndarray) -> None:
        super().__init__()
        self._weights = weights

    def target_weights(self, panel: WidePanel) -> np.ndarray:
        """The first ``panel.n_bars`` rows of the stored weights."""
        return self._weights[: panel.n_bars]
