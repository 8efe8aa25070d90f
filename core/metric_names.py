"""The metric vocabulary: every Prometheus metric raytrader exports, as plain data.

One definition per metric (name, kind, label names, help, histogram buckets, and the allowed
values of the labels that come from a StrEnum), read by the recorder the actors use
(``actors.metrics``), by the exporter (``cluster.metrics``) and by the tests that check the
alert rules and the Grafana dashboard only reference metrics that exist. Names carry the prefix
``raytrader_``; counters end in ``_total`` as they appear on ``/metrics``.

Label cardinality stays bounded: enum labels accept only their enum's values, and the free
labels hold strategy ids, scopes (``global``, ``strategy:<id>``, ``symbol:<SYM>``), actor names
or route templates -- all bounded by configuration, never by traffic. Per-symbol detail (fills,
orders) lives in the journal and the HTTP API, not in label values.

Scope-labelled account figures (``equity``, ``drawdown``, ``gross_exposure``,
``day_start_equity``) are the risk actor's view: ``scope="global"`` is the whole account and
``scope="strategy:<id>"`` one strategy's sub-account; never sum them over ``scope``.
``pnl_realized`` is additive per strategy, so the account's is ``sum(raytrader_pnl_realized)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from core.events import Decision, FillReason, OrderStatus, RiskReason, TradingState
from core.types import BadBarRule, Side

__all__ = [
    "ACTOR_RESTARTS",
    "API_REQUESTS",
    "API_REQUEST_SECONDS",
    "BAD_BARS",
    "BAR_TO_ORDER_SECONDS",
    "BREAKERS",
    "BREAKER_TRIPS",
    "DAY_START_EQUITY",
    "DRAWDOWN",
    "EQUITY",
    "FILLS",
    "GROSS_EXPOSURE",
    "HTTP_METHODS",
    "JOURNAL_APPEND_SECONDS",
    "LAST_BAR_TIMESTAMP",
    "METRICS",
    "METRICS_SOURCE_UP",
    "NO_REASON",
    "ORDERS",
    "PNL_REALIZED",
    "PREFIX",
    "RISK_DECISIONS",
    "TRADING_STATE",
    "TRADING_STATE_VALUE",
    "MetricKind",
    "MetricSpec",
    "exported_sample_names",
    "get_spec",
]

PREFIX = "raytrader_"
NO_REASON = "none"  # the ``reason`` label of an approved risk decision
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other")

_NAME_RE = re.compile(r"^raytrader_[a-z][a-z0-9_]*$")
_LABEL_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_RESERVED_LABELS = frozenset({"le", "quantile"})


class MetricKind(StrEnum):
    """The Prometheus metric types raytrader uses."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric: its exported name, type, labels, help and (histograms) bucket bounds.

    Attributes:
        name: The full exported name (``raytrader_...``; counters end in ``_total``).
        kind: Counter, gauge or histogram.
        help: The ``# HELP`` text, with units and how to read it.
        labels: Label names, in order.
        buckets: Upper bounds of a histogram's buckets (``+Inf`` is implicit), ascending.
        values: Allowed values per label for the labels drawn from a vocabulary; a label
            missing here is free-form (strategy id, scope, actor name, route template).
    """

    name: str
    kind: MetricKind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    values: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"metric name {self.name!r} must match {_NAME_RE.pattern}")
        if (self.kind is MetricKind.COUNTER) != self.name.endswith("_total"):
            raise ValueError(f"{self.name}: counters, and only counters, end in _total")
        for label in self.labels:
            if not _LABEL_RE.match(label) or label in _RESERVED_LABELS:
                raise ValueError(f"{self.name}: bad or reserved label name {label!r}")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"{self.name}: duplicate label names")
        if unknown := set(self.values) - set(self.labels):
            raise ValueError(f"{self.name}: allowed values for unknown labels {sorted(unknown)}")
        if self.kind is MetricKind.HISTOGRAM:
            b = self.buckets
            if not b or any(x <= 0 for x in b) or list(b) != sorted(set(b)):
                raise ValueError(f"{self.name}: buckets must be positive and strictly ascending")
        elif self.buckets:
            raise ValueError(f"{self.name}: only histograms have buckets")
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    @property
    def base_name(self) -> str:
        """The name without the counter suffix ``_total`` (what prometheus_client calls it)."""
        return self.name.removesuffix("_total") if self.kind is MetricKind.COUNTER else self.name

    def sample_names(self) -> tuple[str, ...]:
        """The sample names this metric puts on ``/metrics``."""
        if self.kind is MetricKind.HISTOGRAM:
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)

    def check_labels(self, labels: Mapping[str, object]) -> dict[str, str]:
        """Validate a label set: exactly the declared names, enum labels within their values.

        Args:
            labels: Label name to value (StrEnum members are taken by value).

        Returns:
            The labels as plain strings.

        Raises:
            ValueError: A label is missing, unknown, empty, or outside its vocabulary.
        """
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes labels {list(self.labels)}, got {sorted(labels)}")
        out: dict[str, str] = {}
        for key in self.labels:
            value = str(labels[key])
            allowed = self.values.get(key)
            if allowed is not None and value not in allowed:
                raise ValueError(f"{self.name}: {key}={value!r} is not one of {sorted(allowed)}")
            if not value:
                raise ValueError(f"{self.name}: label {key} is empty")
            out[key] = value
        return out


def _vals(*enums: Iterable[StrEnum] | Iterable[str]) -> frozenset[str]:
    return frozenset(str(v) for e in enums for v in e)


_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_FAST = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

# Breakers that switch a scope's state by themselves (a subset of RiskReason).
BREAKERS = (
    RiskReason.DAILY_LOSS, RiskReason.DRAWDOWN, RiskReason.CONSECUTIVE_LOSSES,
    RiskReason.STALE_DATA,
)  # fmt: skip

# The numeric encoding of ``trading_state``: the larger, the more restricted.
TRADING_STATE_VALUE: Mapping[TradingState, int] = MappingProxyType(
    {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}
)

ORDERS = MetricSpec(
    "raytrader_orders_total", MetricKind.COUNTER,
    "Orders by strategy, side and broker status, counted once per status an order reaches "
    "(new = accepted by the broker; filled, partially_filled, canceled, rejected).",
    ("strategy", "side", "status"),
    values={"side": _vals([Side.BUY, Side.SELL]), "status": _vals(OrderStatus)},
)  # fmt: skip
FILLS = MetricSpec(
    "raytrader_fills_total", MetricKind.COUNTER,
    "Fills by strategy and why they happened (signal, stop_loss, take_profit, flatten).",
    ("strategy", "reason"),
    values={"reason": _vals(FillReason)},
)  # fmt: skip
RISK_DECISIONS = MetricSpec(
    "raytrader_risk_decisions_total", MetricKind.COUNTER,
    "Risk verdicts, one per order intent: decision and its first reason ('none' if approved).",
    ("decision", "reason"),
    values={"decision": _vals(Decision), "reason": _vals(RiskReason, [NO_REASON])},
)  # fmt: skip
BREAKER_TRIPS = MetricSpec(
    "raytrader_breaker_trips_total", MetricKind.COUNTER,
    "Circuit breakers that switched a scope to reducing or halted by themselves.",
    ("breaker",),
    values={"breaker": _vals(BREAKERS)},
)  # fmt: skip
TRADING_STATE = MetricSpec(
    "raytrader_trading_state", MetricKind.GAUGE,
    "Trading state per scope (global, strategy:<id>, symbol:<SYM>): "
    "0 active, 1 reducing (only exposure-reducing orders), 2 halted.",
    ("scope",),
)  # fmt: skip
EQUITY = MetricSpec(
    "raytrader_equity", MetricKind.GAUGE,
    "Equity marked at the last close, in account currency; scope global (the account) or "
    "strategy:<id> (its sub-account). Do not sum over scope.",
    ("scope",),
)  # fmt: skip
DAY_START_EQUITY = MetricSpec(
    "raytrader_day_start_equity", MetricKind.GAUGE,
    "Equity at the start of the current UTC trading day (the daily-loss breaker's reference).",
    ("scope",),
)  # fmt: skip
DRAWDOWN = MetricSpec(
    "raytrader_drawdown", MetricKind.GAUGE,
    "Drawdown from the equity peak as a fraction (0.1 = 10% below the peak).",
    ("scope",),
)  # fmt: skip
GROSS_EXPOSURE = MetricSpec(
    "raytrader_gross_exposure", MetricKind.GAUGE,
    "Sum of |position| x last price, in account currency, per scope.",
    ("scope",),
)  # fmt: skip
PNL_REALIZED = MetricSpec(
    "raytrader_pnl_realized", MetricKind.GAUGE,
    "Realized P&L of a strategy since its start, after commissions, in account currency "
    "(additive: the account's is the sum over strategies).",
    ("strategy",),
)  # fmt: skip
BAR_TO_ORDER_SECONDS = MetricSpec(
    "raytrader_bar_to_order_seconds", MetricKind.HISTOGRAM,
    "Seconds from the feed handing a bar to the strategies to risk's answer for its orders "
    "(approved orders accepted at the broker), per strategy with an order that bar.",
    ("strategy",), _LATENCY,
)  # fmt: skip
BAD_BARS = MetricSpec(
    "raytrader_bad_bars_total", MetricKind.COUNTER,
    "Bars quarantined by live validation, by the rule they broke.",
    ("reason",),
    values={"reason": _vals(BadBarRule)},
)  # fmt: skip
LAST_BAR_TIMESTAMP = MetricSpec(
    "raytrader_last_bar_timestamp_seconds", MetricKind.GAUGE,
    "Wall-clock Unix time at which the feed last delivered a bar (stale-data alerts).",
)  # fmt: skip
ACTOR_RESTARTS = MetricSpec(
    "raytrader_actor_restarts_total", MetricKind.COUNTER,
    "Restarts of a live actor (feed, risk, broker, journal, strategy:<id>), counted by the "
    "restarted process at start-up.",
    ("actor",),
)  # fmt: skip
JOURNAL_APPEND_SECONDS = MetricSpec(
    "raytrader_journal_append_seconds", MetricKind.HISTOGRAM,
    "Seconds one durable journal append (one transaction) takes, in any actor.",
    (), _FAST,
)  # fmt: skip
API_REQUESTS = MetricSpec(
    "raytrader_api_requests_total", MetricKind.COUNTER,
    "Control API requests by route template, method and HTTP status code.",
    ("route", "method", "code"),
    values={"method": frozenset(HTTP_METHODS)},
)  # fmt: skip
API_REQUEST_SECONDS = MetricSpec(
    "raytrader_api_request_seconds", MetricKind.HISTOGRAM,
    "Control API request latency in seconds by route template and method.",
    ("route", "method"), _LATENCY,
    values={"method": frozenset(HTTP_METHODS)},
)  # fmt: skip
METRICS_SOURCE_UP = MetricSpec(
    "raytrader_metrics_source_up", MetricKind.GAUGE,
    "1 if the exporter got this source's metrics on the last scrape, 0 if it did not answer.",
    ("source",),
)  # fmt: skip

METRICS: tuple[MetricSpec, ...] = (
    ORDERS, FILLS, RISK_DECISIONS, BREAKER_TRIPS, TRADING_STATE, EQUITY, DAY_START_EQUITY,
    DRAWDOWN, GROSS_EXPOSURE, PNL_REALIZED, BAR_TO_ORDER_SECONDS, BAD_BARS, LAST_BAR_TIMESTAMP,
    ACTOR_RESTARTS, JOURNAL_APPEND_SECONDS, API_REQUESTS, API_REQUEST_SECONDS,
    METRICS_SOURCE_UP,
)  # fmt: skip

_BY_NAME: Mapping[str, MetricSpec] = MappingProxyType({m.name: m for m in METRICS})


def get_spec(metric: MetricSpec | str) -> MetricSpec:
    """The definition of a metric, given it or its full exported name.

    Raises:
        KeyError: No metric of that name is defined.
    """
    if isinstance(metric, MetricSpec):
        return metric
    try:
        return _BY_NAME[metric]
    except KeyError:
        raise KeyError(f"unknown metric {metric!r}; defined in core.metric_names") from None


def exported_sample_names() -> frozenset[str]:
    """Every sample name that can appear on ``/metrics`` (histogram series included)."""
    return frozenset(n for m in METRICS for n in m.sample_names())
