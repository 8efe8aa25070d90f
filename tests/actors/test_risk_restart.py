"""A restarted risk actor counts every closed trade in the loss streaks, however its restart
falls between a trade's fill and the marks of the next bar.

Risk counts a bar's closed trades (the last bar's close fills, this bar's open fills) in
the bar's marks. Those trades live in its memory until the marks are journaled, so a restart
in between must take them from the journal (the fills the broker journaled after the marker
of the last bar risk marked). The reference is the same replay uninterrupted: its journal's
loss-streak marks, bar by bar, must be the killed run's.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import time

import pytest

from core.events import EventKind, RiskMarkKind, RiskMarks
from core.journal import Journal
from core.risk.engine import REBUILD_KINDS, RiskEngine
from tests.kit.live import DATA, assert_journal_invariants, config, gate_dir, wait_quiet

WINDOW = {"start": "2000-01-01", "end": "2001-12-31"}  # 500 bars
WARM_UP_BARS = 300  # actors.common.warm_up runs every strategy on this many bars: no hold there


def gate_config(journal, at_bar: int, key: int):
    """A ``Gate`` (a Flipper of period 1 on ORCL: long on even bars, flat on odd ones,
    filled at the close, so a trade closes on every odd bar) holding at ``at_bar``; a speed
    factor, so every bar is opened on its own and a pause falls between two bars."""
    strategies = [{"id": "gate", "strategy": "tests.kit.live:Gate",
                   "params": {"period": 1, "at_bar": at_bar, "key": key},
                   "symbols": ["ORCL"], "sim": {"fill": "close", "size_pct": 0.9}}]  # fmt: skip
    cfg = config(strategies, [DATA / "ORCL.csv"], journal, data=WINDOW)
    return cfg.model_copy(update={"feed": cfg.feed.model_copy(update={"speed": 1e9})})


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
    import ray

    from actors.runtime import start

    key = secrets.randbits(48)
    gate = gate_dir(key)
    gate.mkdir()
    try:
        # The uninterrupted run (the gate is open from the start, it never holds).
        (gate / "go").touch()
        ref_cfg = gate_config(tmp_path / "ref.sqlite", 100_000, key)
        topo = start(ref_cfg)
        assert topo.run()["state"] == "done"
        topo.stop()
        ref = streak_marks(ref_cfg.journal.path)
        # A bar whose close fill ended a losing trade: the next bar's marks raise the streak.
        losing = [bar - 1 for bar, _, value in ref if value > 0 and bar > WARM_UP_BARS + 1]
        assert losing, ref
        at = losing[0]
        (gate / "go").unlink()

        # The same replay, held while its host evaluates bar `at`; paused meanwhile, so the
        # replay stops once bar `at` is done: its close filled (the losing trade closed) and
        # bar at+1 not opened. Risk is killed there, before it has marked bar at+1.
        cfg = gate_config(tmp_path / "killed.sqlite", at, key)
        topo = start(cfg)
        topo.feed.start.remote()
        deadline = time.monotonic() + 120
        while not (gate / "reached").exists():
            assert time.monotonic() < deadline, "the gate was never reached"
            time.sleep(0.01)
        live.get(topo.feed.pause.remote())
        (gate / "go").touch()
        wait_quiet(topo)
        assert live.get(topo.feed.status.remote())["next_bar"] == at + 1
        pid = live.get(topo.risk.pid.remote())
        os.kill(pid, signal.SIGKILL)
        while True:  # Ray restarts it; __init__ rebuilds it from the journal
            try:
                if live.get(topo.risk.pid.remote(), timeout=60) != pid:
                    break
            except ray.exceptions.RayActorError:  # down while it restarts
                time.sleep(0.05)
        live.get(topo.feed.resume.remote())
        status = topo.run()
        assert status["state"] == "done", status
        assert_journal_invariants(cfg.journal.path)
        assert (at + 1, "strategy:gate") in {(bar, scope) for bar, scope, _ in ref}
        assert streak_marks(cfg.journal.path) == ref
        assert rebuilt_streaks(cfg.journal.path) == rebuilt_streaks(ref_cfg.journal.path)
        topo.stop()
    finally:
        shutil.rmtree(gate, ignore_errors=True)
