"""The numba simulator against the independent plain-Python reference (tests/reference/ref_sim.py).

Randomized scenarios (hypothesis picks the seed and the config) cover every rule at once:
gaps, missing bars, stops, costs, shared cash, shorts, leverage, both fill and rebalance modes.
Equity curves must agree to 1e-9 relative, trades and rejections exactly.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.panel import WidePanel
from core.sim import BacktestResult, SimConfig, run_backtest
from tests.reference.ref_sim import RefResult, ref_backtest

EXAMPLES = int(os.environ.get("SIM_EXAMPLES", "300"))  # raise it locally for a deeper search


def random_panel(rng: np.random.Generator, n_bars: int, n_symbols: int) -> WidePanel:
    """Random-walk bars with overnight gaps, a late listing and a few missing bars."""
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.03, (n_bars, n_symbols)), axis=0))
    prev = np.vstack([close[:1], close[:-1]])
    open_ = prev * np.exp(rng.normal(0, 0.02, (n_bars, n_symbols)))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.015, (n_bars, n_symbols))))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.015, (n_bars, n_symbols))))
    fields = [open_, high, low, close]
    if n_symbols > 1:  # the last symbol lists late, one symbol misses a bar
        late = int(rng.integers(1, max(n_bars // 3, 2)))
        for f in fields:
            f[:late, -1] = np.nan
        hole = int(rng.integers(late + 1, n_bars))
        for f in fields:
            f[hole, 0] = np.nan
    ts = np.datetime64("2001-01-01", "us") + np.arange(n_bars) * np.timedelta64(1, "D")
    syms = tuple(f"S{i}" for i in range(n_symbols))
    return WidePanel(ts, syms, *fields, np.ones_like(close))


def random_weights(rng: np.random.Generator, shape: tuple[int, int], density: float) -> np.ndarray:
    """Event weights: mostly NaN, sometimes a new target from a small menu."""
    menu = np.array([-1.0, -0.5, 0.0, 0.0, 0.3, 0.5, 1.0])
    w = np.full(shape, np.nan)
    mask = rng.random(shape) < density
    w[mask] = rng.choice(menu, mask.sum())
    return w


def as_rows(a: np.ndarray) -> list[list[float]]:
    return [[float(x) for x in row] for row in a]


def compare(panel: WidePanel, weights: np.ndarray, cfg: SimConfig) -> None:
    got: BacktestResult = run_backtest(panel, weights, cfg)
    ref: RefResult = ref_backtest(
        list(panel.symbols), as_rows(panel.open), as_rows(panel.high), as_rows(panel.low),
        as_rows(panel.close), as_rows(weights), cash=cfg.cash, fill=cfg.fill.value,
        size_pct=cfg.size_pct, fractional=cfg.fractional, commission_bps=cfg.commission_bps,
        commission_fixed=cfg.commission_fixed, slippage_bps=cfg.slippage_bps,
        stop_loss_pct=cfg.stop_loss_pct, take_profit_pct=cfg.take_profit_pct,
        leverage=cfg.leverage, rebalance=cfg.rebalance.value, min_trade_pct=cfg.min_trade_pct,
    )  # fmt: skip
    np.testing.assert_allclose(got.equity, ref.equity, rtol=1e-9, atol=1e-7)
    index = {
        str(np.datetime_as_string(t, unit="s")) + "Z": i for i, t in enumerate(panel.timestamps)
    }
    ours = [
        (t["symbol"], t["side"], t["qty"], index[t["entry_time"]], t["entry_price"],
         None if t["exit_time"] is None else index[t["exit_time"]], t["exit_price"], t["pnl"],
         t["exit_reason"])
        for t in got.trades
    ]  # fmt: skip
    theirs = [
        (t.symbol, t.side, t.qty, t.entry_t, t.entry_price, t.exit_t, t.exit_price, t.pnl,
         t.exit_reason)
        for t in ref.trades
    ]  # fmt: skip
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a[:2] == b[:2] and a[3] == b[3] and a[5] == b[5] and a[8] == b[8], (a, b)
        for x, y in ((a[2], b[2]), (a[4], b[4]), (a[6], b[6]), (a[7], b[7])):
            if x is None or y is None:
                assert x is None and y is None, (a, b)
            else:
                assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-7), (a, b)
    assert [(index[r["time"]], r["symbol"], r["qty"], r["reason"]) for r in got.rejected] == [
        (r.t, r.symbol, pytest.approx(r.qty), r.reason) for r in ref.rejected
    ]
    assert got.total_commission == pytest.approx(ref.total_commission, rel=1e-9, abs=1e-9)


config_strategy = st.fixed_dictionaries(
    {
        "fill": st.sampled_from(["next_open", "close"]),
        "size_pct": st.sampled_from([0.5, 0.95, 1.0, 1.5]),
        "fractional": st.booleans(),
        "commission_bps": st.sampled_from([0.0, 5.0, 25.0]),
        "commission_fixed": st.sampled_from([0.0, 1.0]),
        "slippage_bps": st.sampled_from([0.0, 10.0]),
        "stop_loss_pct": st.sampled_from([None, 2.0, 5.0]),
        "take_profit_pct": st.sampled_from([None, 3.0, 10.0]),
        "leverage": st.sampled_from([1.0, 1.0, 2.0]),
        "rebalance": st.sampled_from(["on_change", "on_change", "every_bar"]),
        "min_trade_pct": st.sampled_from([0.0, 2.0]),
    }
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_symbols=st.integers(1, 3),
    n_bars=st.integers(5, 120),
    density=st.sampled_from([0.05, 0.2, 0.6]),
    cfg=config_strategy,
)
def test_kernel_matches_reference_on_random_scenarios(seed, n_symbols, n_bars, density, cfg):
    rng = np.random.default_rng(seed)
    panel = random_panel(rng, n_bars, n_symbols)
    weights = random_weights(rng, (n_bars, n_symbols), density)
    compare(panel, weights, SimConfig(cash=10_000.0, **cfg))


@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_kernel_matches_reference_on_a_long_three_symbol_run(fill):
    rng = np.random.default_rng(7)
    panel = random_panel(rng, 2000, 3)
    weights = random_weights(rng, (2000, 3), 0.05)
    cfg = SimConfig(fill=fill, commission_bps=10, commission_fixed=1, slippage_bps=5,
                    stop_loss_pct=4, take_profit_pct=8, size_pct=0.6)  # fmt: skip
    compare(panel, weights, cfg)
