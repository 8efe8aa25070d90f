"""RsiReversion: hand-computed Wilder RSI crosses, touches, params and range."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigError
from core.panel import WidePanel
from strategies.rsi_reversion import RsiReversion

NAN = np.nan

# p=2, closes 10 11 12 11 10 9 10 11 12, changes +1 +1 -1 -1 -1 +1 +1 +1 (t1..t8).
# Seed t2: ag = (1+1)/2 = 1, al = 0 -> RSI 100. Then avg = avg/2 + x/2:
# t3 (-1): ag .5,    al .5    -> 50
# t4 (-1): ag .25,   al .75   -> 100 - 100/(1 + 1/3) = 25
# t5 (-1): ag .125,  al .875  -> 100 - 100/(1 + 1/7) = 12.5
# t6 (+1): ag .5625, al .4375 -> 100 - 100/(1 + 9/7) = 56.25
# t7 (+1): ag .78125, al .21875 -> 100 - 100/(1 + 25/7) = 78.125
# t8 (+1): ag .890625, al .109375 -> 100 - 100/(1 + 57/7) = 89.0625
CLOSES = [10.0, 11, 12, 11, 10, 9, 10, 11, 12]
RSI = [NAN, NAN, 100.0, 50.0, 25.0, 12.5, 56.25, 78.125, 89.0625]


def _panel(close: np.ndarray | list[float]) -> WidePanel:
    c = np.asarray(close, dtype=np.float64)
    c = c[:, None] if c.ndim == 1 else c
    ts = np.arange(c.shape[0]).astype("datetime64[D]").astype("datetime64[us]")
    return WidePanel(ts, tuple(f"S{i}" for i in range(c.shape[1])), c, c, c, c, np.ones_like(c))


def _weights(close: list[float], **params: float) -> np.ndarray:
    return RsiReversion(**params).checked_weights(_panel(close))[:, 0]


def test_buys_on_cross_below_lower_and_exits_on_cross_above_upper() -> None:
    # lower 30: t4 50 -> 25 crosses below (1); t5 25 -> 12.5 is already below (none).
    # upper 70: t7 56.25 -> 78.125 crosses above (0); t8 stays above (none).
    w = _weights(CLOSES, period=2, lower=30.0, upper=70.0)
    np.testing.assert_array_equal(w, [NAN, NAN, NAN, NAN, 1.0, NAN, NAN, 0.0, NAN])


def test_touching_a_level_is_not_a_cross() -> None:
    # lower 25: t4 RSI == 25 exactly is no cross; t5 25 -> 12.5 is (x[t-1] >= L, x[t] < L).
    # upper 78.125: t7 touches, t8 78.125 -> 89.0625 crosses above.
    w = _weights(CLOSES, period=2, lower=25.0, upper=78.125)
    np.testing.assert_array_equal(w, [NAN, NAN, NAN, NAN, NAN, 1.0, NAN, NAN, 0.0])


def test_first_rsi_bar_cannot_signal() -> None:
    # The first RSI value (t2 = 100) has no predecessor: even a huge first value is no cross.
    w = _weights([10.0, 11, 12], period=2, lower=30.0, upper=70.0)
    assert np.isnan(w).all()


def test_lower_must_be_below_upper_naming_both() -> None:
    with pytest.raises(ConfigError, match=r"lower=50\.0.*upper=50\.0"):
        RsiReversion(lower=50.0, upper=50.0)
    assert RsiReversion(period=7).lookback == 8


def test_weights_stay_in_range_on_a_random_panel() -> None:
    rng = np.random.default_rng(11)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, (800, 4)), axis=0))
    close[:40, 2] = NAN
    w = RsiReversion(period=6).checked_weights(_panel(close))
    assert set(np.unique(w[~np.isnan(w)]).tolist()) == {0.0, 1.0}
