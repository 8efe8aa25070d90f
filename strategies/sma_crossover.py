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
from strategies.indicators import (
    TOL,
    cross_signal_batch_nb,
    cross_signal_columns_nb,
    sma_cross_into_nb,
    sma_nb,
    sma_stack_nb,
)
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
        out = np.empty((panel.n_symbols, panel.n_bars))  # one contiguous row per symbol
        for s in range(panel.n_symbols):
            series = np.ascontiguousarray(panel.close[:, s])
            sma_cross_into_nb(series, self.fast, self.slow, out[s], TOL)
        return out.T

    @classmethod
    def target_weights_batch(
        cls,
        panel: WidePanel,
        param_sets: list[dict[str, Any]],
        out: np.ndarray | None = None,
        cache: dict[Any, Any] | None = None,
    ) -> np.ndarray:
        """A whole sweep: each distinct window's SMA once, then one kernel fills every pair.

        Column ``p * N + s`` holds set p on symbol s, bitwise equal to ``target_weights``.
        A column-major ``out`` (what sweeps use) is filled column by column in parallel from
        per-symbol contiguous SMA series; any other layout row by row.
        """
        sets = [cls(**params) for params in param_sets]
        out = cls.batch_out(panel, len(sets), out)
        if not sets:
            return out
        cache = {} if cache is None else cache
        column_major = out.flags.f_contiguous and not out.flags.c_contiguous
        stack, where = cls._sma_stack(panel, sets, column_major, cache)
        fast_idx = np.array([where[s.fast] for s in sets], dtype=np.int64)
        slow_idx = np.array([where[s.slow] for s in sets], dtype=np.int64)
        if column_major:
            cross_signal_columns_nb(stack, fast_idx, slow_idx, out, TOL)
        else:
            cross_signal_batch_nb(stack, fast_idx, slow_idx, out, TOL)
        return out

    @classmethod
    def prepare_batch(
        cls, panel: WidePanel, param_sets: list[dict[str, Any]], cache: dict[Any, Any]
    ) -> None:
        """Compute every window of the whole sweep once, in the column-major layout."""
        cls._sma_stack(panel, [cls(**p) for p in param_sets], True, cache)

    @staticmethod
    def _sma_stack(
        panel: WidePanel, sets: list[SmaCrossover], column_major: bool, cache: dict[Any, Any]
    ) -> tuple[np.ndarray, dict[int, int]]:
        """Every needed window's SMA in one array, kept in ``cache``: (W x N x T) for
        column-major output, else (W x T x N). A chunk that needs windows the cache lacks
        computes only those and appends them, so a long-lived cache (a sweep worker's, across
        calls) computes each window once however the sets are chunked."""
        key = ("sma_stack", column_major)
        buf, where = cache.get(key, (None, {}))
        missing = sorted(({s.fast for s in sets} | {s.slow for s in sets}) - set(where))
        if missing:
            used, need = len(where), len(where) + len(missing)
            if buf is None or len(buf) < need:  # grow by doubling: no copy per chunk
                inner = (panel.n_symbols, panel.n_bars) if column_major else panel.close.shape
                grown = np.empty((max(need, 2 * used), *inner))
                if buf is not None:
                    grown[:used] = buf[:used]
                buf = grown
            windows = np.array(missing, dtype=np.int64)
            close = np.ascontiguousarray(panel.close, dtype=np.float64)
            if column_major:
                sma_stack_nb(np.ascontiguousarray(close.T), windows, buf[used:need])
            else:
                for k, w in enumerate(windows):
                    buf[used + k] = sma_nb(close, int(w))
            where = {**where, **{int(w): used + k for k, w in enumerate(windows)}}
            cache[key] = (buf, where)
        return buf[: len(where)], where
