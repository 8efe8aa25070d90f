"""Tests of the reference indicators and signals, against values computed by hand."""

from __future__ import annotations

import math

import pytest

from .ref_signals import cmp_tol, rsi_reversion_weights, sma, sma_crossover_weights, wilder_rsi

NAN = float("nan")


def same(a: list[float], b: list[float]) -> bool:
    """Element-wise equality (approximate) treating NaN == NaN."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if math.isnan(x) or math.isnan(y):
            if not (math.isnan(x) and math.isnan(y)):
                return False
        elif x != pytest.approx(y, rel=1e-12):
            return False
    return True


def test_sma_values() -> None:
    # windows of 3: (1+2+3)/3 = 2, (2+3+4)/3 = 3, (3+4+5)/3 = 4
    assert same(sma([1.0, 2.0, 3.0, 4.0, 5.0], 3), [NAN, NAN, 2.0, 3.0, 4.0])
    # n = 1 is the series itself; too short a series is all NaN
    assert same(sma([4.0, 5.0], 1), [4.0, 5.0])
    assert same(sma([4.0, 5.0], 3), [NAN, NAN])


def test_cmp_tol_ties() -> None:
    assert cmp_tol(2.0, 1.0) == 1
    assert cmp_tol(1.0, 2.0) == -1
    assert cmp_tol(0.1 + 0.2, 0.3) == 0  # float noise, 5.6e-17 <= 1e-10 * 0.3
    assert cmp_tol(1.0 + 1e-12, 1.0) == 0  # inside the 1e-10 relative band
    assert cmp_tol(1.0 + 1e-9, 1.0) == 1  # outside it
    assert cmp_tol(1e-300, 0.0) == 1  # band is 0 when b == 0


def test_sma_crossover_tie_is_not_a_cross() -> None:
    close = [3.0, 1.0, 2.0, 2.0, 3.0, 1.0]
    # fast = sma1 = close; slow = sma2 = [nan, 2, 1.5, 2, 2.5, 2]
    # cmp:  t1: 1 vs 2 -> -1 | t2: 2 vs 1.5 -> +1 (prev -1: up-cross -> 1.0)
    #       t3: 2 vs 2 -> 0 (a tie: no down-cross) | t4: 3 vs 2.5 -> +1 (prev 0 <= 0: up-cross)
    #       t5: 1 vs 2 -> -1 (prev +1: down-cross -> 0.0)
    # t1 has no signal: the previous slow value (t0) is undefined.
    assert same(sma_crossover_weights(close, 1, 2), [NAN, NAN, 1.0, NAN, 1.0, 0.0])


def test_sma_crossover_float_noise_is_a_tie() -> None:
    # fast == slow up to 1e-12 relative: never a cross.
    close = [1.0, 1.0, 1.0 + 1e-12, 1.0, 1.0 + 1e-12]
    assert same(sma_crossover_weights(close, 1, 2), [NAN] * 5)


def test_wilder_rsi_by_hand() -> None:
    close = [10.0, 12.0, 11.0, 13.0, 12.0]
    # changes: +2, -1, +2, -1; p = 2
    # t2 seed: avg_gain = (2 + 0)/2 = 1, avg_loss = (0 + 1)/2 = 0.5 -> RSI = 100 - 100/3
    # t3 (+2): avg_gain = 1*0.5 + 2/2 = 1.5; avg_loss = 0.5*0.5 + 0 = 0.25 -> rs 6, 100 - 100/7
    # t4 (-1): avg_gain = 0.75; avg_loss = 0.125 + 0.5 = 0.625 -> rs 1.2, 100 - 100/2.2
    expected = [NAN, NAN, 100 - 100 / 3, 100 - 100 / 7, 100 - 100 / 2.2]
    assert same(wilder_rsi(close, 2), expected)


def test_wilder_rsi_zero_loss_conventions() -> None:
    assert same(wilder_rsi([1.0, 2.0, 3.0, 4.0], 2), [NAN, NAN, 100.0, 100.0])  # gains only
    assert same(wilder_rsi([5.0, 5.0, 5.0], 2), [NAN, NAN, 50.0])  # no change at all
    assert same(wilder_rsi([5.0, 6.0], 2), [NAN, NAN])  # too short


def test_rsi_reversion_weights_by_hand() -> None:
    close = [10.0, 12.0, 11.0, 13.0, 12.0]
    # RSI = [nan, nan, 66.67, 85.71, 54.55]; lower 60, upper 80
    # t3: 66.67 <= 80 and 85.71 > 80 -> exit 0.0; t4: 85.71 >= 60 and 54.55 < 60 -> entry 1.0
    assert same(rsi_reversion_weights(close, 2, 60.0, 80.0), [NAN, NAN, NAN, 0.0, 1.0])


def test_rsi_reversion_level_tie_is_not_a_cross() -> None:
    close = [10.0, 12.0, 11.0, 13.0, 12.0]
    r4 = wilder_rsi(close, 2)[4]  # 54.5454...
    # RSI lands exactly on the lower level: "below" needs cmp == -1, a tie is not below.
    assert same(rsi_reversion_weights(close, 2, r4, 80.0), [NAN, NAN, NAN, 0.0, NAN])
    # and a level just inside the tolerance band is still a tie
    assert same(rsi_reversion_weights(close, 2, r4 * (1 - 1e-12), 80.0),
                [NAN, NAN, NAN, 0.0, NAN])
