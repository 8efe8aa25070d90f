"""Stress scenarios: shocks checked against hand-computed prices, breaches against the equity.

The shocked panels are checked bar by bar against what the shock's definition says (a gap
scales every later price by 1 + x; a volatility multiple k turns each log return r into k r;
correlation 1 makes the symbols' returns proportional); the stress table is checked against
plain ``run_backtest`` of the same shocked panel.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.config import DataSpec
from core.errors import ConfigError
from core.sim import SimConfig, run_backtest
from optimization.specs import ShockSpec, StressSpec
from optimization.stress import apply_shock, default_scenarios, run_stress
from strategies.backtest import load_panel
from strategies.sma_crossover import SmaCrossover

DATA = DataSpec(synthetic_symbols=3, synthetic_bars=600, seed=8)


def _day(panel, i):
    return str(np.datetime_as_string(panel.timestamps[i], unit="D"))


def test_gap_scales_the_gap_bar_and_everything_after_it():
    panel = load_panel(DATA)
    shocked = apply_shock(panel, ShockSpec(kind="gap", start=_day(panel, 300), size=-20))
    np.testing.assert_array_equal(shocked.close[:300], panel.close[:300])
    np.testing.assert_allclose(shocked.open[300:], panel.open[300:] * 0.8, rtol=1e-15)
    np.testing.assert_allclose(shocked.low[450], panel.low[450] * 0.8, rtol=1e-15)


def test_vol_multiplies_log_returns_in_the_window_only():
    panel = load_panel(DATA)
    shock = ShockSpec(kind="vol", start=_day(panel, 200), end=_day(panel, 259), size=3)
    shocked = apply_shock(panel, shock)
    r_old, r_new = (np.diff(np.log(p.close), axis=0) for p in (panel, shocked))
    np.testing.assert_allclose(r_new[199:259], 3 * r_old[199:259], atol=1e-12)  # bars 200..259
    np.testing.assert_allclose(r_new[259:], r_old[259:], atol=1e-12)
    np.testing.assert_allclose(r_new[:199], r_old[:199], atol=1e-12)
    ratio = shocked.high / shocked.close  # bars keep their shape
    np.testing.assert_allclose(ratio, panel.high / panel.close, rtol=1e-12)


def test_correlation_one_makes_returns_perfectly_correlated_and_keeps_vols():
    panel = load_panel(DATA)
    shock = ShockSpec(kind="correlation", start=_day(panel, 100), end=_day(panel, 199))
    r = np.diff(np.log(apply_shock(panel, shock).close), axis=0)[99:199]
    corr = np.corrcoef(r.T)
    np.testing.assert_allclose(corr, np.ones_like(corr), atol=1e-12)
    r_old = np.diff(np.log(panel.close), axis=0)[99:199]
    np.testing.assert_allclose(r.std(axis=0), r_old.std(axis=0), rtol=1e-12)


def test_stress_table_matches_single_backtests_and_counts_breaches():
    panel = load_panel(DATA)
    sim = SimConfig()
    gap = ShockSpec(kind="gap", start=_day(panel, 300), size=-30)
    window = ShockSpec(kind="historical", start=_day(panel, 100), end=_day(panel, 399))
    spec = StressSpec(strategy="sma_crossover", data=DATA, scenarios=[gap, window],
                      max_daily_loss_pct=4, max_drawdown_pct=10)  # fmt: skip
    table = run_stress(spec).table
    assert table["scenario"].to_list()[0] == "baseline"
    strat = SmaCrossover()
    shocked = apply_shock(panel, gap)
    ref = run_backtest(shocked, strat.target_weights(shocked), sim)
    row = table.row(1, named=True)
    assert row["pnl"] == pytest.approx(ref.final_equity - sim.cash, rel=1e-12)
    eq = ref.equity
    assert row["window_pnl"] == pytest.approx(eq[300] - eq[299], rel=1e-12)
    rets = eq / np.concatenate(([sim.cash], eq[:-1])) - 1
    assert row["daily_loss_breaches"] == int(np.sum(rets < -0.04))
    assert row["drawdown_breach"] == (ref.stats.max_drawdown > 0.10)
    # the historical window: weights from the history before it, simulated on the window only
    hist = table.row(2, named=True)
    w = strat.target_weights(panel.slice(0, 400))[100:]
    ref = run_backtest(panel.slice(100, 400), w, sim)
    assert hist["total_return"] == pytest.approx(ref.stats.total_return, rel=1e-12)


def test_default_scenarios_and_bad_windows():
    panel = load_panel(DATA)  # 2000-01-03 .. 2002-04: no crisis window fits entirely
    kinds = [s.kind.value for s in default_scenarios(panel)]
    assert kinds == ["gap", "vol", "correlation"]
    outside = ShockSpec(kind="historical", start="2008-01-01", end="2009-01-01")
    spec = StressSpec(strategy="sma_crossover", data=DATA, scenarios=[outside])
    with pytest.raises(ConfigError, match="does not lie inside the data"):
        run_stress(spec)
