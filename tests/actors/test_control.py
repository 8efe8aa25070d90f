"""Operator controls on a live topology: the kill switch, strategy pause/resume/stop, the
broker's refusal of any order risk did not approve, and a failed broker step leaving nothing.

Expected outcomes follow docs/live.md ("Kill switch", "Failure handling"): a kill is
journaled and in force before the call returns, so every verdict journaled after it is a
rejection (or a flatten order); an order without a journaled approval never reaches the
paper engine.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
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
from tests.kit.live import DATA, assert_journal_invariants, config, wait_for_bar, wait_quiet

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


@pytest.mark.timeout(180)
def test_an_early_evaluated_host_the_open_touched_sizes_its_orders_again(live, tmp_path) -> None:
    # Two Seesaws (always long, weight 1 <-> 0.5 every 2 bars, next-open fills), one bar out
    # of phase. Paused before bar t, the one that re-sizes at t has no order resting (its last
    # one filled at t-1's open), so the feed lets its host evaluate bar t while the broker
    # opens it. A global kill with flatten in the pause leaves a flatten order resting for
    # each: bar t's open fills it, the feed sees that fill and has the host size bar t again.
    # By hand: flat after the flatten, the order at t is floor(w(t) * cash * 0.45 / close_t)
    # shares (cash: the account's, which nothing changes after the flatten: every later
    # order is halted); sized on the position before the flatten it would be another.
    from actors.runtime import start
    from core.replay import load_source
    from tests.kit.live import Seesaw

    saws = [{"id": f"saw-{o}", "strategy": "tests.kit.live:Seesaw",
             "params": {"period": 2, "offset": o}, "symbols": ["ORCL"],
             "sim": {"size_pct": 0.45}} for o in (0, 1)]  # fmt: skip
    cfg = config(saws, [DATA / "ORCL.csv"], tmp_path / "journal.sqlite", data=WINDOW)
    # a speed factor, not "max": no bar is carried by the one before, each one is opened
    cfg = cfg.model_copy(update={"feed": cfg.feed.model_copy(update={"speed": 1e9})})
    topo = start(cfg)
    topo.feed.start.remote()
    wait_for_bar(topo, 20)
    live.get(topo.feed.pause.remote())
    wait_quiet(topo)
    t = live.get(topo.feed.status.remote())["next_bar"]
    early = f"saw-{t % 2}"  # (t + offset) even: it re-sizes at t and nothing rests before
    out = live.get(topo.risk.kill.remote("global", "halt", True, "test-operator"))
    assert len(out["flatten_orders"]) == 2
    live.get(topo.feed.resume.remote())
    status = topo.run()
    assert status["state"] == "done"
    assert status["early_hosts"]["reevaluated"] == 1
    assert live.get(topo.host(early).status.remote())["counts"]["reevaluated"] == 1
    assert live.get(topo.broker.positions.remote()) == {"saw-0": {}, "saw-1": {}}
    panel = load_source(cfg.feed.data).panel
    cash = live.get(topo.broker.account.remote(early))["cash"]
    weight = Seesaw(period=2, offset=t % 2).weight(t)
    expected = float(np.floor(weight * cash * 0.45 / panel.close[t, 0]))
    with Journal(topo.journal_path, readonly=True) as journal:
        at_t = [e.event for e in journal.read([EventKind.RISK_DECISION], strategy=early,
                                              bar_index=t)]  # fmt: skip
    assert [(v.requested_qty, v.reasons) for v in at_t] == [(expected, (RiskReason.HALTED,))]
    for sid in ("saw-0", "saw-1"):
        host_trades = live.get(topo.host(sid).trades.remote())
        assert host_trades == live.get(topo.broker.trades.remote(sid))
        assert host_trades[-1]["exit_reason"] == "flatten"
    assert_journal_invariants(topo.journal_path)


def _paused_flip(live: Any, tmp_path: Path) -> tuple[Any, dict[str, Any]]:
    """A FLIP topology paused after bar 5, settled; returns it and the broker's positions."""
    from actors.runtime import start

    topo = start(config([FLIP], FILES, tmp_path / "journal.sqlite", data=WINDOW))
    topo.feed.start.remote()
    wait_for_bar(topo, 5)
    live.get(topo.feed.pause.remote())
    return topo, wait_quiet(topo)  # the bar in flight still fills after pause returns


def _order(coid: str, qty: float) -> OrderIntent:
    """An ORCL order of FLIP's that no host made."""
    return OrderIntent(
        client_order_id=coid, strategy_id="flip", symbol="ORCL", qty=qty, bar_index=0,
        bar_ts=datetime(2002, 1, 2, tzinfo=UTC), ref_price=10.0,
    )  # fmt: skip


