"""No restart resets a halt, a day-start equity, an equity peak, a loss streak or a verdict.

A live engine's events go through a real journal file (as the Risk actor would write them,
with the broker's ``bar_processed`` rows between them); a fresh engine rebuilt from that file
must equal the live one, and both must answer the next bar and the next orders identically.
A rebuild starts from the last ``RiskMarksSnapshot`` (``RiskEngine.from_journal``); the
independent reference is the full replay of every row with the snapshots left out.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from core.events import (
    BarProcessed,
    Decision,
    EventKind,
    KillMode,
    OrderIntent,
    RiskMark,
    RiskMarks,
    RiskMarksSnapshot,
    RiskVerdict,
    Scope,
    TradingState,
)
from core.journal import Entry, Journal
from core.risk import REBUILD_KINDS, RiskEngine, RiskLimits, RiskView
from core.risk.state import GLOBAL, strategy_scope
from tests.kit.risk import T0, intent

LIMITS = [
    RiskLimits(daily_loss_pct=3, max_drawdown_pct=6, max_consecutive_losses=2, cooldown_bars=2,
               stale_data_seconds=2 * 86_400, max_position_pct=20, max_orders_per_minute=3),
    RiskLimits(daily_loss_pct=5, daily_loss_state=TradingState.REDUCING, max_drawdown_pct=8,
               drawdown_state=TradingState.REDUCING, max_consecutive_losses=3, cooldown_bars=1,
               consecutive_losses_state=TradingState.REDUCING, max_gross_exposure_pct=50,
               strategies={"s2": {"daily_loss_pct": None, "max_consecutive_losses": 1}}),
    RiskLimits(max_order_notional=5_000, max_open_orders=2, max_leverage=1.0,
               restricted_symbols=["MSFT"]),
    RiskLimits(max_drawdown_pct=4, max_consecutive_losses=1, cooldown_bars=1,
               stale_data_seconds=86_400, stale_data_state=TradingState.REDUCING,
               max_orders_per_minute=2),
]  # fmt: skip
PRICES = {"AAPL": 100.0, "MSFT": 50.0}
SCOPES = ["global", "strategy:s1", "strategy:s2", "symbol:AAPL", "symbol:MSFT"]


class Harness:
    """A live engine whose every event is journaled like the actors would (broker + risk)."""

    def __init__(self, journal: Journal, limits: RiskLimits, snapshot_every: int = 500) -> None:
        self.snapshot_every = snapshot_every
        self.journal, self.engine = journal, RiskEngine(limits, snapshot_every=snapshot_every)
        self.bar_index, self.ts = -1, T0
        self.equity = {"s1": 100_000.0, "s2": 50_000.0}
        self.positions: dict[str, dict[str, float]] = {"s1": {}, "s2": {}}
        self.ids = itertools.count()
        self.sent: list[OrderIntent] = []

    def view(self) -> RiskView:
        return RiskView(positions={s: dict(p) for s, p in self.positions.items()},
                        equity=dict(self.equity), prices=dict(PRICES))  # fmt: skip

    def log(self, events: list[BaseModel], source: str = "risk") -> list[BaseModel]:
        if events:
            self.journal.append_many(events, source=source)
        return events

    def broker_bar(self, moves: list[float], hours: int) -> None:
        """The broker's half of a bar: equity moves, journaled as bar_processed."""
        self.bar_index += 1
        self.ts += timedelta(hours=hours)
        for sid, move in zip(sorted(self.equity), moves, strict=True):
            self.equity[sid] *= 1 + move
        done = BarProcessed(bar_index=self.bar_index, bar_ts=self.ts, equity=dict(self.equity),
                            cash=dict(self.equity))  # fmt: skip
        self.log([done], source="broker")

    def risk_bar(
        self, trades: list[tuple[str, float]], fresh: Mapping[str, bool]
    ) -> list[BaseModel]:
        prices = {s: (p if fresh[s] else math.nan) for s, p in PRICES.items()}
        return self.log(self.engine.on_bar(self.bar_index, self.ts, dict(self.equity),
                                           prices=prices, closed_trades=trades))  # fmt: skip

    def check(self, orders: list[OrderIntent]) -> list[RiskVerdict]:
        verdicts = self.engine.check(orders, self.view(), self.ts)
        self.log(list(verdicts))
        for order, v in zip(orders, verdicts, strict=True):
            if v.decision is not Decision.REJECTED and order not in self.sent:
                pos = self.positions.setdefault(order.strategy_id, {})
                pos[order.symbol] = pos.get(order.symbol, 0.0) + v.approved_qty
        self.sent += orders
        return verdicts

    def new_intent(self, strategy: str, symbol: str, qty: int) -> OrderIntent:
        coid, bar = f"h{next(self.ids)}", max(self.bar_index, 0)
        return intent(qty, strategy=strategy, symbol=symbol, price=PRICES[symbol], coid=coid,
                      bar=bar, ts=self.ts)  # fmt: skip

    def rebuilt(self, limits: RiskLimits) -> RiskEngine:
        """What a restarted actor builds: from the last marks snapshot on."""
        return RiskEngine.from_journal(self.journal, limits, snapshot_every=self.snapshot_every)

    def replayed(self, limits: RiskLimits) -> RiskEngine:
        """The reference: every row replayed, the marks snapshots left out."""
        rows = [e for e in self.journal.read(REBUILD_KINDS)
                if not isinstance(e.event, RiskMarksSnapshot)]  # fmt: skip
        return RiskEngine.rebuild(rows, limits, snapshot_every=self.snapshot_every)


