"""Monte Carlo: reproducibility across worker counts, sampling error, block and trade paths.

Tolerances are computed from the distributions, not guessed: 4 standard errors of a mean
(sd / sqrt(M)) or of a quantile's probability (sqrt(q (1 - q) / M)) plus the step of a
discrete CDF. A pure-Python SplitMix64 is the independent reference for one path.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest

from core.config import DataSpec
from core.errors import ConfigError
from optimization.montecarlo import path_keys, run_montecarlo, run_paths, summarize, task_layout
from optimization.specs import MonteCarloMethod, MonteCarloSpec

IID, BLOCK, TRADES = MonteCarloMethod.IID, MonteCarloMethod.BLOCK, MonteCarloMethod.TRADES
RETURNS = (np.arange(100) - 45) / 1000.0  # 100 distinct returns, -4.5% .. +5.4%
MASK = (1 << 64) - 1


def _splitmix(state: int) -> tuple[int, int]:
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


@pytest.mark.timeout(120)
def test_one_path_matches_a_pure_python_splitmix_reference(ray_session):
    sim = run_paths(RETURNS, IID, 3, 40, 1.0, 42, 252.0, 1.0, workers=1)
    state, drawn = int(path_keys(42, 0, 3)[1]), []
    for _ in range(40):
        state, bits = _splitmix(state)
        drawn.append(RETURNS[int((bits >> 11) * 2.0**-53 * 100)])
    equity = np.cumprod(1 + np.array(drawn))
    peaks = np.maximum.accumulate(np.concatenate(([1.0], equity)))[1:]
    assert sim["final_return"][1] == pytest.approx(equity[-1] - 1, rel=1e-13)
    assert sim["max_drawdown"][1] == pytest.approx(np.max(1 - equity / peaks), rel=1e-12)
    assert sim["min_equity"][1] == pytest.approx(min(1.0, equity.min()), rel=1e-13)
    sharpe = np.mean(drawn) / np.std(drawn, ddof=1) * math.sqrt(252)
    assert sim["sharpe"][1] == pytest.approx(sharpe, rel=1e-9)
    assert sim["fan"][1, -1] == pytest.approx(equity[-1], rel=1e-13)


def _reference_path(key: int, method: MonteCarloMethod, steps: int, p_new: float) -> np.ndarray:
    """One path's drawn returns, path by path in pure Python from the documented stream: a
    draw per bar; under the stationary bootstrap a new block (t = 0, or that draw's uniform
    below ``p_new``) takes a second draw for its start, else the block goes on, wrapping."""
    state, idx, drawn = key, 0, []
    for t in range(steps):
        state, bits = _splitmix(state)
        u = (bits >> 11) * 2.0**-53
        if method is IID:
            idx = int(u * len(RETURNS))
        elif t == 0 or u < p_new:
            state, bits = _splitmix(state)
            idx = int((bits >> 11) * 2.0**-53 * len(RETURNS))
        else:
            idx = (idx + 1) % len(RETURNS)
        drawn.append(RETURNS[idx])
    return np.array(drawn)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", [IID, BLOCK])
def test_paths_on_both_sides_of_a_lane_group_match_the_pure_python_reference(ray_session, method):
    # The kernel runs LANES paths side by side; 300 paths make a full group and a partial one.
    from optimization.montecarlo_nb import LANES

    paths, steps, block_length = LANES + 44, 30, 4.0
    sim = run_paths(RETURNS, method, paths, steps, block_length, 7, 252.0, 1.0, workers=1)
    keys = path_keys(7, 0, paths)
    for i in (0, 1, LANES - 1, LANES, paths - 1):
        drawn = _reference_path(int(keys[i]), method, steps, 1 / block_length)
        equity = np.cumprod(1 + drawn)
        peaks = np.maximum.accumulate(np.concatenate(([1.0], equity)))[1:]
        assert sim["final_return"][i] == pytest.approx(equity[-1] - 1, rel=1e-13, abs=1e-15)
        assert sim["max_drawdown"][i] == pytest.approx(np.max(1 - equity / peaks), rel=1e-12)
        assert sim["min_equity"][i] == pytest.approx(min(1.0, equity.min()), rel=1e-13)
        sharpe = np.mean(drawn) / np.std(drawn, ddof=1) * math.sqrt(252)
        assert sim["sharpe"][i] == pytest.approx(sharpe, rel=1e-9)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", [IID, BLOCK])
def test_same_seed_same_numbers_for_one_and_two_workers(ray_session, method):
    args = (RETURNS, method, 2500, 60, 5.0)  # 2500 paths: three blocks, the last one partial
    one = run_paths(*args, 9, 252.0, 1.0, workers=1)
    two = run_paths(*args, 9, 252.0, 1.0, workers=2)  # one task, two threads (one node)
    split = run_paths(*args, 9, 252.0, 1.0, workers=2, layout=[1, 1])  # two tasks, as on 2 nodes
    other = run_paths(*args, 10, 252.0, 1.0, workers=2)
    for key in ("final_return", "max_drawdown", "sharpe", "min_equity", "fan"):
        np.testing.assert_array_equal(one[key], two[key])
        np.testing.assert_array_equal(one[key], split[key])
    assert not np.array_equal(one["final_return"], other["final_return"])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", [IID, BLOCK, TRADES])
def test_the_fan_holds_the_first_fan_paths_paths_in_any_layout(ray_session, method):
    # 2500 paths are three blocks of 1024; two tasks split them 2048 + 452, so a cap of 1500
    # leaves the second task no fan row and 2200 leaves it 152 (neither a multiple of LANES).
    data = np.array([500.0, -300.0, 200.0, -800.0, 1000.0, -100.0]) if method is TRADES else RETURNS
    steps, cash = (6, 10_000.0) if method is TRADES else (60, 1.0)
    args = (data, method, 2500, steps, 5.0, 9, 252.0, cash)
    full = run_paths(*args, workers=1, fan_paths=2500)
    for cap, layout in itertools.product((1500, 2200), ([2], [1, 1])):
        capped = run_paths(*args, workers=2, layout=layout, fan_paths=cap)
        assert capped["fan"].shape == (cap, full["fan"].shape[1])
        np.testing.assert_array_equal(capped["fan"], full["fan"][:cap])
        for key in ("final_return", "max_drawdown", "sharpe", "min_equity"):
            np.testing.assert_array_equal(capped[key], full[key])


def test_the_fan_chart_title_says_when_it_shows_fewer_paths_than_the_run():
    from optimization.montecarlo import MonteCarloResult
    from optimization.report import figures
    from optimization.specs import JobKind

    fan = pl.DataFrame({"step": [0, 1], **{f"q{q:02d}": [1.0, 1.1] for q in (5, 25, 50, 75, 95)}})
    paths = pl.DataFrame({k: [0.1, 0.2] for k in ("final_return", "max_drawdown", "sharpe")})
    stats = {"method": "iid", "paths": 50_000, "fan_paths": 10_000, "seed": 3}
    capped = figures(JobKind.MONTECARLO, MonteCarloResult(stats, paths, fan))[0]
    assert "the first 10,000 of 50,000 paths" in capped.layout.title.text
    whole = figures(JobKind.MONTECARLO, MonteCarloResult({**stats, "paths": 10_000}, paths, fan))
    assert "(iid, 10,000 paths, seed 3)" in whole[0].layout.title.text


def test_one_task_per_node_with_the_cpus_shared_out():
    assert task_layout(2, 1) == [2]  # one node: one task, two numba threads
    assert task_layout(4, 2) == [2, 2]
    assert task_layout(5, 2) == [3, 2]
    assert task_layout(2, 3) == [1, 1]  # never more tasks than CPUs
    assert task_layout(1, 4) == [1]


@pytest.mark.timeout(120)
def test_iid_quantiles_and_mean_are_within_sampling_error(ray_session):
    m = 20_000
    one_step = run_paths(RETURNS, IID, m, 1, 1.0, 1, 252.0, 1.0, workers=2)["final_return"]
    for q in (0.05, 0.5, 0.95):
        # The empirical CDF of the MC quantile vs q: 4 binomial SEs plus one CDF step (1/100).
        cdf = np.mean(np.quantile(one_step, q) >= RETURNS)
        assert abs(cdf - q) <= 4 * math.sqrt(q * (1 - q) / m) + 1 / 100
    k = 30
    growth = np.log1p(run_paths(RETURNS, IID, m, k, 1.0, 2, 252.0, 1.0, workers=2)["final_return"])
    logs = np.log1p(RETURNS)  # sum of k iid draws: mean k E[log], sd sqrt(k Var[log])
    assert abs(growth.mean() - k * logs.mean()) <= 4 * math.sqrt(k * logs.var()) / math.sqrt(m)
    assert growth.std() == pytest.approx(math.sqrt(k * logs.var()), rel=0.05)


@pytest.mark.timeout(120)
def test_block_bootstrap_with_endless_blocks_walks_the_series_in_order(ray_session):
    sim = run_paths(RETURNS, BLOCK, 500, 10, 1e12, 3, 252.0, 1.0, workers=2)
    wrapped = np.concatenate([RETURNS, RETURNS[:10]])
    windows = np.array([np.prod(1 + wrapped[i : i + 10]) - 1 for i in range(100)])
    gaps = np.abs(sim["final_return"][:, None] - windows[None, :]).min(axis=1)
    assert gaps.max() < 1e-12  # every path is one circular window of 10 consecutive returns


@pytest.mark.timeout(120)
def test_trade_reshuffles_keep_the_final_return_and_vary_the_drawdown(ray_session):
    pnl = np.array([500.0, -300.0, 200.0, -800.0, 1000.0, -100.0])
    sim = run_paths(pnl, TRADES, 2000, 6, 1.0, 5, 6.0, 10_000.0, workers=2)
    np.testing.assert_allclose(sim["final_return"], pnl.sum() / 10_000.0, rtol=1e-12)
    # Every path's drawdown is one of the 720 orders' (brute force); the worst orders (losses
    # first: 36 of 720, so missed by 2000 paths with probability ~e^-100) give 1200/10000.
    possible = set()
    for order in itertools.permutations(pnl):
        equity = 10_000.0 + np.cumsum(order)
        peaks = np.maximum.accumulate(np.concatenate(([10_000.0], equity)))[1:]
        possible.add(round(float(np.max(np.maximum(0, 1 - equity / peaks))), 12))
    assert {round(float(d), 12) for d in sim["max_drawdown"]} <= possible
    assert sim["max_drawdown"].max() == pytest.approx(0.12)


def test_summary_statistics_by_numpy():
    rng = np.random.default_rng(0)
    final = rng.normal(0.05, 0.2, 5000)
    sim = {"final_return": final, "max_drawdown": rng.random(5000),
           "sharpe": rng.normal(size=5000), "min_equity": 1 + np.minimum(final, 0)}  # fmt: skip
    s = summarize(sim, ruin=0.8, alpha=0.05)
    q = np.quantile(final, 0.05)
    assert s["var"] == pytest.approx(-q)
    assert s["cvar"] == pytest.approx(-final[final <= q].mean())
    assert s["prob_ruin"] == pytest.approx(np.mean(final < -0.2))


@pytest.mark.timeout(120)
def test_run_montecarlo_on_a_backtest(ray_session, data_dir):
    orcl = DataSpec(paths=[str(data_dir / "ORCL.csv")])
    spec = MonteCarloSpec(strategy="sma_crossover", data=orcl, paths=3000, method="block", seed=1)
    result = run_montecarlo(spec)
    s = result.stats
    assert s["paths"] == 3000 and s["steps"] == 5036 and s["fan_paths"] == 3000
    q = s["final_return_quantiles"]
    assert q["0.05"] <= q["0.5"] <= q["0.95"]
    assert result.fan.height == 50 and (result.fan["q05"] <= result.fan["q95"]).all()
    bad = MonteCarloSpec(strategy="sma_crossover", params={"fast": 5, "slow": 10},
                         data=DataSpec(synthetic_bars=12), method="trades")  # fmt: skip
    with pytest.raises(ConfigError, match="at least 2 closed trades"):
        run_montecarlo(bad)
