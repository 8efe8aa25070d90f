"""Registry: built-ins by name, user strategies by module or file, entry-point plugins, errors."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import strategies.registry as registry
from core.errors import ConfigError
from strategies.breakout import Breakout
from strategies.momentum import Momentum
from strategies.pairs import Pairs
from strategies.registry import get_strategy, list_strategies
from strategies.rsi_reversion import RsiReversion
from strategies.sma_crossover import SmaCrossover

USER_STRATEGY = """
import numpy as np
from strategies.base import Strategy
from strategies.params import IntParam


class AlwaysLong(Strategy):
    name = "always_long"
    hold = IntParam(1, low=1, high=5)

    def target_weights(self, panel):
        return np.ones((panel.n_bars, panel.n_symbols))


NOT_A_STRATEGY = 42
"""


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, *eps: EntryPoint) -> None:
    """Make the registry see ``eps`` as the installed ``raytrader.strategies`` entry points."""

    def fake(*, group: str) -> list[EntryPoint]:
        return [ep for ep in eps if ep.group == group]

    monkeypatch.setattr(registry, "entry_points", fake)


def test_builtins_by_name() -> None:
    assert get_strategy("sma_crossover") is SmaCrossover
    assert get_strategy(" rsi_reversion ") is RsiReversion
    assert get_strategy("breakout") is Breakout
    assert get_strategy("momentum") is Momentum
    assert get_strategy("pairs") is Pairs
    names = list(list_strategies())
    assert names[:5] == ["sma_crossover", "rsi_reversion", "breakout", "momentum", "pairs"]


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown strategy 'nope'") as info:
        get_strategy("nope")
    for name in ("breakout", "momentum", "pairs", "rsi_reversion", "sma_crossover"):
        assert name in str(info.value)


def test_module_colon_class() -> None:
    assert get_strategy("strategies.sma_crossover:SmaCrossover") is SmaCrossover
    with pytest.raises(ConfigError, match="has no attribute 'Missing'"):
        get_strategy("strategies.sma_crossover:Missing")
    with pytest.raises(ConfigError, match="failed to import"):
        get_strategy("no_such_package_xyz.module:Thing")
    with pytest.raises(ConfigError, match="not a subclass"):
        get_strategy("strategies.params:IntParam")


def test_file_colon_class(tmp_path: Path) -> None:
    path = tmp_path / "my_strategy.py"
    path.write_text(USER_STRATEGY)
    cls = get_strategy(f"{path}:AlwaysLong")
    assert cls.name == "always_long" and cls(hold=2).params == {"hold": 2}
    assert get_strategy(f"{path}:AlwaysLong") is cls  # imported once
    with pytest.raises(ConfigError, match="not a subclass"):
        get_strategy(f"{path}:NOT_A_STRATEGY")
    with pytest.raises(ConfigError, match="does not exist"):
        get_strategy(f"{tmp_path / 'missing.py'}:AlwaysLong")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match="failed to import: RuntimeError: boom"):
        get_strategy(f"{broken}:X")


def test_entry_point_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    group = registry.ENTRY_POINT_GROUP
    _fake_entry_points(
        monkeypatch,
        EntryPoint("donchian_plugin", "strategies.breakout:Breakout", group),
        EntryPoint("sma_crossover", "strategies.pairs:Pairs", group),  # shadowed by built-in
        EntryPoint("elsewhere", "strategies.pairs:Pairs", "other.group"),
    )
    assert get_strategy("donchian_plugin") is Breakout
    assert get_strategy("sma_crossover") is SmaCrossover
    found = list_strategies()
    assert found["donchian_plugin"] is Breakout and "elsewhere" not in found
    with pytest.raises(ConfigError, match="donchian_plugin"):
        get_strategy("nothing_here")  # the error lists plugins too


def test_broken_entry_point_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    group = registry.ENTRY_POINT_GROUP
    _fake_entry_points(monkeypatch, EntryPoint("bad", "no_such_module_xyz:Thing", group))
    with pytest.raises(ConfigError, match=r"entry point 'bad'.*failed to load"):
        get_strategy("bad")