def _no_snapshots(events: list[BaseModel]) -> list[BaseModel]:
    return [e for e in events if not isinstance(e, RiskMarksSnapshot)]


def _marks(engine: RiskEngine) -> RiskMarksSnapshot:
    """Every mark and the equities a day start is taken from (``snapshot()`` has no equities)."""
    return engine.marks.to_snapshot(0)


def test_halt_day_start_peak_streak_and_verdicts_survive_a_rebuild(tmp_path: Path) -> None:
    limits = RiskLimits(daily_loss_pct=5, max_drawdown_pct=20, max_consecutive_losses=3,
                        max_position_pct=50)  # fmt: skip
    with Journal(tmp_path / "j.db") as journal:
        h = Harness(journal, limits)
        h.broker_bar([0.0, 0.0], hours=0)  # bar 0, 2024-01-02: s1 100,000, s2 50,000
        h.risk_bar([], {"AAPL": True, "MSFT": True})
        h.broker_bar([0.10, 0.0], hours=1)  # bar 1, same day: s1 110,000 (its peak)
        h.risk_bar([("s1", -5.0), ("s1", -5.0)], {"AAPL": True, "MSFT": True})  # streak 2
        verdicts = h.check([h.new_intent("s1", "AAPL", 100), h.new_intent("s2", "AAPL", 300)])
        h.broker_bar([-0.0546, 0.0], hours=24)  # bar 2, next day: s1 110,000 x 0.9454 = 103,994
        # s1: day start 110,000 (bar 1's close); (110,000 - 103,994) / 110,000 = 5.46% >= 5%
        assert h.engine.states.state(strategy_scope("s1")) is TradingState.ACTIVE
        h.risk_bar([], {"AAPL": True, "MSFT": True})
        assert h.engine.states.state(strategy_scope("s1")) is TradingState.HALTED
        h.log(h.engine.kill("symbol:MSFT", KillMode.REDUCE, by="op"))
        h.log([h.engine.set_limits(limits.model_copy(update={"max_position_pct": 40}), by="op")])

        rebuilt = h.rebuilt(limits)
        assert rebuilt.snapshot() == h.engine.snapshot()
        assert rebuilt.states.state(strategy_scope("s1")) is TradingState.HALTED
        day2 = (T0 + timedelta(days=1)).date()
        # 100,000 x 1.10 in floats is 110,000.00000000001: approx for the hand number only;
        # live and rebuilt are compared exactly above
        assert rebuilt.marks.day_start[strategy_scope("s1")] == (day2, pytest.approx(110_000.0))
        assert rebuilt.marks.peak[strategy_scope("s1")] == pytest.approx(110_000.0)
        assert rebuilt.marks.streak == {"s1": 2}
        assert rebuilt.limits.max_position_pct == 40
        assert [rebuilt.verdict_for(v.client_order_id) for v in verdicts] == verdicts

        # the next bar, same inputs: the same events from both (still halted, same day start)
        h.broker_bar([-0.01, 0.0], hours=1)
        live_events = h.risk_bar([("s1", -1.0)], {"AAPL": True, "MSFT": True})
        rebuilt_events = rebuilt.on_bar(h.bar_index, h.ts, dict(h.equity), prices=PRICES,
                                        closed_trades=[("s1", -1.0)])  # fmt: skip
        assert rebuilt_events == live_events
        assert rebuilt.snapshot() == h.engine.snapshot()


