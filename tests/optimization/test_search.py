"""The batched ask/tell search on Ray workers: optimum, constraints, min trades, storage/resume.

Expected values are known by construction (``kit.Oracle``: best a=7, b=13) or checked against
an independent computation in the test (Pareto dominance recomputed from the trial table).
"""

from __future__ import annotations

import optuna
import pytest

from core.config import DataSpec
from core.errors import ConfigError
from core.sim import SimConfig
from optimization.metrics import parse_metrics
from optimization.runtime import resolve_workers
from optimization.search import run_optimize
from optimization.specs import OptimizeSpec
from tests.optimization.kit import BEST, ORACLE, trend_csv

SYN = DataSpec(synthetic_symbols=2, synthetic_bars=600, seed=3)
FRACTIONAL = SimConfig(fractional=True)


def _oracle(tmp_path, **kw) -> OptimizeSpec:
    data = DataSpec(paths=[trend_csv(tmp_path / "TREND.csv")])
    base = dict(strategy=ORACLE, data=data, sim=FRACTIONAL, metrics=["total_return"], seed=7)
    return OptimizeSpec(**{**base, **kw})


@pytest.mark.timeout(120)
def test_grid_sampler_finds_the_known_optimum_and_never_evaluates_an_invalid_set(
    ray_session, tmp_path
):
    result = run_optimize(_oracle(tmp_path, sampler="grid", trials=10_000, workers=2))
    # 21 x 21 points of which a < b holds for 21*20/2 = 210: all evaluated once, none invalid.
    assert result.counts["ok"] == 210
    assert "invalid" not in result.counts
    assert result.best[0]["params"] == BEST
    assert result.trials.filter(result.trials["param_a"] >= result.trials["param_b"]).height == 0


@pytest.mark.timeout(120)
def test_tpe_with_one_worker_finds_the_known_optimum(ray_session, tmp_path):
    # One worker makes the ask/tell order (and so the run) deterministic for a given seed.
    result = run_optimize(_oracle(tmp_path, sampler="tpe", trials=120, workers=1, batch_size=4))
    assert result.best[0]["params"] == BEST
    assert result.counts["this_run"] == 120
    invalid = result.trials.filter(result.trials["status"] == "invalid")
    assert invalid.height == result.counts.get("invalid", 0)
    assert invalid["total_return"].null_count() == invalid.height  # never evaluated


@pytest.mark.timeout(120)
def test_min_trades_makes_thin_sets_infeasible(ray_session):
    spec = OptimizeSpec(strategy="sma_crossover", data=SYN, trials=30, min_trades=25, seed=1)
    result = run_optimize(spec)
    table = result.trials
    ok = table.filter(table["status"] == "ok")
    thin = table.filter(table["status"] == "infeasible")
    assert ok.height + thin.height == 30
    assert (ok["n_trades"] >= 25).all() and (thin["n_trades"] < 25).all()
    if result.best:
        best_row = ok.filter(ok["number"] == result.best[0]["number"])
        assert best_row["sharpe"][0] == pytest.approx(ok["sharpe"].max())


@pytest.mark.timeout(120)
def test_nsga2_returns_exactly_the_non_dominated_trials(ray_session):
    spec = OptimizeSpec(
        strategy="sma_crossover", data=SYN, trials=40, sampler="nsga2",
        metrics=["sharpe", "max_drawdown"], seed=2,
    )  # fmt: skip
    result = run_optimize(spec)
    ok = result.trials.filter(result.trials["status"] == "ok")
    points = list(zip(ok["number"], ok["sharpe"], ok["max_drawdown"], strict=True))

    def dominated(s, d):  # maximize sharpe, minimize drawdown
        return any(s2 >= s and d2 <= d and (s2 > s or d2 < d) for _, s2, d2 in points)

    expected = {n for n, s, d in points if not dominated(s, d)}
    assert {b["number"] for b in result.best} == expected
    assert result.summary()["directions"] == ["maximize", "minimize"]


@pytest.mark.timeout(180)
def test_resume_continues_the_stored_study(ray_session, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = run_optimize(_oracle(tmp_path, trials=12, storage=storage, sampler="random"))
    assert first.counts["this_run"] == 12
    before = first.trials.select("number", "param_a", "param_b")
    with pytest.raises(ConfigError, match="already exists"):
        run_optimize(_oracle(tmp_path, trials=20, storage=storage, sampler="random"))
    again = run_optimize(
        _oracle(tmp_path, trials=20, storage=storage, sampler="random", resume=True)
    )
    assert again.counts["this_run"] == 20 - 12
    assert again.sampler_seed == 7 + before.height  # fresh draws, not a replay
    kept = again.trials.select("number", "param_a", "param_b").head(before.height)
    assert kept.equals(before)
    study = optuna.load_study(study_name=again.study_name, storage=storage)
    evaluated = [t for t in study.trials if t.user_attrs["raytrader"]["status"] == "ok"]
    assert len(evaluated) == 20


def test_resume_of_a_missing_study_is_an_error(tmp_path):
    spec = OptimizeSpec(
        strategy="sma_crossover", storage=f"sqlite:///{tmp_path / 'x.db'}", resume=True
    )
    with pytest.raises(ConfigError, match="no study"):
        run_optimize(spec)


def test_bad_inputs_name_the_thing_and_the_rule():
    with pytest.raises(ConfigError, match="unknown metric 'sharp'"):
        parse_metrics("sharp")
    with pytest.raises(ConfigError, match="--workers 0"):
        resolve_workers(0)
    spec = OptimizeSpec(strategy="sma_crossover", params={"fast": 50, "slow": 40})
    with pytest.raises(ConfigError, match="nothing to search"):
        run_optimize(spec)
    spec = OptimizeSpec(strategy="sma_crossover", params={"slow": 20}, data=SYN)
    with pytest.raises(ConfigError, match="empty after its constraints"):
        run_optimize(spec.model_copy(update={"params": {"slow": 5}}))


@pytest.mark.timeout(180)
def test_tune_engine_runs_trials_and_picks_the_best_of_them(ray_session):
    spec = OptimizeSpec(strategy="sma_crossover", data=SYN, trials=4, engine="tune", seed=5,
                        sampler="random")  # fmt: skip
    result = run_optimize(spec)
    ok = result.trials.filter(result.trials["status"] == "ok")
    assert result.engine == "tune" and result.trials.height == 4
    assert result.best[0]["values"]["sharpe"] == pytest.approx(ok["sharpe"].max())
    # each trial's metric equals the batched evaluator's on the same set (independent call)
    from optimization.evaluation import window_metrics
    from optimization.metrics import aggregate
    from strategies.backtest import load_panel
    from strategies.sma_crossover import SmaCrossover

    row = ok.row(0, named=True)
    params = {"fast": row["param_fast"], "slow": row["param_slow"]}
    agg = aggregate(window_metrics(SmaCrossover, load_panel(SYN), [params], SimConfig()))
    assert row["sharpe"] == pytest.approx(float(agg["sharpe"][0]), rel=1e-12)
