"""Every rule of docs/semantics.md on a tiny series, expected numbers worked out by hand."""

from __future__ import annotations

import pytest

from core.errors import StrategyError
from core.sim import SimConfig, run_backtest
from tests.kit.bars import NAN, flat, panel, weights


def run(p, w, **cfg):
    return run_backtest(p, w, SimConfig(**cfg))


def test_next_open_fill_sizes_on_close_and_fills_at_next_open():
    # bar0 close 10 -> S = floor(1 * 1000 * 1.0 / 10) = 100; fills at bar1 open 10.5
    # 100 * 10.5 = 1050 > cash 1000 -> rejected. With size_pct 0.9: S = floor(900/10) = 90,
    # cost 945 -> cash 55; equity bar1 = 55 + 90 * 11 = 1045.
    p = panel([(10, 10, 10, 10), (10.5, 11, 10.5, 11), (11, 12, 11, 12)])
    r = run(p, weights([1, NAN, NAN]), cash=1000, size_pct=0.9)
    assert r.trades[0]["entry_time"].startswith("2020-01-02")
    assert r.trades[0]["entry_price"] == 10.5
    assert r.trades[0]["qty"] == 90
    assert r.equity.tolist() == [1000, 1045, 55 + 90 * 12]


def test_close_fill_fills_at_the_deciding_bar_close():
    # bar0 close 10: S = floor(1000 / 10) = 100 shares at 10 -> cash 0, equity 1000.
    p = panel(flat([10, 12, 9]))
    r = run(p, weights([1, NAN, 0]), cash=1000, fill="close")
    t = r.trades[0]
    assert (t["entry_price"], t["exit_price"], t["qty"]) == (10, 9, 100)
    assert t["pnl"] == pytest.approx(-100)  # (9 - 10) * 100
    assert r.equity.tolist() == [1000, 1200, 900]


def test_commission_bps_and_fixed_are_paid_per_fill():
    # buy 100 @ 10 (close fill): comm = 100*10*0.001 + 2 = 3; sell 100 @ 11: 1.1 + 2 = 3.1
    # pnl = 100 * (11 - 10) - 3 - 3.1 = 93.9; final = 2000 + 93.9
    p = panel(flat([10, 11]))
    r = run(p, weights([0.5, 0]), cash=2000, fill="close", commission_bps=10, commission_fixed=2)
    assert r.total_commission == pytest.approx(6.1)
    assert r.trades[0]["pnl"] == pytest.approx(93.9)
    assert r.final_equity == pytest.approx(2093.9)


def test_slippage_moves_buys_up_and_sells_down():
    # 100 bps: buy @ 10 * 1.01 = 10.1, sell @ 12 * 0.99 = 11.88; S = floor(0.5*2000/10) = 100
    p = panel(flat([10, 12]))
    r = run(p, weights([0.5, 0]), cash=2000, fill="close", slippage_bps=100)
    t = r.trades[0]
    assert t["entry_price"] == pytest.approx(10.1)
    assert t["exit_price"] == pytest.approx(11.88)
    assert r.final_equity == pytest.approx(2000 + 100 * (11.88 - 10.1))


def test_sizing_floors_shares_and_fractional_does_not():
    # S = 1 * 1000 * 1.0 / 3 = 333.33 -> 333 shares; fractional keeps 333.333...
    p = panel(flat([3, 3]))
    assert run(p, weights([1, NAN]), cash=1000, fill="close").trades[0]["qty"] == 333
    frac = run(p, weights([1, NAN]), cash=1000, fill="close", fractional=True, size_pct=0.5)
    assert frac.trades[0]["qty"] == pytest.approx(1000 * 0.5 / 3)


def test_buy_rejected_after_gap_up_is_not_retried_while_target_stands():
    # close 10 -> S = 100; next open 10.2 -> 1020 > 1000: rejected once, target 1 stays,
    # so bars 2..3 place nothing; the target changes to 0 then 1 at bar 3 -> new buy at bar 4.
    p = panel(flat([10]) + [(10.2, 10.2, 10.2, 10.2)] + flat([9, 8, 8]))
    r = run(p, weights([1, NAN, NAN, 1, NAN]), cash=1000)
    assert [(x["time"][:10], x["qty"], x["reason"]) for x in r.rejected] == [
        ("2020-01-02", 100, "insufficient_cash")
    ]
    assert r.trades == []  # a repeated target of 1 is no change: nothing is retried
    r2 = run(p, weights([1, NAN, 0, 1, NAN]), cash=1000)
    # bar3 close 8 -> S = floor(1000/8) = 125, fills bar4 open 8
    assert r2.trades[0]["qty"] == 125 and r2.trades[0]["entry_price"] == 8


