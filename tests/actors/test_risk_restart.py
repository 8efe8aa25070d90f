"""A restarted risk actor's breakers go on as if it had never stopped.

- Loss streaks: risk counts a bar's closed trades (the last bar's close fills, this bar's
  open fills) in the bar's marks. Those trades live in its memory until the marks are
  journaled, so a restart in between must take them from the journal (the fills the broker
  journaled after the last row of marks).
- Stale data: each symbol's clock starts at its last bar with a valid close. The clocks are
  not journaled, so a restart must take them from the feed's history, or a symbol going
  stale would be given its whole allowance again.

- Kills: a kill is journaled before its cancellations and flatten reach the broker, so a
  restart in between must finish it before the next bar opens (and a restart after one
  finished must do nothing twice).

Risk is killed in a pause right after the bar that matters (a ``Gate`` host holds that bar
until the test has paused the feed). The reference is the same replay uninterrupted: its
journal's loss-streak marks, breaker trips and what follows a kill must be the killed run's.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import time

import pytest

from core.events import (
    EventKind,
    KillMode,
    RiskMarkKind,
    RiskMarks,
    RiskReason,
    Scope,
    TradingState,
)
from core.journal import Journal
from core.risk.engine import REBUILD_KINDS, RiskEngine
from tests.kit.live import DATA, assert_journal_invariants, config, gate_dir, wait_quiet

WINDOW = {"start": "2000-01-01", "end": "2001-12-31"}  # 500 bars
WARM_UP_BARS = 300  # actors.common.warm_up runs a strategy on at most this many bars: no hold


def gate_config(journal, at_bar: int, key: int, files=(DATA / "ORCL.csv",), **sections):
    """A ``Gate`` (a Flipper of period 1 on ORCL: long on even bars, flat on odd ones,
    filled at the close, so a trade closes on every odd bar) holding at ``at_bar``; a speed
    factor, so every bar is opened on its own and a pause falls between two bars."""
    strategies = [{"id": "gate", "strategy": "tests.kit.live:Gate",
                   "params": {"period": 1, "at_bar": at_bar, "key": key},
                   "symbols": ["ORCL"], "sim": {"fill": "close", "size_pct": 0.9}}]  # fmt: skip
    cfg = config(strategies, list(files), journal, data=WINDOW, **sections)
    return cfg.model_copy(update={"feed": cfg.feed.model_copy(update={"speed": 1e9})})


def run_with_risk_killed_after(live, cfg, gate, at: int, *, in_pause=None, kill_risk=True):
    """Replay ``cfg`` (its gate holding at bar ``at``), pause while the gate holds, so the
    replay stops once bar ``at`` is done, call ``in_pause(topo)`` if given, SIGKILL risk
    there (unless not ``kill_risk``), let Ray restart it (its ``__init__`` rebuilds it from
    the journal), then replay to the end; returns the broker's final positions."""
    topo = start_until_gate(cfg, gate)
    live.get(topo.feed.pause.remote())
    (gate / "go").touch()
    wait_quiet(topo)
    assert live.get(topo.feed.status.remote())["next_bar"] == at + 1
    if in_pause is not None:
        in_pause(topo)
    if kill_risk:
        sigkill_risk(live, topo)
    live.get(topo.feed.resume.remote())
    status = topo.run()
    assert status["state"] == "done", status
    assert_journal_invariants(cfg.journal.path)
    positions = live.get(topo.broker.positions.remote())
    topo.stop()
    return positions


def start_until_gate(cfg, gate):
    """Start ``cfg``'s topology and its replay; return it once the gate host holds its bar
    (the file ``reached``), the bar open and the replay waiting on the host."""
    from actors.runtime import start

    topo = start(cfg)
    topo.feed.start.remote()
    deadline = time.monotonic() + 120
    while not (gate / "reached").exists():
        assert time.monotonic() < deadline, "the gate was never reached"
        time.sleep(0.01)
    return topo


