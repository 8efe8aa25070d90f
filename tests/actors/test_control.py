"""Operator controls on a live topology: the kill switch, strategy pause/resume/stop, and the
broker's refusal of any order risk did not approve.

Expected outcomes follow docs/live.md ("Kill switch", "Failure handling"): a kill is
journaled and in force before the call returns, so every verdict journaled after it is a
rejection (or a flatten order); an order without a journaled approval never reaches the
paper engine.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from actors.common import unpack
from core.events import (
    BrokerRejectReason,
    Decision,
    EventKind,
    FillReason,
    OrderIntent,
    RiskReason,
    StrategyState,
)
from core.journal import Journal
from core.lifecycle import StrategyStateError
from tests.kit.live import DATA, config, wait_for_bar, wait_quiet

FILES = [DATA / "ORCL.csv", DATA / "NVDA.csv"]
WINDOW = {"start": "2002-01-01", "end": "2002-12-31"}
FLIP = {"id": "flip", "strategy": "tests.kit.live:Flipper", "params": {"period": 2},
        "symbols": ["ORCL", "NVDA"], "sim": {"size_pct": 0.45}}  # fmt: skip
HOLD = {**FLIP, "id": "hold", "params": {"period": 1000}}  # long from the first bar on
HOLD_CLOSE = {**HOLD, "id": "hold-close", "sim": {"fill": "close", "size_pct": 0.45}}


@pytest.mark.timeout(180)
def test_a_kill_with_flatten_is_in_force_before_it_returns(live, tmp_path) -> None:
    from actors.runtime import start

    cfg = config([FLIP, HOLD, HOLD_CLOSE], FILES, tmp_path / "journal.sqlite", data=WINDOW)
    topo = start(cfg)
    topo.feed.start.remote()
    wait_for_bar(topo, 60)
    out = live.get(topo.risk.kill.remote("global", "halt", True, "test-operator"))
    assert out["state"] == "halted" and out["by"] == "test-operator"
    assert len(out["flatten_orders"]) >= 4  # hold and hold-close are long ORCL and NVDA
    status = topo.run()
    assert status["state"] == "done"
    positions = live.get(topo.broker.positions.remote())
    assert positions == {"flip": {}, "hold": {}, "hold-close": {}}  # flat, nothing bought since
    with Journal(topo.journal_path, readonly=True) as journal:
        kill = journal.last(EventKind.KILL_SWITCH_ENGAGED)
        assert kill is not None and kill.event.by == "test-operator"  # type: ignore[attr-defined]
        after = [e.event for e in journal.read([EventKind.RISK_DECISION], since_seq=kill.seq)]
        flattens = [v for v in after if v.client_order_id in out["flatten_orders"]]
        signals = [v for v in after if v.client_order_id not in out["flatten_orders"]]
        assert flattens and all(v.decision is Decision.APPROVED for v in flattens)
        assert signals and all(v.decision is Decision.REJECTED for v in signals)
        assert {v.reasons for v in signals} == {(RiskReason.HALTED,)}
        fills = [e.event for e in journal.read([EventKind.ORDER_FILLED], since_seq=kill.seq)]
        assert fills and {f.reason for f in fills} == {FillReason.FLATTEN}
    assert live.get(topo.risk.state.remote())["global_state"] == "halted"
    for sid in ("flip", "hold", "hold-close"):  # flatten fills reached the hosts, in order
        host_trades = live.get(topo.host(sid).trades.remote())
        assert host_trades == live.get(topo.broker.trades.remote(sid))
        assert host_trades[-1]["exit_reason"] == "flatten" or sid == "flip"


@pytest.mark.timeout(120)
def test_the_broker_refuses_an_order_risk_never_approved(live, tmp_path) -> None:
    from actors.runtime import start

    cfg = config([FLIP], FILES, tmp_path / "journal.sqlite", data=WINDOW)
    topo = start(cfg)
    topo.feed.start.remote()
    wait_for_bar(topo, 5)
    live.get(topo.feed.pause.remote())
    before = wait_quiet(topo)  # the bar in flight still fills after pause returns
    rogue = OrderIntent(
        client_order_id="rogue-1", strategy_id="flip", symbol="ORCL", qty=1_000.0, bar_index=0,
        bar_ts=datetime(2002, 1, 2, tzinfo=UTC), ref_price=10.0,
    )  # fmt: skip
    result = unpack(live.get(topo.broker.submit.remote([rogue])))
    [refusal] = result["events"]
    assert refusal.reason is BrokerRejectReason.NOT_APPROVED and result["fills"] == []
    assert live.get(topo.broker.positions.remote()) == before
    with Journal(topo.journal_path, readonly=True) as journal:
        rows = [e.event for e in journal.read(client_order_id="rogue-1")]
        assert [type(r).__name__ for r in rows] == ["OrderRejected"]
    live.get(topo.feed.resume.remote())
    assert topo.run()["state"] == "done"


@pytest.mark.timeout(120)
def test_pause_resume_and_stop_are_journaled_and_a_stopped_strategy_stays_stopped(
    live, tmp_path
) -> None:
    from actors.runtime import start

    cfg = config([FLIP], FILES, tmp_path / "journal.sqlite", data=WINDOW)
    topo = start(cfg)
    host = topo.host("flip")
    live.get(topo.feed.start.remote())
    wait_for_bar(topo, 20)
    assert live.get(host.pause.remote("ops"))["state"] == "paused"
    at_pause = wait_for_bar(topo, 20)["next_bar"]
    wait_for_bar(topo, at_pause + 20)
    assert live.get(host.resume.remote("ops"))["state"] == "running"
    wait_for_bar(topo, at_pause + 40)
    assert live.get(host.stop.remote("ops"))["old"] == "running"
    with pytest.raises(StrategyStateError, match="from stopped to running"):
        live.get(host.resume.remote("ops"))  # Ray re-raises it as the domain error
    assert topo.run()["state"] == "done"
    status = live.get(host.status.remote())
    assert status["state"] == "stopped" and status["counts"]["discarded_paused"] > 0
    with Journal(topo.journal_path, readonly=True) as journal:
        changes = [e.event for e in journal.read([EventKind.STRATEGY_STATE_CHANGED])]
        assert [(c.new, c.by) for c in changes] == [  # type: ignore[attr-defined]
            (StrategyState.RUNNING, "system"), (StrategyState.PAUSED, "ops"),
            (StrategyState.RUNNING, "ops"), (StrategyState.STOPPED, "ops"),
        ]  # fmt: skip
        stopped_at = journal.last(EventKind.STRATEGY_STATE_CHANGED).seq  # type: ignore[union-attr]
        # an intent answered just before the stop may reach risk after it: refused (risk reads
        # the states and journals its verdicts in one transaction, so this holds exactly)
        late = [e.event for e in journal.read([EventKind.RISK_DECISION], since_seq=stopped_at)]
        assert all(v.reasons == (RiskReason.STRATEGY_NOT_RUNNING,) for v in late)
        # an order risk approved before the stop may still reach the broker after it, never
        # one decided after it
        decided = {e.event.client_order_id: e.seq  # type: ignore[attr-defined]
                   for e in journal.read([EventKind.RISK_DECISION])}  # fmt: skip
        for entry in journal.read([EventKind.ORDER_ACCEPTED], since_seq=stopped_at):
            assert decided[entry.event.client_order_id] < stopped_at  # type: ignore[attr-defined]