def test_a_version_1_journal_of_one_row_a_mark_rebuilds_the_same_marks(tmp_path: Path) -> None:
    # Schema version 1 journaled each mark as its own risk_mark row; version 2 journals a bar's
    # marks as one risk_marks row. The same history written both ways rebuilds one engine.
    limits = RiskLimits(daily_loss_pct=5, max_drawdown_pct=20, max_consecutive_losses=3)
    with Journal(tmp_path / "v2.db") as v2, Journal(tmp_path / "v1.db") as v1:
        h = Harness(v2, limits)
        for moves, trades, hours in [([0.0, 0.0], [], 0), ([0.04, -0.01], [("s1", -2.0)], 1),
                                     ([-0.02, 0.03], [("s2", -1.0)], 24),
                                     ([0.01, 0.01], [("s1", 3.0)], 24)]:  # fmt: skip
            h.broker_bar(moves, hours=hours)
            h.risk_bar(trades, {"AAPL": True, "MSFT": True})
        for entry in v2.read():
            split = entry.event.marks if isinstance(entry.event, RiskMarks) else [entry.event]
            source = "broker" if isinstance(entry.event, BarProcessed) else "risk"
            v1.append_many(list(split), source=source)
        assert sum(isinstance(e.event, RiskMark) for e in v1.read()) > 4  # one row a mark
        legacy = RiskEngine.rebuild(v1.read(REBUILD_KINDS), limits)
        assert legacy.snapshot() == h.rebuilt(limits).snapshot() == h.engine.snapshot()
    assert legacy.marks.streak == {"s1": 0, "s2": 1}  # s1: a loss, then a win; s2: a loss
    # s2's peak: 50,000 at bar 0, then x 0.99 (lower), x 1.03 and x 1.01 (each a new peak)
    peak = 50_000.0 * (1 - 0.01) * (1 + 0.03) * (1 + 0.01)
    assert legacy.marks.peak[strategy_scope("s2")] == peak


@pytest.mark.parametrize("every", [1, 2, 500], ids=lambda n: f"snapshot every {n}")
def test_a_crash_between_the_brokers_bar_and_risks_bar_loses_no_day_start(
    tmp_path: Path, every: int
) -> None:
    # The broker journals bar_processed(t) before risk.on_bar(t). If risk dies in between, the
    # rebuilt engine must still take day t's start equity from bar t-1, not from bar t (with
    # a snapshot at bar t-1: from the snapshot's equities, then bar t's row).
    limits = RiskLimits(daily_loss_pct=5)
    with Journal(tmp_path / "j.db") as journal:
        h = Harness(journal, limits, snapshot_every=every)
        h.broker_bar([0.0, 0.0], hours=0)
        h.risk_bar([], {"AAPL": True, "MSFT": True})
        h.broker_bar([0.02, 0.0], hours=24)  # day 2 closes with s1 at 102,000
        h.risk_bar([], {"AAPL": True, "MSFT": True})
        h.broker_bar([-0.06, 0.0], hours=24)  # day 3: s1 102,000 x 0.94 = 95,880
        crashed = h.rebuilt(limits)  # risk died here: bar 3 is journaled by the broker only
        live = h.risk_bar([], {"AAPL": True, "MSFT": True})
        after = crashed.on_bar(h.bar_index, h.ts, dict(h.equity), prices=PRICES)
        assert after == live
        # s1's day 3 started at 102,000: (102,000 - 95,880) / 102,000 = 6% -> halted in both
        assert crashed.states.state(strategy_scope("s1")) is TradingState.HALTED
        assert crashed.marks.day_start[strategy_scope("s1")][1] == 102_000.0