def sigkill_risk(live, topo) -> None:
    """SIGKILL risk's worker and wait until Ray has restarted it (a new pid answers)."""
    import ray

    pid = live.get(topo.risk.pid.remote())
    os.kill(pid, signal.SIGKILL)
    while True:
        try:
            if live.get(topo.risk.pid.remote(), timeout=60) != pid:
                return
        except ray.exceptions.RayActorError:  # down while it restarts
            time.sleep(0.05)


def run_uninterrupted(cfg, gate) -> None:
    from actors.runtime import start

    (gate / "go").touch()  # the gate never holds
    topo = start(cfg)
    assert topo.run()["state"] == "done"
    topo.stop()
    (gate / "go").unlink()


def streak_marks(path) -> list[tuple[int, str, float]]:
    """(bar, scope, streak) of every loss-streak mark journaled, in order."""
    with Journal(path, readonly=True) as journal:
        return [
            (m.bar_index, str(m.scope), m.value)
            for e in journal.read([EventKind.RISK_MARKS])
            for m in e.event.marks  # type: ignore[attr-defined]
            if isinstance(e.event, RiskMarks) and m.kind is RiskMarkKind.LOSS_STREAK
        ]  # fmt: skip


def rebuilt_streaks(path) -> dict[str, int]:
    with Journal(path, readonly=True) as journal:
        return RiskEngine.rebuild(journal.read(REBUILD_KINDS)).marks.snapshot()["streak"]


@pytest.mark.timeout(240)
def test_a_risk_restart_after_a_losing_close_keeps_the_loss_in_the_streak(live, tmp_path) -> None:
    key = secrets.randbits(48)
    gate = gate_dir(key)
    gate.mkdir()
    try:
        ref_cfg = gate_config(tmp_path / "ref.sqlite", 100_000, key)
        run_uninterrupted(ref_cfg, gate)
        ref = streak_marks(ref_cfg.journal.path)
        # A bar whose close fill ended a losing trade: the next bar's marks raise the streak.
        losing = [bar - 1 for bar, _, value in ref if value > 0 and bar > WARM_UP_BARS + 1]
        assert losing, ref
        at = losing[0]
        cfg = gate_config(tmp_path / "killed.sqlite", at, key)
        run_with_risk_killed_after(live, cfg, gate, at)
        assert (at + 1, "strategy:gate") in {(bar, scope) for bar, scope, _ in ref}
        assert streak_marks(cfg.journal.path) == ref
        assert rebuilt_streaks(cfg.journal.path) == rebuilt_streaks(ref_cfg.journal.path)
    finally:
        shutil.rmtree(gate, ignore_errors=True)


def stale_trips(path) -> list[tuple[int, str]]:
    """(bar, scope) of every stale-data trip journaled, in order."""
    with Journal(path, readonly=True) as journal:
        return [
            (e.event.bar_index, str(e.event.scope))  # type: ignore[attr-defined]
            for e in journal.read([EventKind.BREAKER_TRIPPED])
            if e.event.breaker is RiskReason.STALE_DATA  # type: ignore[attr-defined]
        ]  # fmt: skip


@pytest.mark.timeout(240)
def test_a_risk_restart_keeps_a_stale_symbols_clock(live, tmp_path) -> None:
    from core.replay import load_source

    # NVDA's file cut after bar LAST of the window: from then on its bars are NaN, and with
    # an allowance of 8 days its scope halts at the first bar more than 8 days after LAST's
    # (LAST + 6 or so: weekends). Risk is killed 2 bars after LAST.
    last, allowance = 350, 8 * 86_400
    orcl = gate_config(None, 100_000, 0).feed.data  # the window's bars: ORCL trades them all
    cut = str(load_source(orcl).panel.timestamps[last])[:10]
    nvda = tmp_path / "NVDA.csv"
    lines = (DATA / "NVDA.csv").read_text().splitlines()
    nvda.write_text("\n".join([lines[0], *[ln for ln in lines[1:] if ln[:10] <= cut]]) + "\n")
    files = [DATA / "ORCL.csv", nvda]
    risk = {"stale_data_seconds": allowance}
    key = secrets.randbits(48)
    gate = gate_dir(key)
    gate.mkdir()
    try:
        ref_cfg = gate_config(tmp_path / "ref.sqlite", 100_000, key, files, risk=risk)
        run_uninterrupted(ref_cfg, gate)
        ref = stale_trips(ref_cfg.journal.path)
        assert ref and ref[0][1] == "symbol:NVDA" and last + 3 < ref[0][0] < last + 10, ref
        at = last + 2
        cfg = gate_config(tmp_path / "killed.sqlite", at, key, files, risk=risk)
        run_with_risk_killed_after(live, cfg, gate, at)
        assert stale_trips(cfg.journal.path) == ref
    finally:
        shutil.rmtree(gate, ignore_errors=True)


