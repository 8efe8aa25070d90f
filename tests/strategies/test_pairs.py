"""Pairs: rolling OLS beta and z against plain Python, entry/exit events, dollar weights."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

import strategies.indicators as indicators
import strategies.pairs as pairs_module
from core.errors import ConfigError
from core.panel import WidePanel
from strategies.pairs import Pairs, pairs_signal_nb, rolling_hedge_nb

NAN = np.nan


def _panel(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> WidePanel:
    c = np.column_stack([np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)])
    ts = np.arange(c.shape[0]).astype("datetime64[D]").astype("datetime64[us]")
    return WidePanel(ts, ("A", "B"), c, c, c, c, np.ones_like(c))


def _ols_z(a: list[float], b: list[float], window: int) -> tuple[list[float], list[float]]:
    """Plain-Python reference: ``statistics`` covariance/variance/stdev (ddof=1) per window."""
    betas, zs = [NAN] * len(a), [NAN] * len(a)
    for t in range(window - 1, len(a)):
        wa, wb = a[t - window + 1 : t + 1], b[t - window + 1 : t + 1]
        beta = statistics.covariance(wa, wb) / statistics.variance(wb)
        alpha = statistics.fmean(wa) - beta * statistics.fmean(wb)
        resid = [x - alpha - beta * y for x, y in zip(wa, wb, strict=True)]
        betas[t], zs[t] = beta, resid[-1] / statistics.stdev(resid)
    return betas, zs


def _events(z: list[float], beta: list[float], pa: list[float], pb: list[float], entry: float,
            exit_: float) -> np.ndarray:  # fmt: skip
    """Plain-Python reference of the event rules (levels are never touched in its data)."""
    out = np.full((len(z), 2), NAN)
    for t in range(1, len(z)):
        zp, zt = z[t - 1], z[t]
        if math.isnan(zp) or math.isnan(zt):
            continue
        gross = pa[t] + abs(beta[t]) * pb[t]
        if zp >= -entry > zt:
            out[t] = [pa[t] / gross, -beta[t] * pb[t] / gross]
        elif zp <= entry < zt:
            out[t] = [-pa[t] / gross, beta[t] * pb[t] / gross]
        elif zp >= exit_ > zt or zp <= -exit_ < zt:
            out[t] = [0.0, 0.0]
    return out


def test_hedge_on_a_three_bar_window_by_hand() -> None:
    # a = 1 2 4, b = 1 2 3: mean a 7/3, mean b 2; cov = ((-4/3)(-1) + 0 + (5/3)(1))/2 = 3/2;
    # var b = (1 + 0 + 1)/2 = 1 -> beta 1.5; alpha = 7/3 - 3 = -2/3;
    # residuals 1/6, -1/3, 1/6; std = sqrt((1/36 + 4/36 + 1/36)/2) = sqrt(1/12);
    # z = (1/6) / sqrt(1/12) = 1/sqrt(3).
    beta, z = rolling_hedge_nb(np.array([1.0, 2, 4]), np.array([1.0, 2, 3]), 3)
    assert np.isnan(beta[:2]).all() and np.isnan(z[:2]).all()
    assert beta[2] == pytest.approx(1.5, rel=1e-14)
    assert z[2] == pytest.approx(1 / math.sqrt(3), rel=1e-13)


def test_hedge_matches_plain_python_ols() -> None:
    """Reference: ``_ols_z`` (the ``statistics`` module) on 60 random bars."""
    rng = np.random.default_rng(21)
    b = 30 + np.cumsum(rng.normal(0, 1, 60))
    a = 5 + 1.3 * b + rng.normal(0, 0.8, 60)
    beta, z = rolling_hedge_nb(a, b, 12)
    ref_beta, ref_z = _ols_z(a.tolist(), b.tolist(), 12)
    np.testing.assert_allclose(beta, ref_beta, rtol=1e-10)
    np.testing.assert_allclose(z, ref_z, rtol=1e-9)


def test_hedge_is_undefined_for_nan_windows_and_perfect_fits() -> None:
    b = np.arange(1.0, 11.0)
    beta, z = rolling_hedge_nb(2.0 * b, b, 4)  # a perfect fit: the residual std is 0
    assert np.isnan(z).all() and np.isnan(beta).all()
    a = 3.0 + np.array([0.1, -0.2, 0.3, 0.0, -0.1, 0.2, NAN, 0.1, 0.0, -0.3]) + b
    _, z = rolling_hedge_nb(a, b, 3)
    assert np.isnan(z[6:9]).all() and not np.isnan(z[[5, 9]]).any()


# entry 2, exit 0.5; prices 50 and 20; beta 1.5 -> gross 50 + 1.5*20 = 80:
# long spread (.625, -.375), short (-.625, .375). At t8 beta -0.5 -> gross 60: (5/6, 1/6).
Z = [NAN, 0.0, 2.5, 1.0, 0.3, -2.5, -0.3, 3.0, -3.0, 2.0, 2.5]
EVENTS = [
    None,  # t0 undefined
    None,  # t1 previous undefined
    "short",  # t2 0 -> 2.5 crosses above +2
    None,  # t3 2.5 -> 1 is still above +exit
    "flat",  # t4 1 -> .3 crosses below +.5
    "long",  # t5 .3 -> -2.5 crosses below -2
    "flat",  # t6 -2.5 -> -.3 crosses above -.5
    "short",  # t7 -.3 -> 3 crosses above +2
    "long",  # t8 3 -> -3 crosses below +.5 (exit) and -2 (entry): the entry wins
    "flat",  # t9 -3 -> 2 crosses above -.5; 2 only touches the entry level
    "short",  # t10 2 -> 2.5: from a tie to above is a cross
]


def test_events_and_dollar_weights_by_hand() -> None:
    beta = np.full(len(Z), 1.5)
    beta[8] = -0.5
    pa, pb = np.full(len(Z), 50.0), np.full(len(Z), 20.0)
    out = np.empty((len(Z), 2))
    pairs_signal_nb(np.array(Z), beta, pa, pb, 2.0, 0.5, out, 1e-10)
    weights = {"short": [-0.625, 0.375], "long": [0.625, -0.375], "flat": [0.0, 0.0]}
    expected = np.array([weights[e] if e else [NAN, NAN] for e in EVENTS])
    expected[8] = [5 / 6, 1 / 6]  # beta -0.5: -beta*P_b/gross = +10/60, both legs long
    np.testing.assert_allclose(out, expected, rtol=1e-15)
    assert np.array_equal(np.isnan(out), np.isnan(expected))


def test_strategy_matches_plain_python_reference() -> None:
    """Reference: ``_ols_z`` then ``_events``, all plain Python."""
    rng = np.random.default_rng(5)
    b = 40 * np.exp(np.cumsum(rng.normal(0, 0.01, 400)))
    a = 10 + 1.2 * b + np.cumsum(rng.normal(0, 0.3, 400)) * 0.2 + rng.normal(0, 0.5, 400)
    strategy = Pairs(window=30, entry_z=1.5, exit_z=0.25)
    got = strategy.checked_weights(_panel(a, b))
    ref_beta, ref_z = _ols_z(a.tolist(), b.tolist(), 30)
    ref = _events(ref_z, ref_beta, a.tolist(), b.tolist(), 1.5, 0.25)
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(got[~np.isnan(got)], ref[~np.isnan(ref)], rtol=1e-9, atol=1e-15)
    entries = got[(got[:, 0] != 0) & ~np.isnan(got[:, 0])]
    assert len(entries) > 3
    np.testing.assert_allclose(np.abs(entries).sum(axis=1), 1.0, rtol=1e-14)  # gross 1
    assert np.nanmax(np.abs(got)) <= 1.0


def test_params_and_symbol_count() -> None:
    with pytest.raises(ConfigError, match=r"exit_z=2\.0.*entry_z=2\.0"):
        Pairs(entry_z=2.0, exit_z=2.0)
    assert Pairs(window=60).lookback == 61
    three = WidePanel(
        np.arange(5).astype("datetime64[D]").astype("datetime64[us]"),
        ("A", "B", "C"),
        *(np.ones((5, 3)) for _ in range(5)),
    )
    with pytest.raises(ConfigError, match="exactly 2 symbols"):
        Pairs().checked_weights(three)


def test_pure_python_kernels_match(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernels' Python bodies (numba bypassed) give the same weights."""
    rng = np.random.default_rng(8)
    b = 20 + np.cumsum(rng.normal(0, 0.5, 120))
    a = 3 + 0.8 * b + rng.normal(0, 0.4, 120)
    jit = Pairs(window=15, entry_z=1.2, exit_z=0.2).target_weights(_panel(a, b))
    for module in (pairs_module, indicators):
        for name, obj in list(vars(module).items()):
            if isinstance(obj, CPUDispatcher):
                monkeypatch.setattr(module, name, obj.py_func)
    py = Pairs(window=15, entry_z=1.2, exit_z=0.2).target_weights(_panel(a, b))
    np.testing.assert_array_equal(py, jit)
