"""Builders for live-runtime tests: configs, test strategies, journal invariants, kills.

The test strategies are importable by name (``tests.kit.live:Flipper``) in Ray workers, whose
working directory is the repository (pytest runs from it).
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from actors.retry import wait_back
from core.events import Decision, EventKind, FillReason, OrderAccepted, OrderFilled, RiskVerdict
from core.journal import Journal
from core.panel import WidePanel
from core.run_config import RunConfig, parse_run_config
from strategies.base import Strategy
from strategies.params import IntParam

__all__ = [
    "DATA",
    "Boom",
    "Flipper",
    "Gate",
    "Seesaw",
    "Sluggish",
    "assert_journal_invariants",
    "config",
    "gate_commits",
    "kill",
    "wait_for_bar",
]

DATA = Path(__file__).resolve().parents[2] / "data"
_STOPS = (FillReason.STOP_LOSS, FillReason.TAKE_PROFIT)


class Flipper(Strategy):
    """Long for ``period`` bars, flat for ``period`` bars, on every symbol with a close:
    trades every ``period`` bars, so a kill anywhere in a replay lands near an order."""

    name = "flipper"
    period = IntParam(3, low=1, high=1000, doc="bars per half cycle")

    def target_weights(self, panel: WidePanel) -> np.ndarray:
        """1 on the long half of each cycle, 0 on the flat half (NaN where no close)."""
        t = np.arange(panel.n_bars)
        on = ((t // self.period) % 2 == 0).astype(np.float64)
        out = np.repeat(on[:, None], panel.n_symbols, axis=1)
        out[np.isnan(panel.close)] = np.nan
        return out


class Gate(Flipper):
    """Flipper that, evaluating bar ``at_bar``, announces it (file ``reached`` in
    ``gate_dir(key)``) and holds until the test creates ``go`` there (at most a minute): a
    test can act on the other actors while this host's bar is in flight."""

    name = "gate"
    at_bar = IntParam(400, low=0, high=100_000, doc="bar index to hold at")
    key = IntParam(0, low=0, high=2**62, doc="names the gate's directory")

    def target_weights(self, panel: WidePanel) -> np.ndarray:
        """Flipper's weights, after the hold when the history ends at ``at_bar``."""
        gate = gate_dir(self.key)
        if panel.n_bars == self.at_bar + 1 and not (gate / "go").exists():
            (gate / "reached").touch()
            deadline = time.monotonic() + 60.0
            while not (gate / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.005)
        return super().target_weights(panel)


def gate_dir(key: int) -> Path:
    """The directory a ``Gate`` with this key signals through (the test creates it)."""
    return Path(tempfile.gettempdir()) / f"raytrader-gate-{key}"


class Sluggish(Flipper):
    """Flipper that takes at least ``delay_ms`` to evaluate (it sleeps): its host's bar path,
    warm-ups included, is that slow, like a heavy strategy's or a slow machine's."""

    name = "sluggish"
    delay_ms = IntParam(5, low=0, high=1000, doc="milliseconds slept per evaluation")

    def target_weights(self, panel: WidePanel) -> np.ndarray:
        """Flipper's weights, after the sleep."""
        time.sleep(self.delay_ms / 1e3)
        return super().target_weights(panel)


