"""Launching a strategy into a running system (``feed.launch_strategy``, behind POST /strategies).

What must hold (docs/live.md "Launching a strategy"): the launch is journaled before anything
else; the new strategy trades from a bar after its launch, through risk like every other; a
resend of the same config is a no-op and another config under its id is refused; and a
restarted broker (SIGKILL mid-replay) opens the launched sub-account again from the journal,
so its trades still equal the host's. The other strategy is untouched: its trades equal a run
without the launch (an independent replay of the same config).
"""

from __future__ import annotations

import time

import pytest

from core.errors import ConfigError
from core.events import EventKind
from core.journal import Journal
from tests.kit.live import DATA, assert_journal_invariants, config, kill, wait_for_bar

FILES = [DATA / "ORCL.csv", DATA / "NVDA.csv"]
WINDOW = {"start": "2002-01-01", "end": "2003-06-30"}
SIM = {"size_pct": 0.45}
FLIP = {"id": "flip", "strategy": "tests.kit.live:Flipper", "params": {"period": 3},
        "symbols": ["ORCL", "NVDA"], "sim": SIM}  # fmt: skip
LATE = {"id": "late", "strategy": "tests.kit.live:Flipper", "params": {"period": 4},
        "symbols": ["NVDA"], "sim": {"size_pct": 0.9, "cash": 50_000.0}}  # fmt: skip
LAUNCH_AT = 40


def _run_alone(live, tmp_path) -> list[dict]:
    """Flip's trades in a replay without any launch (the reference)."""
    from actors.runtime import kill_live_actors, start

    topo = start(config([FLIP], FILES, tmp_path / "alone.sqlite", data=WINDOW))
    assert topo.run()["state"] == "done"
    trades = live.get(topo.host("flip").trades.remote())
    kill_live_actors()
    return trades


def _settled(live, topo) -> int:
    """The paused feed's next bar, once the bar in flight at the pause has finished."""
    seen = -1
    while (now := live.get(topo.feed.status.remote())["next_bar"]) != seen:
        seen = now
        time.sleep(0.3)
    return seen


@pytest.mark.timeout(300)
def test_a_launched_strategy_trades_from_its_launch_and_survives_a_broker_restart(
    live, tmp_path
) -> None:
    from actors.runtime import start

    alone = _run_alone(live, tmp_path)
    topo = start(config([FLIP], FILES, tmp_path / "journal.sqlite", data=WINDOW))
    live.get(topo.feed.start.remote())
    wait_for_bar(topo, LAUNCH_AT)
    live.get(topo.feed.pause.remote())
    paused_at = _settled(live, topo)

    out = live.get(topo.feed.launch_strategy.remote(LATE, "ops"), timeout=120)
    assert out == {"id": "late", "state": "running", "next_bar": paused_at, "by": "ops"}
    again = live.get(topo.feed.launch_strategy.remote(LATE, "ops"), timeout=120)
    assert again["id"] == "late"  # a resend: nothing new
    with pytest.raises(ConfigError, match="exists already with another config"):
        live.get(topo.feed.launch_strategy.remote({**LATE, "params": {"period": 5}}, "ops"))
    with pytest.raises(ConfigError, match="not in the feed's data: MOON"):
        live.get(topo.feed.launch_strategy.remote({**LATE, "id": "moon", "symbols": ["MOON"]}))
    topo.handles["strategy:late"] = live.get_actor("strategy:late", namespace="raytrader")
    late = live.get(topo.host("late").status.remote())
    assert late["sim"]["cash"] == 50_000.0 and late["max_history"] is None

    live.get(topo.feed.resume.remote())
    wait_for_bar(topo, paused_at + 30)
    restart = kill(topo, "broker", "sigkill")
    assert restart["state"] in ("running", "done")
    assert topo.run()["state"] == "done"

    counts = assert_journal_invariants(topo.journal_path)
    assert counts["strategy_launched"] == 1  # the resend wrote nothing
    host_trades = live.get(topo.host("late").trades.remote())
    assert host_trades and host_trades == live.get(topo.broker.trades.remote("late"))
    with Journal(topo.journal_path, readonly=True) as journal:
        launched = journal.last(EventKind.STRATEGY_LAUNCHED)
        assert launched is not None and launched.event.by == "ops"  # type: ignore[attr-defined]
        orders = list(journal.read([EventKind.ORDER_ACCEPTED], strategy="late"))
        assert orders and all(e.seq > launched.seq for e in orders)
        assert min(e.event.bar_index for e in orders) >= paused_at  # type: ignore[attr-defined]
        fills = list(journal.read([EventKind.ORDER_FILLED], strategy="late"))
    assert live.get(topo.host("flip").trades.remote()) == alone  # untouched by the launch
    assert live.get(topo.broker.account.remote("late"))["n_fills"] == len(fills)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("end", ["stopped", "driver died"])
def test_a_run_resumed_after_a_launch_starts_the_launched_host_too(live, tmp_path, end) -> None:
    """Ended after a launch and started again on its journal: the driver creates the launched
    strategy's host beside the config's (the feed's fan-out includes it; before, the resumed
    replay failed at its first bar: no actor named ``strategy:late``), and it trades from
    there. ``stopped``: as Ctrl-C ends a run, every actor killed, launched hosts too. ``driver
    died``: as a driver's death ends a run on a cluster, its own actors gone with it, the
    launched host (detached) left alive; the new run stops that orphan (it held the journal's
    writer lock, and would have answered as the new run's host with its old state)."""
    from actors.runtime import start

    alone = _run_alone(live, tmp_path)
    cfg = config([FLIP], FILES, tmp_path / "journal.sqlite", data=WINDOW)
    topo = start(cfg)
    live.get(topo.feed.start.remote())
    wait_for_bar(topo, LAUNCH_AT)
    live.get(topo.feed.pause.remote())
    paused_at = _settled(live, topo)
    live.get(topo.feed.launch_strategy.remote(LATE, "ops"), timeout=120)
    orphan = live.get(live.get_actor("strategy:late", namespace="raytrader").pid.remote())
    if end == "stopped":
        topo.stop()
    else:
        for handle in topo.handles.values():
            live.kill(handle, no_restart=True)
        assert topo.lock is not None
        topo.lock.release()  # the dead driver's process would have dropped it

    again = start(cfg)
    assert "strategy:late" in again.handles
    assert live.get(again.host("late").pid.remote()) != orphan
    assert again.run()["state"] == "done"
    assert_journal_invariants(again.journal_path)
    host_trades = live.get(again.host("late").trades.remote())
    assert host_trades and host_trades == live.get(again.broker.trades.remote("late"))
    with Journal(again.journal_path, readonly=True) as journal:
        orders = list(journal.read([EventKind.ORDER_ACCEPTED], strategy="late"))
    assert orders and min(e.event.bar_index for e in orders) >= paused_at  # type: ignore[attr-defined]
    assert live.get(again.host("flip").trades.remote()) == alone  # untouched by either
