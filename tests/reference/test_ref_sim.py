"""Tests of the reference backtester itself, on tiny series computed by hand.

Bars are written as (open, high, low, close). Unless stated, fees and slippage are zero.
"""

from __future__ import annotations

import math
import random
import time

import pytest

from .ref_sim import RefRejected, RefResult, ref_backtest

NAN = float("nan")
Bar = tuple[float, float, float, float]


def run1(bars: list[Bar], weights: list[float], **kw: object) -> RefResult:
    """Single-symbol backtest of ``bars`` with per-bar ``weights`` (symbol "X")."""
    return ref_backtest(
        ["X"],
        [[b[0]] for b in bars],
        [[b[1]] for b in bars],
        [[b[2]] for b in bars],
        [[b[3]] for b in bars],
        [[w] for w in weights],
        **kw,  # type: ignore[arg-type]
    )


def run2(
    bars: list[tuple[Bar, Bar]], weights: list[tuple[float, float]], **kw: object
) -> RefResult:
    """Two-symbol backtest (symbols "A", "B"); ``bars[t] = (bar_A, bar_B)``."""
    return ref_backtest(
        ["A", "B"],
        [[a[0], b[0]] for a, b in bars],
        [[a[1], b[1]] for a, b in bars],
        [[a[2], b[2]] for a, b in bars],
        [[a[3], b[3]] for a, b in bars],
        [list(w) for w in weights],
        **kw,  # type: ignore[arg-type]
    )


def flat(p: float) -> Bar:
    """A bar with all four prices equal to ``p``."""
    return (p, p, p, p)


def assert_pnl_identity(r: RefResult, cash: float) -> None:
    """The sum of all trades' pnl equals final_equity - cash."""
    assert math.fsum(tr.pnl for tr in r.trades) == pytest.approx(r.final_equity - cash, abs=1e-9)


approx = pytest.approx


# ----- fills and sizing -------------------------------------------------------------------------


def test_next_open_fill_at_next_bars_open() -> None:
    bars = [flat(10), (9, 12, 9, 12), flat(12)]
    r = run1(bars, [1.0, NAN, NAN], cash=1000.0)
    # t0 close: E = 1000, S = floor(1 * 1000 * 1 / 10) = 100 -> pending, nothing filled yet.
    assert r.positions[0] == [0.0]
    assert r.equity[0] == 1000.0
    # t1 open 9: buy 100 @ 9 -> cash = 1000 - 900 = 100; equity = 100 + 100 * 12 = 1300.
    assert r.positions[1] == [100.0]
    assert r.cash[1] == 100.0
    assert r.equity[1] == 1300.0
    (tr,) = r.trades
    assert (tr.entry_t, tr.entry_price, tr.exit_t, tr.exit_price) == (1, 9.0, None, None)
    # open trade marked at the last close: (12 - 9) * 100 = 300 = 1300 - 1000.
    assert tr.pnl == 300.0
    assert r.final_equity == 1300.0
    assert_pnl_identity(r, 1000.0)


def test_close_fill_at_same_bars_close() -> None:
    bars = [flat(10), flat(12)]
    r = run1(bars, [1.0, NAN], cash=1000.0, fill="close")
    # t0: buy floor(1000/10) = 100 @ 10 at once -> cash 0, equity 0 + 100*10 = 1000.
    assert r.positions[0] == [100.0]
    assert r.cash[0] == 0.0
    # t1: equity = 100 * 12 = 1200.
    assert r.equity == [1000.0, 1200.0]
    assert r.trades[0].entry_t == 0
    assert r.trades[0].entry_price == 10.0