@pytest.mark.parametrize("every", [1, 500], ids=lambda n: f"snapshot every {n}")
def test_a_replayed_bar_after_a_rebuild_is_not_counted_twice(tmp_path: Path, every: int) -> None:
    limits = RiskLimits(max_consecutive_losses=3)
    with Journal(tmp_path / "j.db") as journal:
        h = Harness(journal, limits, snapshot_every=every)
        h.broker_bar([0.0, 0.0], hours=0)
        h.risk_bar([("s1", -1.0), ("s1", -1.0)], {"AAPL": True, "MSFT": True})
        rebuilt = h.rebuilt(limits)
        # the feed re-drives bar 0 after the restart: its trades must not count again
        assert rebuilt.on_bar(0, h.ts, dict(h.equity), closed_trades=[("s1", -1.0)] * 2) == []
        assert rebuilt.marks.streak == {"s1": 2}
        assert rebuilt.states.state(GLOBAL) is TradingState.ACTIVE


# ------------------------------------------------------------------ property: any sequence
# meaningful equity moves: hypothesis floats favour 0 and tiny values, which trip nothing
_move = st.sampled_from([-0.06, -0.035, -0.01, 0.0, 0.005, 0.02, 0.05])
_trade = st.tuples(st.sampled_from(["s1", "s2"]), st.floats(-50, 50, allow_nan=False))
_order = st.tuples(st.sampled_from(["s1", "s2"]), st.sampled_from(["AAPL", "MSFT"]),
                   st.integers(-300, 300).filter(bool))  # fmt: skip
_bar = st.tuples(st.just("bar"), st.lists(_move, min_size=2, max_size=2),
                 st.lists(_trade, max_size=3), st.booleans(), st.booleans(),
                 st.sampled_from([1, 6, 24, 72]))  # fmt: skip
OPS = st.one_of(
    _bar, _bar, _bar,  # bars weigh three times: breakers need several in a row
    st.tuples(st.just("kill"), st.sampled_from(SCOPES), st.sampled_from(list(KillMode)),
              st.booleans()),
    st.tuples(st.just("resume"), st.sampled_from(SCOPES)),
    st.tuples(st.just("limits"), st.integers(0, len(LIMITS) - 1)),
    st.tuples(st.just("check"), st.lists(_order, min_size=1, max_size=4)),
    st.tuples(st.just("resubmit"), st.integers(0, 1_000)),
)  # fmt: skip


def _run(h: Harness, op: tuple) -> None:
    match op:
        case ("bar", moves, trades, aapl, msft, hours):
            h.broker_bar(moves, hours)
            h.risk_bar(trades, {"AAPL": aapl, "MSFT": msft})
        case ("kill", scope, mode, flatten):
            h.log(h.engine.kill(scope, mode, flatten=flatten, by="op"))
            if flatten:
                plan = h.engine.flatten_orders(
                    Scope.parse(scope), h.view(), bar_index=max(h.bar_index, 0), bar_ts=h.ts
                )
                h.check(list(plan.close))
        case ("resume", scope):
            h.log(h.engine.resume(scope, by="op"))
        case ("limits", k):
            h.log([h.engine.set_limits(LIMITS[k], by="op")])
        case ("check", orders):
            h.check([h.new_intent(s, sym, q) for s, sym, q in orders])
        case ("resubmit", k) if h.sent:
            h.check([h.sent[k % len(h.sent)]])


