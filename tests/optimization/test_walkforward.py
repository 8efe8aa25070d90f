"""Walk-forward folds (pure) and a full run on Ray checked against single backtests.

The out-of-sample returns of each fold are recomputed independently: the strategy's own
``target_weights`` on the fold's history, then ``core.sim.run_backtest`` per symbol on the
test bars, averaged over symbols.
"""

from __future__ import annotations

import ast
import itertools

import numpy as np
import pytest

from core.config import DataSpec
from core.errors import ConfigError
from core.sim import SimConfig, run_backtest
from optimization.specs import WalkForwardSpec, WindowMode
from optimization.walkforward import make_folds, run_walkforward
from strategies.backtest import load_panel
from strategies.sma_crossover import SmaCrossover

DAYS = np.datetime64("2000-01-03", "us") + np.arange(1000) * np.timedelta64(1, "D")


@pytest.mark.parametrize("mode", list(WindowMode))
def test_bar_folds_never_overlap_train_and_test(mode):
    folds = make_folds(DAYS, "300", "100", mode)
    assert len(folds) == 7  # test windows 300..400, ..., 900..1000
    for f in folds:
        assert f.train_lo < f.train_hi == f.test_lo < f.test_hi <= 1000
        assert f.test_hi - f.test_lo == 100
        assert f.train_hi - f.train_lo == (300 if mode is WindowMode.ROLLING else f.test_lo)
    for a, b in itertools.pairwise(folds):
        assert a.test_hi == b.test_lo  # test windows tile without overlap


def test_date_folds_follow_the_calendar():
    folds = make_folds(DAYS, "1y", "3m", WindowMode.ROLLING)
    first = folds[0]
    assert str(DAYS[first.test_lo])[:10] == "2001-01-03"  # one year after the first day
    assert str(DAYS[first.test_hi])[:10] == "2001-04-03"
    assert str(DAYS[first.train_lo])[:10] == "2000-01-03"
    for f in folds:
        assert f.train_hi == f.test_lo and f.test_hi <= len(DAYS)


def test_bad_windows_are_errors_naming_the_option():
    with pytest.raises(ConfigError, match="--train 1000 bars is not shorter than the data"):
        make_folds(DAYS, "1000", "10")
    with pytest.raises(ConfigError, match="no walk-forward fold fits"):
        make_folds(DAYS, "950", "100")
    with pytest.raises(ConfigError, match="--test '3q'"):
        make_folds(DAYS, "100", "3q")
    with pytest.raises(ConfigError, match="both in bars or both as periods"):
        make_folds(DAYS, "100", "3m")
    with pytest.raises(ConfigError, match="--train 5y is longer than the data"):
        make_folds(DAYS, "5y", "3m")


@pytest.mark.timeout(180)
def test_walkforward_oos_equals_single_backtests_and_stats_are_consistent(ray_session):
    data = DataSpec(synthetic_symbols=2, synthetic_bars=900, seed=4)
    sim = SimConfig(commission_bps=2)
    spec = WalkForwardSpec(
        strategy="sma_crossover", data=data, sim=sim, train="400", test="150", trials=12,
        sampler="random", seed=3, pbo_splits=8,
    )  # fmt: skip
    result = run_walkforward(spec)
    panel = load_panel(data)
    folds = result.folds
    assert folds.height == 3
    stitched = result.equity["return"].to_numpy()
    assert len(stitched) == 450
    offset = 0
    for row in folds.iter_rows(named=True):
        params = ast.literal_eval(row["params"])
        lo = 400 + 150 * row["fold"]
        hist = panel.slice(lo - 400, lo + 150)
        weights = SmaCrossover(**params).target_weights(hist)[400:]
        rets = []
        for s, _ in enumerate(panel.symbols):
            test = panel.slice(lo, lo + 150).select([panel.symbols[s]])
            eq = run_backtest(test, weights[:, [s]], sim).equity
            rets.append(eq / np.concatenate(([sim.cash], eq[:-1])) - 1)
        expected = np.mean(rets, axis=0)
        np.testing.assert_allclose(stitched[offset : offset + 150], expected, rtol=0, atol=1e-12)
        assert row["oos_total_return"] == pytest.approx(np.prod(1 + expected) - 1, abs=1e-12)
        offset += 150
    np.testing.assert_allclose(
        result.equity["equity"].to_numpy(), sim.cash * np.cumprod(1 + stitched), rtol=1e-12
    )
    s = result.stats
    wfe = folds["oos_sharpe"].mean() / folds["is_sharpe"].mean()
    assert s["walk_forward_efficiency"] == pytest.approx(wfe)
    assert 0.0 <= s["pbo"] <= 1.0 and 0.0 <= s["dsr"] <= 1.0
    assert s["n_candidates"] >= 2 and s["pbo_combinations"] == 70  # C(8, 4)
