"""RunConfig: YAML loading, field-path errors, declared strategy parameters, resolved paths.

Expected messages are the rules the models and the strategies' parameter declarations state.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.run_config import RunConfigError, load_run_config, parse_run_config
from core.types import BadBarPolicy

REPO = Path(__file__).resolve().parents[2]
SMA = {"id": "a", "strategy": "sma_crossover", "symbols": ["ORCL"]}


def errors(body: dict) -> list[tuple[str, str]]:
    with pytest.raises(RunConfigError) as info:
        parse_run_config(body)
    return info.value.errors


def test_a_minimal_config_takes_the_documented_defaults() -> None:
    cfg = parse_run_config({"strategies": [SMA]})
    assert cfg.feed.speed == "max"
    assert cfg.feed.data.bad_bars is BadBarPolicy.REJECT  # live: quarantine, trade on
    assert cfg.runtime.on_risk_down == "buffer"
    assert cfg.runtime.warm_before_ms == 6.0  # hosts warm up 6 ms before a paced bar
    assert cfg.broker.kind == "paper" and cfg.broker.paper_options().fill_probability == 1.0
    assert cfg.journal.path is None and cfg.strategies[0].sim.cash == 100_000.0


def test_a_parameter_out_of_range_is_named_by_its_field_path() -> None:
    body = {"strategies": [SMA, {**SMA, "id": "b", "params": {"fast": 0}}]}
    assert errors(body) == [("strategies[1].params.fast", "must be in [1, 1000]")]


def test_unknown_parameters_and_cross_parameter_rules_name_the_strategy_rule() -> None:
    assert errors({"strategies": [{**SMA, "params": {"speed": 3}}]}) == [
        ("strategies[0].params.speed", "unknown parameter (declared: fast, slow)")
    ]
    assert errors({"strategies": [{**SMA, "params": {"fast": 50, "slow": 20}}]}) == [
        ("strategies[0].params", "strategy sma_crossover: fast=50 must be less than slow=20")
    ]


def test_an_unknown_strategy_lists_the_known_ones() -> None:
    [(path, rule)] = errors({"strategies": [{**SMA, "strategy": "nope"}]})
    assert path == "strategies[0].strategy" and "unknown strategy 'nope'" in rule
    assert "sma_crossover" in rule


@pytest.mark.parametrize(
    ("body", "path", "words"),
    [
        ({"strategies": [SMA, SMA]}, "strategies[1].id", "used twice"),
        ({"strategies": [{**SMA, "symbols": ["ORCL", "ORCL"]}]}, "strategies[0].symbols",
         "listed twice"),
        ({"strategies": [{**SMA, "symbols": []}]}, "strategies[0].symbols", "at least 1"),
        ({"strategies": [{**SMA, "id": "a b"}]}, "strategies[0].id", "pattern"),
        ({"strategies": [SMA], "feed": {"speed": 0}}, "feed.speed", "'max' or a positive"),
        ({"strategies": [SMA], "feed": {"speed": "fast"}}, "feed.speed", "'max' or a positive"),
        ({"strategies": [SMA], "runtime": {"on_risk_down": "panic"}}, "runtime.on_risk_down",
         "'buffer' or 'drop'"),
        ({"strategies": [SMA], "risk": {"max_leverage": -1}}, "risk.max_leverage", "greater"),
        ({"strategies": [SMA], "runtime": {"warm_before_ms": -1}}, "runtime.warm_before_ms",
         "greater than or equal to 0"),
        ({"strategies": [SMA], "brokr": {}}, "brokr", "Extra inputs"),
        ({"strategies": [{**SMA, "sim": {"fill": "later"}}]}, "strategies[0].sim.fill", "close"),
        ({"strategies": []}, "strategies", "at least 1"),
    ],
)  # fmt: skip
def test_each_broken_rule_is_reported_at_its_field(body, path, words) -> None:
    found = errors(body)
    assert [p for p, _ in found] == [path], found
    assert words in found[0][1]


def test_load_names_the_file_and_resolves_paths_against_it(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    file = tmp_path / "sub" / "run.yaml"
    body = {"strategies": [SMA], "feed": {"data": {"paths": ["../ORCL.csv"]}},
            "journal": {"path": "j/run.sqlite"}}  # fmt: skip
    file.write_text(yaml.safe_dump(body))
    cfg = load_run_config(file)
    assert cfg.feed.data.paths == [str(tmp_path / "ORCL.csv")]
    assert cfg.journal.path == str(tmp_path / "sub" / "j" / "run.sqlite")
    body["strategies"][0] = {**SMA, "params": {"slow": 0}}
    file.write_text(yaml.safe_dump(body))
    with pytest.raises(RunConfigError) as info:
        load_run_config(file)
    assert str(info.value) == f"{file}: strategies[0].params.slow: must be in [2, 5000]"


def test_load_rejects_text_that_is_not_a_mapping(tmp_path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("strategies: [unclosed\n")
    with pytest.raises(RunConfigError, match="not valid YAML"):
        load_run_config(file)
    file.write_text("- just\n- a list\n")
    with pytest.raises(RunConfigError, match="expected a mapping"):
        load_run_config(file)


def test_unknown_symbols_name_the_strategy_and_the_symbol() -> None:
    cfg = parse_run_config({"strategies": [SMA, {**SMA, "id": "b", "symbols": ["ORCL", "MSFT"]}]})
    assert cfg.unknown_symbols(["ORCL", "NVDA"]) == [
        ("strategies[1].symbols[1]",
         "strategy 'b' trades 'MSFT', which is not in the feed's data (NVDA, ORCL)"),
    ]  # fmt: skip
    assert cfg.unknown_symbols(["ORCL", "MSFT"]) == []


def test_limits_for_a_strategy_id_the_config_lacks_are_refused_naming_it() -> None:
    """A typo in an override's id left that strategy on the global limits without a word
    (``risk.strategies.nope`` ran to the end); the control API refuses the same (422)."""
    overrides = {"b": {"max_open_orders": 2}, "nope": {"max_open_orders": 3}}
    body = {"strategies": [SMA, {**SMA, "id": "b"}], "risk": {"strategies": overrides}}
    assert errors(body) == [(
        "risk.strategies.nope",
        "no strategy of this config has the id 'nope' (ids: a, b); a strategy launched later "
        "gets its limits from `raytrader limits set` once it runs",
    )]  # fmt: skip
    del body["risk"]["strategies"]["nope"]
    assert parse_run_config(body).risk.for_strategy("b").max_open_orders == 2


def test_a_lone_file_named_for_its_stem_gets_the_symbol_hint() -> None:
    """A single file without a symbol column names its bars after its stem
    (``ORCL_bad.csv`` -> 'ORCL_bad'); the error says so and names the field that fixes it,
    but only when the stem is what the data holds."""
    body = {"strategies": [SMA], "feed": {"data": {"paths": ["ORCL_bad.csv"]}}}
    ((field, rule),) = parse_run_config(body).unknown_symbols(["ORCL_bad"])
    assert field == "strategies[0].symbols[0]"
    assert rule == ("strategy 'a' trades 'ORCL', which is not in the feed's data (ORCL_bad); the "
                    "file ORCL_bad.csv has no symbol column, so its bars are named 'ORCL_bad' "
                    "after it: set feed.data.symbol to name them")  # fmt: skip
    ((_, rule),) = parse_run_config(body).unknown_symbols(["NVDA"])  # a symbol column's
    assert rule.endswith("(NVDA)")
    named = {**body, "feed": {"data": {"paths": ["ORCL_bad.csv"], "symbol": "ORCL"}}}
    assert parse_run_config(named).unknown_symbols(["ORCL"]) == []


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "examples").glob("*.yaml")))
def test_the_examples_load(name) -> None:
    cfg = load_run_config(REPO / "examples" / name)
    assert all(Path(p).is_file() for p in cfg.feed.data.paths)


def test_the_readme_example_config_is_valid(tmp_path) -> None:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Live trading (paper)"):]
    block = section[section.index("```yaml") + len("```yaml"):]
    (tmp_path / "examples").mkdir()
    file = tmp_path / "examples" / "readme.yaml"
    file.write_text(block[: block.index("```")])
    cfg = load_run_config(file)
    assert cfg.strategies[0].id == "sma-orcl"
    assert cfg.feed.data.paths == [str(tmp_path / "data" / "ORCL.csv")]
    assert cfg.risk.for_strategy("sma-orcl").max_consecutive_losses == 4


def test_identity_holds_what_decides_the_trades_with_every_parameter_resolved() -> None:
    """SMA's declared defaults (fast=10, slow=30, read from strategies/sma_crossover.py) make
    an empty ``params`` and the explicit defaults the same run; speed, runtime policy and
    the journal's settings are how a run goes, not which run it is."""
    from core.run_config import identity_changes

    base = parse_run_config({"strategies": [SMA]})
    same = parse_run_config({
        "strategies": [{**SMA, "params": {"fast": 10, "slow": 30}}],
        "feed": {"speed": 1000}, "runtime": {"warm_before_ms": 0, "on_risk_down": "drop"},
        "journal": {"path": "/tmp/j.sqlite", "synchronous": "FULL"},
    })  # fmt: skip
    assert base.identity()["strategies"][0]["params"] == {"fast": 10, "slow": 30}
    assert identity_changes(base.identity(), same.identity()) == []
    other = parse_run_config({
        "strategies": [{**SMA, "params": {"fast": 5}}, {**SMA, "id": "b"}],
        "risk": {"max_position_pct": 50}, "feed": {"data": {"start": "2004-01-01"}},
    })  # fmt: skip
    changes = {path: (a, b) for path, a, b in identity_changes(base.identity(), other.identity())}
    assert changes.pop("strategies") == (base.identity()["strategies"],
                                         other.identity()["strategies"])  # fmt: skip
    assert changes.pop("risk.max_position_pct") == (base.risk.max_position_pct, 50.0)
    assert changes.pop("feed.data.start") == (None, "2004-01-01")
    assert changes == {}