def test_sizing_floor_size_pct_fractional_and_negative() -> None:
    bars = [flat(30)]
    r = run1(bars, [1.0], cash=1000.0, fill="close", size_pct=0.5)
    # S = floor(1 * 1000 * 0.5 / 30) = floor(16.67) = 16 -> cash = 1000 - 16*30 = 520.
    assert r.positions[0] == [16.0]
    assert r.cash[0] == 520.0
    r = run1(bars, [1.0], cash=1000.0, fill="close", size_pct=0.5, fractional=True)
    # fractional: S = 500 / 30 = 16.666...
    assert r.positions[0] == [approx(500 / 30)]
    r = run1(bars, [-1.0], cash=1000.0, fill="close")
    # x = -1 * 1000 / 30 = -33.33 -> rounded toward zero: -floor(33.33) = -33 (a short of 33).
    assert r.positions[0] == [-33.0]
    assert r.cash[0] == 1000.0 + 33 * 30  # 1990


def test_commission_bps_plus_fixed() -> None:
    bars = [flat(10), flat(12)]
    r = run1(bars, [1.0, 0.0], cash=1000.0, fill="close", size_pct=0.5,
             commission_bps=10.0, commission_fixed=1.0)
    # t0: S = floor(1*1000*0.5/10) = 50; comm = 50*10*10/1e4 + 1 = 0.5 + 1 = 1.5
    #     cash = 1000 - 500 - 1.5 = 498.5
    assert r.cash[0] == approx(498.5)
    # t1: sell 50 @ 12 = 600; comm = 50*12*10/1e4 + 1 = 0.6 + 1 = 1.6
    #     cash = 498.5 + 600 - 1.6 = 1096.9
    assert r.cash[1] == approx(1096.9)
    assert r.total_commission == approx(3.1)  # 1.5 + 1.6
    (tr,) = r.trades
    # pnl = (12 - 10) * 50 - 1.5 - 1.6 = 96.9
    assert tr.pnl == approx(96.9)
    assert tr.exit_reason == "signal"
    assert_pnl_identity(r, 1000.0)


def test_slippage_on_buy_and_sell() -> None:
    bars = [flat(10), flat(20)]
    r = run1(bars, [0.5, 0.0], cash=1000.0, fill="close", slippage_bps=100.0)
    # t0: S = floor(0.5*1000/10) = 50; buy @ 10 * 1.01 = 10.1 -> cash = 1000 - 505 = 495
    assert r.cash[0] == approx(495.0)
    # t1: sell 50 @ 20 * 0.99 = 19.8 -> cash = 495 + 990 = 1485
    assert r.cash[1] == approx(1485.0)
    (tr,) = r.trades
    assert tr.entry_price == approx(10.1)
    assert tr.exit_price == approx(19.8)
    # pnl = (19.8 - 10.1) * 50 = 485
    assert tr.pnl == approx(485.0)


# ----- rejections -------------------------------------------------------------------------------


def test_buy_rejected_for_cash_after_gap_up_and_not_retried() -> None:
    bars = [flat(10), (11, 11, 10, 10), flat(10), flat(10)]
    # the target repeats at t2 (same value): not a change, so no new order.
    r = run1(bars, [1.0, NAN, 1.0, NAN], cash=1000.0)
    # t0: S = floor(1000/10) = 100 pending; t1 open 11: cost 1100 -> cash_after = -100 < 0.
    assert r.rejected == [RefRejected(t=1, symbol="X", qty=100.0, reason="insufficient_cash")]
    assert [p[0] for p in r.positions] == [0.0, 0.0, 0.0, 0.0]
    assert r.equity == [1000.0] * 4
    assert r.trades == []


def test_short_rejected_for_margin_after_gap() -> None:
    bars = [flat(10), flat(11)]
    r = run1(bars, [-1.0, NAN], cash=1000.0)
    # t0: S = -floor(1000/10) = -100; t1 open 11: gross = 100*11 = 1100 > 1 * E_fill (1000).
    assert r.rejected == [RefRejected(t=1, symbol="X", qty=-100.0, reason="insufficient_margin")]
    assert r.positions[1] == [0.0]


def test_leverage_allows_negative_cash() -> None:
    r = run1([flat(10)], [1.0], cash=1000.0, fill="close", size_pct=2.0, leverage=2.0)
    # S = floor(1*1000*2/10) = 200: cash_after = -1000 >= -(2-1)*1000; gross 2000 <= 2*1000.
    assert r.positions[0] == [200.0]
    assert r.cash[0] == -1000.0
    assert r.rejected == []


