"""Warm-ups start early enough to end before their bar (``actors.feed.warm_lead``).

The lead's rule by hand: ``runtime.warm_before_ms`` at least, the 90th percentile of the
recent warm-ups' durations plus ``WARM_MARGIN_S`` when that is longer, half the bar spacing
at most; no warm-up when bars come closer than twice the base lead. Then a real paced
replay whose strategy sleeps 6 ms a bar: its warm-ups cannot take less, so the lead must
grow from the configured 2 ms past 7 ms (6 + the 1 ms margin), and the trades stay the
backtest's.
"""

from __future__ import annotations

import pytest

from actors.feed import WARM_MARGIN_S, warm_lead
from core.replay import load_source
from strategies.backtest import backtest
from tests.kit.live import DATA, Sluggish, config

MS = 1e-3


def test_no_warm_up_when_off_or_when_bars_come_too_close() -> None:
    assert warm_lead(0.0, 0.025, []) is None  # warm_before_ms 0: off
    assert warm_lead(6 * MS, 11 * MS, []) is None  # 11 ms < 2 x 6 ms
    assert warm_lead(6 * MS, 12 * MS, []) == 6 * MS  # exactly twice: warms


def test_the_base_lead_until_warm_ups_take_longer() -> None:
    assert warm_lead(6 * MS, 0.025, []) == 6 * MS  # nothing measured yet
    # ten 2 ms warm-ups: 2 + 1 = 3 ms < 6 ms, the base stays
    assert warm_lead(6 * MS, 0.025, [2 * MS] * 10) == 6 * MS
    assert WARM_MARGIN_S == 1 * MS


def test_the_lead_follows_the_90th_percentile_of_recent_warm_ups() -> None:
    # 1..10 ms: the element at (10 - 1) * 9 // 10 = 8 of the sorted ten is 9 ms; + 1 ms
    recent = [k * MS for k in (7, 3, 10, 1, 5, 9, 2, 8, 4, 6)]
    assert warm_lead(6 * MS, 0.025, recent) == pytest.approx(10 * MS)
    # one outlier among twenty is above the percentile: (20 - 1) * 9 // 10 = 17 -> 4 ms
    recent = [4 * MS] * 19 + [500 * MS]
    assert warm_lead(2 * MS, 0.025, recent) == pytest.approx(5 * MS)


def test_the_lead_stops_at_half_the_spacing() -> None:
    assert warm_lead(6 * MS, 0.025, [20 * MS] * 5) == pytest.approx(12.5 * MS)
    assert warm_lead(6 * MS, 0.075, [20 * MS] * 5) == pytest.approx(21 * MS)  # a weekend


@pytest.mark.timeout(300)
def test_a_slow_strategy_gets_a_longer_lead_and_trades_like_its_backtest(live, tmp_path) -> None:
    from actors.runtime import start

    files = [DATA / "ORCL.csv"]
    strategies = [{"id": "slow", "strategy": "tests.kit.live:Sluggish", "symbols": ["ORCL"],
                   "params": {"period": 4, "delay_ms": 6}, "sim": {"fill": "close"}}]  # fmt: skip
    cfg = config(strategies, files, tmp_path / "journal.sqlite",
                 data={"start": "2001-01-01", "end": "2001-03-31"},
                 runtime={"warm_before_ms": 2.0})  # fmt: skip
    speed = 86_400 / 0.04  # a daily bar every 40 ms (120 over a weekend)
    cfg = cfg.model_copy(update={"feed": cfg.feed.model_copy(update={"speed": speed})})
    topo = start(cfg)
    status = topo.run()
    assert status["state"] == "done" and status["next_bar"] == status["bars"]
    warm = status["warm_ups"]
    assert warm["done"] + warm["skipped"] == status["bars"] - 1
    assert warm["done"] >= 2  # a lead set from warm-ups measured before it
    timing = status["warm_up_ms"]
    assert timing["p50"] >= 6.0  # the host's warm-up sleeps 6 ms
    assert 7.0 <= timing["lead"] <= 60.0  # grown past 6 + 1 ms; at most half of 120 ms
    panel = load_source(cfg.feed.data).panel
    ref = backtest(Sluggish(period=4, delay_ms=0), panel, cfg.strategies[0].sim).to_dict()
    assert ref["trades"]
    assert live.get(topo.broker.trades.remote("slow")) == ref["trades"]
    assert live.get(topo.host("slow").trades.remote()) == ref["trades"]