def test_identity_changes_walks_dicts_and_lists_naming_each_leaf() -> None:
    """Hand-made values: one changed leaf, one key on one side only, lists of equal length
    compared item by item and of unequal length as a whole."""
    from core.run_config import ABSENT, identity_changes

    before = {"a": {"x": 1, "y": [1, 2]}, "b": 1, "c": [1]}
    after = {"a": {"x": 2, "y": [1, 3]}, "c": [1, 2], "d": None}
    assert identity_changes(before, after) == [
        ("a.x", 1, 2), ("a.y[1]", 2, 3), ("b", 1, ABSENT), ("c", [1], [1, 2]), ("d", ABSENT, None),
    ]  # fmt: skip
    assert identity_changes(before, before) == []


def test_a_strategy_file_is_found_relative_to_the_config_whatever_the_cwd(tmp_path, monkeypatch):
    """Like data and journal paths, ``file.py:Class`` is relative to the config's folder
    (the actors import it too, from wherever Ray started them)."""
    (tmp_path / "strats").mkdir()
    (tmp_path / "conf").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "strats" / "mine.py").write_text(
        "import numpy as np\n"
        "from strategies.base import Strategy\n\n\n"
        "class Always(Strategy):\n"
        "    name = 'always'\n\n"
        "    def target_weights(self, panel):\n"
        "        return np.ones(panel.close.shape)\n"
    )
    mine = {"id": "a", "strategy": "../strats/mine.py:Always", "symbols": ["X"]}
    missing = {"id": "b", "strategy": "../strats/none.py:Always", "symbols": ["X"]}
    monkeypatch.chdir(tmp_path / "elsewhere")
    file = tmp_path / "conf" / "run.yaml"
    file.write_text(yaml.safe_dump({"strategies": [mine]}))
    config = load_run_config(file)
    assert config.strategies[0].strategy == f"{tmp_path / 'strats' / 'mine.py'}:Always"
    file.write_text(yaml.safe_dump({"strategies": [mine, missing]}))
    with pytest.raises(RunConfigError) as info:
        load_run_config(file)
    assert f"'{tmp_path / 'strats' / 'none.py'}' does not exist" in str(info.value)