def test_nan_open_rejects_pending_order_no_price() -> None:
    bars = [flat(10), (NAN, NAN, NAN, NAN), flat(10)]
    r = run1(bars, [1.0, NAN, NAN], cash=1000.0)
    # t0: pending +100; t1 has no bar -> rejected no_price at t=1; target unchanged -> no retry.
    assert r.rejected == [RefRejected(t=1, symbol="X", qty=100.0, reason="no_price")]
    assert r.equity == [1000.0, 1000.0, 1000.0]
    assert r.positions[2] == [0.0]


def test_nan_close_marks_last_close_and_places_no_order() -> None:
    bars = [flat(10), (10, 10, 10, NAN), flat(12)]
    r = run1(bars, [0.5, 0.0, NAN], cash=1000.0, fill="close")
    # t0: buy floor(0.5*1000/10) = 50 @ 10 -> cash 500
    # t1: close NaN -> marked at 10: E = 500 + 50*10 = 1000; target 0 but no order (no close)
    # t2: target unchanged -> still no order; E = 500 + 50*12 = 1100
    assert r.equity == [1000.0, 1000.0, 1100.0]
    assert r.positions[2] == [50.0]


def test_weight_outside_range_is_an_error() -> None:
    with pytest.raises(ValueError):
        run1([flat(10)], [1.5])


def test_pending_orders_after_last_bar_are_dropped() -> None:
    r = run1([flat(10), flat(10)], [NAN, 1.0], cash=1000.0)
    assert r.positions[-1] == [0.0]
    assert r.rejected == []
    assert r.trades == []


# ----- stops ------------------------------------------------------------------------------------


def test_stop_loss_gap_through_fills_at_open_with_slippage() -> None:
    bars = [flat(100), (100, 100, 95, 95), (85, 88, 80, 86), flat(86)]
    r = run1(bars, [1.0, NAN, NAN, NAN], cash=1000.0, size_pct=0.5,
             slippage_bps=100.0, stop_loss_pct=10.0)
    # t0: S = floor(1000*0.5/100) = 5; t1: buy 5 @ 100*1.01 = 101 -> cash 495.
    # level = 101 * 0.9 = 90.9; t1 low 95 > 90.9.
    # t2: open 85 <= 90.9 -> exit at the open with slippage: 85 * 0.99 = 84.15
    #     cash = 495 + 5 * 84.15 = 915.75
    assert r.cash[2] == approx(915.75)
    assert r.equity[2] == approx(915.75)
    (tr,) = r.trades
    assert (tr.exit_t, tr.exit_reason) == (2, "stop_loss")
    assert tr.exit_price == approx(84.15)
    # pnl = (84.15 - 101) * 5 = -84.25
    assert tr.pnl == approx(-84.25)
    assert r.positions[3] == [0.0]  # target unchanged: no re-entry
    assert_pnl_identity(r, 1000.0)


def test_stop_loss_hit_intrabar_at_level() -> None:
    bars = [flat(100), (100, 101, 99, 100), (98, 99, 94, 96)]
    r = run1(bars, [1.0, NAN, NAN], cash=1000.0, stop_loss_pct=5.0)
    # t1: buy 10 @ 100, cash 0; level 95; low 99 no stop.
    # t2: open 98 > 95 (no gap); low 94 <= 95 -> exit at 95: cash = 950, pnl = -50.
    (tr,) = r.trades
    assert (tr.exit_t, tr.exit_reason) == (2, "stop_loss")
    assert tr.exit_price == approx(95.0)
    assert tr.pnl == approx(-50.0)
    assert r.equity[2] == approx(950.0)


def test_stop_on_entry_bar_with_next_open() -> None:
    bars = [flat(100), (100, 100, 90, 92)]
    r = run1(bars, [1.0, NAN], cash=1000.0, stop_loss_pct=5.0)
    # t1: buy 10 @ 100 at the open; the same bar's low 90 <= 95 -> exit at 95 on t1.
    (tr,) = r.trades
    assert (tr.entry_t, tr.exit_t, tr.exit_reason) == (1, 1, "stop_loss")
    assert tr.exit_price == approx(95.0)
    assert r.equity[1] == approx(950.0)  # 1000 - 1000 + 10*95
    assert r.positions[1] == [0.0]


