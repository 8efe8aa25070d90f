"""The metric vocabulary: names, kinds, labels and vocabularies agree with DESIGN.md and events."""

from __future__ import annotations

import pytest

from core import metric_names as mn
from core.events import Decision, RiskReason, TradingState

DESIGN_NAMES = {
    "raytrader_orders_total", "raytrader_fills_total", "raytrader_risk_decisions_total",
    "raytrader_trading_state", "raytrader_equity", "raytrader_drawdown",
    "raytrader_gross_exposure", "raytrader_pnl_realized", "raytrader_bar_to_order_seconds",
    "raytrader_bad_bars_total", "raytrader_actor_restarts_total",
    "raytrader_journal_append_seconds", "raytrader_api_requests_total",
    "raytrader_api_request_seconds",
}  # fmt: skip


def test_every_design_metric_is_defined_once():
    names = [m.name for m in mn.METRICS]
    assert len(names) == len(set(names))
    assert set(names) >= DESIGN_NAMES


def test_design_label_sets_are_the_documented_ones():
    assert mn.ORDERS.labels == ("strategy", "side", "status")
    assert mn.RISK_DECISIONS.labels == ("decision", "reason")
    assert mn.TRADING_STATE.labels == ("scope",)
    assert mn.BAD_BARS.labels == ("reason",)
    assert mn.ACTOR_RESTARTS.labels == ("actor",)
    assert mn.API_REQUESTS.labels == ("route", "method", "code")


def test_latency_metrics_are_histograms_and_the_rest_are_not():
    hist = {m.name for m in mn.METRICS if m.kind is mn.MetricKind.HISTOGRAM}
    assert hist == {
        "raytrader_bar_to_order_seconds", "raytrader_journal_append_seconds",
        "raytrader_api_request_seconds",
    }  # fmt: skip


def test_risk_decision_labels_come_from_the_event_enums():
    allowed = mn.RISK_DECISIONS.values
    assert allowed["decision"] == {d.value for d in Decision}
    assert allowed["reason"] == {r.value for r in RiskReason} | {mn.NO_REASON}


def test_trading_state_help_states_the_encoding():
    assert mn.TRADING_STATE_VALUE == {
        TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2
    }  # fmt: skip
    assert "0 active, 1 reducing" in mn.TRADING_STATE.help and "2 halted" in mn.TRADING_STATE.help


def test_check_labels_accepts_enum_members_and_returns_strings():
    out = mn.RISK_DECISIONS.check_labels(
        {"decision": Decision.REJECTED, "reason": RiskReason.MAX_POSITION}
    )
    assert out == {"decision": "rejected", "reason": "max_position"}


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"decision": "approved"}, "takes labels"),
        ({"decision": "approved", "reason": "none", "x": "1"}, "takes labels"),
        ({"decision": "maybe", "reason": "none"}, "decision='maybe' is not one of"),
        ({"decision": "rejected", "reason": "because"}, "reason='because' is not one of"),
    ],
)
def test_check_labels_rejects_wrong_names_and_values_outside_the_vocabulary(labels, message):
    with pytest.raises(ValueError, match=message):
        mn.RISK_DECISIONS.check_labels(labels)


def test_free_labels_reject_empty_values():
    with pytest.raises(ValueError, match="empty"):
        mn.EQUITY.check_labels({"scope": ""})


def test_bad_definitions_are_refused():
    with pytest.raises(ValueError, match="end in _total"):
        mn.MetricSpec("raytrader_x", mn.MetricKind.COUNTER, "h")
    with pytest.raises(ValueError, match="end in _total"):
        mn.MetricSpec("raytrader_x_total", mn.MetricKind.GAUGE, "h")
    with pytest.raises(ValueError, match="must match"):
        mn.MetricSpec("orders_total", mn.MetricKind.COUNTER, "h")
    with pytest.raises(ValueError, match="reserved"):
        mn.MetricSpec("raytrader_x_seconds", mn.MetricKind.HISTOGRAM, "h", ("le",), (1.0,))
    with pytest.raises(ValueError, match="ascending"):
        mn.MetricSpec("raytrader_x_seconds", mn.MetricKind.HISTOGRAM, "h", (), (2.0, 1.0))


def test_sample_names_follow_prometheus_client_suffixes():
    assert mn.ORDERS.sample_names() == ("raytrader_orders_total",)
    assert mn.ORDERS.base_name == "raytrader_orders"
    assert mn.JOURNAL_APPEND_SECONDS.sample_names() == (
        "raytrader_journal_append_seconds_bucket", "raytrader_journal_append_seconds_sum",
        "raytrader_journal_append_seconds_count",
    )  # fmt: skip
    assert "raytrader_equity" in mn.exported_sample_names()


def test_get_spec_finds_by_name_and_names_the_module_when_unknown():
    assert mn.get_spec("raytrader_equity") is mn.EQUITY
    with pytest.raises(KeyError, match=r"core\.metric_names"):
        mn.get_spec("raytrader_nope")