def test_gap_through_stop_loss_fills_at_the_open():
    # buy 100 @ 10 (close fill), stop 5% -> level 9.5. Bar1 opens at 9.0 below the level:
    # exit at the open 9.0, not at 9.5. pnl = -100.
    p = panel(flat([10]) + [(9.0, 9.2, 8.8, 9.1)])
    r = run(p, weights([1, NAN]), cash=1000, fill="close", stop_loss_pct=5)
    t = r.trades[0]
    assert (t["exit_price"], t["exit_reason"], t["pnl"]) == (9.0, "stop_loss", -100)


def test_stop_loss_hit_intrabar_fills_at_level_with_slippage():
    # entry 100 @ 10 (close), level 9.5; bar1 low 9.4 -> exit at 9.5 * (1 - 0.001) = 9.4905
    p = panel(flat([10]) + [(9.8, 9.9, 9.4, 9.7)])
    r = run(p, weights([1, NAN]), cash=1000, fill="close", stop_loss_pct=5)
    assert r.trades[0]["exit_price"] == 9.5  # no slippage configured
    r2 = run(p, weights([1, NAN]), cash=2000, size_pct=0.5, fill="close", stop_loss_pct=5,
             slippage_bps=10)  # fmt: skip
    # entry fills at 10 * 1.001 = 10.01 -> level 10.01 * 0.95 = 9.5095; low 9.4 hits it
    assert r2.trades[0]["entry_price"] == pytest.approx(10.01)
    assert r2.trades[0]["exit_price"] == pytest.approx(9.5095 * 0.999)


def test_stop_on_the_entry_bar_counts_for_open_fills():
    # decide at bar0 close 10; fill at bar1 open 10 (S = 100); bar1's own low 9.4 <= 9.5 -> stop
    p = panel(flat([10]) + [(10, 10.5, 9.4, 10.2)])
    r = run(p, weights([1, NAN]), cash=1000, stop_loss_pct=5)
    t = r.trades[0]
    assert (t["entry_time"][:10], t["exit_time"][:10]) == ("2020-01-02", "2020-01-02")
    assert (t["exit_price"], t["exit_reason"]) == (9.5, "stop_loss")


def test_close_fill_stops_start_on_the_next_bar():
    # entry at bar0's close 10; bar0's own low 9.0 happened before the fill and does not count.
    p = panel([(10, 10, 9.0, 10), (10, 10.1, 9.9, 10)])
    r = run(p, weights([1, NAN]), cash=1000, fill="close", stop_loss_pct=5)
    assert r.trades[0]["exit_time"] is None  # still open at the end


def test_take_profit_fills_at_level_without_slippage_or_at_a_gapped_open():
    # entry 100 @ 10 (close); tp 10% -> 11. Bar1 high 11.5 -> exit at 11 (limit, no slippage).
    p = panel(flat([10]) + [(10.5, 11.5, 10.4, 11.2)])
    r = run(p, weights([1, NAN]), cash=1000, fill="close", take_profit_pct=10, slippage_bps=50)
    # entry 10 * 1.005 = 10.05 -> S = floor(1000/10) = 100, cost 1005 > 1000: use size 0.5
    assert r.rejected and r.rejected[0]["reason"] == "insufficient_cash"
    r = run(p, weights([0.5, NAN]), cash=1000, fill="close", take_profit_pct=10, slippage_bps=50)
    t = r.trades[0]
    assert t["entry_price"] == pytest.approx(10.05)
    assert t["exit_price"] == pytest.approx(11.055)  # 10.05 * 1.1, no slippage
    assert t["exit_reason"] == "take_profit"
    gap = panel(flat([10]) + [(12, 12.5, 11.8, 12.2)])
    t = run(gap, weights([0.5, NAN]), cash=1000, fill="close", take_profit_pct=10).trades[0]
    assert (t["exit_price"], t["exit_reason"]) == (12, "take_profit")  # the better open


def test_stop_loss_wins_when_one_bar_reaches_both_levels():
    # levels 9.5 (sl 5%) and 10.5 (tp 5%); bar1 spans 9.0 .. 11.0 -> stop-loss assumed first
    p = panel(flat([10]) + [(10, 11, 9, 10)])
    r = run(p, weights([1, NAN]), cash=1000, fill="close", stop_loss_pct=5, take_profit_pct=5)
    assert (r.trades[0]["exit_price"], r.trades[0]["exit_reason"]) == (9.5, "stop_loss")