def after_the_kill(path) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """What the journal holds after its kill switch row: the kill, the cancellations
    and the fills, as content (ids aside: a flatten order's id is made of the kill's seq)."""
    with Journal(path, readonly=True) as journal:
        kill = journal.last(EventKind.KILL_SWITCH_ENGAGED)
        assert kill is not None
        k = kill.event
        canceled = [
            (
                e.event.strategy_id,
                e.event.symbol,
                e.event.remaining_qty,
                e.event.why,
                e.event.bar_index,
            )
            for e in journal.read([EventKind.ORDER_CANCELED], since_seq=kill.seq)
        ]
        fills = [
            (
                e.event.strategy_id,
                e.event.symbol,
                e.event.qty,
                e.event.price,
                e.event.reason.value,
                e.event.bar_index,
            )
            for e in journal.read([EventKind.ORDER_FILLED], since_seq=kill.seq)
        ]
    return [(str(k.scope), k.mode.value, k.flatten, k.by)], canceled, fills  # type: ignore[attr-defined]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("died", ["after_journaling_the_kill", "after_finishing_the_kill"])
def test_a_kill_risk_died_in_the_middle_of_is_finished_before_the_next_bar(
    live, tmp_path, died
) -> None:
    # Risk journals a kill, then dies before its cancellations and flatten reach the broker.
    # Injected as it happens: the kill's rows, made by risk's own engine, appended to the
    # journal as risk appends them; then risk SIGKILLed before it can act. At the pause the
    # gate (ORCL, filled at the next open) is flat with a buy resting (bar 400 is even: its
    # target is long) and the holder is long NVDA. The reference is the same kill finished
    # by the live risk actor at the same pause: the resting buy canceled, the NVDA position
    # flattened at the next open, nothing bought after. The restarted risk must finish the
    # kill before bar 401 opens, so the run ends the same: otherwise the buy fills at bar
    # 401's open (and stays held, every later order halted) and NVDA is never flattened.
    # And a risk killed after it finished the kill (the flatten order resting) must do
    # nothing twice: no second flatten, no cancellation of the flatten order.
    at, key = 400, secrets.randbits(48)
    gate = gate_dir(key)
    gate.mkdir()

    def kill_config(journal):
        strategies = [
            {"id": "gate", "strategy": "tests.kit.live:Gate",
             "params": {"period": 1, "at_bar": at, "key": key}, "symbols": ["ORCL"],
             "sim": {"fill": "next_open", "size_pct": 0.9}},
            {"id": "hold", "strategy": "tests.kit.live:Flipper", "params": {"period": 1000},
             "symbols": ["NVDA"], "sim": {"fill": "next_open", "size_pct": 0.9}},
        ]  # fmt: skip
        cfg = config(strategies, [DATA / "ORCL.csv", DATA / "NVDA.csv"], journal, data=WINDOW)
        return cfg.model_copy(update={"feed": cfg.feed.model_copy(update={"speed": 1e9})})

    def operator_kill(topo) -> None:
        out = live.get(topo.risk.kill.remote("global", "halt", True, "test-operator"))
        assert out["canceled_orders"] and out["flatten_orders"], out

    def journal_the_kill_only(cfg):
        def inject(topo) -> None:
            with Journal(cfg.journal.path) as journal:
                engine = RiskEngine.rebuild(journal.read(REBUILD_KINDS), cfg.risk)
                events = engine.kill(Scope.parse("global"), KillMode.HALT, flatten=True,
                                     by="test-operator")  # fmt: skip
                journal.append_many(events, source="risk")

        return inject

    try:
        ref_cfg = kill_config(tmp_path / "ref.sqlite")
        ref_positions = run_with_risk_killed_after(
            live, ref_cfg, gate, at, in_pause=operator_kill, kill_risk=False
        )
        (gate / "go").unlink()
        (gate / "reached").unlink()
        ref = after_the_kill(ref_cfg.journal.path)
        assert ref_positions == {"gate": {}, "hold": {}}
        kills, canceled, fills = ref
        assert kills == [("global", "halt", True, "test-operator")]
        assert [(sid, sym) for sid, sym, *_ in canceled] == [("gate", "ORCL")]
        assert [(sid, sym, reason, bar) for sid, sym, _, _, reason, bar in fills] == [
            ("hold", "NVDA", "flatten", at + 1)
        ]
        cfg = kill_config(tmp_path / "killed.sqlite")
        inject = journal_the_kill_only(cfg) if died == "after_journaling_the_kill" \
            else operator_kill  # fmt: skip
        positions = run_with_risk_killed_after(live, cfg, gate, at, in_pause=inject)
        assert positions == ref_positions
        assert after_the_kill(cfg.journal.path) == ref
        assert journaled_global_state(cfg.journal.path) is TradingState.HALTED
    finally:
        shutil.rmtree(gate, ignore_errors=True)


