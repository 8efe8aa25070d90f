"""journal_result: a run's backtest JSON object rebuilt from its journal alone.

Reference: the vectorized backtest. The run is the live path in one process
(``StrategyRunner`` + ``PaperEngine``, as tests/core/test_live_parity.py) whose broker events
and ``bar_processed`` marks are journaled the way the broker actor journals them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.data.loaders import load_wide
from core.journal import Journal
from core.live_result import journal_result
from core.paper import PaperEngine, bar_slice
from core.run_config import StrategyConfig
from strategies.backtest import backtest
from strategies.registry import get_strategy
from strategies.runner import StrategyRunner

DATA = Path(__file__).resolve().parents[2] / "data"


def journaled_run(journal: Journal, cfg: StrategyConfig, panel) -> None:
    engine = PaperEngine()
    engine.open_account(cfg.id, cfg.symbols, cfg.sim)
    runner = StrategyRunner(get_strategy(cfg.strategy)(**cfg.params), cfg.id, cfg.symbols,
                            cfg.sim)  # fmt: skip
    for t in range(panel.n_bars):
        bar = bar_slice(panel, t)
        report = engine.on_bar(bar)
        journal.append_many([*report.events, report.processed()], source="broker")
        intents = runner.on_bar(bar, report.fills_for(cfg.id))
        if intents:
            submitted = engine.submit(intents, bar)
            journal.append_many(submitted.events, source="broker")
            runner.apply_fills(submitted.fills)


@pytest.mark.parametrize(
    ("strategy", "params", "sim"),
    [
        ("sma_crossover", {}, {"stop_loss_pct": 5.0, "commission_bps": 10.0, "size_pct": 0.95}),
        ("rsi_reversion", {}, {"fill": "close", "size_pct": 0.9, "commission_fixed": 1.0}),
        ("sma_crossover", {}, {"fill": "close"}),  # size 1.0 at the close: every buy rejected
    ],
)
def test_the_journal_gives_the_backtest_object(tmp_path, strategy, params, sim) -> None:
    panel, _ = load_wide([DATA / "NVDA.csv"])
    cfg = StrategyConfig(id="s1", strategy=strategy, params=params, symbols=["NVDA"], sim=sim)
    with Journal(tmp_path / "j.sqlite") as journal:
        journaled_run(journal, cfg, panel)
        got = journal_result(journal, cfg, panel)
    ref = backtest(get_strategy(strategy)(**params), panel, cfg.sim)
    assert got.to_dict(equity_curve=True) == ref.to_dict(equity_curve=True)
    assert ref.trades or ref.rejected


def test_an_empty_journal_has_nothing_to_report(tmp_path) -> None:
    panel, _ = load_wide([DATA / "ESTX50.csv"])
    cfg = StrategyConfig(id="s1", strategy="sma_crossover", symbols=["ESTX50"])
    with Journal(tmp_path / "j.sqlite") as journal, pytest.raises(ValueError, match="no bar"):
        journal_result(journal, cfg, panel)