class Seesaw(Strategy):
    """Weight 1 for ``period`` bars, then 0.5 for ``period`` bars, the cycle shifted by
    ``offset`` bars: always long, re-sized every ``period`` bars (``w(t)`` in ``weight``)."""

    name = "seesaw"
    period = IntParam(2, low=1, high=1000, doc="bars per half cycle")
    offset = IntParam(0, low=0, high=1000, doc="bars the cycle is shifted by")

    def weight(self, t: int) -> float:
        """The target weight at bar ``t``."""
        return 1.0 if ((t + self.offset) // self.period) % 2 == 0 else 0.5

    def target_weights(self, panel: WidePanel) -> np.ndarray:
        """``weight(t)`` on every symbol (NaN where no close)."""
        w = np.array([self.weight(t) for t in range(panel.n_bars)])
        out = np.repeat(w[:, None], panel.n_symbols, axis=1)
        out[np.isnan(panel.close)] = np.nan
        return out


class Boom(Strategy):
    """SMA-like trader that raises once its history reaches ``fail_at`` bars."""

    name = "boom"
    fail_at = IntParam(50, low=1, high=100_000, doc="history length that raises")

    def target_weights(self, panel: WidePanel) -> np.ndarray:
        """Flipper's weights until the history is ``fail_at`` bars long, then ZeroDivision."""
        if panel.n_bars >= self.fail_at:
            raise ZeroDivisionError(f"boom at {panel.n_bars} bars")
        t = np.arange(panel.n_bars)
        on = ((t // 5) % 2 == 0).astype(np.float64)
        return np.repeat(on[:, None], panel.n_symbols, axis=1)


def config(
    strategies: list[dict[str, Any]],
    paths: list[str | Path],
    journal: Path | None = None,
    **sections: Any,
) -> RunConfig:
    """A RunConfig over data files; ``sections`` adds ``risk``, ``runtime``, ``feed``, ... ."""
    feed = {"data": {"paths": [str(p) for p in paths]}}
    feed["data"].update(sections.pop("data", {}))
    body: dict[str, Any] = {"strategies": strategies, "feed": feed, **sections}
    if journal is not None:
        body["journal"] = {"path": str(journal)}
    return parse_run_config(body)


def wait_quiet(topo: Any, settle_s: float = 0.3, timeout_s: float = 60.0) -> dict[str, Any]:
    """After ``feed.pause``: wait until the bar in flight has finished (pause returns at once
    and holds the replay only after it), i.e. the feed's next bar and the broker's positions
    are unchanged over ``settle_s``; returns the positions."""
    import ray

    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        now = (ray.get(topo.feed.status.remote())["next_bar"],
               ray.get(topo.broker.positions.remote()))  # fmt: skip
        if now == last:
            return now[1]
        last = now
        time.sleep(settle_s)
    raise TimeoutError(f"the live system did not settle after a pause: {last}")


def wait_for_bar(topo: Any, bar: int, timeout_s: float = 120.0) -> dict[str, Any]:
    """Poll the feed until its next bar is past ``bar`` (or it ended); returns its status."""
    import ray

    deadline = time.monotonic() + timeout_s
    while True:
        status = ray.get(topo.feed.status.remote())
        if status["next_bar"] > bar or status["state"] in ("done", "failed", "stopped"):
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"feed did not pass bar {bar}: {status}")
        time.sleep(0.02)


def kill(topo: Any, name: str, how: str) -> dict[str, float]:
    """Kill actor ``name`` (``sigkill`` of its worker pid, or ``ray.kill`` with restart) and
    time its return: seconds from the kill until it answers again (``back_s``) and until the
    replay finished a bar after that (``resumed_s``)."""
    import ray

    handle = topo.handles[name]
    pid = ray.get(handle.pid.remote())
    bar = ray.get(topo.feed.status.remote())["next_bar"]
    t0 = time.monotonic()
    if how == "sigkill":
        os.kill(pid, signal.SIGKILL)
    else:
        ray.kill(handle, no_restart=False)
    new_pid = pid
    while new_pid == pid:  # a probe every 50 ms: one call at a time sees it up 1-2 s late
        new_pid = wait_back(handle.pid, restart_wait_s=60, name=name, started=t0)
    back = time.monotonic() - t0
    status = wait_for_bar(topo, ray.get(topo.feed.status.remote())["next_bar"])
    resumed = time.monotonic() - t0
    return {"bar": bar, "back_s": back, "resumed_s": resumed, "state": status["state"]}


def gate_commits(path: str | Path) -> Counter[str]:
    """How each bar with verdicts journaled its marks: ``"with verdicts"`` when its
    ``risk_marks`` row and its verdicts are one append of risk's (the same wall time, nothing
    else between them), ``"apart"`` otherwise. Read with plain SQL, not ``core.journal``."""
    import sqlite3

    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT seq, wall_ns, kind, source, bar_index FROM events"
                            " ORDER BY seq").fetchall()  # fmt: skip
    finally:
        conn.close()
    marks = {bar: i for i, (_, _, kind, _, bar) in enumerate(rows)
             if kind == EventKind.RISK_MARKS.value}  # fmt: skip
    first_verdict: dict[int, int] = {}
    for i, (_, _, kind, _, bar) in enumerate(rows):
        if kind == EventKind.RISK_DECISION.value:
            first_verdict.setdefault(bar, i)
    out: Counter[str] = Counter()
    for bar, v in first_verdict.items():
        m = marks.get(bar)
        if m is None:
            continue  # nothing to mark at that bar
        span = rows[m : v + 1]  # empty when a verdict came first: apart
        one = bool(span) and all(r[3] == "risk" and r[1] == rows[m][1] for r in span)
        out["with verdicts" if one else "apart"] += 1
    return out


def assert_journal_invariants(path: str | Path) -> dict[str, int]:
    """The fault-tolerance invariants, from the journal alone; returns counts by kind.

    - every order the broker accepted has an approving verdict journaled before it;
    - no order is filled beyond its quantity (once, for the whole of it, unless the
      broker's realism options split it into partial fills), and no fill id twice;
    - every fill of a non-stop order belongs to an accepted order;
    - risk marks a bar (its marks and breaker trips) before it decides any intent of it.
    """
    with Journal(path, readonly=True) as journal:
        marked: dict[int, int] = {}  # bar -> seq of its last mark or trip
        for entry in journal.read([EventKind.RISK_MARKS, EventKind.BREAKER_TRIPPED]):
            t = getattr(entry.event, "bar_index", None)
            if t is not None:
                marked[t] = entry.seq
        for entry in journal.read([EventKind.RISK_DECISION]):
            t = entry.event.bar_index  # type: ignore[attr-defined]
            assert marked.get(t, -1) < entry.seq, f"bar {t} decided before its marks: {entry}"
        verdicts: dict[str, tuple[int, RiskVerdict]] = {}
        accepted: dict[str, int] = {}
        filled: dict[str, float] = {}  # client_order_id -> shares filled
        ordered: dict[str, float] = {}  # client_order_id -> the order's quantity
        fill_ids: Counter[str] = Counter()
        kinds = [EventKind.RISK_DECISION, EventKind.ORDER_ACCEPTED, EventKind.ORDER_FILLED]
        for entry in journal.read(kinds):
            event = entry.event
            if isinstance(event, RiskVerdict):
                verdicts[event.client_order_id] = (entry.seq, event)
            elif isinstance(event, OrderAccepted):
                seq_v = verdicts.get(event.client_order_id)
                assert seq_v is not None, f"accepted without a verdict: {event}"
                assert seq_v[0] < entry.seq and seq_v[1].decision is not Decision.REJECTED
                assert seq_v[1].approved_qty == event.qty
                accepted[event.client_order_id] = entry.seq
            elif isinstance(event, OrderFilled):
                coid = event.client_order_id
                filled[coid] = filled.get(coid, 0.0) + abs(event.qty)
                ordered[coid] = abs(event.order_qty)
                fill_ids[event.fill_id] += 1
                if event.reason not in _STOPS:
                    assert event.client_order_id in accepted, f"fill of no accepted order: {event}"
        over = {c: (q, ordered[c]) for c, q in filled.items() if q > ordered[c] * (1 + 1e-12)}
        assert not over, f"filled beyond the order (filled, ordered): {list(over.items())[:3]}"
        assert max(fill_ids.values(), default=1) == 1, fill_ids.most_common(3)
        return {k.value: n for k, n in journal.counts_by_kind().items()}