def test_close_fill_is_first_checked_on_the_next_bar() -> None:
    bars = [(100, 100, 80, 100), flat(100), (100, 100, 90, 92)]
    r = run1(bars, [1.0, NAN, NAN], cash=1000.0, fill="close", stop_loss_pct=5.0)
    # t0: buy 10 @ close 100; t0's own low 80 does not count. t1: nothing reached.
    assert r.positions[1] == [10.0]
    # t2: low 90 <= 95 -> exit at 95.
    assert r.trades[0].exit_t == 2
    assert r.trades[0].exit_price == approx(95.0)


def test_close_fill_gap_through_stop_exits_at_open() -> None:
    bars = [flat(100), (80, 85, 75, 82)]
    r = run1(bars, [1.0, NAN], cash=1000.0, fill="close", stop_loss_pct=10.0)
    # t0: buy 10 @ 100; t1 (held from before): open 80 <= level 90 -> exit at 80, cash 800.
    assert r.trades[0].exit_price == 80.0
    assert r.cash[1] == 800.0


def test_take_profit_at_level_without_slippage() -> None:
    bars = [flat(100), (100, 105, 99, 104), (105, 115, 104, 110)]
    r = run1(bars, [1.0, NAN, NAN], cash=1000.0, size_pct=0.5,
             slippage_bps=100.0, take_profit_pct=10.0)
    # t1: buy 5 @ 101 -> cash 495; tp level = 101 * 1.1 = 111.1; t1 high 105 < 111.1.
    # t2: high 115 >= 111.1 -> exit at exactly 111.1 (limit, no slippage)
    #     cash = 495 + 5 * 111.1 = 1050.5; pnl = (111.1 - 101) * 5 = 50.5
    (tr,) = r.trades
    assert tr.exit_reason == "take_profit"
    assert tr.exit_price == approx(111.1)
    assert tr.pnl == approx(50.5)
    assert r.cash[2] == approx(1050.5)


def test_take_profit_gap_fills_at_open() -> None:
    bars = [flat(100), flat(100), (120, 125, 118, 121)]
    r = run1(bars, [1.0, NAN, NAN], cash=1000.0, take_profit_pct=10.0)
    # t1 buy 10 @ 100, level 110; t2 opens at 120 >= 110 -> take-profit at the open 120.
    assert r.trades[0].exit_reason == "take_profit"
    assert r.trades[0].exit_price == 120.0
    assert r.cash[2] == 1200.0


def test_both_levels_in_one_bar_stop_loss_wins() -> None:
    bars = [flat(100), flat(100), (100, 106, 94, 100)]
    r = run1(bars, [1.0, NAN, NAN], cash=1000.0, stop_loss_pct=5.0, take_profit_pct=5.0)
    # entry 100: levels 95 / 105, bar t2 reaches both -> stop-loss at 95.
    assert r.trades[0].exit_reason == "stop_loss"
    assert r.trades[0].exit_price == approx(95.0)


def test_short_stop_loss_and_take_profit() -> None:
    bars = [flat(100), flat(100), (100, 101, 89, 90)]
    r = run1(bars, [-0.5, NAN, NAN], cash=1000.0, stop_loss_pct=5.0, take_profit_pct=10.0)
    # t1: short 5 @ 100 (S = -floor(0.5*1000/100)); short levels: sl 105, tp 90.
    # t2: high 101 < 105; low 89 <= 90 -> take-profit at 90; pnl = -(90 - 100) * 5 = 50.
    (tr,) = r.trades
    assert (tr.side, tr.exit_reason) == ("short", "take_profit")
    assert tr.exit_price == approx(90.0)
    assert tr.pnl == approx(50.0)


