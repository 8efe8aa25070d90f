"""Merging per-process snapshots into one exposition, in-process and across real Ray actors."""

from __future__ import annotations

import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors.metrics import SNAPSHOT_METHOD, MetricsRecorder
from cluster.metrics import actor_source, merge_snapshots, recorder_source, render, start_exporter
from core import metric_names as mn


def _parse(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of an exposition as {(name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def _two_recorders() -> tuple[MetricsRecorder, MetricsRecorder]:
    clock_a, clock_b = iter([10.0, 11.0, 12.0]), iter([20.0])
    a = MetricsRecorder("strategy:a", mirror_to_ray=False, clock=lambda: next(clock_a))
    b = MetricsRecorder("risk", mirror_to_ray=False, clock=lambda: next(clock_b))
    a.inc(mn.ORDERS, strategy="a", side="buy", status="new")
    a.inc(mn.ORDERS, strategy="a", side="buy", status="new")
    b.inc(mn.ORDERS, strategy="a", side="buy", status="new")
    b.inc(mn.ORDERS, strategy="b", side="sell", status="rejected")
    a.observe(mn.JOURNAL_APPEND_SECONDS, 0.0003)
    b.observe(mn.JOURNAL_APPEND_SECONDS, 0.03)
    b.observe(mn.JOURNAL_APPEND_SECONDS, 5.0)
    a.set(mn.EQUITY, 1.0, scope="global")  # t=10
    b.set(mn.EQUITY, 3.0, scope="global")  # t=20: the newest wins
    a.set(mn.EQUITY, 2.0, scope="global")  # t=11
    a.set(mn.PNL_REALIZED, 7.5, strategy="a")
    return a, b


def test_merged_exposition_sums_counters_and_histograms_and_keeps_newest_gauge():
    a, b = _two_recorders()
    samples = _parse(render([recorder_source(a, b)]).decode())
    orders = "raytrader_orders_total"
    assert samples[(orders, (("side", "buy"), ("status", "new"), ("strategy", "a")))] == 3.0
    assert samples[(orders, (("side", "sell"), ("status", "rejected"), ("strategy", "b")))] == 1.0
    assert samples[("raytrader_equity", (("scope", "global"),))] == 3.0
    assert samples[("raytrader_pnl_realized", (("strategy", "a"),))] == 7.5
    h = "raytrader_journal_append_seconds"
    assert samples[(f"{h}_count", ())] == 3.0
    assert samples[(f"{h}_sum", ())] == pytest.approx(5.0303)
    assert samples[(f"{h}_bucket", (("le", "0.0005"),))] == 1.0
    assert samples[(f"{h}_bucket", (("le", "0.05"),))] == 2.0
    assert samples[(f"{h}_bucket", (("le", "+Inf"),))] == 3.0
    up = "raytrader_metrics_source_up"
    assert samples[(up, (("source", "risk"),))] == 1.0
    assert samples[(up, (("source", "strategy:a"),))] == 1.0


def test_exposition_types_and_help_come_from_the_definitions():
    a, _ = _two_recorders()
    families = {f.name: f for f in text_string_to_metric_families(render([recorder_source(a)])
                                                                 .decode())}  # fmt: skip
    assert families["raytrader_orders"].type == "counter"
    assert families["raytrader_journal_append_seconds"].type == "histogram"
    assert families["raytrader_equity"].documentation == mn.EQUITY.help


def test_a_silent_or_broken_source_is_reported_down_and_the_rest_still_served():
    a, _ = _two_recorders()

    def broken():
        raise ConnectionError("gone")

    text = render([recorder_source(a), lambda: {"risk": None}, broken]).decode()
    samples = _parse(text)
    assert samples[("raytrader_metrics_source_up", (("source", "risk"),))] == 0.0
    assert samples[("raytrader_pnl_realized", (("strategy", "a"),))] == 7.5


def test_a_family_with_conflicting_types_keeps_the_first():
    a, _ = _two_recorders()
    odd = {"source": "x", "families": [{"name": "raytrader_equity", "kind": "counter",
                                        "help": "h", "samples": []}]}  # fmt: skip
    (equity,) = [m for m in merge_snapshots([a.snapshot(), odd]) if m.name == "raytrader_equity"]
    assert equity.type == "gauge"


def test_standalone_exporter_serves_the_merged_metrics_on_loopback():
    a, b = _two_recorders()
    exporter = start_exporter(0, [recorder_source(a, b)])
    try:
        url = f"http://127.0.0.1:{exporter.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
    finally:
        exporter.server.shutdown()
        exporter.server.server_close()
    samples = _parse(text)
    assert samples[("raytrader_equity", (("scope", "global"),))] == 3.0
    assert not any(name.startswith("process_") for name, _ in samples)  # own registry only


@pytest.mark.timeout(120)
def test_snapshots_of_two_ray_actors_are_merged(ray_session):
    ray = ray_session

    @ray.remote(num_cpus=0)
    class Recording:
        def __init__(self, name: str, rejects: int, equity: float) -> None:
            self.rec = MetricsRecorder(name)
            for _ in range(rejects):
                self.rec.inc(mn.RISK_DECISIONS, decision="rejected", reason="max_position")
            self.rec.inc(mn.FILLS, strategy=name, reason="signal")
            self.rec.set(mn.EQUITY, equity, scope=name)
            self.rec.observe(mn.BAR_TO_ORDER_SECONDS, 0.004, strategy=name)

        def mirrors(self) -> bool:
            return self.rec.mirrors_to_ray

        def metrics_snapshot(self):
            return self.rec.snapshot()

    assert SNAPSHOT_METHOD == "metrics_snapshot"
    tag = uuid.uuid4().hex[:8]
    names = [f"strategy:m{tag}a", f"strategy:m{tag}b"]
    actors = [
        Recording.options(name=names[0], namespace="raytrader").remote(names[0], 2, 100.0),
        Recording.options(name=names[1], namespace="raytrader").remote(names[1], 3, 250.0),
    ]
    try:
        assert ray.get([h.mirrors.remote() for h in actors]) == [True, True]
        explicit = actor_source(names, timeout_s=60)()
        assert set(explicit) == set(names) and all(explicit.values())
        discovered = actor_source(timeout_s=60)()
        assert set(names) <= set(discovered)

        samples = _parse(render([actor_source(names, timeout_s=60)]).decode())
        rejected = (("decision", "rejected"), ("reason", "max_position"))
        assert samples[("raytrader_risk_decisions_total", rejected)] == 5.0
        for name, equity in zip(names, (100.0, 250.0), strict=True):
            assert samples[("raytrader_equity", (("scope", name),))] == equity
            fills = (("reason", "signal"), ("strategy", name))
            assert samples[("raytrader_fills_total", fills)] == 1.0
            latency = "raytrader_bar_to_order_seconds_bucket"
            assert samples[(latency, (("le", "0.005"), ("strategy", name)))] == 1.0
            assert samples[("raytrader_metrics_source_up", (("source", name),))] == 1.0
    finally:
        for handle in actors:
            ray.kill(handle)


@pytest.mark.timeout(120)
def test_an_unknown_actor_name_is_reported_down(ray_session):
    answers = actor_source([f"strategy:missing-{uuid.uuid4().hex[:8]}"], timeout_s=5)()
    assert list(answers.values()) == [None]
