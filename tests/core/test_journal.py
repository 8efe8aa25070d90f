"""The event journal: schema, idempotent appends, atomic batches, typed reads, aggregates,
several writer processes, and a writer killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.errors import JournalError
from core.events import (
    BarDone,
    BarProcessed,
    BarQuarantined,
    BreakerTripped,
    BrokerRejectReason,
    Decision,
    DropReason,
    EventKind,
    FillReason,
    IntentDropped,
    KillMode,
    KillSwitchEngaged,
    KillSwitchReleased,
    LimitsChanged,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    RiskMark,
    RiskMarkKind,
    RiskMarks,
    RiskMarksSnapshot,
    RiskReason,
    RiskVerdict,
    Scope,
    StrategyLaunched,
    StrategyState,
    StrategyStateChanged,
    TradingState,
    TradingStateChanged,
)
from core.journal import (
    EVENT_MODELS,
    SCHEMA_VERSION,
    Appended,
    Approval,
    Journal,
    kind_of,
    natural_key,
)
from core.types import BadBarRule
from tests.kit.journal_worker import fill
from tests.kit.risk import T0, intent

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    j = Journal(tmp_path / "journal.db")
    yield j
    j.close()


def verdict(
    coid: str, decision: Decision = Decision.APPROVED, qty: float = 10.0, **kw
) -> RiskVerdict:
    reasons = () if decision is Decision.APPROVED else (RiskReason.MAX_POSITION,)
    approved = 0.0 if decision is Decision.REJECTED else qty
    return RiskVerdict(
        client_order_id=coid, strategy_id=kw.get("strategy", "s1"), symbol="AAPL",
        decision=decision, requested_qty=qty, approved_qty=approved, reasons=reasons,
        bar_index=kw.get("bar", 0), decided_at=T0,
    )  # fmt: skip


def order_fill(
    coid: str, n: int, qty: float, order_qty: float, price: float = 100.0,
    reason: FillReason = FillReason.SIGNAL, bar: int = 1,
) -> OrderFilled:
    return OrderFilled(
        fill_id=f"{coid}:{n}", client_order_id=coid, strategy_id="s1", symbol="AAPL", qty=qty,
        price=price, commission=1.0, reason=reason, bar_index=bar, bar_ts=T0,
        order_qty=order_qty,
    )  # fmt: skip


def one_of_each() -> list:
    """A sample event of every kind, in EventKind order."""
    g = Scope.parse("global")
    return [
        BarQuarantined(symbol="AAPL", bar_index=3, bar_ts=T0, rule=BadBarRule.NOT_FINITE),
        BarProcessed(bar_index=3, bar_ts=T0, equity={"s1": 1.5}, cash={"s1": 0.5}),
        BarDone(bar_index=3, bar_ts=T0),
        verdict("v1"),
        IntentDropped(intent=intent(5, coid="d1"), why=DropReason.RISK_DOWN),
        OrderAccepted(client_order_id="o1", strategy_id="s1", symbol="AAPL", qty=5,
                      reason=FillReason.SIGNAL, bar_index=3),
        OrderRejected(client_order_id="o2", strategy_id="s1", symbol="AAPL", qty=5,
                      reason=BrokerRejectReason.INSUFFICIENT_CASH, bar_index=3),
        OrderCanceled(client_order_id="o3", strategy_id="s1", symbol="AAPL", remaining_qty=5,
                      why="kill", bar_index=3),
        order_fill("o1", 0, 5, 5),
        TradingStateChanged(scope=g, old=TradingState.ACTIVE, new=TradingState.HALTED, by="op"),
        BreakerTripped(scope=g, breaker=RiskReason.DRAWDOWN, value=12.0, limit=10.0,
                       new_state=TradingState.HALTED, bar_index=3),
        KillSwitchEngaged(scope=g, mode=KillMode.HALT, flatten=True, by="op"),
        KillSwitchReleased(scope=g, by="op"),
        LimitsChanged(limits={"max_position_pct": 10.0}, by="op"),
        RiskMark(kind=RiskMarkKind.PEAK, scope=g, value=1.5, bar_index=3, day=date(2024, 1, 2)),
        RiskMarks(bar_index=3, day=date(2024, 1, 2), marks=(RiskMark(
            kind=RiskMarkKind.PEAK, scope=g, value=1.5, bar_index=3, day=date(2024, 1, 2)),)),
        RiskMarksSnapshot(bar_index=3, day_start={"global": (date(2024, 1, 2), 1.0)},
                          peak={"global": 1.5, "strategy:s1": 1.5}, streak={"s1": 2},
                          seen={"global": ((2, 1.0), (3, 1.5))}),
        StrategyStateChanged(strategy_id="s1", old=None, new=StrategyState.RUNNING),
        StrategyLaunched(strategy_id="s2", config={"id": "s2", "strategy": "sma_crossover",
                         "symbols": ["AAPL"]}, by="op"),
    ]  # fmt: skip


# ------------------------------------------------------------------ schema and file
def test_fresh_file_gets_schema_version_wal_and_normal_sync(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    Journal(path).close()
    raw = sqlite3.connect(path)
    found = raw.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    assert found == (str(SCHEMA_VERSION),) == ("3",)
    assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    raw.close()
    j = Journal(path)  # reopening an existing journal keeps it as it is
    assert j._conn.execute("PRAGMA synchronous").fetchone() == (1,)  # 1 = NORMAL
    assert j._conn.execute("PRAGMA busy_timeout").fetchone() == (10_000,)
    j.close()


def test_synchronous_full_is_an_option_and_a_typo_is_refused(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db", synchronous="FULL")
    assert j._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # 2 = FULL
    j.close()
    with pytest.raises(ValueError, match="synchronous"):
        Journal(tmp_path / "j.db", synchronous="OFF")  # type: ignore[arg-type]


def test_a_version_1_file_is_read_as_it_is_and_upgraded_by_a_writer(tmp_path: Path) -> None:
    # version 1 wrote each risk mark as its own risk_mark row; versions 2 and 3 only add kinds
    path, g, day = tmp_path / "j.db", Scope.parse("global"), date(2024, 1, 2)
    old = RiskMark(kind=RiskMarkKind.PEAK, scope=g, value=1.5, bar_index=3, day=day)
    with Journal(path) as j:
        j.append(old, source="risk")
    raw = sqlite3.connect(path)
    raw.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    raw.commit()

    def version() -> str:
        return raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]

    with Journal(path, readonly=True) as reader:  # a reader changes nothing
        assert [e.event for e in reader.read([EventKind.RISK_MARK])] == [old]
    assert version() == "1"
    with Journal(path) as writer:  # a writer may add rows version 1 cannot read: upgraded
        new = RiskMarks(bar_index=4, day=day, marks=(old.model_copy(update={"bar_index": 4}),))
        writer.append(new, source="risk")
        assert [e.event for e in writer.read([EventKind.RISK_MARK, EventKind.RISK_MARKS])] == [
            old, new,
        ]  # fmt: skip
    assert version() == "3"
    raw.close()


def test_risk_marks_hold_the_marks_of_their_own_bar_only() -> None:
    day, g = date(2024, 1, 2), Scope.parse("global")
    mark = RiskMark(kind=RiskMarkKind.DAY_START, scope=g, value=1.0, bar_index=3, day=day)
    with pytest.raises(ValidationError, match=r"day_start of global is for bar 3 .* not bar 4"):
        RiskMarks(bar_index=4, day=day, marks=(mark,))
    with pytest.raises(ValidationError, match="not bar 3 on 2024-01-03"):
        RiskMarks(bar_index=3, day=date(2024, 1, 3), marks=(mark,))
    with pytest.raises(ValidationError, match="at least 1 item"):
        RiskMarks(bar_index=3, day=day, marks=())


def test_a_version_2_file_is_upgraded_by_a_writer_and_takes_a_marks_snapshot(
    tmp_path: Path,
) -> None:
    path, day = tmp_path / "j.db", date(2024, 1, 2)
    Journal(path).close()
    raw = sqlite3.connect(path)
    raw.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    raw.commit()
    snap = RiskMarksSnapshot(bar_index=9, day_start={"global": (day, 1.0)}, peak={"global": 2.0},
                             streak={"s1": 1}, seen={"global": ((8, 1.5), (9, 1.25))})  # fmt: skip
    with Journal(path) as writer:
        writer.append(snap, source="risk")
        assert [e.event for e in writer.read([EventKind.RISK_MARKS_SNAPSHOT])] == [snap]
    assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)
    raw.close()


def test_a_marks_snapshot_names_a_bad_scope_or_value() -> None:
    day = date(2024, 1, 2)
    with pytest.raises(ValidationError, match=r"peak\['strategy:'\] is not a scope"):
        RiskMarksSnapshot(bar_index=1, day_start={}, peak={"strategy:": 1.0}, streak={}, seen={})
    with pytest.raises(ValidationError, match=r"day_start\['bogus'\] is not a scope"):
        RiskMarksSnapshot(bar_index=1, day_start={"bogus": (day, 1.0)}, peak={}, streak={},
                          seen={})  # fmt: skip
    with pytest.raises(ValidationError, match=r"seen\['global'\] must be a finite number"):
        RiskMarksSnapshot(bar_index=1, day_start={}, peak={}, streak={},
                          seen={"global": ((0, float("nan")),)})  # fmt: skip
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        RiskMarksSnapshot(bar_index=1, day_start={}, peak={}, streak={"s1": -1}, seen={})
    with pytest.raises(ValidationError, match=r"streak\['a b'\] is not a scope"):
        RiskMarksSnapshot(bar_index=1, day_start={}, peak={}, streak={"a b": 1}, seen={})


def test_newer_schema_version_is_refused_naming_file_and_both_versions(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    Journal(path).close()
    raw = sqlite3.connect(path)
    raw.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()
    with pytest.raises(JournalError) as err:
        Journal(path)
    assert str(path) in str(err.value)
    assert "'4'" in str(err.value) and "reads versions 1, 2, 3" in str(err.value)
    assert err.value.path == str(path)


def test_a_foreign_sqlite_file_or_garbage_is_not_a_journal(tmp_path: Path) -> None:
    foreign = tmp_path / "other.db"
    raw = sqlite3.connect(foreign)
    raw.execute("CREATE TABLE t (x)")
    raw.commit()
    raw.close()
    with pytest.raises(JournalError, match="not a raytrader journal"):
        Journal(foreign)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(JournalError, match=str(garbage)):
        Journal(garbage)


def test_rows_are_append_only(journal: Journal) -> None:
    journal.append(BarDone(bar_index=0, bar_ts=T0), source="feed")
    raw = sqlite3.connect(journal.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("UPDATE events SET source = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("DELETE FROM events")
    raw.close()


def test_readonly_reads_but_cannot_write_and_needs_an_existing_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path) as j:
        j.append(BarDone(bar_index=0, bar_ts=T0), source="feed")
    reader = Journal(path, readonly=True)
    assert [e.kind for e in reader.read()] == [EventKind.BAR_DONE]
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.append(BarDone(bar_index=1, bar_ts=T0), source="feed")
    reader.close()
    with pytest.raises(JournalError):
        Journal(tmp_path / "missing.db", readonly=True)


# ------------------------------------------------------------------ models and columns
def test_every_event_kind_has_a_model_and_round_trips(journal: Journal) -> None:
    assert set(EVENT_MODELS) == set(EventKind)
    events = one_of_each()
    assert [kind_of(e) for e in events] == list(EventKind)
    journal.append_many(events, source="test")
    back = list(journal.read())
    assert [e.kind for e in back] == list(EventKind)
    assert [e.event for e in back] == events
    assert [e.seq for e in back] == list(range(1, len(events) + 1))


def test_kind_of_refuses_a_non_event() -> None:
    with pytest.raises(TypeError, match="OrderIntent is not a journal event model"):
        kind_of(intent(1))


def test_columns_come_from_the_model_the_intent_or_the_scope(journal: Journal) -> None:
    journal.append(IntentDropped(intent=intent(5, coid="d1", strategy="s9", bar=7),
                                 why=DropReason.BUFFER_FULL), source="strategy:s9")  # fmt: skip
    for scope in ("strategy:s2", "symbol:MSFT"):
        halt = TradingStateChanged(
            scope=Scope.parse(scope), old=TradingState.ACTIVE, new=TradingState.HALTED, by="op"
        )
        journal.append(halt, source="risk")
    rows = journal._conn.execute(
        "SELECT source, strategy, symbol, client_order_id, bar_index FROM events ORDER BY seq"
    ).fetchall()
    assert rows == [
        ("strategy:s9", "s9", "AAPL", "d1", 7),
        ("risk", "s2", None, None, None),
        ("risk", None, "MSFT", None, None),
    ]


# ------------------------------------------------------------------ appends
def test_retried_append_is_a_noop_reporting_the_existing_seq(journal: Journal) -> None:
    f = order_fill("o1", 0, 5, 5)
    assert journal.append(f, source="broker") == Appended(1, False)
    assert journal.append(f, source="broker") == Appended(1, True)
    assert natural_key(f) == "fill:o1:0"
    assert journal.max_seq() == 1


def test_dedup_none_disables_and_an_explicit_key_overrides(journal: Journal) -> None:
    ev = KillSwitchReleased(scope=Scope.parse("global"), by="op")
    assert natural_key(ev) is None  # two resumes are two facts
    assert journal.append(ev, source="risk").duplicate is False
    assert journal.append(ev, source="risk").duplicate is False
    done = BarDone(bar_index=1, bar_ts=T0)
    assert journal.append(done, source="feed", dedup_key=None).duplicate is False
    assert journal.append(done, source="feed", dedup_key=None).duplicate is False
    assert journal.append(done, source="feed", dedup_key="mine").duplicate is False
    assert journal.append(done, source="feed", dedup_key="mine") == Appended(5, True)
    assert journal.counts_by_kind() == {EventKind.KILL_SWITCH_RELEASED: 2, EventKind.BAR_DONE: 3}


def test_append_many_reports_duplicates_inside_the_batch_and_against_the_file(
    journal: Journal,
) -> None:
    a, b = order_fill("o1", 0, 1, 2), order_fill("o1", 1, 1, 2)
    journal.append(a, source="broker")
    out = journal.append_many([a, b, b], source="broker")
    assert out == [Appended(1, True), Appended(2, False), Appended(2, True)]
    assert journal.max_seq() == 2


def test_a_batch_failing_midway_leaves_nothing_and_the_journal_usable(
    journal: Journal,
) -> None:
    # A trigger that aborts the third insert: the failure happens inside the transaction.
    raw = sqlite3.connect(journal.path)
    raw.execute("CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.dedup_key = 'poison' "
                "BEGIN SELECT RAISE(ABORT, 'boom'); END")  # fmt: skip
    raw.commit()
    raw.close()
    batch = [BarDone(bar_index=1, bar_ts=T0), BarDone(bar_index=2, bar_ts=T0),
             BarDone(bar_index=3, bar_ts=T0)]  # fmt: skip
    with pytest.raises(sqlite3.IntegrityError, match="boom"):
        journal.append_many(batch, source="feed", dedup_keys=["a", "b", "poison"])
    assert journal.max_seq() == 0
    assert list(journal.read()) == []
    assert journal.append_many(batch[:2], source="feed") == [Appended(1, False), Appended(2, False)]


def test_a_bad_event_is_refused_before_anything_is_written(journal: Journal) -> None:
    with pytest.raises(TypeError):
        journal.append_many([BarDone(bar_index=1, bar_ts=T0), intent(1)], source="x")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="2 events but 1 dedup keys"):
        journal.append_many([BarDone(bar_index=1, bar_ts=T0)] * 2, source="x", dedup_keys=[None])
    assert journal.max_seq() == 0


def test_threads_sharing_one_journal_lose_nothing(journal: Journal) -> None:
    def work(tag: str) -> None:
        for i in range(100):
            journal.append(fill(tag, i), source=tag)

    threads = [threading.Thread(target=work, args=(f"t{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert journal.counts_by_kind() == {EventKind.ORDER_FILLED: 400}  # 4 threads x 100


def test_a_transaction_orders_another_writer_after_what_it_read_and_wrote(
    tmp_path: Path,
) -> None:
    # Risk reads the strategies' states and journals its verdicts in one transaction: a
    # writer that commits while it is open (a host journaling its stop) lands after it.
    path = tmp_path / "j.db"
    with Journal(path) as risk, Journal(path) as host:
        landed: list[Appended] = []
        stop = StrategyStateChanged(strategy_id="s", old=StrategyState.RUNNING,
                                    new=StrategyState.STOPPED, by="ops")  # fmt: skip
        writer = threading.Thread(target=lambda: landed.append(host.append(stop, source="h")))
        with risk.transaction():
            assert risk.last(EventKind.STRATEGY_STATE_CHANGED) is None
            writer.start()
            time.sleep(0.2)  # the host's append waits for the write lock meanwhile
            assert not landed
            first = risk.append(BarDone(bar_index=1, bar_ts=T0), source="risk")
        writer.join(5)
        assert first == Appended(1, False) and landed == [Appended(2, False)]


def test_an_exception_in_a_transaction_rolls_back_its_appends(journal: Journal) -> None:
    with pytest.raises(RuntimeError, match="decide failed"), journal.transaction():
        journal.append_many([BarDone(bar_index=1, bar_ts=T0)], source="risk")
        raise RuntimeError("decide failed")
    assert journal.max_seq() == 0
    assert journal.append(BarDone(bar_index=1, bar_ts=T0), source="risk") == Appended(1, False)


# ------------------------------------------------------------------ reads
def test_read_filters_and_pages_in_seq_order(journal: Journal) -> None:
    # 2,500 fills over two strategies: more than two read pages of 1,000.
    journal.append_many([fill("a" if i % 2 else "b", i) for i in range(2500)], source="broker")
    everything = list(journal.read())
    assert [e.seq for e in everything] == list(range(1, 2501))
    only_a = list(journal.read(strategy="a"))
    assert len(only_a) == 1250 and all(e.event.strategy_id == "a" for e in only_a)
    assert [e.seq for e in journal.read(since_seq=2490)] == list(range(2491, 2501))
    assert len(list(journal.read(limit=1500))) == 1500
    assert len(list(journal.read(limit=0))) == 0
    assert [e.seq for e in journal.read(client_order_id="a-7")] == [8]
    assert [e.seq for e in journal.read(bar_index=7)] == [8]
    assert list(journal.read(kinds=[])) == []
    assert list(journal.read(kinds=[EventKind.BAR_DONE])) == []


def test_approval_reads_the_checked_fields_exactly(journal: Journal) -> None:
    # The broker's approval check reads four fields of a decision from its JSON. Quantities
    # whose decimal form is long must come back as the same float (compared with ==, to the
    # very float the verdict held: 0.1 + 0.2 is 0.30000000000000004, 1/3 has 16 digits).
    cut = verdict("m", Decision.MODIFIED, qty=1 / 3)
    journal.append_many(
        [verdict("a", qty=0.1 + 0.2), cut, verdict("r", Decision.REJECTED, strategy="s2")],
        source="risk",
    )
    assert journal.approval("a") == Approval("approved", "s1", "AAPL", 0.1 + 0.2)
    assert journal.approval("m") == Approval("modified", "s1", "AAPL", cut.approved_qty)
    assert journal.approval("m").approved_qty == 1 / 3  # type: ignore[union-attr]
    assert journal.approval("r") == Approval("rejected", "s2", "AAPL", 0.0)
    assert journal.approval("nobody") is None
    read, typed = journal.approval("a"), journal.verdict("a")
    assert read is not None and typed is not None and read.approved_qty == typed.approved_qty


def test_rebuild_helpers(journal: Journal) -> None:
    journal.append_many(
        [verdict("o1"), order_fill("o1", 0, 10, 10),
         BarDone(bar_index=4, bar_ts=T0), BarDone(bar_index=9, bar_ts=T0),
         StrategyStateChanged(strategy_id="s1", old=None, new=StrategyState.RUNNING),
         StrategyStateChanged(strategy_id="s1", old=StrategyState.RUNNING,
                              new=StrategyState.FAILED, error="boom", traceback="tb"),
         StrategyStateChanged(strategy_id="s2", old=None, new=StrategyState.RUNNING)],
        source="test",
    )  # fmt: skip
    assert [f.fill_id for f in journal.fills()] == ["o1:0"]
    assert journal.fills(strategy="nobody") == []
    assert journal.verdict("o1") == verdict("o1")
    assert journal.verdict("o2") is None
    assert journal.max_bar(EventKind.BAR_DONE) == 9
    assert journal.max_bar(EventKind.BAR_PROCESSED) is None
    last = journal.last(EventKind.STRATEGY_STATE_CHANGED, strategy="s1")
    assert last is not None and last.event.new is StrategyState.FAILED and last.seq == 6
    assert journal.last(EventKind.ORDER_CANCELED) is None
    # seqs by hand: the seven rows above are 1..7 in the order appended
    assert journal.max_seq(EventKind.STRATEGY_STATE_CHANGED) == 7
    assert journal.max_seq(EventKind.BAR_DONE) == 4
    assert journal.max_seq(EventKind.ORDER_CANCELED) == 0
    assert journal.max_seq() == 7


def test_orders_fold_decision_and_latest_status(journal: Journal) -> None:
    rej_reasons = (RiskReason.MAX_POSITION,)
    journal.append_many(
        [
            verdict("full", qty=10), verdict("part", qty=10), verdict("gone", qty=10),
            verdict("brk", qty=10), verdict("risk", Decision.REJECTED, qty=10),
            *[OrderAccepted(client_order_id=c, strategy_id="s1", symbol="AAPL", qty=10,
                            reason=FillReason.SIGNAL, bar_index=0)
              for c in ("full", "part", "gone", "brk")],
            order_fill("full", 0, 4, 10, price=100.0), order_fill("full", 1, 6, 10, price=110.0),
            order_fill("part", 0, 4, 10),
            OrderCanceled(client_order_id="gone", strategy_id="s1", symbol="AAPL",
                          remaining_qty=10, why="kill", bar_index=1),
            OrderRejected(client_order_id="brk", strategy_id="s1", symbol="AAPL", qty=10,
                          reason=BrokerRejectReason.INSUFFICIENT_CASH, bar_index=1),
        ],
        source="test",
    )  # fmt: skip
    rows = {r.client_order_id: r for r in journal.orders()}
    assert list(rows) == ["full", "part", "gone", "brk", "risk"]  # first-seen order
    assert rows["full"].status is OrderStatus.FILLED and rows["full"].filled_qty == 10
    # avg price = (4 x 100 + 6 x 110) / 10 = 106; commission 1 per fill
    assert rows["full"].avg_price == pytest.approx(106.0) and rows["full"].commission == 2.0
    assert rows["part"].status is OrderStatus.PARTIALLY_FILLED and rows["part"].filled_qty == 4
    assert rows["gone"].status is OrderStatus.CANCELED
    assert rows["brk"].status is OrderStatus.REJECTED and rows["brk"].avg_price is None
    assert rows["risk"].status is None and rows["risk"].decision is Decision.REJECTED
    assert rows["risk"].reasons == rej_reasons and rows["risk"].approved_qty == 0
    assert journal.orders(strategy="other") == []


def test_orders_fold_says_what_sent_each_order_and_why_it_ended(journal: Journal) -> None:
    """The reason, quantity, bar and detail of each kind of order, from its rows alone: a stop
    exit has only its fill (no verdict, no acceptance), a flatten its acceptance's reason."""
    accepted = [OrderAccepted(client_order_id=c, strategy_id="s1", symbol="AAPL", qty=q,
                              reason=r, bar_index=2)
                for c, q, r in (("flat", -30, FillReason.FLATTEN), ("old", 10, FillReason.SIGNAL),
                                ("poor", 10, FillReason.SIGNAL))]  # fmt: skip
    cut = RiskVerdict(client_order_id="cut", strategy_id="s1", symbol="AAPL",
                      decision=Decision.REJECTED, requested_qty=10, approved_qty=0,
                      reasons=(RiskReason.PRICE_COLLAR,), detail="price 20% off", bar_index=2)
    journal.append_many(
        [
            order_fill("stop-1", 1, -25, -25, reason=FillReason.STOP_LOSS, bar=7),
            verdict("flat", qty=-30, bar=2), verdict("old", bar=2), verdict("poor", bar=2), cut,
            *accepted,
            order_fill("flat", 1, -12, -30, reason=FillReason.FLATTEN, bar=3),
            order_fill("old", 1, 4, 10, bar=3),
            OrderCanceled(client_order_id="old", strategy_id="s1", symbol="AAPL",
                          remaining_qty=6, why="replaced", bar_index=4),
            OrderRejected(client_order_id="poor", strategy_id="s1", symbol="AAPL", qty=10,
                          reason=BrokerRejectReason.INSUFFICIENT_CASH, detail="needs 1,000",
                          bar_index=3),
        ],
        source="test",
    )  # fmt: skip
    rows = {r.client_order_id: r for r in journal.orders()}
    stop = rows["stop-1"]
    assert (stop.reason, stop.order_qty, stop.bar_index, stop.decision) == (
        FillReason.STOP_LOSS, -25, 7, None)  # fmt: skip
    assert stop.status is OrderStatus.FILLED
    flat = rows["flat"]
    assert (flat.reason, flat.order_qty, flat.status) == (
        FillReason.FLATTEN, -30, OrderStatus.PARTIALLY_FILLED)  # fmt: skip
    assert (rows["old"].status, rows["old"].detail) == (OrderStatus.CANCELED, "replaced")
    assert rows["poor"].detail == "insufficient_cash: needs 1,000"
    assert rows["poor"].reason is FillReason.SIGNAL
    assert (rows["cut"].detail, rows["cut"].reason, rows["cut"].status) == (
        "price 20% off", None, None)  # fmt: skip