@pytest.mark.timeout(120)
def test_the_broker_refuses_an_order_risk_never_approved(live, tmp_path) -> None:
    topo, before = _paused_flip(live, tmp_path)
    rogue = _order("rogue-1", 1_000.0)
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
def test_a_broker_step_that_fails_journals_nothing_and_keeps_no_state(live, tmp_path) -> None:
    # docs/live.md step 5: the orders' part and the next bar's open of a step are journaled
    # in one transaction; when the open fails (here: a next bar that is not a bar), the
    # approved order accepted in memory just before must leave no row and no order behind,
    # and the same order sent again afterwards is accepted exactly once.
    import ray

    from actors.common import pack
    from core.events import RiskVerdict

    topo, before = _paused_flip(live, tmp_path)
    order = _order("step-1", 10.0)
    with Journal(topo.journal_path) as journal:  # an approval, as risk would journal it
        journal.append(RiskVerdict(
            client_order_id="step-1", strategy_id="flip", symbol="ORCL",
            decision=Decision.APPROVED, requested_qty=10.0, approved_qty=10.0, bar_index=0,
        ), source="risk")  # fmt: skip
    opened = live.get(topo.broker.open_orders.remote("flip"))
    with pytest.raises(ray.exceptions.RayTaskError, match="TypeError"):
        live.get(topo.broker.step.remote(pack([order]), pack("not a bar")))
    assert live.get(topo.broker.positions.remote()) == before
    assert live.get(topo.broker.open_orders.remote("flip")) == opened
    with Journal(topo.journal_path, readonly=True) as journal:
        kinds = [e.kind for e in journal.read(client_order_id="step-1")]
        assert kinds == [EventKind.RISK_DECISION]  # nothing of the failed step
    result = unpack(live.get(topo.broker.submit.remote([order])))
    assert [type(e).__name__ for e in result["events"]] == ["OrderAccepted"]
    with Journal(topo.journal_path, readonly=True) as journal:
        kinds = [e.kind for e in journal.read(client_order_id="step-1")]
        assert kinds == [EventKind.RISK_DECISION, EventKind.ORDER_ACCEPTED]
    ids = [o["client_order_id"] for o in live.get(topo.broker.open_orders.remote("flip"))]
    assert ids.count("step-1") == 1


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


@pytest.mark.timeout(120)
def test_an_order_risk_cut_reaches_the_broker_at_the_cut_size(live, tmp_path) -> None:
    # max_position_pct 20 cuts the 45% buys (MODIFIED); exits pass unchanged (APPROVED).
    # Expected by the rule itself: the broker accepts each order at its verdict's approved
    # quantity, exactly (its approval check refuses any other quantity), so no order is
    # refused as not approved and the fills of a cut order add up to the cut size.
    from actors.runtime import start

    cfg = config([HOLD_CLOSE, FLIP], FILES, tmp_path / "journal.sqlite", data=WINDOW,
                 risk={"max_position_pct": 20})  # fmt: skip
    assert start(cfg).run()["state"] == "done"
    verdicts, accepted, filled = {}, {}, {}
    with Journal(cfg.journal.path, readonly=True) as journal:
        for entry in journal.read():
            event = entry.event
            if entry.kind is EventKind.RISK_DECISION:
                verdicts[event.client_order_id] = event
            elif entry.kind is EventKind.ORDER_ACCEPTED:
                accepted[event.client_order_id] = event.qty
            elif entry.kind is EventKind.ORDER_FILLED:
                filled[event.client_order_id] = filled.get(event.client_order_id, 0) + event.qty
            elif entry.kind is EventKind.ORDER_REJECTED:
                assert event.reason is not BrokerRejectReason.NOT_APPROVED, event
    forwarded = {c: v for c, v in verdicts.items() if v.decision is not Decision.REJECTED}
    cut = [v for v in forwarded.values() if v.decision is Decision.MODIFIED]
    assert cut and len(cut) < len(forwarded)  # both kinds were sent
    assert all(RiskReason.MAX_POSITION in v.reasons and abs(v.approved_qty) < abs(v.requested_qty)
               for v in cut)  # fmt: skip
    assert accepted == {c: v.approved_qty for c, v in forwarded.items()}
    assert all(filled[c] == pytest.approx(v.approved_qty) for c, v in forwarded.items()
               if c in filled and v.decision is Decision.MODIFIED)  # fmt: skip
    assert_journal_invariants(cfg.journal.path)
