"""Tiny hand-written panels for rule-by-rule simulator tests."""

from __future__ import annotations

import math

import numpy as np

from core.panel import WidePanel

NAN = math.nan


def panel(*series: list[tuple[float, float, float, float]], symbols: str = "ABCDEFGH") -> WidePanel:
    """A daily panel from per-symbol lists of (open, high, low, close) bars, one day apart."""
    n_bars = len(series[0])
    arr = np.array(series, dtype=np.float64)  # (N, T, 4)
    fields = [np.ascontiguousarray(arr[:, :, k].T) for k in range(4)]
    ts = np.datetime64("2020-01-01", "us") + np.arange(n_bars) * np.timedelta64(1, "D")
    return WidePanel(ts, tuple(symbols[: len(series)]), *fields, np.ones_like(fields[0]))


def flat(prices: list[float]) -> list[tuple[float, float, float, float]]:
    """Bars whose open = high = low = close (no intrabar range)."""
    return [(p, p, p, p) for p in prices]


def weights(*cols: list[float]) -> np.ndarray:
    """A (T x N) weight array from per-symbol lists."""
    return np.array(cols, dtype=np.float64).T
