"""Every pre-trade check approves, cuts (where a cut makes sense) and rejects with its reason.

Each case runs through ``RiskEngine.check`` with only the rule under test switched on, on a
fixed clock; the comments show how the expected numbers were computed. Default view:
strategy s1 with 100,000 equity, AAPL last price 100.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.events import Decision, FillReason, KillMode, OrderIntent, RiskReason, RiskVerdict
from core.risk import PRE_TRADE_RULES, Cut, OpenOrder, RiskEngine, RiskLimits, RiskView
from core.risk.rules import check_position, crosses_zero, is_reducing
from tests.kit.risk import T0, intent, view


def decide(limits: RiskLimits, it: OrderIntent, v: RiskView | None = None) -> RiskVerdict:
    return RiskEngine(limits).check([it], v if v is not None else view(), T0)[0]


def expect(v: RiskVerdict, decision: Decision, qty: float, *reasons: RiskReason) -> None:
    assert (v.decision, v.approved_qty, v.reasons) == (decision, qty, reasons), v.detail


def held(**positions: float) -> RiskView:
    return view(positions={"s1": dict(positions)}, prices={"AAPL": 100.0, "MSFT": 100.0})


# ------------------------------------------------------------------ helpers
@pytest.mark.parametrize(
    ("current", "qty", "reducing", "crossing"),
    [
        (100, -40, True, False),  # 100 -> 60
        (100, -100, True, False),  # 100 -> 0: a close is reducing
        (100, -150, False, True),  # 100 -> -50
        (100, 10, False, False),  # 100 -> 110
        (0, -10, False, False),  # flat: anything opens
        (-50, 20, True, False),  # -50 -> -30
        (-50, 80, False, True),  # -50 -> 30
    ],
)
def test_reducing_and_crossing(current: float, qty: float, reducing: bool, crossing: bool) -> None:
    assert is_reducing(current, qty) is reducing
    assert crosses_zero(current, qty) is crossing


def test_rules_run_in_the_documented_order() -> None:
    names = [r.__name__ for r in PRE_TRADE_RULES]
    assert names == [
        "check_state", "check_restricted", "check_price_collar", "check_order_notional",
        "check_position", "check_gross_exposure", "check_leverage", "check_open_orders",
        "check_order_rate",
    ]  # fmt: skip


def test_a_rule_is_a_pure_function_returning_a_cut_value() -> None:
    # 10% of 100,000 = 10,000 = 100 shares at 100; holding 60, a buy of 60 is cut to 40.
    result = check_position(intent(60), held(AAPL=60), RiskLimits(max_position_pct=10), T0)
    assert isinstance(result, Cut)
    assert (result.qty, result.reason) == (40.0, RiskReason.MAX_POSITION)
    assert "max_position_pct 10%" in result.detail and "10,000.00" in result.detail


# ------------------------------------------------------------------ trading state
def test_state_active_approves() -> None:
    expect(decide(RiskLimits(), intent(10)), Decision.APPROVED, 10)


def test_state_reducing_approves_reductions_cuts_crossings_rejects_increases() -> None:
    engine = RiskEngine()
    engine.kill("strategy:s1", KillMode.REDUCE, by="op")
    v = held(AAPL=100)
    expect(engine.check([intent(-40)], v, T0)[0], Decision.APPROVED, -40)
    # 100 - 150 = -50 would cross zero: cut to -100, which closes the position
    expect(engine.check([intent(-150)], v, T0)[0], Decision.MODIFIED, -100,
           RiskReason.REDUCING_ONLY)  # fmt: skip
    expect(engine.check([intent(10)], v, T0)[0], Decision.REJECTED, 0, RiskReason.REDUCING_ONLY)
    flat = held()
    expect(engine.check([intent(-10)], flat, T0)[0], Decision.REJECTED, 0,
           RiskReason.REDUCING_ONLY)  # fmt: skip


def test_state_halted_rejects_even_reductions_but_lets_a_flatten_close() -> None:
    engine = RiskEngine()
    engine.kill("global", KillMode.HALT, by="op")
    v = held(AAPL=100)
    rej = engine.check([intent(-40)], v, T0)[0]
    expect(rej, Decision.REJECTED, 0, RiskReason.HALTED)
    assert rej.detail == "global is halted (kill switch by op)"
    expect(engine.check([intent(-100, reason=FillReason.FLATTEN)], v, T0)[0],
           Decision.APPROVED, -100)  # fmt: skip
    expect(engine.check([intent(50, reason=FillReason.FLATTEN)], v, T0)[0],
           Decision.REJECTED, 0, RiskReason.HALTED)  # fmt: skip


def test_state_counts_open_orders_in_the_exposure() -> None:
    # holding 100, a sell of 100 approved earlier in the batch: exposure 0, so a further sell
    # would open a short. (An open order from an earlier bar on the symbol does not count: a
    # new order replaces it, tests/core/risk/test_engine.py.)
    engine = RiskEngine()
    engine.kill("symbol:AAPL", KillMode.REDUCE, by="op")
    first, second = engine.check([intent(-100), intent(-10)], held(AAPL=100), T0)
    expect(first, Decision.APPROVED, -100)
    expect(second, Decision.REJECTED, 0, RiskReason.REDUCING_ONLY)


# ------------------------------------------------------------------ restricted symbols
def test_restricted_symbol_approve_cut_reject() -> None:
    limits = RiskLimits(restricted_symbols=["MSFT"])
    expect(decide(limits, intent(10), held()), Decision.APPROVED, 10)  # AAPL is not restricted
    v = held(MSFT=100)
    expect(decide(limits, intent(-50, symbol="MSFT"), v), Decision.APPROVED, -50)
    # 100 - 150 = -50 would open a short in a restricted symbol: cut to -100 (close)
    expect(decide(limits, intent(-150, symbol="MSFT"), v), Decision.MODIFIED, -100,
           RiskReason.RESTRICTED_SYMBOL)  # fmt: skip
    expect(decide(limits, intent(10, symbol="MSFT"), v), Decision.REJECTED, 0,
           RiskReason.RESTRICTED_SYMBOL)  # fmt: skip


def test_a_strategy_override_adds_restricted_symbols_and_cannot_remove_them() -> None:
    limits = RiskLimits(restricted_symbols=["MSFT"],
                        strategies={"s2": {"restricted_symbols": ["AAPL"]}})  # fmt: skip
    v = view(equity={"s1": 1e5, "s2": 1e5}, prices={"AAPL": 100.0, "MSFT": 100.0})
    expect(decide(limits, intent(1), v), Decision.APPROVED, 1)
    expect(decide(limits, intent(1, strategy="s2"), v), Decision.REJECTED, 0,
           RiskReason.RESTRICTED_SYMBOL)  # fmt: skip
    expect(decide(limits, intent(1, strategy="s2", symbol="MSFT"), v), Decision.REJECTED, 0,
           RiskReason.RESTRICTED_SYMBOL)  # fmt: skip


# ------------------------------------------------------------------ price collar
def test_price_collar_approve_and_reject_no_cut() -> None:
    # A collar checks the price, so a smaller size cannot fix it: there is no MODIFIED case.
    limits = RiskLimits(price_collar_pct=5)
    expect(decide(limits, intent(10, price=104.0)), Decision.APPROVED, 10)  # |104-100|/100 = 4%
    expect(decide(limits, intent(10, price=95.0)), Decision.APPROVED, 10)  # exactly 5%: allowed
    rej = decide(limits, intent(10, price=106.0))  # |106-100|/100 = 6% > 5%
    expect(rej, Decision.REJECTED, 0, RiskReason.PRICE_COLLAR)
    assert rej.detail == "ref_price 106.00 is 6.00% from last 100.00 > price_collar_pct 5%"


def test_price_collar_without_a_last_price_rejects_no_price() -> None:
    v = view(prices={})
    expect(decide(RiskLimits(price_collar_pct=5), intent(10), v), Decision.REJECTED, 0,
           RiskReason.NO_PRICE)  # fmt: skip


# ------------------------------------------------------------------ order notional
def test_order_notional_approve_cut_reject() -> None:
    limits = RiskLimits(max_order_notional=10_000)
    expect(decide(limits, intent(50)), Decision.APPROVED, 50)  # 50 x 100 = 5,000
    # 150 x 100 = 15,000 > 10,000: cut to 10,000 / 100 = 100 shares, sign kept
    expect(decide(limits, intent(150)), Decision.MODIFIED, 100, RiskReason.MAX_ORDER_NOTIONAL)
    expect(decide(limits, intent(-150)), Decision.MODIFIED, -100, RiskReason.MAX_ORDER_NOTIONAL)
    # 1 share at 30,000 > 10,000: 10,000 / 30,000 = 0.33 share, floored to 0: rejected
    v = view(prices={"BRK": 30_000.0})
    expect(decide(limits, intent(1, symbol="BRK", price=30_000.0), v), Decision.REJECTED, 0,
           RiskReason.MAX_ORDER_NOTIONAL)  # fmt: skip


def test_a_cut_keeps_whole_shares_only_when_the_intent_was_whole() -> None:
    limits = RiskLimits(max_order_notional=10_000)
    v = view(prices={"X": 300.0})
    # 10,000 / 300 = 33.33: a whole-share intent gets 33, a fractional one 33.333...
    expect(decide(limits, intent(50, symbol="X", price=300.0), v), Decision.MODIFIED, 33,
           RiskReason.MAX_ORDER_NOTIONAL)  # fmt: skip
    frac = decide(limits, intent(50.5, symbol="X", price=300.0), v)
    assert frac.decision is Decision.MODIFIED
    assert frac.approved_qty == pytest.approx(10_000 / 300)


def test_orders_are_valued_at_the_last_price_not_the_ref_price() -> None:
    # ref_price 1 claims 150 x 1 = 150, but the market says 150 x 100 = 15,000 > 10,000
    limits = RiskLimits(max_order_notional=10_000)
    expect(decide(limits, intent(150, price=1.0)), Decision.MODIFIED, 100,
           RiskReason.MAX_ORDER_NOTIONAL)  # fmt: skip


# ------------------------------------------------------------------ position
def test_position_approve_cut_reject() -> None:
    # 10% of equity 100,000 = 10,000 = 100 shares of AAPL at 100
    limits = RiskLimits(max_position_pct=10)
    expect(decide(limits, intent(30), held(AAPL=60)), Decision.APPROVED, 30)  # 90 shares
    # 60 + 60 = 120 > 100: cut to 100 - 60 = 40
    expect(decide(limits, intent(60), held(AAPL=60)), Decision.MODIFIED, 40,
           RiskReason.MAX_POSITION)  # fmt: skip
    # already over the limit (120 > 100): no room for a buy
    expect(decide(limits, intent(10), held(AAPL=120)), Decision.REJECTED, 0,
           RiskReason.MAX_POSITION)  # fmt: skip
    expect(decide(limits, intent(-10), held(AAPL=120)), Decision.APPROVED, -10)  # reducing
    # 50 - 300 = -250 short > 100: cut to -100 - 50 = -150, ending at the limit on the short side
    expect(decide(limits, intent(-300), held(AAPL=50)), Decision.MODIFIED, -150,
           RiskReason.MAX_POSITION)  # fmt: skip


def test_position_counts_open_orders_and_needs_positive_equity() -> None:
    limits = RiskLimits(max_position_pct=10)
    # a buy of 30 approved earlier in the batch: exposure 60 + 30 = 90; a buy of 30 more
    # would reach 120: cut to 100 - 90 = 10
    first, second = RiskEngine(limits).check([intent(30), intent(30)], held(AAPL=60), T0)
    expect(first, Decision.APPROVED, 30)
    expect(second, Decision.MODIFIED, 10, RiskReason.MAX_POSITION)
    # the rule itself counts every open order it is shown
    v = held(AAPL=60)
    v.open_orders = {"s1": [OpenOrder("o1", "AAPL", 30.0)]}
    cut = check_position(intent(30), v, limits, T0)
    assert isinstance(cut, Cut) and (cut.qty, cut.reason) == (10, RiskReason.MAX_POSITION)
    broke = view(equity={"s1": 0.0})
    expect(decide(limits, intent(1), broke), Decision.REJECTED, 0, RiskReason.MAX_POSITION)


# ------------------------------------------------------------------ gross exposure
def test_gross_exposure_approve_cut_reject() -> None:
    # 50% of equity 100,000 = 50,000; MSFT 200 x 100 = 20,000 held already
    limits = RiskLimits(max_gross_exposure_pct=50)
    expect(decide(limits, intent(200), held(MSFT=200)), Decision.APPROVED, 200)  # 40,000
    # 20,000 + 400 x 100 = 60,000 > 50,000: room 30,000 -> 300 shares
    expect(decide(limits, intent(400), held(MSFT=200)), Decision.MODIFIED, 300,
           RiskReason.MAX_GROSS_EXPOSURE)  # fmt: skip
    # MSFT -500 short = 50,000 gross (absolute value): no room for AAPL
    expect(decide(limits, intent(1), held(MSFT=-500)), Decision.REJECTED, 0,
           RiskReason.MAX_GROSS_EXPOSURE)  # fmt: skip


def test_gross_exposure_with_an_unpriced_holding_rejects_no_price() -> None:
    v = view(positions={"s1": {"ZZZ": 10.0}}, prices={"AAPL": 100.0})
    expect(decide(RiskLimits(max_gross_exposure_pct=50), intent(1), v), Decision.REJECTED, 0,
           RiskReason.NO_PRICE)  # fmt: skip


# ------------------------------------------------------------------ leverage (account-wide)
def test_leverage_approve_cut_reject() -> None:
    # total equity 60,000 + 40,000 = 100,000; max 1.0x -> 100,000 gross over all strategies;
    # s2 holds MSFT 700 x 100 = 70,000
    limits = RiskLimits(max_leverage=1.0)

    def v(msft: float) -> RiskView:
        return view(positions={"s2": {"MSFT": msft}}, equity={"s1": 60_000.0, "s2": 40_000.0},
                    prices={"AAPL": 100.0, "MSFT": 100.0})  # fmt: skip

    expect(decide(limits, intent(200), v(700)), Decision.APPROVED, 200)  # 90,000
    # 70,000 + 400 x 100 = 110,000 > 100,000: room 30,000 -> 300 shares
    expect(decide(limits, intent(400), v(700)), Decision.MODIFIED, 300, RiskReason.MAX_LEVERAGE)
    expect(decide(limits, intent(1), v(1000)), Decision.REJECTED, 0, RiskReason.MAX_LEVERAGE)


# ------------------------------------------------------------------ open orders
def test_open_orders_approve_and_reject_no_cut() -> None:
    # A count limit: a smaller order is still one more order, so there is no MODIFIED case.
    limits = RiskLimits(max_open_orders=2)
    one = view(open_orders={"s1": [OpenOrder("o1", "MSFT", 5.0)]})
    two = view(open_orders={"s1": [OpenOrder("o1", "MSFT", 5.0), OpenOrder("o2", "MSFT", 5.0)]})
    expect(decide(limits, intent(1), one), Decision.APPROVED, 1)
    expect(decide(limits, intent(1), two), Decision.REJECTED, 0, RiskReason.MAX_OPEN_ORDERS)
    other = view(open_orders={"s2": two.open_orders["s1"]})  # another strategy's orders
    expect(decide(limits, intent(1), other), Decision.APPROVED, 1)


def test_open_orders_count_approvals_within_one_batch() -> None:
    engine = RiskEngine(RiskLimits(max_open_orders=2))
    out = engine.check([intent(1), intent(1, symbol="MSFT"), intent(1, symbol="X")], view(), T0)
    assert [v.decision for v in out] == [Decision.APPROVED, Decision.APPROVED, Decision.REJECTED]
    assert out[2].reasons == (RiskReason.MAX_OPEN_ORDERS,)


# ------------------------------------------------------------------ order rate
def test_order_rate_approve_and_reject_on_the_runtime_clock() -> None:
    engine = RiskEngine(RiskLimits(max_orders_per_minute=3))
    for seconds in (-70, -50, -10):  # three earlier approvals
        engine.check([intent(1)], view(), T0 + timedelta(seconds=seconds))
    # at T0 the window (T0-60s, T0] holds T0-50 and T0-10: 2 < 3, approved (third)
    expect(engine.check([intent(1)], view(), T0)[0], Decision.APPROVED, 1)
    # at T0+1s: T0-50, T0-10, T0 are 51, 11 and 1 s old: 3 >= 3, rejected
    expect(engine.check([intent(1)], view(), T0 + timedelta(seconds=1))[0], Decision.REJECTED, 0,
           RiskReason.ORDER_RATE)  # fmt: skip
    # at T0+10s, T0-50 is exactly 60 s old and out of the window: 2 left, approved
    expect(engine.check([intent(1)], view(), T0 + timedelta(seconds=10))[0],
           Decision.APPROVED, 1)  # fmt: skip


def test_rejected_orders_do_not_count_against_the_rate() -> None:
    engine = RiskEngine(RiskLimits(max_orders_per_minute=1, max_order_notional=10))
    # 1 share x 100 = 100 > 10 -> 0.1 share floored to 0: rejected, not sent, not counted
    expect(engine.check([intent(1)], view(), T0)[0], Decision.REJECTED, 0,
           RiskReason.MAX_ORDER_NOTIONAL)  # fmt: skip
    expect(engine.check([intent(0.05)], view(), T0)[0], Decision.APPROVED, 0.05)  # 5 <= 10


# ------------------------------------------------------------------ combinations
def test_cuts_accumulate_in_check_order() -> None:
    # notional 10,000 cuts 150 -> 100; then position 5% = 5,000 = 50 shares cuts 100 -> 50
    limits = RiskLimits(max_order_notional=10_000, max_position_pct=5)
    expect(decide(limits, intent(150)), Decision.MODIFIED, 50, RiskReason.MAX_ORDER_NOTIONAL,
           RiskReason.MAX_POSITION)  # fmt: skip


def test_the_first_rejection_decides_and_keeps_earlier_cuts_in_the_detail() -> None:
    limits = RiskLimits(max_order_notional=10_000, max_open_orders=1)
    v = view(open_orders={"s1": [OpenOrder("o1", "MSFT", 5.0)]})
    rej = decide(limits, intent(150), v)
    expect(rej, Decision.REJECTED, 0, RiskReason.MAX_OPEN_ORDERS)
    assert "max_order_notional" in rej.detail and "max_open_orders 1" in rej.detail


def test_state_is_checked_before_restricted_and_restricted_before_collar() -> None:
    limits = RiskLimits(restricted_symbols=["AAPL"], price_collar_pct=1)
    engine = RiskEngine(limits)
    far = intent(10, price=150.0)  # restricted AND 50% off the last price
    expect(engine.check([far], view(), T0)[0], Decision.REJECTED, 0, RiskReason.RESTRICTED_SYMBOL)
    engine.kill("global", KillMode.HALT, by="op")
    expect(engine.check([intent(10, price=150.0)], view(), T0)[0], Decision.REJECTED, 0,
           RiskReason.HALTED)  # fmt: skip


def test_a_flatten_label_can_never_add_exposure_in_any_state() -> None:
    # FLATTEN intents skip the size checks (a flatten must get out), so the state rule makes
    # them reduce-only everywhere: a host mislabelling a buy as a flatten gets nothing.
    engine = RiskEngine(RiskLimits(max_order_notional=1.0))
    v = held(AAPL=100)
    expect(engine.check([intent(10, reason=FillReason.FLATTEN)], v, T0)[0], Decision.REJECTED,
           0, RiskReason.REDUCING_ONLY)  # fmt: skip
    # -100 x 100 = 10,000 notional > 1: passes anyway, as the exact close of the position
    expect(engine.check([intent(-100, reason=FillReason.FLATTEN)], v, T0)[0],
           Decision.APPROVED, -100)  # fmt: skip
    # a flatten crossing zero is cut to the close
    expect(engine.check([intent(-130, reason=FillReason.FLATTEN)], v, T0)[0],
           Decision.MODIFIED, -100, RiskReason.REDUCING_ONLY)  # fmt: skip