def test_gap_stop_cancels_same_bar_pending_order() -> None:
    bars = [flat(100), flat(100), (85, 86, 84, 85), flat(85)]
    r = run1(bars, [1.0, 0.5, NAN, NAN], cash=1000.0, stop_loss_pct=10.0)
    # t1: buy 10 @ 100; t1 close: target 0.5 -> S = floor(0.5*1000/100) = 5 -> pending sell 5.
    # t2: open 85 <= 90 -> stop exit of all 10 @ 85; the pending sell of 5 is cancelled (had it
    #     filled it would have opened a short of 5). Cash = 850.
    assert r.positions[2] == [0.0]
    assert r.positions[3] == [0.0]
    assert r.cash[2] == 850.0
    assert [t.exit_reason for t in r.trades] == ["stop_loss"]
    assert r.rejected == []


def test_stopped_symbol_places_no_order_on_that_bar_close_fill() -> None:
    bars = [flat(100), (95, 95, 85, 88), flat(90), flat(90)]
    r = run1(bars, [1.0, 0.5, NAN, 1.0], cash=1000.0, fill="close", stop_loss_pct=10.0)
    # t0: buy 10 @ 100. t1: open 95 > 90, low 85 <= 90 -> stop at 90, cash 900.
    #     The new target 0.5 (a change) is ignored on the stop bar and carried: no order.
    assert r.positions[1] == [0.0]
    # t2: target unchanged (0.5) -> no order.
    assert r.positions[2] == [0.0]
    # t3: target 1.0 (a change): E = 900, S = floor(900/90) = 10 -> buy 10 @ 90, cash 0.
    assert r.positions[3] == [10.0]
    assert r.cash[3] == 0.0


def test_fill_close_gap_through_take_profit_resolved_before_intrabar_stop_loss() -> None:
    # SPEC-AMBIGUITY pin (see ref_sim step 2): with fill=close, a held position whose bar opens
    # beyond the take-profit and then trades through the stop-loss exits at the open by
    # take-profit, as step 1.1 would decide with fill=next_open.
    bars = [flat(100), (115, 116, 85, 90)]
    r = run1(bars, [1.0, NAN], cash=1000.0, fill="close", stop_loss_pct=10.0,
             take_profit_pct=10.0)
    assert r.trades[0].exit_reason == "take_profit"
    assert r.trades[0].exit_price == 115.0


# ----- trades -----------------------------------------------------------------------------------


def test_partial_reduction_pro_rata_entry_commission() -> None:
    bars = [flat(10), flat(12), flat(11)]
    r = run1(bars, [1.0, 0.5, NAN], cash=1000.0, fill="close", size_pct=0.5,
             commission_fixed=2.0)
    # t0: S = floor(1*1000*0.5/10) = 50 @ 10, comm 2 -> cash = 1000 - 500 - 2 = 498
    # t1: E = 498 + 50*12 = 1098; S = floor(0.5*1098*0.5/12) = floor(22.875) = 22
    #     qty = -28 @ 12 = 336, comm 2 -> cash = 498 + 336 - 2 = 832
    assert r.cash[1] == approx(832.0)
    closed, still_open = r.trades
    # closed 28: entry comm share = 2 * 28/50 = 1.12; pnl = (12-10)*28 - 1.12 - 2 = 52.88
    assert (closed.qty, closed.entry_t, closed.exit_t) == (28.0, 0, 1)
    assert closed.pnl == approx(52.88)
    # t2: equity = 832 + 22*11 = 1074; open 22: pnl = (11-10)*22 - (2 - 1.12) = 21.12
    assert (still_open.qty, still_open.exit_t, still_open.exit_reason) == (22.0, None, None)
    assert still_open.pnl == approx(21.12)
    assert r.final_equity == approx(1074.0)
    assert_pnl_identity(r, 1000.0)  # 52.88 + 21.12 = 74