@pytest.mark.parametrize("limits", LIMITS, ids=["loss", "reducing", "exposure", "fast"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(OPS, min_size=1, max_size=30), every=st.sampled_from([1, 2, 3, 500]))
def test_an_engine_rebuilt_from_the_journal_equals_the_live_one(
    ops: list[tuple], every: int, limits: RiskLimits
) -> None:
    with tempfile.TemporaryDirectory() as tmp, Journal(Path(tmp) / "j.db") as journal:
        h = Harness(journal, limits, snapshot_every=every)
        for op in ops:
            _run(h, op)
        rebuilt, replayed = h.rebuilt(limits), h.replayed(limits)
        assert rebuilt.snapshot() == replayed.snapshot() == h.engine.snapshot()
        assert _marks(rebuilt) == _marks(replayed) == _marks(h.engine)
        # and they behave the same from here: one more bar (every symbol fresh, so the
        # unjournaled stale-data clocks restart alike), then the same orders
        h.broker_bar([-0.04, 0.03], hours=24)
        ts: datetime = h.ts
        args = (h.bar_index, ts, dict(h.equity))
        kwargs = {"prices": PRICES, "closed_trades": [("s1", -1.0)]}
        rebuilt_events = rebuilt.on_bar(*args, **kwargs)  # type: ignore[arg-type]
        replayed_events = replayed.on_bar(*args, **kwargs)  # type: ignore[arg-type]
        live_events = h.risk_bar([("s1", -1.0)], {"AAPL": True, "MSFT": True})
        assert rebuilt_events == live_events  # the next snapshot is due alike
        assert _no_snapshots(replayed_events) == _no_snapshots(live_events)
        orders = [h.new_intent("s1", "AAPL", 150), h.new_intent("s2", "MSFT", -80)]
        if h.sent:
            orders.append(h.sent[0])  # a resubmission gets its recorded verdict from both
        assert rebuilt.check(orders, h.view(), ts) == h.check(orders)
        assert rebuilt.snapshot() == h.engine.snapshot()


class CountingJournal(Journal):
    """A real journal that counts the rows its reads hand out."""

    rows_read = 0

    def read(self, *args: Any, **kwargs: Any) -> Iterator[Entry]:
        for entry in super().read(*args, **kwargs):
            self.rows_read += 1
            yield entry


def test_a_restart_reads_the_marks_of_the_bars_after_the_last_snapshot_only(
    tmp_path: Path,
) -> None:
    # 95 daily bars, a snapshot every 20 (bars 19, 39, 59, 79), a loss streak, a drawdown
    # halt and one verdict: the rebuild reads the snapshot of bar 79, the 15 bar_processed
    # and 15 risk_marks rows of bars 80-94 (a daily bar starts a day for every scope: one
    # risk_marks row a bar), and every row of the other kinds (the trip, its state change,
    # the verdict), and equals the full replay.
    limits = RiskLimits(max_drawdown_pct=8, max_consecutive_losses=5)
    with CountingJournal(tmp_path / "j.db") as journal:
        h = Harness(journal, limits, snapshot_every=20)
        h.check([h.new_intent("s1", "AAPL", 10)])
        for i in range(95):
            h.broker_bar([-0.01 if i in range(60, 70) else 0.002, 0.001], hours=24)
            h.risk_bar([("s2", -1.0)] if i % 30 == 7 else [], {"AAPL": True, "MSFT": True})
        snapshots = [e.event.bar_index for e in journal.read([EventKind.RISK_MARKS_SNAPSHOT])]
        assert snapshots == [19, 39, 59, 79]
        assert h.engine.states.state(strategy_scope("s1")) is TradingState.HALTED  # drawdown
        others = [EventKind.BREAKER_TRIPPED, EventKind.TRADING_STATE_CHANGED,
                  EventKind.RISK_DECISION]  # fmt: skip
        n_others = sum(1 for _ in journal.read(others))
        assert n_others >= 3
        journal.rows_read = 0
        rebuilt = h.rebuilt(limits)
        assert journal.rows_read == 1 + 15 + 15 + n_others
        full = h.replayed(limits)
        assert rebuilt.snapshot() == full.snapshot() == h.engine.snapshot()
        assert _marks(rebuilt) == _marks(full)
        assert rebuilt.marks.streak == {"s2": 3}  # losing trades on bars 7, 37 and 67
