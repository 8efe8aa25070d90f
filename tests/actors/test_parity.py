"""Parity through the actors: a replay as fast as possible trades exactly like the backtest.

Reference: the vectorized backtest (``strategies.backtest.backtest``, itself checked against
the plain-Python simulator in tests/reference/) on the same data, strategy, parameters and
fill model. Three strategies share one topology over the whole real files ORCL, NVDA and
YHOO (1995-2015): each one's backtest JSON object (trades, final equity, commission,
rejected orders, drawdown, statistics) must equal the one built from the journal, and the
host's and the broker's ledgers must hold the same trades.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.data.loaders import load_wide
from core.journal import Journal
from core.live_result import journal_result
from core.panel import WidePanel
from core.run_config import RunConfig
from strategies.backtest import backtest
from strategies.registry import get_strategy
from tests.kit.live import DATA, assert_journal_invariants, config, gate_commits

FILES = [DATA / "ORCL.csv", DATA / "NVDA.csv", DATA / "YHOO.csv"]
STRATEGIES = [
    {"id": "sma-orcl", "strategy": "sma_crossover", "symbols": ["ORCL"],
     "sim": {"stop_loss_pct": 5.0, "commission_bps": 5.0, "slippage_bps": 5.0, "size_pct": 0.95}},
    {"id": "rsi-nvda", "strategy": "rsi_reversion", "symbols": ["NVDA"],
     "sim": {"fill": "close", "size_pct": 0.9, "commission_bps": 2.0, "commission_fixed": 1.0,
             "cash": 50_000.0}},
    {"id": "momentum", "strategy": "momentum", "symbols": ["ORCL", "NVDA", "YHOO"],
     "params": {"lookback": 63, "top_k": 2, "rebalance_every": 21},
     "sim": {"commission_bps": 10.0, "slippage_bps": 5.0}},
]  # fmt: skip


@pytest.mark.timeout(300)
def test_three_strategies_through_the_actors_trade_like_their_backtests(live, tmp_path) -> None:
    from actors.runtime import start

    cfg = config(STRATEGIES, FILES, tmp_path / "journal.sqlite")
    topo = start(cfg)
    status = topo.run()
    assert status["state"] == "done" and status["next_bar"] == status["bars"]
    panel, _ = load_wide(FILES)
    assert panel.n_bars == status["bars"]
    assert_trades_like_backtests(live, topo, cfg, panel, status)
    commits = gate_commits(topo.journal_path)  # the marks of a bar the step opened too
    assert commits["with verdicts"] > 50 and commits["apart"] == 0, commits


@pytest.mark.timeout(300)
def test_a_paced_replay_with_early_hosts_trades_like_the_backtests(live, tmp_path) -> None:
    # At a speed factor no bar is carried by the close before it: each one is opened on its
    # own, and the hosts whose sub-accounts its open cannot touch evaluate it meanwhile
    # (runtime.early_hosts). 1999-2003: the bubble and its crash, stops and rejections.
    from actors.runtime import start
    from core.replay import load_source

    cfg = config(STRATEGIES, FILES, tmp_path / "journal.sqlite",
                 data={"start": "1999-01-01", "end": "2003-12-31"})  # fmt: skip
    cfg = cfg.model_copy(update={"feed": cfg.feed.model_copy(update={"speed": 1e9})})
    topo = start(cfg)
    status = topo.run()
    assert status["state"] == "done" and status["next_bar"] == status["bars"]
    # every bar but the first has early hosts; nothing changes a sub-account between bars
    assert status["early_hosts"]["evaluated"] > status["bars"]
    assert status["early_hosts"]["reevaluated"] == 0
    assert_trades_like_backtests(live, topo, cfg, load_source(cfg.feed.data).panel, status)
    # each bar's marks are journaled by its gate, with its verdicts: one commit, not two
    commits = gate_commits(topo.journal_path)
    assert commits["with verdicts"] > 50 and commits["apart"] == 0, commits


@pytest.mark.timeout(300)
def test_a_paced_replay_with_warm_ups_trades_like_the_backtests(live, tmp_path) -> None:
    # Bars 6 ms apart (18 over a weekend) and warm-ups 2 ms before each: every host runs
    # its bar path on the last bar before the next one comes (runtime.warm_before_ms),
    # which must change nothing. 2001-2002: stops, the NVDA collapse.
    from actors.runtime import start
    from core.replay import load_source

    cfg = config(STRATEGIES, FILES, tmp_path / "journal.sqlite",
                 data={"start": "2001-01-01", "end": "2002-12-31"})  # fmt: skip
    cfg = cfg.model_copy(update={
        "feed": cfg.feed.model_copy(update={"speed": 86_400 / 0.006}),
        "runtime": cfg.runtime.model_copy(update={"warm_before_ms": 2.0}),
    })  # fmt: skip
    topo = start(cfg)
    status = topo.run()
    assert status["state"] == "done" and status["next_bar"] == status["bars"]
    # every bar but the first is due 6 ms >= 2 x 2 ms after the last: a warm-up before it,
    # unless the last bar left less than 2 ms (skipped); "late" ones ended after the due time
    warm = status["warm_ups"]
    assert warm["done"] + warm["skipped"] == status["bars"] - 1
    # how many were skipped is the machine's speed (tests/actors/test_faults.py): only
    # that warm-ups ran is asked
    assert warm["done"] > status["bars"] // 20 and warm["late"] <= warm["done"]
    assert_trades_like_backtests(live, topo, cfg, load_source(cfg.feed.data).panel, status,
                                 rejections=False)  # fmt: skip


def assert_trades_like_backtests(
    live: Any, topo: Any, cfg: RunConfig, panel: WidePanel, status: dict[str, Any],
    *, rejections: bool = True,
) -> None:
    """Each strategy's journal result equals its backtest; host and broker trades agree;
    with ``rejections``, momentum's full-size buys ran out of cash (rejections compared)."""
    with Journal(topo.journal_path, readonly=True) as journal:
        for strategy in cfg.strategies:
            sub = panel.select(strategy.symbols)
            instance = get_strategy(strategy.strategy)(**strategy.params)
            ref = backtest(instance, sub, strategy.sim).to_dict()
            got = journal_result(journal, strategy, panel).to_dict()
            assert got == ref, strategy.id
            assert ref["trades"], strategy.id
            broker_trades = live.get(topo.broker.trades.remote(strategy.id))
            assert live.get(topo.host(strategy.id).trades.remote()) == broker_trades
            assert broker_trades == ref["trades"]
    momentum = journal_result(Journal(topo.journal_path, readonly=True), cfg.strategies[2], panel)
    assert momentum.rejected or not rejections  # full-size buys run out of cash
    counts = assert_journal_invariants(topo.journal_path)
    assert counts["bar_done"] == status["bars"]
