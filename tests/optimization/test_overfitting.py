"""DSR and PBO against values computed by hand from the papers' formulas (see each test)."""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np
import pytest

from core.errors import ConfigError
from optimization.overfitting import (
    EULER_GAMMA,
    deflated_sharpe,
    expected_max_sharpe,
    moments,
    pbo_cscv,
    probabilistic_sharpe,
)

PHI = NormalDist()


def test_dsr_of_six_returns_by_hand():
    # r = [1, -2, 3, 0, 2, -1] %: mean 0.5%, deviations (0.5, -2.5, 2.5, -0.5, 1.5, -1.5)%,
    # sum of squares 17.5e-4 -> var (ddof 1) 3.5e-4, SR = 0.005 / sqrt(3.5e-4) = 0.267261;
    # cubes cancel -> skew 0; m4 = 88.375e-8 / 6, m2 = 17.5e-4 / 6 -> kurt = 1.731429.
    r = np.array([0.01, -0.02, 0.03, 0.0, 0.02, -0.01])
    sr = 0.005 / math.sqrt(3.5e-4)
    kurt = (88.375e-8 / 6) / (17.5e-4 / 6) ** 2
    assert moments(r) == pytest.approx((0.0, kurt), abs=1e-12)
    # N = 5 trials with V[SR] = 0.04: SR0 = 0.2 ((1-g) z(1 - 1/5) + g z(1 - 1/(5e))) = 0.23850
    sr0 = 0.2 * (
        (1 - EULER_GAMMA) * PHI.inv_cdf(0.8) + EULER_GAMMA * PHI.inv_cdf(1 - 1 / (5 * math.e))
    )
    assert sr0 == pytest.approx(0.23850, abs=5e-5)
    expected = PHI.cdf((sr - sr0) * math.sqrt(5) / math.sqrt(1 + (kurt - 1) / 4 * sr**2))
    assert expected == pytest.approx(0.5255, abs=5e-4)  # the same number, by hand
    got = deflated_sharpe(r, n_trials=5, var_sharpe=0.04)
    assert got.sharpe == pytest.approx(sr, rel=1e-12)
    assert got.sr0 == pytest.approx(sr0, rel=1e-12)
    assert got.dsr == pytest.approx(expected, rel=1e-12)


def test_dsr_reproduces_the_papers_numerical_example():
    # Bailey & Lopez de Prado (2014), numerical example: annualized SR 2.5 over 5 years of
    # daily returns (T = 1250), N = 100 trials with annualized V[SR] = 0.5, skew -3, kurt 10;
    # the paper reports DSR = 0.9004. Per period: SR = 2.5/sqrt(250), V = 0.5/250.
    sr, var = 2.5 / math.sqrt(250), 0.5 / 250
    sr0 = expected_max_sharpe(100, var)
    assert sr0 * math.sqrt(250) == pytest.approx(1.7894, abs=1e-4)  # sqrt(.5) x 2.5307
    assert probabilistic_sharpe(sr, sr0, 1250, -3.0, 10.0) == pytest.approx(0.9004, abs=1e-3)


def test_expected_max_sharpe_edge_cases():
    assert expected_max_sharpe(1, 0.3) == 0.0
    with pytest.raises(ConfigError, match="at least one trial"):
        expected_max_sharpe(0, 0.3)


# Four configurations (A, B, C, D) over four one-row blocks; statistic: the mean.
HAND = np.array([
    [5.0, 1.0, 2.0, 3.0],
    [4.0, 2.0, 1.0, 3.5],
    [4.5, 3.0, 2.5, 1.0],
    [0.5, 4.0, 3.0, 2.0],
])  # fmt: skip


def test_pbo_cscv_by_hand():
    # Combinations of in-sample blocks, in itertools order; IS sums -> winner; OOS sums ->
    # rank (1 = worst, ties ranked low) -> w = rank / 5 -> logit ln(w / (1 - w)):
    # {0,1}: IS A9 B3 C3 D6.5 -> A; OOS A5 B7 C5.5 D3     -> rank 2 -> ln(.4/.6) = -0.405
    # {0,2}: IS A9.5 B4 C4.5 D4 -> A; OOS A4.5 B6 C4 D5.5 -> rank 2 -> -0.405
    # {0,3}: IS A5.5 B5 C5 D5 -> A; OOS A8.5 B5 C3.5 D4.5 -> rank 4 -> ln(.8/.2) = +1.386
    # {1,2}: IS A8.5 B5 C3.5 D4.5 -> A; OOS A5.5 B5 C5 D5 -> rank 4 -> +1.386
    # {1,3}: IS A4.5 B6 C4 D5.5 -> B; OOS A9.5 B4 C4.5 D4 -> rank 1 (D ties) -> ln(.2/.8)
    # {2,3}: IS A5 B7 C5.5 D3 -> B; OOS A9 B3 C3 D6.5 -> rank 1 (C ties) -> -1.386
    # PBO = #(logit <= 0) / 6 = 4/6.
    got = pbo_cscv(HAND, n_splits=4, statistic="mean")
    a, b = math.log(0.4 / 0.6), math.log(0.8 / 0.2)
    assert got.logits == pytest.approx([a, a, b, b, -b, -b], abs=1e-12)
    assert list(got.winners) == [0, 0, 0, 0, 1, 1]
    assert got.pbo == pytest.approx(4 / 6)


def _pbo_loop(perf: np.ndarray, splits: int) -> float:
    """An independent, plainly written CSCV with the Sharpe ratio (ddof=1) as the statistic."""
    blocks = np.array_split(perf[perf.shape[0] % splits :], splits)
    overfit = total = 0
    for train in itertools.combinations(range(splits), splits // 2):
        test = [b for b in range(splits) if b not in train]
        is_rows = np.vstack([blocks[b] for b in train])
        oos_rows = np.vstack([blocks[b] for b in test])
        is_sr = is_rows.mean(0) / is_rows.std(0, ddof=1)
        oos_sr = oos_rows.mean(0) / oos_rows.std(0, ddof=1)
        best = int(np.argmax(is_sr))
        rank = 1 + sum(1 for v in oos_sr if v < oos_sr[best])
        w = rank / (perf.shape[1] + 1)
        overfit += math.log(w / (1 - w)) <= 0
        total += 1
    return overfit / total


def test_pbo_with_sharpe_matches_an_independent_loop():
    rng = np.random.default_rng(5)
    perf = rng.normal(0.0005, 0.01, size=(67, 6))
    assert pbo_cscv(perf, n_splits=8).pbo == pytest.approx(_pbo_loop(perf, 8), abs=1e-12)


def test_pbo_rejects_bad_shapes():
    with pytest.raises(ConfigError, match="even"):
        pbo_cscv(HAND, n_splits=3)
    with pytest.raises(ConfigError, match="N >= 2"):
        pbo_cscv(HAND[:, :1], n_splits=2)