def test_adding_moves_average_entry() -> None:
    bars = [flat(10), flat(20), flat(20)]
    r = run1(bars, [0.25, 0.75, NAN], cash=1000.0, fill="close")
    # t0: S = floor(0.25*1000/10) = 25 @ 10 -> cash 750
    # t1: E = 750 + 25*20 = 1250; S = floor(0.75*1250/20) = floor(46.875) = 46; buy 21 @ 20
    #     avg entry = (25*10 + 21*20) / 46 = 670/46
    (tr,) = r.trades
    assert tr.entry_price == approx(670 / 46)
    assert tr.entry_t == 0
    assert tr.qty == 46.0


def test_long_to_short_flip_produces_two_trades() -> None:
    bars = [flat(10), flat(10), flat(8)]
    r = run1(bars, [1.0, -1.0, NAN], cash=1000.0, fill="close", size_pct=0.5,
             commission_bps=10.0)
    # t0: buy 50 @ 10, comm = 50*10*10/1e4 = 0.5 -> cash 499.5
    # t1: E = 499.5 + 500 = 999.5; x = -1*999.5*0.5/10 = -49.975 -> S = -49; qty = -99
    #     sell 99 @ 10 = 990, comm 0.99 -> cash = 499.5 + 990 - 0.99 = 1488.51
    assert r.positions[1] == [-49.0]
    assert r.cash[1] == approx(1488.51)
    long_tr, short_tr = r.trades
    # closed long 50: exit comm = 0.99 * 50/99 = 0.5; pnl = 0 - 0.5 - 0.5 = -1.0
    assert (long_tr.side, long_tr.qty, long_tr.exit_t) == ("long", 50.0, 1)
    assert long_tr.pnl == approx(-1.0)
    # new short 49 opened at t1 @ 10 with entry comm 0.49; t2 close 8:
    # pnl = -(8 - 10) * 49 - 0.49 = 97.51; equity = 1488.51 - 49*8 = 1096.51
    assert (short_tr.side, short_tr.qty, short_tr.entry_t, short_tr.exit_t) == (
        "short", 49.0, 1, None)
    assert short_tr.pnl == approx(97.51)
    assert r.final_equity == approx(1096.51)
    assert_pnl_identity(r, 1000.0)


def test_shared_cash_two_symbols_sells_before_buys() -> None:
    bars = [
        (flat(20), flat(10)),
        (flat(20), flat(10)),
        (flat(20), flat(10)),
    ]
    weights = [(NAN, 1.0), (1.0, 0.0), (NAN, NAN)]
    r = run2(bars, weights, cash=1000.0)
    # t0: B: S = floor(1000/10) = 100 pending. t1 open: buy 100 B @ 10 -> cash 0.
    # t1 close: E = 1000. A: S = floor(1000/20) = 50 (+50); B: S = 0 (-100).
    # t2 open: in symbol order A's buy would fail (cash 0); sells first: B sells 100 @ 10
    #          -> cash 1000, then A buys 50 @ 20 -> cash 0.
    assert r.rejected == []
    assert r.positions[2] == [50.0, 0.0]
    assert r.cash[2] == 0.0
    assert r.equity[2] == 1000.0
    # trades: B closed at t2 (pnl 0), then open A.
    assert [(t.symbol, t.exit_t) for t in r.trades] == [("B", 2), ("A", None)]


def test_end_of_data_open_trades_and_pnl_identity_two_symbols() -> None:
    bars = [
        (flat(10), flat(50)),
        (flat(12), flat(40)),
        (flat(11), flat(45)),
    ]
    weights = [(0.5, -0.4), (NAN, NAN), (NAN, NAN)]
    r = run2(bars, weights, cash=1000.0, fill="close", commission_fixed=1.0)
    # t0: sells first: B short -floor(0.4*1000/50) = -8 @ 50: cash = 1000 + 400 - 1 = 1399
    #     A buy floor(0.5*1000/10) = 50 @ 10: cash = 1399 - 500 - 1 = 898
    # t2: equity = 898 + 50*11 - 8*45 = 898 + 550 - 360 = 1088
    assert r.final_equity == approx(1088.0)
    a, b = r.trades  # open trades in symbol order
    # A: (11-10)*50 - 1 = 49; B: -(45-50)*8 - 1 = 39; 49 + 39 = 88 = 1088 - 1000
    assert (a.symbol, a.pnl) == ("A", approx(49.0))
    assert (b.symbol, b.side, b.pnl) == ("B", "short", approx(39.0))
    assert_pnl_identity(r, 1000.0)


