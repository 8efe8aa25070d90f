"""Accounting invariants of the simulator as property tests (hypothesis), on random scenarios."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.sim import SimConfig, run_backtest
from tests.core.test_sim_vs_reference import config_strategy, random_panel, random_weights

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _marks(panel_close: np.ndarray) -> np.ndarray:
    """Last finite close per symbol at each bar (forward fill), NaN before the first."""
    marks = panel_close.copy()
    for t in range(1, len(marks)):
        missing = np.isnan(marks[t])
        marks[t, missing] = marks[t - 1, missing]
    return marks


scenario = st.tuples(st.integers(0, 2**32 - 1), st.integers(1, 3), st.integers(5, 100))


@SETTINGS
@given(scenario=scenario, cfg=config_strategy)
def test_equity_is_cash_plus_marked_positions_every_bar(scenario, cfg):
    seed, n_symbols, n_bars = scenario
    rng = np.random.default_rng(seed)
    panel = random_panel(rng, n_bars, n_symbols)
    r = run_backtest(panel, random_weights(rng, (n_bars, n_symbols), 0.2), SimConfig(**cfg))
    marked = np.nan_to_num(r.positions * _marks(panel.close)).sum(axis=1)
    np.testing.assert_allclose(r.equity, r.cash + marked, rtol=1e-12, atol=1e-6)


@SETTINGS
@given(scenario=scenario, cfg=config_strategy)
def test_trade_pnl_sums_to_the_equity_change(scenario, cfg):
    seed, n_symbols, n_bars = scenario
    rng = np.random.default_rng(seed)
    panel = random_panel(rng, n_bars, n_symbols)
    r = run_backtest(panel, random_weights(rng, (n_bars, n_symbols), 0.2), SimConfig(**cfg))
    total = sum(t["pnl"] for t in r.trades)
    assert abs(total - (r.final_equity - r.config.cash)) <= 1e-7 * r.config.cash


@SETTINGS
@given(scenario=scenario, cfg=config_strategy)
def test_cash_never_below_zero_without_leverage_long_only(scenario, cfg):
    seed, n_symbols, n_bars = scenario
    rng = np.random.default_rng(seed)
    panel = random_panel(rng, n_bars, n_symbols)
    weights = np.abs(random_weights(rng, (n_bars, n_symbols), 0.2))  # long-only
    cfg = {**cfg, "leverage": 1.0}
    r = run_backtest(panel, weights, SimConfig(**cfg))
    assert r.cash.min() >= -1e-9 * r.config.cash
    assert (r.positions >= 0).all()


@SETTINGS
@given(scenario=scenario, cfg=config_strategy, rate=st.sampled_from([1.0, 10.0, 33.3]))
def test_commission_is_rate_times_traded_notional(scenario, cfg, rate):
    seed, n_symbols, n_bars = scenario
    rng = np.random.default_rng(seed)
    panel = random_panel(rng, n_bars, n_symbols)
    cfg = {**cfg, "commission_bps": rate, "commission_fixed": 0.0}
    r = run_backtest(panel, random_weights(rng, (n_bars, n_symbols), 0.2), SimConfig(**cfg))
    # every fill is the entry or the exit side of exactly one trade record
    notional = sum(t["qty"] * (t["entry_price"] + (t["exit_price"] or 0.0)) for t in r.trades)
    assert abs(r.total_commission - rate / 1e4 * notional) <= 1e-9 * max(notional, 1.0)
    assert abs(sum(t["commission"] for t in r.trades) - r.total_commission) <= 1e-9 * max(
        notional, 1.0
    )
