"""The per-process recorder: labels checked, values recorded, snapshots plain and complete."""

from __future__ import annotations

import json

import pytest

from actors.metrics import MetricsRecorder
from core import metric_names as mn
from core.events import Decision, RiskReason


def _family(snapshot, name):
    return next(f for f in snapshot["families"] if f["name"] == name)


def test_counter_gauge_and_histogram_values_are_recorded():
    rec = MetricsRecorder("risk", mirror_to_ray=False)
    rec.inc(mn.RISK_DECISIONS, decision=Decision.REJECTED, reason=RiskReason.MAX_POSITION)
    rec.inc("raytrader_risk_decisions_total", 2, decision="rejected", reason="max_position")
    rec.set(mn.EQUITY, 101_000.5, scope="global")
    rec.observe(mn.JOURNAL_APPEND_SECONDS, 0.002)
    rec.observe(mn.JOURNAL_APPEND_SECONDS, 0.2)
    assert rec.value(mn.RISK_DECISIONS, decision="rejected", reason="max_position") == 3.0
    assert rec.value(mn.EQUITY, scope="global") == 101_000.5
    assert rec.value(mn.JOURNAL_APPEND_SECONDS) == 2.0


def test_held_recordings_wait_for_flush_on_their_thread_only(caplog):
    # A wire call holds its thread's metrics until its answer has gone: nothing is recorded
    # before flush, everything after it, in order; another thread records at once; a held
    # recording that turns out wrong is logged at flush, not raised into the caller.
    import threading

    rec = MetricsRecorder("broker", mirror_to_ray=False)
    rec.hold()
    rec.inc(mn.FILLS, strategy="s1", reason="signal")
    rec.set(mn.EQUITY, 5.0, scope="global")
    rec.set(mn.EQUITY, 7.0, scope="global")
    rec.observe(mn.JOURNAL_APPEND_SECONDS, 0.001)
    rec.inc(mn.BAD_BARS, -1, reason="not_finite")
    other = threading.Thread(target=rec.inc, args=(mn.FILLS,), kwargs={"strategy": "s2",
                                                                      "reason": "signal"})
    other.start()
    other.join()
    assert rec.value(mn.FILLS, strategy="s2", reason="signal") == 1.0
    assert rec.value(mn.FILLS, strategy="s1", reason="signal") is None
    assert rec.value(mn.EQUITY, scope="global") is None
    rec.flush()
    assert rec.value(mn.FILLS, strategy="s1", reason="signal") == 1.0
    assert rec.value(mn.EQUITY, scope="global") == 7.0  # the later set wins
    assert rec.value(mn.JOURNAL_APPEND_SECONDS) == 1.0
    assert "held recording" in caplog.text and "raytrader_bad_bars_total" in caplog.text
    rec.inc(mn.FILLS, strategy="s1", reason="signal")  # not held any more
    assert rec.value(mn.FILLS, strategy="s1", reason="signal") == 2.0


def test_wrong_kind_labels_or_negative_increments_raise():
    rec = MetricsRecorder("risk", mirror_to_ray=False)
    with pytest.raises(TypeError, match="is a gauge"):
        rec.inc(mn.EQUITY, scope="global")
    with pytest.raises(ValueError, match="takes labels"):
        rec.set(mn.EQUITY, 1.0, strategy="a")
    with pytest.raises(ValueError, match="only goes up"):
        rec.inc(mn.BAD_BARS, -1, reason="not_finite")
    with pytest.raises(KeyError, match="unknown metric"):
        rec.inc("raytrader_made_up_total")


def test_recorder_limited_to_some_metrics_refuses_the_others():
    rec = MetricsRecorder("feed", metrics=[mn.BAD_BARS], mirror_to_ray=False)
    with pytest.raises(KeyError, match="does not record"):
        rec.set(mn.EQUITY, 1.0, scope="global")


def test_snapshot_is_json_serializable_and_drops_created_samples():
    clock = iter([1000.0, 2000.0])
    rec = MetricsRecorder("broker", mirror_to_ray=False, clock=lambda: next(clock))
    rec.inc(mn.ORDERS, strategy="s1", side="buy", status="filled")
    rec.set(mn.PNL_REALIZED, 12.5, strategy="s1")
    rec.set(mn.PNL_REALIZED, 13.5, strategy="s1")
    snap = json.loads(json.dumps(rec.snapshot()))
    assert snap["source"] == "broker"
    orders = _family(snap, "raytrader_orders_total")
    assert orders["kind"] == "counter"
    assert orders["samples"] == [
        {"name": "raytrader_orders_total", "value": 1.0, "updated": None,
         "labels": {"strategy": "s1", "side": "buy", "status": "filled"}},
    ]  # fmt: skip
    pnl = _family(snap, "raytrader_pnl_realized")["samples"]
    assert pnl == [{"name": "raytrader_pnl_realized", "labels": {"strategy": "s1"},
                    "value": 13.5, "updated": 2000.0}]  # fmt: skip
    names = {s["name"] for f in snap["families"] for s in f["samples"]}
    assert not any(n.endswith("_created") for n in names)


def test_timer_observes_even_when_the_block_raises():
    rec = MetricsRecorder("journal", mirror_to_ray=False)
    with pytest.raises(RuntimeError), rec.timer(mn.JOURNAL_APPEND_SECONDS):
        raise RuntimeError("disk full")
    assert rec.value(mn.JOURNAL_APPEND_SECONDS) == 1.0
