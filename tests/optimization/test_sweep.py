"""Grid sweeps on Ray workers against single backtests run one by one (``core.sim.run_backtest``
on each symbol alone, statistics from ``core.stats.compute_stats``): the independent reference.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from core.config import DataSpec
from core.errors import ConfigError
from core.sim import SimConfig, run_backtest
from optimization import sweep as sweep_module
from optimization.space import parse_grid_text
from optimization.specs import SweepSpec
from optimization.sweep import run_sweep
from optimization.workers import WorkerPool
from strategies.backtest import load_panel
from strategies.sma_crossover import SmaCrossover

DATA = DataSpec(synthetic_symbols=3, synthetic_bars=500, seed=11)
SIM = SimConfig(commission_bps=5)
GRID = {"fast": [5, 10, 20], "slow": [20, 30, 60]}


@pytest.mark.timeout(120)
def test_sweep_equals_single_backtests_one_by_one(ray_session):
    spec = SweepSpec(strategy="sma_crossover", data=DATA, sim=SIM, grid=GRID, per_symbol=True,
                     chunk_size=2, workers=2, top_k=3)  # fmt: skip
    result = run_sweep(spec)
    panel = load_panel(DATA)
    expected_sets = [(f, s) for f in GRID["fast"] for s in GRID["slow"] if f < s]
    assert result.n_sets == len(expected_sets) == 8
    got = {(r["fast"], r["slow"]): r for r in result.table.iter_rows(named=True)}
    assert set(got) == set(expected_sets)
    per_symbol = {(r["fast"], r["slow"], r["symbol"]): r
                  for r in result.per_symbol.iter_rows(named=True)}  # fmt: skip
    for fast, slow in expected_sets:
        sharpes = []
        for sym in panel.symbols:
            one = panel.select([sym])
            ref = run_backtest(one, SmaCrossover(fast=fast, slow=slow).target_weights(one), SIM)
            row = per_symbol[(fast, slow, sym)]
            assert row["final_equity"] == pytest.approx(ref.final_equity, rel=1e-12)
            assert row["max_drawdown"] == pytest.approx(ref.stats.max_drawdown, rel=1e-9)
            assert row["sharpe"] == pytest.approx(ref.stats.sharpe, rel=1e-9)
            closed = [t for t in ref.trades if t["exit_time"] is not None]
            assert row["n_trades"] == len(closed)
            sharpes.append(ref.stats.sharpe)
        # the set's score is the mean over symbols, its trade count the sum
        assert got[(fast, slow)]["sharpe"] == pytest.approx(np.mean(sharpes), rel=1e-9)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("chunk_size", [None, 1, 3])
def test_top_k_is_the_k_best_rows_of_the_table(ray_session, chunk_size):
    # the top-k is folded chunk by chunk: whatever the chunking, it is the table's k best
    spec = SweepSpec(strategy="sma_crossover", data=DATA, grid=GRID, metric="max_drawdown",
                     top_k=3, workers=1, chunk_size=chunk_size)  # fmt: skip
    result = run_sweep(spec)
    expected = sorted(result.table["max_drawdown"].to_list())[:3]  # minimized metric
    assert [t["max_drawdown"] for t in result.top] == pytest.approx(expected)
    assert result.summary()["direction"] == "minimize"
    assert result.table.height == result.n_sets == 8
    assert result.table["feasible"].dtype == pl.Boolean


@pytest.mark.timeout(120)
def test_a_grid_too_large_to_list_is_counted_then_streamed_with_the_same_result(
    ray_session, monkeypatch
):
    spec = SweepSpec(strategy="sma_crossover", data=DATA, grid=GRID, workers=1, chunk_size=3)
    listed = run_sweep(spec)
    monkeypatch.setattr(sweep_module, "_LISTED_GRID", 0)  # every grid "too large" to list
    streamed = run_sweep(spec)
    assert streamed.n_sets == listed.n_sets == 8
    assert streamed.table.sort("fast", "slow").equals(listed.table.sort("fast", "slow"))
    assert streamed.top == listed.top


@pytest.mark.timeout(120)
def test_the_first_calls_go_to_the_workers_in_snake_order(ray_session):
    # an ordered grid's first chunks cost most: worker 0 gets the first and the last of the
    # first round of four, worker 1 the two between
    with WorkerPool("sma_crossover", load_panel(DATA), SIM, 2) as pool:
        sent: list[tuple[int, int]] = []

        def call(actor, item):
            sent.append((pool.actors.index(actor), item))
            return actor.ready.remote()

        got = list(pool.stream(range(4), call, depth=2))
    assert sent == [(0, 0), (1, 1), (1, 2), (0, 3)]
    assert sorted(item for item, _ in got) == [0, 1, 2, 3]


def test_grid_text_and_its_errors():
    assert parse_grid_text(SmaCrossover, "fast", "5:20:5") == [5, 10, 15, 20]
    assert parse_grid_text(SmaCrossover, "slow", "30,60") == [30, 60]
    with pytest.raises(ConfigError, match="no parameter 'fats'"):
        parse_grid_text(SmaCrossover, "fats", "1,2")
    with pytest.raises(ConfigError, match="must be in"):
        parse_grid_text(SmaCrossover, "fast", "0:10:5")


def test_a_grid_empty_after_constraints_is_an_error():
    spec = SweepSpec(strategy="sma_crossover", grid={"fast": [50], "slow": [20, 30]})
    with pytest.raises(ConfigError, match="empty after its constraints"):
        run_sweep(spec)


def test_default_chunks_are_two_calls_per_worker_and_capped() -> None:
    """By hand: 174 sets on 2 workers -> 4 calls of ceil(174 / 4) = 44; a huge grid is cut
    into calls of MAX_DEFAULT_CHUNK so replies stay small and progress keeps moving."""
    from optimization.sweep import MAX_DEFAULT_CHUNK, default_chunk_size

    assert default_chunk_size(174, 2) == 44
    assert default_chunk_size(174, 1) == 87
    assert default_chunk_size(1, 8) == 1
    assert default_chunk_size(10_000_000, 2) == MAX_DEFAULT_CHUNK == 1_000


def test_the_grid_runs_with_its_longest_value_list_outermost() -> None:
    # fast 5..15 (3 values) x slow 20..60 (5 values), fast < slow: all 15 pairs. In W2's
    # order (slow outermost) a chunk spans few slow windows, so its workers compute fewer
    # SMAs; the sets themselves, and each set's key order, are unchanged.
    from optimization.space import iter_grid
    from optimization.sweep import _window_order
    from strategies.registry import get_strategy

    cls = get_strategy("sma_crossover")
    values = {"fast": [5, 10, 15], "slow": [20, 30, 40, 50, 60]}
    ordered = list(_window_order(cls, {}, values))
    assert [(p["fast"], p["slow"]) for p in ordered[:4]] == [(5, 20), (10, 20), (15, 20), (5, 30)]
    assert all(list(p) == ["fast", "slow"] for p in ordered)
    plain = list(iter_grid(cls, {}, values))
    assert sorted(map(tuple, (p.values() for p in ordered))) == sorted(
        map(tuple, (p.values() for p in plain))
    ) and len(plain) == 15
