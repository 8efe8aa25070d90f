"""The alert rules and the Grafana dashboard reference only metrics and labels we export.

Every PromQL expression is parsed with promql-parser (the Python binding of the Rust
``promql-parser`` crate, a full PromQL grammar); each vector selector's metric name must be a
sample name of ``core.metric_names`` (counters as ``_total``, histograms as ``_bucket``,
``_sum``, ``_count``, as prometheus_client exposes them), its matcher labels must be labels of
that metric, and equality matchers on enum labels must use values of the enum. Grafana
variables are substituted first (``$__rate_interval`` -> ``5m``, ``$scope`` -> ``.*``).

The shared k8s schemas have no PrometheusRule schema, so the rule file's shape is checked here
(kind, metadata, groups, each rule's fields and durations) rather than against a CRD schema.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from core.metric_names import METRICS, MetricKind, MetricSpec

MONITORING = Path(__file__).resolve().parents[2] / "k8s" / "monitoring"
RULES = MONITORING / "alert-rules.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"

_BY_SAMPLE: dict[str, MetricSpec] = {n: m for m in METRICS for n in m.sample_names()}
_GRAFANA_INTERVAL = re.compile(
    r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}"
)
_GRAFANA_VAR = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")
_LITERAL_ALTERNATION = re.compile(r"^[A-Za-z0-9_]+(\|[A-Za-z0-9_]+)*$")


def _selectors(expr: str) -> list[tuple[str | None, list[tuple[str, str]]]]:
    """(metric name, [(label, value)]) of every vector selector in a PromQL expression."""
    found: list[tuple[str | None, list[tuple[str, str]]]] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = [(m.name, m.value) for m in node.matchers.matchers]
            name = node.name or next((v for k, v in matchers if k == "__name__"), None)
            found.append((name, [m for m in matchers if m[0] != "__name__"]))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def problems(expr: str) -> list[str]:
    """What in ``expr`` does not match the metrics we export (empty: all good)."""
    out = []
    selectors = _selectors(expr)
    if not selectors:
        out.append("no metric selector at all")
    for name, matchers in selectors:
        spec = _BY_SAMPLE.get(name or "")
        if spec is None:
            out.append(f"{name!r} is not a metric raytrader exports")
            continue
        allowed = set(spec.labels) | ({"le"} if name.endswith("_bucket") else set())
        for label, value in matchers:
            if label not in allowed:
                out.append(f"{name} has no label {label!r}")
                continue
            vocabulary = spec.values.get(label)
            if vocabulary is None or not _LITERAL_ALTERNATION.match(value):
                continue
            # Any operator: a misspelt value in a != matcher is as wrong as in an = one.
            unknown = [v for v in value.split("|") if v not in vocabulary]
            if unknown:
                out.append(f"{name}{{{label}}} has no value {unknown}")
    return out


def _grafana_promql(expr: str) -> str:
    return _GRAFANA_VAR.sub(".*", _GRAFANA_INTERVAL.sub("5m", expr))


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["spec"]["groups"] for rule in group["rules"]]


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(_panels(panel.get("panels", [])))
    return out


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


# ------------------------------------------------------------------ the checker itself
@pytest.mark.parametrize(
    ("expr", "needle"),
    [
        ("rate(raytrader_nope_total[5m])", "'raytrader_nope_total' is not a metric"),
        ("raytrader_orders", "'raytrader_orders' is not a metric"),  # counter without _total
        ("raytrader_equity_bucket", "is not a metric"),
        ('raytrader_equity{strategy="a"}', "has no label 'strategy'"),
        ('raytrader_orders_total{status="rejectd"}', "has no value ['rejectd']"),
        ('raytrader_risk_decisions_total{reason=~"halted|panic"}', "has no value ['panic']"),
        ('raytrader_fills_total{reason!="stop"}', "has no value ['stop']"),
        ("up == 0", "'up' is not a metric"),
        ("vector(1)", "no metric selector"),
    ],
)
def test_the_checker_catches_unknown_metrics_labels_and_values(expr, needle):
    assert any(needle in p for p in problems(expr)), problems(expr)


def test_the_checker_accepts_histogram_series_and_label_matchers():
    expr = (
        "histogram_quantile(0.99, sum by (le) (rate(raytrader_bar_to_order_seconds_bucket"
        '{strategy=~".*", le="0.5"}[5m]))) / on() group_left '
        '{__name__="raytrader_orders_total", status=~"new|rejected"}'
    )
    assert problems(expr) == []


# ------------------------------------------------------------------ alert rules
def test_rule_file_is_a_well_formed_prometheus_rule():
    doc = yaml.safe_load(RULES.read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", doc["metadata"]["name"])
    assert all(isinstance(v, str) for v in doc["metadata"]["labels"].values())
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"} and set(doc["spec"]) == {"groups"}
    groups = [g["name"] for g in doc["spec"]["groups"]]
    assert len(groups) == len(set(groups))
    names = [r["alert"] for r in _rules()]
    assert len(names) == len(set(names))
    for rule in _rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        if "for" in rule:
            promql_parser.parse_duration(rule["for"])


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r["alert"])
def test_every_alert_expression_uses_only_exported_metrics(rule):
    assert problems(rule["expr"]) == []


def test_the_required_alerts_exist():
    names = {r["alert"] for r in _rules()}
    assert {
        "RaytraderCircuitBreakerTripped", "RaytraderDailyLossWarning", "RaytraderDailyLossCritical",
        "RaytraderDrawdownWarning", "RaytraderBadBars", "RaytraderNoBars",
        "RaytraderActorRestarted", "RaytraderBrokerRejectRate", "RaytraderRiskRejectRate",
        "RaytraderApiErrors",
    } <= names  # fmt: skip


# ------------------------------------------------------------------ dashboard
def _targets() -> list[tuple[str, str]]:
    return [
        (f"{p['title']}/{t['refId']}", t["expr"])
        for p in _panels(_dashboard()["panels"])
        for t in p.get("targets", [])
    ]


@pytest.mark.parametrize(("where", "expr"), _targets(), ids=[w for w, _ in _targets()])
def test_every_dashboard_query_uses_only_exported_metrics(where, expr):
    assert problems(_grafana_promql(expr)) == []


def test_dashboard_variables_query_exported_metrics_and_labels():
    for var in _dashboard()["templating"]["list"]:
        if var["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", var["query"]["query"])
        assert match, var["name"]
        spec = _BY_SAMPLE[match[1]]
        assert match[2] in spec.labels


def test_dashboard_has_the_required_panels_with_unique_ids_and_one_datasource():
    dash = _dashboard()
    panels = _panels(dash["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    titles = {p["title"] for p in panels}
    assert {
        "Equity", "Realized P&L", "P&L today", "Drawdown from peak", "Gross exposure",
        "Orders by status", "Fills by reason", "Risk decisions by reason",
        "Bar to order latency", "Actor restarts",
    } <= titles  # fmt: skip
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]


def test_every_exported_metric_is_watched_somewhere():
    text = RULES.read_text() + DASHBOARD.read_text()
    unwatched = [m.name for m in METRICS if m.name not in text]
    assert unwatched == []
    assert all(m.kind in MetricKind for m in METRICS)
