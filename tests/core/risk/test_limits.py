"""Risk limits: validation names the field and the rule; overrides; a lossless dict form."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.events import TradingState
from core.risk.limits import RiskLimits


def test_every_limit_is_off_by_default() -> None:
    limits = RiskLimits()
    dumped = limits.to_dict()
    states = {k for k in dumped if k.endswith("_state")}
    assert {k for k, v in dumped.items() if v not in (None, (), [], {})} == states
    assert all(dumped[k] == "halted" for k in states)  # breakers halt unless told otherwise


@pytest.mark.parametrize(
    ("kwargs", "field", "rule"),
    [
        ({"max_position_pct": -1}, "max_position_pct", "greater than 0"),
        ({"daily_loss_pct": 150}, "daily_loss_pct", "less than or equal to 100"),
        ({"max_open_orders": 0}, "max_open_orders", "greater than 0"),
        ({"max_leverage": 1000}, "max_leverage", "less than or equal to 100"),
        ({"restricted_symbols": ["BAD SYMBOL"]}, "restricted_symbols.0", "match pattern"),
        ({"drawdown_state": "active"}, "drawdown_state", "not 'active'"),
        ({"max_orders_per_minut": 5}, "max_orders_per_minut", "Extra inputs"),
        ({"strategies": {"s1": {"max_leverage": 2}}}, "strategies.s1.max_leverage", "Extra"),
        ({"strategies": {"s1": {"max_order_notional": 0}}},
         "strategies.s1.max_order_notional", "greater than 0"),
    ],
)
def test_a_bad_limit_is_a_validation_error_naming_field_and_rule(
    kwargs: dict, field: str, rule: str
) -> None:
    with pytest.raises(ValidationError) as err:
        RiskLimits(**kwargs)
    errors = err.value.errors()
    assert len(errors) == 1
    assert ".".join(str(p) for p in errors[0]["loc"]) == field
    assert rule in errors[0]["msg"]


def test_a_cooldown_without_its_breaker_is_refused_naming_both_fields() -> None:
    with pytest.raises(ValidationError, match="cooldown_bars is set but max_consecutive_losses"):
        RiskLimits(cooldown_bars=3)
    with pytest.raises(ValidationError, match=r"\(strategies.s1\)"):
        RiskLimits(strategies={"s1": {"cooldown_bars": 3}})
    # a global breaker covers a strategy's own cooldown
    assert RiskLimits(max_consecutive_losses=3, strategies={"s1": {"cooldown_bars": 3}})


def test_an_override_replaces_the_fields_it_sets_including_switching_one_off() -> None:
    limits = RiskLimits(max_position_pct=10, daily_loss_pct=5, restricted_symbols=["B", "A", "B"],
                        strategies={"s1": {"max_position_pct": None, "daily_loss_pct": 2,
                                           "restricted_symbols": ["C"]}})  # fmt: skip
    assert limits.restricted_symbols == ("A", "B")  # sorted, unique
    s1, s2 = limits.for_strategy("s1"), limits.for_strategy("s2")
    assert (s1.max_position_pct, s1.daily_loss_pct) == (None, 2)
    assert s1.restricted_symbols == ("A", "B", "C")  # an override adds restrictions
    assert (s2.max_position_pct, s2.daily_loss_pct, s2.restricted_symbols) == (10, 5, ("A", "B"))
    assert s1.strategies == {} and s2.strategies == {}


def test_the_dict_form_round_trips_an_explicit_none_override() -> None:
    limits = RiskLimits(max_position_pct=10, consecutive_losses_state=TradingState.REDUCING,
                        strategies={"s1": {"max_position_pct": None}})  # fmt: skip
    data = limits.to_dict()
    assert data["strategies"] == {"s1": {"max_position_pct": None}}  # only what it set
    back = RiskLimits.model_validate(data)
    assert back == limits
    assert back.for_strategy("s1").max_position_pct is None


def test_limits_are_frozen() -> None:
    with pytest.raises(ValidationError):
        RiskLimits().max_position_pct = 5  # type: ignore[misc]