def journaled_global_state(path) -> TradingState:
    """The trading state of ``global`` as the journal has it (a rebuilt engine's)."""
    with Journal(path, readonly=True) as journal:
        engine = RiskEngine.rebuild(journal.read(REBUILD_KINDS))
    return engine.states.state(Scope.parse("global"))


def fills(path) -> list[tuple]:
    """Every fill journaled, as content: strategy, symbol, quantity, price, bar, reason."""
    with Journal(path, readonly=True) as journal:
        return [(e.event.strategy_id, e.event.symbol, e.event.qty, e.event.price,  # type: ignore[attr-defined]
                 e.event.bar_index, e.event.reason)  # type: ignore[attr-defined]
                for e in journal.read([EventKind.ORDER_FILLED])]  # fmt: skip


def all_marks(path) -> list[tuple[int, tuple]]:
    """(bar, its marks) of every ``risk_marks`` row, in order; and no bar twice."""
    with Journal(path, readonly=True) as journal:
        rows = [(e.event.bar_index, e.event.marks)  # type: ignore[attr-defined]
                for e in journal.read([EventKind.RISK_MARKS])]  # fmt: skip
    bars = [bar for bar, _ in rows]
    assert len(bars) == len(set(bars)), "a bar marked twice"
    return rows


@pytest.mark.timeout(240)
def test_a_risk_killed_between_a_bars_marks_and_its_gate_marks_the_bar_again(
    live, tmp_path
) -> None:
    # Risk marks a bar right after its open but journals the marks with the bar's verdicts
    # (one commit at the gate): while the hosts evaluate, they are in its memory only. Killed
    # there, the restarted risk's gate marks the bar itself (from the broker's journaled
    # open), so the journal ends with the uninterrupted run's marks, each bar's once.
    key = secrets.randbits(48)
    gate = gate_dir(key)
    gate.mkdir()
    try:
        at = WARM_UP_BARS + 20
        ref_cfg = gate_config(tmp_path / "ref.sqlite", at, key)
        run_uninterrupted(ref_cfg, gate)
        ref = all_marks(ref_cfg.journal.path)
        assert at in {bar for bar, _ in ref}
        cfg = gate_config(tmp_path / "killed.sqlite", at, key)
        topo = start_until_gate(cfg, gate)  # the gate host holds bar `at`: it is open
        time.sleep(0.3)  # risk's marks of the open are done by now (some 1 ms of work)
        assert at not in {bar for bar, _ in all_marks(cfg.journal.path)}  # not journaled yet
        sigkill_risk(live, topo)
        (gate / "go").touch()
        status = topo.run()
        assert status["state"] == "done", status
        assert_journal_invariants(cfg.journal.path)
        assert all_marks(cfg.journal.path) == ref
        topo.stop()
        assert fills(cfg.journal.path) == fills(ref_cfg.journal.path)
    finally:
        shutil.rmtree(gate, ignore_errors=True)