# ----- rebalance --------------------------------------------------------------------------------


def test_every_bar_rebalance_with_min_trade_pct() -> None:
    bars = [flat(10), flat(12), flat(12.5)]
    kw = dict(cash=1000.0, fill="close", rebalance="every_bar", min_trade_pct=5.0)
    r = run1(bars, [0.5, NAN, NAN], **kw)
    # t0: S = floor(0.5*1000/10) = 50, notional 500 >= 5% * 1000 = 50 -> buy, cash 500
    # t1: E = 500 + 600 = 1100; S = floor(0.5*1100/12) = floor(45.83) = 45; qty -5,
    #     notional 5*12 = 60 >= 55 -> sell 5 @ 12, cash 560
    # t2: E = 560 + 45*12.5 = 1122.5; S = floor(0.5*1122.5/12.5) = floor(44.9) = 44; qty -1,
    #     notional 12.5 < 56.125 -> no order
    assert [p[0] for p in r.positions] == [50.0, 45.0, 45.0]
    assert r.equity == [approx(1000.0), approx(1100.0), approx(1122.5)]
    # trades: 5 closed at 12 -> (12-10)*5 = 10; 45 open -> (12.5-10)*45 = 112.5
    assert [tr.pnl for tr in r.trades] == [approx(10.0), approx(112.5)]
    # on_change would not have traded at t1/t2.
    r2 = run1(bars, [0.5, NAN, NAN], cash=1000.0, fill="close")
    assert [p[0] for p in r2.positions] == [50.0, 50.0, 50.0]


# ----- whole-run properties ---------------------------------------------------------------------


def _random_panel(T: int, n: int, seed: int) -> tuple[list[list[float]], ...]:
    """A random-walk OHLC panel with sparse weights in [-1, 1] (NaN elsewhere)."""
    rng = random.Random(seed)
    o, h, lo, c, w = [], [], [], [], []
    last = [100.0] * n
    for _ in range(T):
        ro, rh, rl, rc, rw = [], [], [], [], []
        for s in range(n):
            op = last[s] * math.exp(rng.gauss(0, 0.01))
            cl = op * math.exp(rng.gauss(0, 0.02))
            ro.append(op)
            rc.append(cl)
            rh.append(max(op, cl) * (1 + abs(rng.gauss(0, 0.01))))
            rl.append(min(op, cl) * (1 - abs(rng.gauss(0, 0.01))))
            rw.append(rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0]) if rng.random() < 0.05 else NAN)
            last[s] = cl
        o.append(ro)
        h.append(rh)
        lo.append(rl)
        c.append(rc)
        w.append(rw)
    return o, h, lo, c, w


@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_pnl_identity_on_random_series_with_all_features(fill: str) -> None:
    o, h, lo, c, w = _random_panel(400, 3, seed=7)
    r = ref_backtest(["A", "B", "C"], o, h, lo, c, w, fill=fill, size_pct=0.3,
                     commission_bps=5.0, commission_fixed=1.0, slippage_bps=3.0,
                     stop_loss_pct=4.0, take_profit_pct=6.0, leverage=1.5)
    assert len(r.equity) == 400
    assert any(t.exit_reason == "stop_loss" for t in r.trades)
    assert any(t.exit_reason == "take_profit" for t in r.trades)
    assert any(t.exit_reason == "signal" for t in r.trades)
    assert_pnl_identity(r, 100_000.0)


def test_5000_bar_single_symbol_runs_well_under_a_second() -> None:
    o, h, lo, c, w = _random_panel(5000, 1, seed=3)
    start = time.perf_counter()
    r = ref_backtest(["X"], o, h, lo, c, w, commission_bps=1.0, slippage_bps=1.0,
                     stop_loss_pct=5.0, take_profit_pct=5.0)
    elapsed = time.perf_counter() - start
    assert len(r.equity) == 5000
    assert elapsed < 0.5