def test_gap_stop_cancels_the_pending_order_of_the_same_bar():
    # bar0: target 0.5 -> S = floor(0.5*1000/10) = 50 @ bar1 open 10 (cash 500).
    # bar1 close 10: target 1 -> E = 1000, S = 100, pending +50 for bar2's open.
    # bar2 opens at 9 below level 9.5: the stop sells 50 @ 9 and the pending buy is cancelled.
    p = panel(flat([10, 10]) + [(9, 9.2, 8.9, 9.1), (9.1, 9.1, 9.1, 9.1)])
    r = run(p, weights([0.5, 1, NAN, NAN]), cash=1000, stop_loss_pct=5)
    assert len(r.trades) == 1
    assert (r.trades[0]["qty"], r.trades[0]["exit_price"]) == (50, 9)
    assert r.final_equity == pytest.approx(500 + 50 * 9)


def test_stopped_symbol_places_no_order_on_the_same_bar():
    # close fills: entry 100 @ 10; bar1 low 9 hits 9.5; bar1's target change to 0.5 is ignored,
    # and since the target then stands, nothing is bought later either.
    p = panel(flat([10]) + [(10, 10, 9, 9.8)] + flat([9.9]))
    r = run(p, weights([1, 0.5, NAN]), cash=1000, fill="close", stop_loss_pct=5)
    assert len(r.trades) == 1 and r.trades[0]["exit_reason"] == "stop_loss"


def test_end_of_data_marks_open_positions_and_pnl_sums_to_equity_change():
    # buy 100 @ 10 with 1 fixed commission; last close 12 -> open trade pnl = 200 - 1
    p = panel(flat([10, 11, 12]))
    r = run(p, weights([0.5, NAN, NAN]), cash=2000, fill="close", commission_fixed=1)
    t = r.trades[0]
    assert (t["exit_time"], t["exit_price"], t["exit_reason"]) == (None, None, None)
    assert t["pnl"] == pytest.approx(199)
    assert r.final_equity == pytest.approx(2000 + 199)


def test_pending_order_after_the_last_bar_is_dropped():
    p = panel(flat([10, 10]))
    r = run(p, weights([NAN, 1]), cash=1000)
    assert r.trades == [] and r.rejected == [] and r.final_equity == 1000


def test_shared_cash_sells_fill_before_buys():
    # Two symbols, 1000 cash. bar0: A target 1 -> 100 @ 10 (close fill), cash 0.
    # bar1: A -> 0 and B -> 1 on the same bar: E = 1000; B's S = floor(1000 / 20) = 50.
    # Sells first: A 100 @ 10 -> cash 1000, then B 50 @ 20 -> cash 0. Buys first would reject.
    p = panel(flat([10, 10, 10]), flat([20, 20, 22]))
    r = run(p, weights([1, 0, NAN], [NAN, 1, NAN]), cash=1000, fill="close")
    assert r.rejected == []
    assert [(t["symbol"], t["qty"]) for t in r.trades] == [("A", 100), ("B", 50)]
    assert r.final_equity == pytest.approx(50 * 22)


def test_partial_reduction_allocates_entry_commission_pro_rata():
    # buy 100 @ 10 (comm 1% = 10), reduce to 50 @ 12 (comm 6): closed part pnl =
    # 50 * 2 - 10 * 50/100 - 6 = 89; remaining 50 open at last close 12: 100 - 5 = 95.
    p = panel(flat([10, 12, 12]))
    r = run(p, weights([1, 0.5, NAN]), cash=2000, size_pct=0.5, fill="close", commission_bps=100,
            fractional=False)  # fmt: skip
    # bar1: E = 2000 - 1000 - 10 + 100*12 = 2190; S = floor(0.5*2190*0.5/12) = 45 -> sell 55
    closed, open_ = r.trades
    assert closed["qty"] == 55
    assert closed["pnl"] == pytest.approx(55 * 2 - 10 * 55 / 100 - 55 * 12 * 0.01)
    assert open_["qty"] == 45
    assert open_["pnl"] == pytest.approx(45 * 2 - 10 * 45 / 100)
    total = sum(t["pnl"] for t in r.trades)
    assert total == pytest.approx(r.final_equity - 2000)


def test_fill_through_zero_closes_one_trade_and_opens_another():
    # long 50 @ 10 (close fills, 0.5 of 1000); bar1 target -0.5 at 10: E = 1000,
    # S = -floor(500/10) = -50 -> sell 100 @ 10: closes the long (pnl 0), opens a short of 50.
    # bar2 close 8: short pnl marked = 50 * 2 = 100
    p = panel(flat([10, 10, 8]))
    r = run(p, weights([0.5, -0.5, NAN]), cash=1000, fill="close")
    long_, short = r.trades
    assert (long_["side"], long_["qty"], long_["pnl"]) == ("long", 50, 0)
    assert (short["side"], short["qty"], short["exit_time"]) == ("short", 50, None)
    assert short["pnl"] == pytest.approx(100)
    assert r.final_equity == pytest.approx(1100)


