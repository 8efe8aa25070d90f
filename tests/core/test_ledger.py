"""Ledger: fill accounting, marking and trade records; expected numbers worked out by hand."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest

from core.events import FillReason, OrderFilled
from core.ledger import Ledger, LedgerError
from core.sim import SimConfig, run_backtest
from tests.kit.bars import NAN, flat, panel, weights

DAY = [np.datetime64(f"2020-01-0{d}", "us") for d in range(1, 8)]
SIG = FillReason.SIGNAL


def fill(led: Ledger, sym: str, qty: float, price: float, comm: float, t: int, **kw):
    return led.apply_fill(sym, qty, price, comm, t, kw.pop("reason", SIG), DAY[t], **kw)


def test_buys_average_the_entry_and_move_cash_by_notional_plus_commission() -> None:
    led = Ledger(["AAA", "BBB"], 10_000.0)
    a = fill(led, "AAA", 100, 10.0, 1.0, 0)  # cash 10000 - 1000 - 1 = 8999
    assert (a.cash_delta, a.closed_trade, a.closed_pnl) == (-1001.0, None, None)
    fill(led, "AAA", 100, 12.0, 1.0, 1)  # cash 8999 - 1200 - 1 = 7798; avg (1000+1200)/200
    assert led.cash == 7798.0
    assert led.positions() == {"AAA": 200.0}
    assert led.avg_prices() == {"AAA": 11.0}
    led.mark(np.array([13.0, NAN]))
    assert led.equity() == 7798.0 + 200 * 13.0  # 10398


def test_a_reduction_closes_a_trade_with_pro_rata_entry_commission() -> None:
    led = Ledger(["AAA"], 10_000.0)
    fill(led, "AAA", 100, 10.0, 1.0, 0)
    fill(led, "AAA", 100, 12.0, 1.0, 1)
    # sell 150 @ 13, comm 1.5: entry share 2 * 150/200 = 1.5; pnl (13 - 11) * 150 - 1.5 - 1.5
    out = fill(led, "AAA", -150, 13.0, 1.5, 2)
    assert out.cash_delta == 150 * 13.0 - 1.5 and out.closed_pnl == 297.0
    assert out.closed_trade == {
        "symbol": "AAA", "side": "long", "qty": 150.0, "entry_time": "2020-01-01T00:00:00Z",
        "entry_price": 11.0, "exit_time": "2020-01-03T00:00:00Z", "exit_price": 13.0,
        "commission": 3.0, "pnl": 297.0, "exit_reason": "signal",
    }  # fmt: skip
    assert led.cash == 7798.0 + 1950.0 - 1.5
    assert led.positions() == {"AAA": 50.0}


def test_a_fill_through_zero_closes_the_long_and_opens_a_short() -> None:
    led = Ledger(["AAA"], 10_000.0)
    fill(led, "AAA", 100, 10.0, 1.0, 0)
    fill(led, "AAA", 100, 12.0, 1.0, 1)
    fill(led, "AAA", -150, 13.0, 1.5, 2)  # 50 left, 0.5 entry commission unallocated
    # sell 80 @ 14, comm 0.8: closes 50 (exit share 0.8 * 50/80 = 0.5), opens short 30
    # pnl = (14 - 11) * 50 - 0.5 - 0.5 = 149; the short's entry commission is 0.3
    out = fill(led, "AAA", -80, 14.0, 0.8, 3)
    assert out.closed_trade["pnl"] == 149.0 and out.closed_trade["qty"] == 50.0
    assert led.positions() == {"AAA": -30.0} and led.avg_prices() == {"AAA": 14.0}
    led.mark(np.array([15.0]))
    # cash 9746.5 + 1120 - 0.8 = 10865.7; equity 10865.7 - 30 * 15 = 10415.7
    assert led.equity() == pytest.approx(10415.7, abs=1e-9)
    [open_trade] = led.open_positions()
    assert open_trade["side"] == "short" and open_trade["entry_time"] == "2020-01-04T00:00:00Z"
    assert open_trade["pnl"] == pytest.approx(-(15 - 14) * 30 - 0.3, abs=1e-12)
    assert open_trade["exit_time"] is None and open_trade["exit_reason"] is None
    # every trade's pnl adds up to the equity gain: 297 + 149 - 30.3 = 415.7
    total = sum(t["pnl"] for t in led.trades())
    assert total == pytest.approx(led.equity() - 10_000.0, abs=1e-9)
    assert led.realized_pnl == 297.0 + 149.0
    assert led.total_commission == pytest.approx(1 + 1 + 1.5 + 0.8)


def test_marks_use_the_entry_before_any_close_then_the_last_close() -> None:
    led = Ledger(["AAA"], 1_000.0)
    fill(led, "AAA", 10, 20.0, 0.0, 0)  # no close seen yet: marked at the entry, 20
    assert led.equity(np.array([NAN])) == 1_000.0
    led.mark(np.array([25.0]))
    led.mark(np.array([NAN]))  # a NaN close keeps 25
    assert led.equity() == 800.0 + 250.0
    assert led.equity(np.array([30.0])) == 1_100.0  # explicit marks win where finite
    assert led.last_closes() == {"AAA": 25.0}


def test_a_fill_id_is_applied_once() -> None:
    led = Ledger(["AAA"], 1_000.0)
    assert fill(led, "AAA", 5, 10.0, 0.5, 0, fill_id="rt-x:1") is not None
    assert fill(led, "AAA", 5, 10.0, 0.5, 0, fill_id="rt-x:1") is None
    assert (led.cash, led.position("AAA"), led.n_fills) == (949.5, 5.0, 1)
    assert led.applied("rt-x:1") and not led.applied("rt-x:2")


def test_an_order_filled_event_applies_like_its_fields() -> None:
    led = Ledger(["AAA"], 1_000.0)
    ev = OrderFilled(
        fill_id="rt-a:1", client_order_id="rt-a", strategy_id="s", symbol="AAA", qty=-4.0,
        price=50.0, commission=0.2, reason=FillReason.SIGNAL, bar_index=2,
        bar_ts=datetime(2020, 1, 3, tzinfo=UTC), order_qty=-4.0,
    )  # fmt: skip
    led.apply(ev)
    led.apply(ev)
    assert (led.cash, led.positions()) == (1_000.0 + 200.0 - 0.2, {"AAA": -4.0})


def test_trades_match_the_backtest_json_for_the_same_fills() -> None:
    # fill=close, cash 1000, target 1 at bar 0 (close 10) -> buy 100 @ 10; target 0 at bar 2
    # (close 9) -> sell 100 @ 9, cash 900; long again at bar 3 -> floor(900 / 9) = 100 @ 9, open.
    p = panel(flat([10, 12, 9, 9, 11]))
    r = run_backtest(p, weights([1, NAN, 0, 1, NAN]), SimConfig(cash=1000, fill="close"))
    led = Ledger(p.symbols, 1000.0)
    for t, qty, price in ((0, 100, 10.0), (2, -100, 9.0), (3, 100, 9.0)):
        led.apply_fill("A", qty, price, 0.0, t, SIG, p.timestamps[t])
    led.mark(p.close[-1])
    assert led.trades() == r.trades
    assert led.equity() == r.final_equity == 100 * 11


def test_a_flatten_fill_closes_with_its_own_exit_reason() -> None:
    led = Ledger(["AAA"], 1_000.0)
    fill(led, "AAA", 10, 10.0, 0.0, 0)
    out = fill(led, "AAA", -10, 11.0, 0.0, 1, reason=FillReason.FLATTEN)
    assert out.closed_trade["exit_reason"] == "flatten" and out.closed_trade["pnl"] == 10.0


def test_rejections_print_like_the_backtest_and_time_may_be_unknown() -> None:
    led = Ledger(["AAA"], 1_000.0)
    led.record_rejection("AAA", 500.0, 4, "insufficient_cash", DAY[4])
    led.record_rejection("AAA", 7.0, 9, "no_price")  # no timestamp known for bar 9
    assert led.rejected_orders() == [
        {"symbol": "AAA", "time": "2020-01-05T00:00:00Z", "qty": 500.0,
         "reason": "insufficient_cash"},
        {"symbol": "AAA", "time": None, "qty": 7.0, "reason": "no_price"},
    ]  # fmt: skip


def test_snapshot_is_plain_json() -> None:
    led = Ledger(["AAA", "BBB"], 1_000.0)
    fill(led, "BBB", 3, 100.0, 1.0, 0)
    snap = json.loads(json.dumps(led.snapshot()))
    assert snap["cash"] == 699.0 and snap["positions"] == {"BBB": 3.0}
    assert snap["equity"] == 999.0 and snap["n_fills"] == 1 and snap["total_commission"] == 1.0


@pytest.mark.parametrize(
    ("sym", "qty", "price"), [("ZZZ", 1, 10.0), ("AAA", 0, 10.0), ("AAA", math.inf, 10.0),
                              ("AAA", 1, 0.0), ("AAA", 1, math.nan)],
)  # fmt: skip
def test_bad_fills_raise_ledger_error_and_change_nothing(sym, qty, price) -> None:
    led = Ledger(["AAA"], 1_000.0)
    with pytest.raises(LedgerError):
        led.apply_fill(sym, qty, price, 0.0, 0, SIG, DAY[0])
    assert (led.cash, led.n_fills) == (1_000.0, 0)


def test_duplicate_symbols_or_bad_cash_are_refused() -> None:
    with pytest.raises(LedgerError, match="duplicate"):
        Ledger(["AAA", "AAA"], 1.0)
    with pytest.raises(LedgerError, match="cash"):
        Ledger(["AAA"], 0.0)
