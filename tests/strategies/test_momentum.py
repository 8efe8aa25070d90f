"""Momentum: rebalance schedule, ranking, ties, top_k and NaN symbols, by hand and by reference."""

from __future__ import annotations

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

import strategies.momentum as momentum_module
from core.errors import ConfigError
from core.panel import WidePanel
from strategies.momentum import Momentum

NAN = np.nan

#          A    B    C    D
CLOSE = [
    [100, 50, 20, NAN],  # t0
    [105, 55, 21, NAN],  # t1
    [110, 60, 22, NAN],  # t2 rebalance: A 110/100-1 = .1, B .2, C 22/20-1 = .1 (== A), D no close
    [110, 60, 22, NAN],  # t3
    [105, 57, 30, 10],  # t4 D lists
    [99, 54, 33, 11],  # t5 rebalance: A 99/110-1 = -.1, B 54/60-1 = -.1, C .5, D NaN return
    [100, 50, 30, 10],  # t6
    [100, 45, 31, 20],  # t7
    [100, 40, NAN, 30],  # t8 rebalance: A 0, B -.2, C no close, D 30/10-1 = 2
]
# lookback 2, top_k 2, every 3 -> rebalance bars t = 2, 5, 8 (t >= 2, (t-2) % 3 == 0).
# t2: B first, A and C tie at .1 -> A by symbol order; D has no close -> NaN.
# t5: C first, A and B tie at -.1 -> A; D has a close but no return -> 0.
# t8: D first, then A; C has no close -> NaN.
EXPECTED = np.full((9, 4), NAN)
EXPECTED[2] = [0.5, 0.5, 0.0, NAN]
EXPECTED[5] = [0.5, 0.0, 0.5, 0.0]
EXPECTED[8] = [0.5, 0.0, NAN, 0.5]


def _panel(close: np.ndarray | list[list[float]]) -> WidePanel:
    c = np.asarray(close, dtype=np.float64)
    ts = np.arange(c.shape[0]).astype("datetime64[D]").astype("datetime64[us]")
    return WidePanel(ts, tuple("ABCDEFGHIJ"[: c.shape[1]]), c, c, c, c, np.ones_like(c))


def _reference(close: np.ndarray, lookback: int, top_k: int, every: int) -> np.ndarray:
    """Plain-Python momentum: sort (−return, symbol index), keep the first top_k."""
    n_bars, n_sym = close.shape
    out = [[NAN] * n_sym for _ in range(n_bars)]
    for t in range(lookback, n_bars, every):
        rets = [
            (-(close[t][s] / close[t - lookback][s] - 1), s)
            for s in range(n_sym)
            if not (np.isnan(close[t][s]) or np.isnan(close[t - lookback][s]))
        ]
        leaders = {s for _, s in sorted(rets)[:top_k]}
        for s in range(n_sym):
            if not np.isnan(close[t][s]):
                out[t][s] = 1 / top_k if s in leaders else 0.0
    return np.array(out)


def test_hand_panel_ranks_ties_and_nan_symbols() -> None:
    w = Momentum(lookback=2, top_k=2, rebalance_every=3).checked_weights(_panel(CLOSE))
    np.testing.assert_array_equal(w, EXPECTED)


def test_top_k_beyond_the_valid_symbols_keeps_one_over_top_k() -> None:
    # t2 has 3 symbols with a return; top_k 5 gives each 1/5 and leaves the rest in cash.
    w = Momentum(lookback=2, top_k=5, rebalance_every=3).checked_weights(_panel(CLOSE))
    np.testing.assert_array_equal(w[2], [0.2, 0.2, 0.2, NAN])
    assert np.nansum(w[2]) == pytest.approx(0.6)


def test_matches_plain_python_reference_on_random_panel() -> None:
    """Reference: ``_reference`` above, a sort in plain Python."""
    rng = np.random.default_rng(9)
    close = np.round(20 * np.exp(np.cumsum(rng.normal(0, 0.03, (200, 8)), axis=0)), 1)
    close[:30, 3] = NAN
    close[150:, 6] = NAN  # delisted
    for lookback, top_k, every in [(20, 3, 7), (5, 1, 1), (63, 8, 21)]:
        got = Momentum(lookback=lookback, top_k=top_k, rebalance_every=every).checked_weights(
            _panel(close)
        )
        np.testing.assert_array_equal(got, _reference(close, lookback, top_k, every))
        assert np.nanmin(got) >= 0.0 and np.nanmax(got) <= 1.0


def test_lookback_attribute_is_the_warm_up_and_the_param_is_lookback() -> None:
    strategy = Momentum()
    assert strategy.params["lookback"] == 126 and strategy.lookback == 127
    assert Momentum.from_strings({"lookback": "60"}).lookback == 61
    assert "lookback" in Momentum.param_specs()
    first = next(Momentum.grid())
    assert set(first) == {"lookback", "top_k", "rebalance_every"}
    with pytest.raises(ConfigError, match=r"momentum\.lookback=1\b"):
        Momentum(lookback=1)


def test_pure_python_kernel_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's Python body (numba bypassed) gives the hand result too."""
    for name, obj in list(vars(momentum_module).items()):
        if isinstance(obj, CPUDispatcher):
            monkeypatch.setattr(momentum_module, name, obj.py_func)
    w = Momentum(lookback=2, top_k=2, rebalance_every=3).target_weights(_panel(CLOSE))
    np.testing.assert_array_equal(w, EXPECTED)
