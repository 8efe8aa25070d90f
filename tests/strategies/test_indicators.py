"""Indicator kernels against hand-computed series and plain-Python re-implementations.

Every test runs twice through the ``ind`` fixture: once with the numba kernels and once with
their pure-Python bodies (``.py_func``, patched into the module so nested kernels are pure too).
"""

from __future__ import annotations

import math
import statistics
from types import ModuleType

import numba
import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

import strategies.indicators as indicators

NAN = np.nan


@pytest.fixture(params=["jit", "python"])
def ind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The indicators module, with every ``*_nb`` kernel replaced by its Python body if asked."""
    if request.param == "python":
        for name, obj in list(vars(indicators).items()):
            if isinstance(obj, CPUDispatcher):
                monkeypatch.setattr(indicators, name, obj.py_func)
    return indicators


def test_fixture_runs_jit_or_pure_python_kernels(
    ind: ModuleType, request: pytest.FixtureRequest
) -> None:
    """Guard for the fixture itself: python mode leaves no numba dispatcher in the module."""
    jitted = {n for n, o in vars(ind).items() if isinstance(o, CPUDispatcher)}
    if request.node.callspec.params["ind"] == "python":
        assert jitted == set()
    elif not numba.config.DISABLE_JIT:
        assert {"sma_nb", "wilder_rsi_nb", "cmp_tol_nb", "_as_2d_nb"} <= jitted


# ----------------------------------------------------------------------------- cmp / cross
def test_cmp_tol_ties_within_relative_tolerance(ind: ModuleType) -> None:
    assert ind.cmp_tol_nb(1.0, 1.0, 1e-10) == 0
    assert ind.cmp_tol_nb(1.0 + 1e-14, 1.0, 1e-10) == 0  # 1e-14 relative: a tie
    assert ind.cmp_tol_nb(100.0, 100.0 * (1 + 1e-11), 1e-10) == 0
    assert ind.cmp_tol_nb(1.0 + 1e-9, 1.0, 1e-10) == 1  # 1e-9 relative: a real difference
    assert ind.cmp_tol_nb(1.0 - 1e-9, 1.0, 1e-10) == -1
    assert ind.cmp_tol_nb(0.0, 0.0, 1e-10) == 0  # level 0: only exact equality ties
    assert ind.cmp_tol_nb(1e-300, 0.0, 1e-10) == 1
    assert ind.cmp_tol_nb(NAN, 1.0, 1e-10) == 0
    assert ind.cmp_tol_nb(1.0, 1.0) == 0  # default tolerance


def test_cross_event_needs_strict_now_and_tie_or_opposite_before(ind: ModuleType) -> None:
    ev = ind.cross_event_nb
    assert ev(1.0, 2.0, 3.0, 2.0, 1e-10) == 1  # below -> above
    assert ev(2.0, 2.0, 3.0, 2.0, 1e-10) == 1  # tie -> above (a tie counts as <=)
    assert ev(1.0, 2.0, 2.0, 2.0, 1e-10) == 0  # below -> tie: no cross
    assert ev(3.0, 2.0, 3.0, 2.0, 1e-10) == 0  # above -> above: a state, not a cross
    assert ev(3.0, 2.0, 1.0, 2.0, 1e-10) == -1
    assert ev(2.0, 2.0, 1.0, 2.0, 1e-10) == -1  # tie -> below
    assert ev(NAN, 2.0, 3.0, 2.0, 1e-10) == 0  # previous bar undefined
    assert ev(1.0, 2.0, 3.0, NAN, 1e-10) == 0


def test_cross_signal_on_hand_series(ind: ModuleType) -> None:
    # a - b per bar:  -1, -1, 0 (tie), +1, +1, -2, 0 (tie), -1, NaN, +1, +2
    a = np.array([[1.0, 1.0, 2.0, 3.0, 3.0, 0.0, 2.0, 1.0, NAN, 3.0, 4.0]]).T
    b = np.full_like(a, 2.0)
    out = np.empty_like(a)
    ind.cross_signal_nb(a, b, out, 1e-10)
    # t3: tie -> above = up-cross (1); t5: above -> below = down (0); t6: below -> tie = none;
    # t7: tie -> below = down (0); t9: the previous bar is undefined = none; t10: above -> above.
    expected = [NAN, NAN, NAN, 1.0, NAN, 0.0, NAN, 0.0, NAN, NAN, NAN]
    np.testing.assert_array_equal(out[:, 0], expected)


def test_cross_signal_batch_matches_pairwise_kernel_bitwise(ind: ModuleType) -> None:
    """The batch kernel equals ``cross_signal_nb`` pair by pair (independent reference)."""
    rng = np.random.default_rng(7)
    stack = np.round(rng.normal(0, 1, (4, 40, 3)), 1)  # rounding creates exact ties
    stack[1, :5, 0] = NAN
    fast_idx = np.array([0, 0, 1, 2, 3], dtype=np.int64)
    slow_idx = np.array([1, 2, 3, 3, 0], dtype=np.int64)
    out = np.empty((40, 3 * len(fast_idx)))
    ind.cross_signal_batch_nb(stack, fast_idx, slow_idx, out, 1e-10)
    for p, (f, s) in enumerate(zip(fast_idx, slow_idx, strict=True)):
        ref = np.empty((40, 3))
        ind.cross_signal_nb(stack[f], stack[s], ref, 1e-10)
        np.testing.assert_array_equal(out[:, 3 * p : 3 * p + 3], ref)


def test_level_cross_signal_on_hand_series(ind: ModuleType) -> None:
    # lower 30, upper 70: t1 35->30 touches (no cross), t2 30->20 crosses below (1),
    # t4 60->70 touches, t5 70->80 crosses above (0), t7 NaN neighbour: none.
    x = np.array([[40.0, 30.0, 20.0, 60.0, 70.0, 80.0, NAN, 20.0]]).T
    out = np.empty_like(x)
    ind.level_cross_signal_nb(x, 30.0, 70.0, out, 1e-10)
    np.testing.assert_array_equal(out[:, 0], [NAN, NAN, 1.0, NAN, NAN, 0.0, NAN, NAN])


# ----------------------------------------------------------------------------- rolling
def test_sma_hand_values_1d_and_2d(ind: ModuleType) -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    # n=3: (1+2+3)/3=2, (2+3+4)/3=3, (3+4+5)/3=4, (4+5+6)/3=5
    np.testing.assert_array_equal(ind.sma_nb(x, 3), [NAN, NAN, 2.0, 3.0, 4.0, 5.0])
    two = np.column_stack([x, 10 * x])
    got = ind.sma_nb(two, 2)
    assert got.shape == (6, 2)
    np.testing.assert_array_equal(got[:, 1], [NAN, 15.0, 25.0, 35.0, 45.0, 55.0])
    np.testing.assert_array_equal(ind.sma_nb(two[:, 1], 2), got[:, 1])  # strided 1-D view
    np.testing.assert_array_equal(ind.sma_nb(x, 1), x)
    assert np.isnan(ind.sma_nb(x, 7)).all()


def test_sma_is_nan_while_window_holds_nan(ind: ModuleType) -> None:
    x = np.array([NAN, 1.0, 2.0, 3.0, NAN, 5.0, 6.0, 7.0])
    # n=2: t2 (1+2)/2=1.5, t3 2.5, t4/t5 see the NaN, t6 (5+6)/2=5.5, t7 6.5
    np.testing.assert_array_equal(ind.sma_nb(x, 2), [NAN, NAN, 1.5, 2.5, NAN, NAN, 5.5, 6.5])


def test_sma_matches_exact_sums_on_long_series(ind: ModuleType) -> None:
    """Reference: ``math.fsum`` of each window in plain Python; no drift after 3,000 bars."""
    rng = np.random.default_rng(3)
    x = 1e4 + np.cumsum(rng.normal(0, 50, 3000))
    n = 37
    got = ind.sma_nb(x, n)
    ref = [math.fsum(x[i - n + 1 : i + 1]) / n for i in range(n - 1, len(x))]
    np.testing.assert_allclose(got[n - 1 :], ref, rtol=1e-13, atol=0)
    i = (n - 1) + 2 * ind.RESUM_EVERY  # a scheduled re-sum bar: the left-to-right window sum
    total = 0.0
    for v in x[i - n + 1 : i + 1]:
        total += v
    assert got[i] == total / n


def test_rolling_std_matches_statistics_stdev(ind: ModuleType) -> None:
    """Reference: ``statistics.stdev`` (ddof=1) per window, plain Python."""
    rng = np.random.default_rng(4)
    x = 100 + np.cumsum(rng.normal(0, 1, 500))
    x[:7] = NAN
    n = 20
    got = ind.rolling_std_nb(x, n)
    assert np.isnan(got[: 7 + n - 1]).all()
    for i in range(7 + n - 1, len(x)):
        assert got[i] == pytest.approx(statistics.stdev(x[i - n + 1 : i + 1]), rel=1e-10)
    # hand: window [2, 4, 4, 4, 5, 5, 7, 9] has mean 5, squared deviations sum 32, /7
    small = np.array([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert ind.rolling_std_nb(small, 8)[-1] == pytest.approx(math.sqrt(32 / 7), rel=1e-15)


def test_rolling_max_min_hand_values(ind: ModuleType) -> None:
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0, NAN, 2.0, 6.0, 5.0, 3.0])
    # n=3 windows: [3,1,4]=4/1, [1,4,1]=4/1, [4,1,5]=5/1, then NaN for 3 bars, [2,6,5]=6/2, [6,5,3]
    np.testing.assert_array_equal(
        ind.rolling_max_nb(x, 3), [NAN, NAN, 4.0, 4.0, 5.0, NAN, NAN, NAN, 6.0, 6.0]
    )
    np.testing.assert_array_equal(
        ind.rolling_min_nb(x, 3), [NAN, NAN, 1.0, 1.0, 1.0, NAN, NAN, NAN, 2.0, 3.0]
    )


def test_rolling_max_matches_naive_on_random_panel(ind: ModuleType) -> None:
    """Reference: ``max``/``min`` over each window in plain Python."""
    rng = np.random.default_rng(5)
    x = np.round(rng.normal(0, 1, (120, 3)), 1)
    x[:10, 1] = NAN
    n = 9
    hi, lo = ind.rolling_max_nb(x, n), ind.rolling_min_nb(x, n)
    for j in range(3):
        for i in range(len(x)):
            window = x[max(i - n + 1, 0) : i + 1, j]
            if i < n - 1 or np.isnan(window).any():
                assert np.isnan(hi[i, j]) and np.isnan(lo[i, j])
            else:
                assert (hi[i, j], lo[i, j]) == (max(window), min(window))


# ----------------------------------------------------------------------------- RSI
RSI_CLOSES = [NAN, NAN, NAN] + [100.0, 102, 101, 103, 102, 104, 103, 105, 104, 106, 105, 107]
RSI_CLOSES += [106.0, 108, 107, 110, 108]  # 20 bars; the symbol lists at t=3


def test_wilder_rsi_by_hand_with_leading_nans(ind: ModuleType) -> None:
    """period 14 on 20 bars, the first 3 NaN, so the seed covers changes at t=4..17.

    Changes t=4..17: +2,-1 seven times -> gains 14, losses 7; seed avg_gain 14/14 = 1,
    avg_loss 7/14 = 1/2; RS = 2; RSI[17] = 100 - 100/3 = 200/3.
    t=18, change +3: avg_gain = 1*13/14 + 3/14 = 8/7; avg_loss = 1/2*13/14 = 13/28;
    RS = (8/7)/(13/28) = 32/13; RSI = 100 - 100/(45/13) = 640/9.
    t=19, change -2: avg_gain = 8/7*13/14 = 52/49; avg_loss = 13/28*13/14 + 2/14 = 225/392;
    RS = 416/225; RSI = 100 - 100/(641/225) = 41600/641.
    """
    rsi = ind.wilder_rsi_nb(np.array(RSI_CLOSES), 14)
    assert np.isnan(rsi[:17]).all()
    assert rsi[17] == pytest.approx(200 / 3, rel=1e-13)
    assert rsi[18] == pytest.approx(640 / 9, rel=1e-13)
    assert rsi[19] == pytest.approx(41600 / 641, rel=1e-13)


def test_wilder_rsi_short_period_exact_binary_fractions(ind: ModuleType) -> None:
    # p=2, closes 10 11 12 11 10 9 10: changes +1 +1 -1 -1 -1 +1
    # seed t2: ag=1, al=0 -> 100; t3: ag=.5, al=.5 -> 50; t4: ag=.25, al=.75 -> 25;
    # t5: ag=.125, al=.875 -> 12.5; t6: ag=.5625, al=.4375 -> 100-100/(16/7) = 56.25
    x = np.array([10.0, 11, 12, 11, 10, 9, 10])
    np.testing.assert_array_equal(
        ind.wilder_rsi_nb(x, 2), [NAN, NAN, 100.0, 50.0, 25.0, 12.5, 56.25]
    )


def test_wilder_rsi_edge_cases(ind: ModuleType) -> None:
    flat = np.full(6, 5.0)
    rising = np.arange(6.0)
    falling = -np.arange(6.0)
    got = ind.wilder_rsi_nb(np.column_stack([flat, rising, falling]), 3)
    np.testing.assert_array_equal(got[3:, 0], 50.0)  # no gains, no losses
    np.testing.assert_array_equal(got[3:, 1], 100.0)  # no losses
    np.testing.assert_array_equal(got[3:, 2], 0.0)  # no gains
    # A mid-series NaN is skipped: that bar is NaN, the next change is taken across the gap.
    gap = np.array([10.0, 11, 12, NAN, 11, 10])
    ref = ind.wilder_rsi_nb(np.array([10.0, 11, 12, 11, 10]), 2)
    np.testing.assert_array_equal(ind.wilder_rsi_nb(gap, 2), np.insert(ref, 3, NAN))


def test_kernels_reject_bad_windows(ind: ModuleType) -> None:
    with pytest.raises(ValueError):
        ind.sma_nb(np.ones(3), 0)
    with pytest.raises(ValueError):
        ind.rolling_std_nb(np.ones(3), 1)
    with pytest.raises(ValueError):
        ind.rolling_max_nb(np.ones(3), 0)
    with pytest.raises(ValueError):
        ind.wilder_rsi_nb(np.ones(3), 0)