def test_short_stop_loss_is_above_entry():
    # short 50 @ 10 (close fill); sl 5% -> 10.5; bar1 high 10.6 -> buy back at 10.5
    p = panel(flat([10]) + [(10.1, 10.6, 10.0, 10.2)])
    r = run(p, weights([-0.5, NAN]), cash=1000, fill="close", stop_loss_pct=5)
    t = r.trades[0]
    assert (t["side"], t["exit_price"], t["exit_reason"]) == ("short", 10.5, "stop_loss")
    assert t["pnl"] == pytest.approx(-25)


def test_order_on_a_bar_without_price_is_rejected_no_price():
    # B has no bar at t=1 (NaN): its pending order from bar0 cannot fill at bar1's open.
    p = panel(flat([10, 10, 10]), [(5, 5, 5, 5), (NAN, NAN, NAN, NAN), (5, 5, 5, 5)])
    r = run(p, weights([NAN, NAN, NAN], [0.5, NAN, NAN]), cash=1000)
    assert [(x["symbol"], x["reason"]) for x in r.rejected] == [("B", "no_price")]


def test_nan_close_marks_at_last_close():
    # B held 100 @ 5 (close fill); B's close missing at bar1 -> marked at 5
    p = panel(flat([10, 10]), [(5, 5, 5, 5), (NAN, NAN, NAN, NAN)])
    r = run(p, weights([NAN, NAN], [0.5, NAN]), cash=1000, fill="close")
    assert r.equity.tolist() == [1000, 1000]


def test_every_bar_rebalances_beyond_min_trade_pct():
    # target 0.5 each bar, close fills. bar0 @10: E=1000 -> 50 shares (cash 500).
    # bar1 @12: E = 500 + 600 = 1100, S = floor(550/12) = 45 -> sell 5 (60 = 5.45% of E).
    # bar2 @12.2: E = 560 + 549 = 1109, S = floor(554.5/12.2) = 45 -> no order.
    p = panel(flat([10, 12, 12.2]))
    w = weights([0.5, 0.5, 0.5])
    r = run(p, w, cash=1000, fill="close", rebalance="every_bar", min_trade_pct=1)
    assert [t["qty"] for t in r.trades] == [5, 45]  # the 5-share reduction, then the open rest
    skipped = run(p, w, cash=1000, fill="close", rebalance="every_bar", min_trade_pct=6)
    assert [t["qty"] for t in skipped.trades] == [50]  # 5.45% < 6%: no rebalance


def test_leverage_allows_a_buy_that_cash_alone_cannot_pay():
    # target 1 with size_pct 1.5 asks 150 shares @ 10 = 1500 > 1000 cash.
    p = panel(flat([10, 11]))
    w = weights([1, NAN])
    assert run(p, w, cash=1000, fill="close", size_pct=1.5).rejected[0]["reason"] == (
        "insufficient_cash"
    )
    r = run(p, w, cash=1000, fill="close", size_pct=1.5, leverage=2)
    assert r.trades[0]["qty"] == 150 and r.final_equity == pytest.approx(1150)


def test_short_beyond_leverage_is_rejected_for_margin():
    # short target -1 with size_pct 1.5 -> -150 shares, gross 1500 > 1 * 1000
    p = panel(flat([10, 11]))
    r = run(p, weights([-1, NAN]), cash=1000, fill="close", size_pct=1.5)
    assert r.rejected[0]["reason"] == "insufficient_margin"


def test_weights_outside_the_unit_interval_are_an_error_not_clipped():
    p = panel(flat([10, 11]))
    with pytest.raises(StrategyError, match=r"1\.5 for A outside \[-1, 1\]"):
        run(p, weights([1.5, NAN]))


def test_statistics_of_a_hand_computed_curve():
    # close fills, all-in 100 shares @ 10, closes 10, 11, 9.9 -> equity 1000, 1100, 990.
    # returns r = [0, 0.1, -0.1]; mean 0; Sharpe 0; max drawdown 1 - 990/1100 = 0.1.
    p = panel(flat([10, 11, 9.9]))
    r = run(p, weights([1, NAN, NAN]), cash=1000, fill="close")
    s = r.stats
    assert s.max_drawdown == pytest.approx(0.1)
    assert s.sharpe == pytest.approx(0.0, abs=1e-12)
    assert s.exposure == 1.0
    # downside dev = sqrt((0 + 0 + 0.01) / 3); VaR95 = -quantile([0, .1, -.1], .05) = 0.09
    assert s.var_95 == pytest.approx(0.09)
    assert s.cvar_95 == pytest.approx(0.1)
