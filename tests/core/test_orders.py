"""The order lifecycle: every pair of statuses against the transition table, fills by hand."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from core.events import FillReason, OrderAccepted, OrderStatus
from core.orders import (
    ORDER_TRANSITIONS,
    TERMINAL_STATUSES,
    Order,
    OrderTransitionError,
    fill_order,
    transition,
)

S = OrderStatus
ALLOWED = {
    (S.NEW, S.PARTIALLY_FILLED),
    (S.NEW, S.FILLED),
    (S.NEW, S.CANCELED),
    (S.NEW, S.REJECTED),
    (S.PARTIALLY_FILLED, S.PARTIALLY_FILLED),
    (S.PARTIALLY_FILLED, S.FILLED),
    (S.PARTIALLY_FILLED, S.CANCELED),
}


def order(qty: float = 100.0, **kw) -> Order:
    return Order(client_order_id="rt-1", strategy_id="s1", symbol="AAA", qty=qty, bar_index=3, **kw)


def test_table_allows_exactly_the_documented_moves() -> None:
    table = {(a, b) for a, nxt in ORDER_TRANSITIONS.items() for b in nxt}
    assert table == ALLOWED
    assert {S.FILLED, S.CANCELED, S.REJECTED} == TERMINAL_STATUSES


FORBIDDEN = [pair for pair in itertools.product(S, S) if pair not in ALLOWED]


@pytest.mark.parametrize(("old", "new"), FORBIDDEN)
def test_every_forbidden_move_raises_naming_order_and_both_states(old, new) -> None:
    o = order(status=old, filled_qty=40.0 if old is S.PARTIALLY_FILLED else 0.0)
    with pytest.raises(OrderTransitionError) as err:
        transition(o, new, fill_qty=10.0 if new in (S.PARTIALLY_FILLED, S.FILLED) else 0.0)
    assert err.value.client_order_id == "rt-1"
    assert (err.value.old, err.value.new) == (old, new)
    assert f"rt-1: illegal transition {old.value} -> {new.value}" in str(err.value)


def test_partial_fills_then_the_rest_fill_the_order() -> None:
    # 100 = 30 + 30 + 40: two partials, then the remaining 40 completes it.
    o = fill_order(order(), 30.0)
    assert (o.status, o.filled_qty, o.remaining_qty, o.n_fills) == (S.PARTIALLY_FILLED, 30, 70, 1)
    assert o.next_fill_id == "rt-1:2"
    o = fill_order(o, 30.0)
    o = fill_order(o, 40.0)
    assert (o.status, o.filled_qty, o.remaining_qty, o.n_fills) == (S.FILLED, 100, 0, 3)
    assert o.is_terminal


def test_a_sell_order_fills_with_negative_quantities() -> None:
    o = fill_order(order(-50.0), -50.0)
    assert (o.status, o.filled_qty) == (S.FILLED, -50.0)


def test_fractional_remainder_fills_exactly_without_float_residue() -> None:
    # 1.1 - 0.7 = 0.40000000000000013 in floats; filling that remainder is FILLED, with
    # filled_qty set to the order's qty, not 0.7 + 0.40000000000000013.
    o = fill_order(order(1.1), 0.7)
    o = fill_order(o, o.remaining_qty)
    assert (o.status, o.filled_qty) == (S.FILLED, 1.1)


@pytest.mark.parametrize("bad", [-10.0, 0.0, 101.0, float("nan")])
def test_a_fill_of_the_wrong_sign_or_too_large_raises(bad) -> None:
    with pytest.raises(OrderTransitionError, match="rt-1"):
        fill_order(order(), bad)


def test_claiming_filled_for_a_partial_quantity_raises() -> None:
    with pytest.raises(OrderTransitionError, match="new -> filled"):
        transition(order(), S.FILLED, fill_qty=50.0)


def test_cancel_keeps_the_filled_part_and_records_why() -> None:
    o = transition(fill_order(order(), 60.0), S.CANCELED, detail="kill switch")
    assert (o.status, o.filled_qty, o.remaining_qty) == (S.CANCELED, 60.0, 0.0)
    assert o.detail == "kill switch"
    with pytest.raises(OrderTransitionError, match="canceled -> canceled"):
        transition(o, S.CANCELED)


def test_a_partly_filled_order_cannot_be_rejected() -> None:
    with pytest.raises(OrderTransitionError, match="partially_filled -> rejected"):
        transition(fill_order(order(), 10.0), S.REJECTED)


def test_order_from_an_accepted_event_is_new_with_its_fields() -> None:
    ev = OrderAccepted(
        client_order_id="rt-9", strategy_id="s2", symbol="BBB", qty=-7.0,
        reason=FillReason.FLATTEN, bar_index=12, accepted_at=datetime(2024, 1, 2, tzinfo=UTC),
    )  # fmt: skip
    o = Order.accepted(ev)
    assert (o.client_order_id, o.strategy_id, o.symbol, o.qty, o.reason, o.bar_index) == (
        "rt-9", "s2", "BBB", -7.0, FillReason.FLATTEN, 12,
    )  # fmt: skip
    assert (o.status, o.filled_qty, o.n_fills) == (S.NEW, 0.0, 0)