def test_counts_by_kind_and_by_decision_and_reason(journal: Journal) -> None:
    journal.append_many(
        [verdict("a"), verdict("b"), verdict("c", Decision.REJECTED),
         verdict("d", Decision.MODIFIED, strategy="s2"), BarDone(bar_index=0, bar_ts=T0)],
        source="risk",
    )  # fmt: skip
    assert journal.counts_by_kind() == {EventKind.RISK_DECISION: 4, EventKind.BAR_DONE: 1}
    assert journal.decision_counts() == {
        (Decision.APPROVED, None): 2,
        (Decision.REJECTED, RiskReason.MAX_POSITION): 1,
        (Decision.MODIFIED, RiskReason.MAX_POSITION): 1,
    }
    assert journal.decision_counts(strategy="s2") == {
        (Decision.MODIFIED, RiskReason.MAX_POSITION): 1
    }


# ------------------------------------------------------------------ several processes
def _spawn(path: Path, tag: str, n: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.kit.journal_worker", str(path), tag, str(n)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _go(path: Path) -> None:
    Path(str(path) + ".go").touch()


@pytest.mark.timeout(120)
def test_four_processes_append_concurrently_and_nothing_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "j.db"  # a fresh file: the workers also race to create the schema
    procs = {f"w{k}": _spawn(path, f"w{k}", 500) for k in range(4)}
    _go(path)
    reported: dict[str, list[int]] = {}
    for tag, proc in procs.items():
        out, err = proc.communicate(timeout=100)
        assert proc.returncode == 0, err
        lines = [line.split() for line in out.splitlines()]
        assert all(dup == "0" for _, dup in lines)
        reported[tag] = [int(seq) for seq, _ in lines]
    with Journal(path) as j:
        entries = list(j.read())
    seqs = [e.seq for e in entries]
    assert len(seqs) == 2000 and len(set(seqs)) == 2000  # 4 x 500, each seq once
    assert sorted(s for r in reported.values() for s in r) == seqs
    for tag, mine in reported.items():
        assert mine == sorted(mine)  # one writer's appends keep their order
        ids = [e.event.fill_id for e in entries if e.event.strategy_id == tag]
        assert ids == [f"{tag}:{i}" for i in range(500)]


@pytest.mark.timeout(120)
def test_two_processes_retrying_the_same_keys_write_each_once(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    Journal(path).close()
    procs = [_spawn(path, "shared", 300) for _ in range(2)]
    _go(path)
    dup_flags = []
    for proc in procs:
        out, err = proc.communicate(timeout=100)
        assert proc.returncode == 0, err
        dup_flags += [int(line.split()[1]) for line in out.splitlines()]
    with Journal(path) as j:
        assert j.counts_by_kind() == {EventKind.ORDER_FILLED: 300}
    assert dup_flags.count(0) == 300 and dup_flags.count(1) == 300  # 2 x 300 tries, 300 new


@pytest.mark.timeout(120)
def test_sigkill_while_appending_keeps_every_committed_event(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    proc = _spawn(path, "k", -1)  # appends forever
    _go(path)
    assert proc.stdout is not None
    committed = []
    while len(committed) < 300:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else "worker died"
        committed.append(int(line.split()[0]))
    os.kill(proc.pid, signal.SIGKILL)
    # Read the rest through the same buffered reader: communicate() would read the raw pipe
    # and miss lines readline() already pulled into the buffer (seen under load).
    rest = proc.stdout.read()
    proc.wait(timeout=30)
    committed += [int(line.split()[0]) for line in rest.splitlines() if line.strip()]
    assert proc.returncode == -signal.SIGKILL
    with Journal(path) as j:
        assert j._conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        entries = {e.seq: e.event for e in j.read()}
        # Every append the worker saw committed is there, with its own payload; at most the
        # one in flight at the kill may also be there (committed, not yet printed).
        assert set(committed) <= set(entries)
        assert len(entries) - len(committed) in (0, 1)
        assert all(entries[s].fill_id == f"k:{s - 1}" for s in committed)
        assert j.append(fill("after", 0), source="test").duplicate is False  # still writable


def test_busy_timeout_waits_for_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    Journal(path).close()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the write lock for 0.3 s
    release = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    start = time.monotonic()
    release.start()
    with Journal(path, busy_timeout_s=5) as j:
        assert j.append(BarDone(bar_index=0, bar_ts=T0), source="feed") == Appended(1, False)
    assert time.monotonic() - start >= 0.25  # it waited for the lock instead of failing
    release.join()
    holder.close()


def test_wal_autocheckpoint_off_leaves_checkpoints_to_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path, wal_autocheckpoint=0) as writer, Journal(path) as other:
        assert writer._conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        writer.append_many([fill("a", i) for i in range(200)], source="broker")
        pages, done = other.checkpoint()
        assert pages > 0 and done == pages  # nobody reading: the whole WAL is copied back
        assert len(list(other.read())) == 200
    with Journal(path, readonly=True) as reader, pytest.raises(JournalError, match="writable"):
        reader.checkpoint()
    with pytest.raises(ValueError, match="wal_autocheckpoint"):
        Journal(path, wal_autocheckpoint=-1)


def test_a_reader_keeps_the_wal_growing_until_reset_wal_starts_it_over(tmp_path: Path) -> None:
    # SQLite starts a WAL over at a commit only when nobody reads it. As fast as possible some
    # process always does, so PASSIVE checkpoints copy every frame and the file still grows
    # by every commit (464 MB in the example portfolio's run); reset_wal forces the restart.
    path = tmp_path / "j.db"
    wal = tmp_path / "j.db-wal"
    with Journal(path, wal_autocheckpoint=0) as writer:
        writer.append_many([fill("a", i) for i in range(200)], source="broker")
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM events").fetchone()  # a read snapshot, held
        pages, done = writer.checkpoint()
        assert pages > 0 and done == pages  # everything copied into the database file...
        size = wal.stat().st_size
        writer.append_many([fill("b", i) for i in range(200)], source="broker")
        grown = wal.stat().st_size
        assert grown > size  # ...yet the next commits append: the reader holds the WAL
        assert writer.reset_wal(0.05) is False  # it waited 50 ms for the reader, gave up
        reader.execute("COMMIT")
        assert writer.reset_wal(0.05) is True
        writer.append(fill("c", 0), source="broker")
        assert wal.stat().st_size == grown  # written from the WAL's start: no growth
        assert writer.reset_wal(0.05, truncate=True) is True
        assert wal.stat().st_size == 0
        assert len(list(writer.read())) == 401  # nothing lost on the way
        reader.close()
    with pytest.raises(ValueError, match="wait_s"):
        Journal(path).reset_wal(0)
    with Journal(path, readonly=True) as ro, pytest.raises(JournalError, match="writable"):
        ro.reset_wal(1.0)


@pytest.mark.timeout(60)
def test_opening_a_fresh_file_another_connection_holds_waits_for_it(tmp_path: Path) -> None:
    # Another process creating the same new journal holds its write lock (RESERVED) while it
    # does. SQLite answers the switch to WAL mode "database is locked" at once then, without
    # its busy handler (this failed a CI run: four processes opening one new journal); the
    # switch is retried up to the busy timeout instead, and gives up after it.
    def hold(path: Path) -> sqlite3.Connection:
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        other.execute("PRAGMA user_version = 0")  # a write: the lock is taken now
        return other

    other = hold(tmp_path / "j.db")
    release = threading.Timer(0.3, other.execute, ("COMMIT",))
    release.start()
    started = time.monotonic()
    with Journal(tmp_path / "j.db", busy_timeout_s=5.0) as journal:
        assert journal.append(fill("w0", 0), source="test").seq == 1
    assert time.monotonic() - started >= 0.25  # it did wait for the other connection
    release.join()
    other.close()
    blocker = hold(tmp_path / "k.db")
    try:
        with pytest.raises(JournalError, match="database is locked"):
            Journal(tmp_path / "k.db", busy_timeout_s=0.2)
    finally:
        blocker.close()


def test_claim_run_marks_the_journal_once_and_answers_the_claim_after(tmp_path: Path) -> None:
    """The first claim marks an unclaimed journal (answers None); every later one, from any
    connection, answers the first claim's identity and changes nothing."""
    path = tmp_path / "j.sqlite"
    with Journal(path) as first:
        assert first.claim_run('{"run": 1}') is None
        assert first.claim_run('{"run": 2}') == '{"run": 1}'
    with Journal(path) as again:
        assert again.claim_run('{"run": 3}') == '{"run": 1}'
