"""Bad input at run time: a corrupted data file and a strategy that raises.

A bad bar is quarantined (journaled, counted in the feed's status) while the other symbols
trade on; an exception inside one strategy stops that strategy only (FAILED, traceback in
the journal and the status). References: the backtest of the same bars, where the bad ones
are removed by the loader's ``reject`` policy (an independent path to the same panel), and of
the untouched strategies.
"""

from __future__ import annotations

import sqlite3

import pytest

from core.data.loaders import load_wide
from core.events import EventKind, StrategyState
from core.journal import Journal
from core.live_result import journal_result
from strategies.backtest import backtest
from strategies.registry import get_strategy
from tests.kit.live import DATA, config

WINDOW = {"start": "2001-01-01", "end": "2001-12-31"}


def corrupt(src, dst, changes: dict[int, tuple[int, str]]) -> None:
    """Copy a CSV, replacing field ``col`` of data row ``row`` (1-based) by ``text``."""
    lines = src.read_text().splitlines()
    for row, (col, text) in changes.items():
        cells = lines[row].split(",")
        cells[col] = text
        lines[row] = ",".join(cells)
    dst.write_text("\n".join(lines) + "\n")


def reference(strategy, panel) -> dict:
    instance = get_strategy(strategy.strategy)(**strategy.params)
    return backtest(instance, panel.select(strategy.symbols), strategy.sim).to_dict()


@pytest.mark.timeout(180)
def test_bad_bars_are_quarantined_and_the_other_symbols_trade_on(live, tmp_path) -> None:
    from actors.runtime import start

    nvda = tmp_path / "NVDA.csv"
    rows = (DATA / "NVDA.csv").read_text().splitlines()
    first = next(i for i, line in enumerate(rows) if line.startswith("2001-03"))
    corrupt(DATA / "NVDA.csv", nvda, {
        first: (4, "-1.0"),  # close <= 0
        first + 20: (2, "0.5"),  # high below open and close
        first + 40: (3, "nan"),  # low is NaN
    })  # fmt: skip
    files = [DATA / "ORCL.csv", nvda]
    strategies = [
        {"id": "sma-orcl", "strategy": "sma_crossover", "params": {"fast": 5, "slow": 20},
         "symbols": ["ORCL"]},
        {"id": "flip-both", "strategy": "tests.kit.live:Flipper", "params": {"period": 4},
         "symbols": ["ORCL", "NVDA"], "sim": {"size_pct": 0.45}},
    ]  # fmt: skip
    cfg = config(strategies, files, tmp_path / "journal.sqlite", data=WINDOW)
    topo = start(cfg)
    status = topo.run()
    assert status["state"] == "done"
    assert status["quarantined"] == {
        "high_below_open_close": 1, "non_positive_price": 1, "not_finite": 1,
    }  # fmt: skip
    with Journal(topo.journal_path, readonly=True) as journal:
        quarantined = [e.event for e in journal.read([EventKind.BAR_QUARANTINED])]
        assert [(q.symbol, q.rule.value) for q in quarantined] == [  # type: ignore[attr-defined]
            ("NVDA", "non_positive_price"), ("NVDA", "high_below_open_close"),
            ("NVDA", "not_finite"),
        ]  # fmt: skip
        panel, report = load_wide(files, policy="reject")
        from core.replay import window

        panel = panel.slice(*window(panel, WINDOW["start"], WINDOW["end"]))
        assert report.n_bad == 3
        for strategy in cfg.strategies:
            got = journal_result(journal, strategy, panel).to_dict()
            assert got == reference(strategy, panel), strategy.id
            assert got["trades"], strategy.id
        flip = journal_result(journal, cfg.strategies[1], panel).trades
        assert {t["symbol"] for t in flip} == {"ORCL", "NVDA"}  # NVDA trades on after them


@pytest.mark.timeout(180)
def test_a_strategy_that_raises_fails_alone(live, tmp_path) -> None:
    from actors.runtime import start

    strategies = [
        {"id": "boom", "strategy": "tests.kit.live:Boom", "params": {"fail_at": 60},
         "symbols": ["ORCL"]},
        {"id": "sma", "strategy": "sma_crossover", "params": {"fast": 5, "slow": 20},
         "symbols": ["ORCL"]},
        {"id": "flip", "strategy": "tests.kit.live:Flipper", "symbols": ["NVDA"],
         "sim": {"fill": "close"}},
    ]  # fmt: skip
    files = [DATA / "ORCL.csv", DATA / "NVDA.csv"]
    cfg = config(strategies, files, tmp_path / "journal.sqlite", data=WINDOW)
    topo = start(cfg)
    assert topo.run()["state"] == "done"
    status = live.get(topo.host("boom").status.remote())
    assert status["state"] == StrategyState.FAILED.value
    assert status["error"].startswith("StrategyError") and "ZeroDivisionError" in status["error"]
    assert "target_weights" in status["traceback"] and "boom at 60 bars" in status["traceback"]
    assert status["last_bar"] == 58  # bar 59 (the 60th) raised and was not kept
    with Journal(topo.journal_path, readonly=True) as journal:
        changes = [e.event for e in journal.read([EventKind.STRATEGY_STATE_CHANGED],
                                                 strategy="boom")]  # fmt: skip
        assert [(c.old, c.new) for c in changes] == [  # type: ignore[attr-defined]
            (StrategyState.STARTING, StrategyState.RUNNING),
            (StrategyState.RUNNING, StrategyState.FAILED),
        ]
        assert "ZeroDivisionError" in changes[-1].traceback  # type: ignore[attr-defined]
    query = ("select strategy, json_extract(payload, '$.traceback') from events where kind = "
             "'strategy_state_changed' and json_extract(payload, '$.new') = 'failed'")  # fmt: skip
    assert query in (DATA.parent / "docs" / "live.md").read_text()  # the documented way to read it
    with sqlite3.connect(topo.journal_path) as db:
        ((sid, traceback),) = db.execute(query).fetchall()
    assert sid == "boom" and traceback == changes[-1].traceback  # type: ignore[attr-defined]
    with Journal(topo.journal_path, readonly=True) as journal:
        decided = [e.event.bar_index for e in journal.read([EventKind.RISK_DECISION],
                                                           strategy="boom")]  # fmt: skip
        assert decided and max(decided) < 59  # nothing after the failure
        panel, _ = load_wide(files)
        from core.replay import window

        panel = panel.slice(*window(panel, WINDOW["start"], WINDOW["end"]))
        for strategy in cfg.strategies[1:]:
            assert journal_result(journal, strategy, panel).to_dict() == reference(
                strategy, panel
            ), strategy.id
    for strategy in ("sma", "flip"):
        assert live.get(topo.host(strategy).status.remote())["state"] == "running"
