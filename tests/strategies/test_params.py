"""The parameter/base API: parsing errors, grids, cross-parameter checks, Optuna, batch, checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import optuna
import pytest

from core.data.loaders import load_wide
from core.errors import ConfigError, StrategyError
from core.panel import WidePanel
from strategies.base import Strategy
from strategies.breakout import Breakout
from strategies.pairs import Pairs
from strategies.params import BoolParam, CategoricalParam, FloatParam, IntParam
from strategies.registry import get_strategy
from strategies.rsi_reversion import RsiReversion
from strategies.sma_crossover import SmaCrossover

optuna.logging.set_verbosity(optuna.logging.WARNING)


class Toy(Strategy):
    """Every parameter kind, for grid and suggest tests; weights come from ``self.fixed``."""

    name = "toy"
    n = IntParam(4, low=1, high=100, step=2, search_low=2, search_high=8)
    ln = IntParam(10, low=1, high=1000, search_low=1, search_high=1000, log=True)
    x = FloatParam(0.5, low=0.0, high=1.0, step=0.25)
    mode = CategoricalParam("fast", choices=["fast", "slow"])
    flag = BoolParam(False)
    frozen = IntParam(3, low=1, high=9, optimize=False)
    fixed: ClassVar[np.ndarray | None] = None

    def target_weights(self, panel: WidePanel) -> np.ndarray:
        assert self.fixed is not None
        return self.fixed


def _panel(n_bars: int = 6, n_sym: int = 2) -> WidePanel:
    c = 100 + np.arange(n_bars * n_sym, dtype=np.float64).reshape(n_bars, n_sym)
    ts = np.arange(n_bars).astype("datetime64[D]").astype("datetime64[us]")
    return WidePanel(ts, tuple(f"S{i}" for i in range(n_sym)), c, c + 1, c - 1, c, np.ones_like(c))


# ----------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    ("strategy", "assignments", "message"),
    [
        (SmaCrossover, {"fast": "abc"}, "parameter sma_crossover.fast='abc': must be an integer"),
        (SmaCrossover, {"fast": "10.5"}, "sma_crossover.fast='10.5': must be an integer"),
        (SmaCrossover, {"fast": "0"}, "sma_crossover.fast=0: must be in [1, 1000]"),
        (SmaCrossover, {"slow": "5001"}, "sma_crossover.slow=5001: must be in [2, 5000]"),
        (RsiReversion, {"lower": "low"}, "rsi_reversion.lower='low': must be a number"),
        (RsiReversion, {"lower": "nan"}, "rsi_reversion.lower=nan: must be finite"),
        (RsiReversion, {"upper": "99.5"}, "rsi_reversion.upper=99.5: must be in [50.0, 99.0]"),
        (Toy, {"mode": "medium"}, "toy.mode='medium': must be one of ['fast', 'slow']"),
        (Toy, {"flag": "maybe"}, "toy.flag='maybe': must be true or false"),
    ],
)
def test_parse_errors_name_param_value_and_rule(
    strategy: type[Strategy], assignments: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        strategy.from_strings(assignments)
    assert str(info.value) == message or message in str(info.value)


def test_parse_converts_text_and_numbers() -> None:
    s = SmaCrossover.from_strings({"fast": " 7 ", "slow": "40"})
    assert s.params == {"fast": 7, "slow": 40}  # the step is a search grid, not a rule
    assert Toy.from_strings({"flag": "yes", "mode": "slow", "x": "0.3"}).params["flag"] is True
    assert SmaCrossover(fast=np.int64(5), slow=np.float64(20.0)).params == {"fast": 5, "slow": 20}
    assert type(SmaCrossover(fast=np.int32(5)).fast) is int
    assert RsiReversion(lower=np.float32(25.0)).lower == 25.0
    with pytest.raises(ConfigError, match=r"sma_crossover\.fast=True: must be an integer"):
        SmaCrossover(fast=True)


def test_unknown_parameter_names_the_declared_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) fsat; declared: fast, slow"):
        SmaCrossover.from_strings({"fsat": "5"})
    with pytest.raises(ConfigError, match="unknown parameter"):
        SmaCrossover(speed=3)


@pytest.mark.parametrize(
    ("strategy", "params", "both"),
    [
        (SmaCrossover, {"fast": 50, "slow": 40}, ("fast=50", "slow=40")),
        (RsiReversion, {"lower": 45.0, "upper": 50.0}, None),
        (RsiReversion, {"lower": 50.0, "upper": 50.0}, ("lower=50.0", "upper=50.0")),
        (Pairs, {"entry_z": 1.0, "exit_z": 1.5}, ("exit_z=1.5", "entry_z=1.0")),
    ],
)
def test_cross_parameter_errors_name_both_values(
    strategy: type[Strategy], params: dict[str, Any], both: tuple[str, str] | None
) -> None:
    if both is None:
        assert strategy.is_valid(params)
        return
    assert not strategy.is_valid(params)
    with pytest.raises(ConfigError) as info:
        strategy(**params)
    assert both[0] in str(info.value) and both[1] in str(info.value)


# ----------------------------------------------------------------------------- search spaces
def test_grid_is_the_product_of_valid_values() -> None:
    specs = Toy.param_specs()
    assert specs["n"].grid() == [2, 4, 6, 8]
    assert specs["x"].grid() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert RsiReversion.param_specs()["lower"].grid() == [10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0]
    small = list(Toy.grid(fixed={"ln": 10}))
    assert len(small) == 4 * 5 * 2 * 2  # n x x x mode x flag; frozen is not optimized
    assert all(p["ln"] == 10 and "frozen" not in p for p in small)
    assert len(list(Breakout.grid())) == 19  # 10..100 step 5
    assert all(RsiReversion.is_valid(p) for p in RsiReversion.grid())
    assert specs["n"].space() == "int [2, 8] step 2"
    assert specs["ln"].space() == "int [1, 1000] log"
    assert specs["mode"].space() == "one of fast, slow"


def test_suggest_with_a_real_optuna_trial() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen: list[dict[str, Any]] = []
    for _ in range(30):
        trial = study.ask()
        params = {k: s.suggest(trial) for k, s in Toy.param_specs().items() if s.optimize}
        params |= {k: s.suggest(trial) for k, s in SmaCrossover.param_specs().items()}
        study.tell(trial, 0.0)
        seen.append(params)
    for p in seen:
        assert p["n"] in (2, 4, 6, 8) and type(p["n"]) is int
        assert 1 <= p["ln"] <= 1000
        assert p["x"] in (0.0, 0.25, 0.5, 0.75, 1.0)
        assert p["mode"] in ("fast", "slow") and type(p["flag"]) is bool
        assert 5 <= p["fast"] <= 50 and p["fast"] % 5 == 0
        assert 20 <= p["slow"] <= 200 and p["slow"] % 10 == 0
    assert {p["mode"] for p in seen} == {"fast", "slow"}
    assert study.trials[0].params.keys() >= {"n", "ln", "x", "mode", "flag", "fast", "slow"}


# ----------------------------------------------------------------------------- base behaviour
def test_checked_weights_enforces_shape_and_range() -> None:
    panel = _panel()
    Toy.fixed = np.full((6, 2), np.nan)
    Toy.fixed[2] = [1.0, -1.0]
    np.testing.assert_array_equal(Toy().checked_weights(panel), Toy.fixed)  # NaN allowed
    Toy.fixed = np.zeros((5, 2))
    with pytest.raises(StrategyError, match=r"shape \(5, 2\), expected \(6, 2\)"):
        Toy().checked_weights(panel)
    Toy.fixed = np.zeros((6, 2))
    Toy.fixed[3, 1] = 1.5
    with pytest.raises(StrategyError, match=r"weight 1\.5 for S1 outside") as info:
        Toy().checked_weights(panel)
    assert info.value.bar_ts == str(panel.timestamps[3]) and info.value.strategy_id == "toy"
    Toy.fixed = None


def test_default_batch_fills_columns_and_caller_buffers() -> None:
    rng = np.random.default_rng(0)
    close = 50 + np.cumsum(rng.normal(0, 1, (80, 3)), axis=0)
    ts = np.arange(80).astype("datetime64[D]").astype("datetime64[us]")
    panel = WidePanel(ts, ("A", "B", "C"), close, close + 0.5, close - 0.5, close, close)
    sets = [{"window": 5}, {"window": 12}]
    batch = Breakout.target_weights_batch(panel, sets)
    for p, params in enumerate(sets):
        np.testing.assert_array_equal(batch[:, 3 * p : 3 * p + 3], Breakout(**params)
                                      .target_weights(panel))  # fmt: skip
    buffer = np.zeros((80, 12))
    assert Breakout.target_weights_batch(panel, sets, out=buffer[:, 3:9]) is not None
    np.testing.assert_array_equal(buffer[:, 3:9], batch)
    assert (buffer[:, :3] == 0).all() and (buffer[:, 9:] == 0).all()
    with pytest.raises(ConfigError, match=r"expected \(80, 6\) float64"):
        Breakout.target_weights_batch(panel, sets, out=np.zeros((80, 6), dtype=np.float32))


def test_params_are_a_copy_and_repr_shows_them() -> None:
    s = SmaCrossover(fast=5, slow=20)
    s.params["fast"] = 99
    assert s.fast == 5
    assert repr(s) == "sma_crossover(fast=5, slow=20)"


def test_checked_last_weights_is_the_last_row_with_the_same_checks() -> None:
    # Expected: checked_weights(panel)[-1] and its errors (the whole-array implementation).
    panel = _panel()
    Toy.fixed = np.full((6, 2), np.nan)
    Toy.fixed[5] = [1.0, np.nan]
    want = Toy().checked_weights(panel)[-1]
    np.testing.assert_array_equal(Toy().checked_last_weights(panel), want)
    Toy.fixed = np.zeros((5, 2))
    with pytest.raises(StrategyError, match=r"shape \(5, 2\), expected \(6, 2\)"):
        Toy().checked_last_weights(panel)
    Toy.fixed = np.zeros((6, 2))
    Toy.fixed[5, 1] = -1.25
    with pytest.raises(StrategyError, match=r"weight -1\.25 for S1 outside") as info:
        Toy().checked_last_weights(panel)
    assert info.value.bar_ts == str(panel.timestamps[5]) and info.value.strategy_id == "toy"
    Toy.fixed[5, 1] = 0.5
    Toy.fixed[3, 0] = 2.0  # an earlier row: its own bar checked it, not this one
    assert Toy().checked_last_weights(panel).tolist() == [0.0, 0.5]
    Toy.fixed = None


def test_checked_last_weights_of_each_builtin_on_growing_history() -> None:
    # Expected: the last row of the whole-array check, on prefixes of real daily data.
    data = Path(__file__).resolve().parents[2] / "data"
    panel = load_wide([data / f"{n}.csv" for n in ("ORCL", "NVDA", "YHOO")])[0]
    for name, symbols in (("sma_crossover", 3), ("rsi_reversion", 3), ("breakout", 3),
                          ("momentum", 3), ("pairs", 2)):  # fmt: skip
        strategy = get_strategy(name)()
        cols = panel.select(list(panel.symbols[:symbols]))
        for n in (1, 30, 250, 1000):
            prefix = cols.slice(0, n)
            want = strategy.checked_weights(prefix)[-1]
            assert strategy.checked_last_weights(prefix).tobytes() == want.tobytes(), (name, n)
