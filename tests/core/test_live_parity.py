"""Live parity without Ray: StrategyRunner + PaperEngine bar by bar against the backtest.

The reference is the vectorized backtest (``strategies.backtest.backtest`` over
``core.sim.run_backtest``), itself checked against the independent plain-Python simulator in
tests/reference/ref_sim.py. The live path runs as docs/live.md orders it, every intent approved
unchanged: ``engine.on_bar`` first, then ``runner.on_bar`` with that bar's fills, its intents to
``engine.submit``, close fills back to the runner. Trades, rejections, commission and the
equity at every bar's close must be equal to the last bit (==, not approx): both paths use one
accounting function and the same float expressions in the same order.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data.loaders import load_wide
from core.panel import WidePanel
from core.paper import PaperEngine, bar_slice
from core.sim import SimConfig
from strategies.backtest import backtest
from strategies.base import Strategy
from strategies.registry import get_strategy
from strategies.runner import StrategyRunner, replay_in_process
from tests.core.test_sim_vs_reference import config_strategy, random_panel, random_weights
from tests.kit.strategies import FixedWeights

DATA = Path(__file__).resolve().parents[2] / "data"
EXAMPLES = int(os.environ.get("LIVE_PARITY_EXAMPLES", "80"))


def load(*names: str) -> WidePanel:
    panel, _ = load_wide([DATA / f"{n}.csv" for n in names])
    return panel


def live_run(strategy: Strategy, panel: WidePanel, cfg: SimConfig) -> dict[str, Any]:
    """The live path in one process; returns what the backtest JSON would show."""
    engine = PaperEngine()
    engine.open_account("s1", panel.symbols, cfg)
    runner = StrategyRunner(strategy, "s1", panel.symbols, cfg)
    equity = np.empty(panel.n_bars)
    for t in range(panel.n_bars):
        bar = bar_slice(panel, t)
        report = engine.on_bar(bar)
        intents = runner.on_bar(bar, report.fills_for("s1"))
        if intents:
            runner.apply_fills(engine.submit(intents, bar).fills)
        equity[t] = engine.equity("s1")
    ledger = engine.ledger("s1")
    assert runner.ledger.cash == ledger.cash  # the host's view holds the broker's floats
    assert runner.ledger.trades() == ledger.trades()
    return {
        "trades": ledger.trades(),
        "rejected": ledger.rejected_orders(),
        "equity": equity,
        "commission": ledger.total_commission,
    }


def assert_parity(strategy: Strategy, panel: WidePanel, cfg: SimConfig) -> dict[str, Any]:
    ref = backtest(strategy, panel, cfg)
    live = live_run(strategy, panel, cfg)
    assert live["trades"] == ref.trades
    assert live["rejected"] == ref.rejected
    assert live["commission"] == ref.total_commission
    assert np.array_equal(live["equity"], ref.equity)
    assert live["equity"][-1] == ref.final_equity
    return live


SMA_STOP = {"stop_loss_pct": 5.0, "commission_bps": 5.0, "slippage_bps": 5.0}


@pytest.mark.parametrize("name", ["ORCL", "NVDA", "YHOO", "ESTX50"])
@pytest.mark.parametrize(
    ("fill", "size_pct"), [("next_open", 1.0), ("close", 0.95), ("close", 1.0)]
)
def test_sma_crossover_with_a_stop_trades_like_the_backtest(name, fill, size_pct) -> None:
    # size 1.0 with fill=close: every buy (close plus slippage) is rejected, checked too
    cfg = SimConfig(fill=fill, size_pct=size_pct, **SMA_STOP)
    live = assert_parity(get_strategy("sma_crossover")(), load(name), cfg)
    assert live["trades"] or live["rejected"]
    if name != "ESTX50":  # the long histories stop out at least once
        assert any(t["exit_reason"] == "stop_loss" for t in live["trades"]) or size_pct == 1.0


@pytest.mark.parametrize("name", ["ORCL", "NVDA", "YHOO", "ESTX50"])
@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_rsi_reversion_trades_like_the_backtest(name, fill) -> None:
    cfg = SimConfig(fill=fill, size_pct=0.9, commission_bps=2.0, commission_fixed=1.0)
    live = assert_parity(get_strategy("rsi_reversion")(), load(name), cfg)
    assert live["trades"]


@pytest.mark.parametrize(
    "cfg",
    [
        SimConfig(commission_bps=10.0, slippage_bps=5.0),
        SimConfig(fill="close", rebalance="every_bar", min_trade_pct=2.0, commission_bps=10.0),
    ],
    ids=["next_open", "close_every_bar"],
)
def test_momentum_portfolio_shares_cash_and_rejects_like_the_backtest(cfg) -> None:
    # ORCL, NVDA (listed 1999) and YHOO (1996) on one cash balance: late listings are NaN bars.
    strategy = get_strategy("momentum")(lookback=63, top_k=2, rebalance_every=21)
    live = assert_parity(strategy, load("ORCL", "NVDA", "YHOO"), cfg)
    assert {t["symbol"] for t in live["trades"]} == {"ORCL", "NVDA", "YHOO"}
    assert live["rejected"]  # buys at full size run out of cash: rejections must match too


def test_breakout_with_stop_and_take_profit_trades_like_the_backtest() -> None:
    cfg = SimConfig(stop_loss_pct=4.0, take_profit_pct=12.0, slippage_bps=3.0, size_pct=0.8)
    live = assert_parity(get_strategy("breakout")(window=30), load("NVDA"), cfg)
    reasons = {t["exit_reason"] for t in live["trades"]}
    assert {"stop_loss", "take_profit", "signal"} <= reasons


def test_pairs_with_shorts_and_leverage_trades_like_the_backtest() -> None:
    cfg = SimConfig(leverage=2.0, commission_bps=1.0, fractional=True)
    live = assert_parity(get_strategy("pairs")(), load("ORCL", "YHOO"), cfg)
    assert {t["side"] for t in live["trades"]} == {"long", "short"}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_symbols=st.integers(1, 3),
    n_bars=st.integers(5, 120),
    density=st.sampled_from([0.05, 0.2, 0.6]),
    cfg=config_strategy,
)
def test_random_scenarios_trade_like_the_backtest(seed, n_symbols, n_bars, density, cfg) -> None:
    # The scenarios of tests/core/test_sim_vs_reference.py: gaps, a late listing, a missing
    # bar, stops, take-profits, costs, fractional, leverage, shorts, both fill and rebalance
    # modes; the strategy replays random event weights.
    rng = np.random.default_rng(seed)
    panel = random_panel(rng, n_bars, n_symbols)
    weights = random_weights(rng, (n_bars, n_symbols), density)
    assert_parity(FixedWeights(weights), panel, SimConfig(cash=10_000.0, **cfg))


def test_a_long_random_three_symbol_run_with_everything_on() -> None:
    rng = np.random.default_rng(7)
    panel = random_panel(rng, 2000, 3)
    weights = random_weights(rng, (2000, 3), 0.05)
    cfg = SimConfig(commission_bps=10, commission_fixed=1, slippage_bps=5, stop_loss_pct=4,
                    take_profit_pct=8, size_pct=0.6, leverage=1.5)  # fmt: skip
    live = assert_parity(FixedWeights(weights), panel, cfg)
    assert len(live["trades"]) > 100


def test_strategies_sharing_one_engine_each_trade_like_their_own_backtest() -> None:
    # Two sub-accounts in one broker, different symbols, configs and fill modes: each one's
    # trades and equity equal its own backtest (sub-accounts never share cash).
    orcl_yhoo = load("ORCL", "YHOO")
    sma_cfg = SimConfig(stop_loss_pct=5.0, slippage_bps=5.0, size_pct=0.9)
    rsi_cfg = SimConfig(fill="close", cash=50_000.0, commission_bps=3.0, size_pct=0.5)
    sma = StrategyRunner(get_strategy("sma_crossover")(), "sma", ("ORCL",), sma_cfg)
    rsi = StrategyRunner(get_strategy("rsi_reversion")(), "rsi", orcl_yhoo.symbols, rsi_cfg)
    engine = replay_in_process(orcl_yhoo, [sma, rsi])
    for runner, panel in ((sma, orcl_yhoo.select(["ORCL"])), (rsi, orcl_yhoo)):
        ref = backtest(runner.strategy, panel, runner.config)
        assert engine.ledger(runner.strategy_id).trades() == ref.trades
        assert engine.equity(runner.strategy_id) == ref.final_equity
