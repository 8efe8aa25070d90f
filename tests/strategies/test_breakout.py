"""Breakout (Donchian): the channel of the previous bars only, strict crossings, NaN handling."""

from __future__ import annotations

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

import strategies.breakout as breakout_module
import strategies.indicators as indicators
from core.panel import WidePanel
from strategies.breakout import Breakout

NAN = np.nan


def _panel(close: list[float], high: list[float], low: list[float]) -> WidePanel:
    c, h, lo = (np.asarray(v, dtype=np.float64)[:, None] for v in (close, high, low))
    ts = np.arange(len(c)).astype("datetime64[D]").astype("datetime64[us]")
    return WidePanel(ts, ("X",), c, h, lo, c, np.ones_like(c))


# window 3; the channel for bar t is built from bars t-3 .. t-1.
#   t     0    1    2    3     4     5     6     7
#   high  11   12   13   12.5  16    15    14    13
#   low    9   10   11   10.5  12    13    12     9
#   close 10   11   12   13    16    14    13   9.5
# t3: channel high max(11,12,13)=13, close 13 = 13 -> a tie, no breakout; low min(9,10,11)=9.
# t4: channel high max(12,13,12.5)=13, close 16 > 13 -> 1 (its own high 16 is not in it).
# t5: max(13,12.5,16)=16, min(11,10.5,12)=10.5, close 14 inside -> NaN.
# t6: max(12.5,16,15)=16, min(10.5,12,13)=10.5, close 13 inside -> NaN.
# t7: max(16,15,14)=16, min(12,13,12)=12, close 9.5 < 12 -> 0.
HIGH = [11, 12, 13, 12.5, 16, 15, 14, 13]
LOW = [9, 10, 11, 10.5, 12, 13, 12, 9]
CLOSE = [10, 11, 12, 13, 16, 14, 13, 9.5]
EXPECTED = [NAN, NAN, NAN, NAN, 1.0, NAN, NAN, 0.0]


def test_channel_uses_previous_bars_only() -> None:
    w = Breakout(window=3).checked_weights(_panel(CLOSE, HIGH, LOW))[:, 0]
    np.testing.assert_array_equal(w, EXPECTED)


def test_close_at_its_own_high_above_the_prior_channel_breaks_out() -> None:
    # The close equals this bar's high; with the current bar in the channel it could never
    # exceed it. With the previous bars only (max 2) it does.
    w = Breakout(window=2).checked_weights(_panel([1, 2, 3], [1.5, 2, 3], [0.5, 1, 2]))[:, 0]
    np.testing.assert_array_equal(w, [NAN, NAN, 1.0])


def test_every_close_beyond_the_channel_restates_the_opinion() -> None:
    # A steady rise breaks the previous high each bar: 1 on every bar from t=window on.
    x = [1.0, 2, 3, 4, 5]
    w = Breakout(window=2).checked_weights(_panel(x, x, x))[:, 0]
    np.testing.assert_array_equal(w, [NAN, NAN, 1.0, 1.0, 1.0])


def test_nan_bars_leave_the_channel_undefined() -> None:
    close = [NAN, 10, 11, 12, NAN, 13, 14, 15]
    w = Breakout(window=2).checked_weights(_panel(close, close, close))[:, 0]
    # t3: channel of t1..t2 = 11 -> 12 breaks out; t4 no close; t5, t6: channel holds t4's NaN.
    np.testing.assert_array_equal(w, [NAN, NAN, NAN, 1.0, NAN, NAN, NAN, 1.0])


def test_lookback_and_range() -> None:
    assert Breakout(window=20).lookback == 21
    rng = np.random.default_rng(2)
    close = list(100 * np.exp(np.cumsum(rng.normal(0, 0.02, 500))))
    high = [c * 1.01 for c in close]
    low = [c * 0.99 for c in close]
    w = Breakout(window=10).checked_weights(_panel(close, high, low))
    assert set(np.unique(w[~np.isnan(w)]).tolist()) == {0.0, 1.0}


def test_pure_python_kernel_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernels' Python bodies (numba bypassed) give the hand result too."""
    for module in (breakout_module, indicators):
        for name, obj in list(vars(module).items()):
            if isinstance(obj, CPUDispatcher):
                monkeypatch.setattr(module, name, obj.py_func)
    w = Breakout(window=3).target_weights(_panel(CLOSE, HIGH, LOW))[:, 0]
    np.testing.assert_array_equal(w, EXPECTED)
