"""The append-only event journal: one SQLite file in WAL mode that every actor writes to.

Each actor (broker, risk, hosts, feed) opens its own ``Journal`` on the same file; SQLite
serializes the writers. A row is one event model of ``core.events`` as JSON plus the columns
queries need (kind, source, strategy, symbol, client_order_id, bar_index). Appends are
idempotent through a unique ``dedup_key`` (by default the event's natural key: fill id,
``decision:<coid>``, ``bar_processed:<t>``, ...), so a retried call writes nothing twice.
After a restart each actor rebuilds its state by reading its kinds back in ``seq`` order
(docs/live.md, "Restarts").
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Final, Literal, NamedTuple

from pydantic import BaseModel

from core.errors import JournalError
from core.events import Decision, EventKind, OrderFilled, RiskReason, RiskVerdict
from core.journal_rows import EVENT_MODELS, OrderRow, columns, fold_orders, kind_of, natural_key

__all__ = [
    "AUTO",
    "EVENT_MODELS",
    "READS_VERSIONS",
    "SCHEMA_VERSION",
    "Appended",
    "Approval",
    "Entry",
    "Journal",
    "OrderRow",
    "kind_of",
    "natural_key",
]

SCHEMA_VERSION: Final = 3
#: Versions this raytrader reads. Version 3 adds the ``risk_marks_snapshot`` row (every mark
#: risk holds, every few hundred bars); version 2 the ``risk_marks`` row (a bar's marks in one
#: row); version 1 wrote one ``risk_mark`` row a mark, still read. A writable open upgrades an
#: older file in place (its rows are all valid version 3), so an older raytrader refuses the
#: file once it may hold rows it cannot read.
READS_VERSIONS: Final = frozenset({"1", "2", str(SCHEMA_VERSION)})


class _Auto:
    """Sentinel type of ``AUTO``: use the event's natural dedup key."""

    def __repr__(self) -> str:
        return "AUTO"


AUTO: Final = _Auto()

# One statement each: executescript() would COMMIT the creating transaction half-way.
_SCHEMA: Final = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        wall_ns INTEGER NOT NULL,
        kind TEXT NOT NULL,
        source TEXT NOT NULL,
        strategy TEXT,
        symbol TEXT,
        client_order_id TEXT,
        bar_index INTEGER,
        dedup_key TEXT UNIQUE,
        payload TEXT NOT NULL
    )""",
    "CREATE INDEX events_kind_bar ON events (kind, bar_index)",
    "CREATE INDEX events_client_order_id ON events (client_order_id)",
    "CREATE INDEX events_strategy ON events (strategy)",
    """CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END""",
    """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END""",
)
_INSERT: Final = (
    "INSERT INTO events (wall_ns, kind, source, strategy, symbol, client_order_id, bar_index,"
    " dedup_key, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_PAGE: Final = 1000  # rows fetched per query while iterating, so no read holds a snapshot long


class Entry(NamedTuple):
    """One journal row read back: its sequence number, kind and typed event."""

    seq: int
    kind: EventKind
    event: BaseModel


class Appended(NamedTuple):
    """The outcome of one append: the row's seq, and whether the dedup key already existed."""

    seq: int
    duplicate: bool


class Approval(NamedTuple):
    """The fields of a journaled risk decision that the broker's approval check compares."""

    decision: str  # a Decision value
    strategy_id: str
    symbol: str
    approved_qty: float | None  # None when the row holds no number


_APPROVAL_SQL: Final = (
    "SELECT payload FROM events WHERE client_order_id = ? AND kind = ? ORDER BY seq LIMIT 1"
)


class Journal:
    """One process's connection to the journal file; thread-safe, one connection per object.

    Args:
        path: the SQLite file (created with the schema when missing or empty).
        synchronous: ``"NORMAL"`` (durable against process crashes, the default) or ``"FULL"``
            (also against power loss, slower).
        busy_timeout_s: how long a writer waits for another process's write lock.
        wal_autocheckpoint: WAL pages after which a commit also checkpoints (SQLite's
            default 1000, about every 40 bars of 10 events: a few ms on that one commit).
            0 takes checkpoints off this connection's appends; someone must then call
            ``checkpoint()`` regularly (e.g. the journal actor), or the WAL grows.
        readonly: open for queries only (the ``journal`` actor, status, CLI).

    Raises:
        JournalError: the file is not a journal, or its schema version is not one of
            ``READS_VERSIONS`` (a writable open upgrades version 1 to ``SCHEMA_VERSION``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout_s: float = 10.0,
        wal_autocheckpoint: int = 1000,
        readonly: bool = False,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}")
        if wal_autocheckpoint < 0:
            raise ValueError(f"wal_autocheckpoint must be >= 0, got {wal_autocheckpoint!r}")
        if busy_timeout_s <= 0:
            raise ValueError(f"busy_timeout_s must be > 0, got {busy_timeout_s!r}")
        self._path = Path(path)
        self._readonly = readonly
        self._busy_ms = int(busy_timeout_s * 1000)
        self._in_transaction = False
        self._lock = threading.RLock()
        target = f"{self._path.resolve().as_uri()}?mode=ro" if readonly else str(self._path)
        try:
            self._conn = sqlite3.connect(
                target, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False,
                uri=readonly, cached_statements=64,
            )  # fmt: skip
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open: {exc}", path=str(self._path)) from exc
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            if not readonly:
                self._set_wal(busy_timeout_s)
                self._conn.execute(f"PRAGMA synchronous = {synchronous}")
                self._conn.execute(f"PRAGMA wal_autocheckpoint = {int(wal_autocheckpoint)}")
            self._check_schema(create=not readonly)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise JournalError(f"not a usable SQLite journal: {exc}", path=str(self._path)) from exc
        except BaseException:
            self._conn.close()
            raise

    def _set_wal(self, busy_timeout_s: float) -> None:
        """WAL mode, waiting out other connections: switching a fresh file's journal mode
        can answer "database is locked" at once, without SQLite's busy handler (several
        processes opening a new journal together), so it is retried up to the busy timeout."""
        deadline = time.monotonic() + busy_timeout_s
        pause = 0.002
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    # ------------------------------------------------------------------ lifecycle
    @property
    def path(self) -> Path:
        """The journal file."""
        return self._path

    def close(self) -> None:
        """Close the connection (committed events are durable already)."""
        with self._lock:
            self._conn.close()

    def checkpoint(self) -> tuple[int, int]:
        """Copy the WAL into the database file without blocking writers (PASSIVE).

        Returns (WAL pages, pages checkpointed). Needs a writable journal: a checkpoint writes
        the database file.
        """
        if self._readonly:
            raise JournalError("checkpoint() needs a writable journal", path=str(self._path))
        with self._lock:
            _busy, pages, done = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(pages), int(done)

    def reset_wal(self, wait_s: float, *, truncate: bool = False) -> bool:
        """Copy the whole WAL into the database file and have the next commit write the WAL
        from its start (``wal_checkpoint(RESTART)``), or also cut the file to zero bytes
        (``truncate``: ``TRUNCATE``). True when done; False when a reader or writer held on
        for longer than ``wait_s`` (nothing is lost: the next try does it).

        A PASSIVE checkpoint copies the frames but the WAL starts over only when a commit
        finds nobody reading it, which never happens while some process always reads or
        writes (a replay as fast as possible: a commit every millisecond): the file then
        grows by every commit's pages for the whole run (464 MB for the example portfolio's
        5,288 bars). A reset makes new writers wait while it is pending, ``wait_s`` at most
        plus the copy: the caller picks the moment and the bound.
        """
        if self._readonly:
            raise JournalError("reset_wal() needs a writable journal", path=str(self._path))
        if wait_s <= 0:
            raise ValueError(f"wait_s must be > 0, got {wait_s!r}")
        mode = "TRUNCATE" if truncate else "RESTART"
        with self._lock:
            conn = self._conn
            conn.execute(f"PRAGMA busy_timeout = {max(1, int(wait_s * 1000))}")
            try:
                busy, _pages, _done = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            finally:
                conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        return int(busy) == 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the file's write lock (one ``BEGIN IMMEDIATE`` ... ``COMMIT``) across reads and
        appends: what is read inside cannot change before what is appended is committed, since
        every other writer waits. Appends inside join the transaction; an exception rolls it
        all back. Risk reads the strategies' states and journals its verdicts in one, so no
        verdict journaled after a strategy's stop was decided before it."""
        if self._readonly:
            raise JournalError("transaction() needs a writable journal", path=str(self._path))
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            self._in_transaction = True
            try:
                yield
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                self._in_transaction = False

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_schema(self, *, create: bool) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE" if create else "BEGIN")
        try:
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if "meta" not in tables:
                if not create or tables - {"sqlite_sequence"}:
                    raise JournalError(
                        f"not a raytrader journal (no meta table; tables: {sorted(tables)})",
                        path=str(self._path),
                    )
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            found = row[0] if row else None
            if found not in READS_VERSIONS:
                raise JournalError(
                    f"schema_version is {found!r}, this raytrader reads versions"
                    f" {', '.join(sorted(READS_VERSIONS))} (a newer raytrader wrote it, or it is"
                    " damaged)",
                    path=str(self._path),
                )
            if create and found != str(SCHEMA_VERSION):
                conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def claim_run(self, identity: str) -> str | None:
        """Mark this journal as the run ``identity``'s (``RunConfig.identity()`` as JSON):
        returns None when it was unclaimed (now it is this run's), else the identity that
        claimed it, for the caller to compare: a journal resumes only the run that wrote it."""
        with self.transaction():
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'run'").fetchone()
            if row is None:
                self._conn.execute("INSERT INTO meta (key, value) VALUES ('run', ?)", (identity,))
        return None if row is None else str(row[0])

    # ------------------------------------------------------------------ writes
    def append(
        self,
        event: BaseModel,
        *,
        source: str,
        dedup_key: str | _Auto | None = AUTO,
        wall_ns: int | None = None,
    ) -> Appended:
        """Append one event durably (committed when this returns).

        Args:
            event: a model of ``EVENT_MODELS``.
            source: the writing actor's name (``risk``, ``broker``, ``strategy:<id>``, ``feed``).
            dedup_key: ``AUTO`` (the default) uses ``natural_key(event)``; None disables dedup.
            wall_ns: the wall time in ns since the epoch; now when None.

        Returns:
            The row's seq; ``duplicate`` is True when the key existed (nothing was written, and
            ``seq`` is the existing row's).
        """
        return self.append_many([event], source=source, dedup_keys=[dedup_key], wall_ns=wall_ns)[0]

    def append_many(
        self,
        events: Sequence[BaseModel],
        *,
        source: str,
        dedup_keys: Sequence[str | _Auto | None] | None = None,
        wall_ns: int | None = None,
    ) -> list[Appended]:
        """Append several events in ONE transaction: all are durable, or none is.

        ``dedup_keys`` (default: ``AUTO`` for each) pairs with ``events``; duplicates inside the
        batch or against the file are skipped and reported, the rest are written.
        """
        if dedup_keys is None:
            dedup_keys = [AUTO] * len(events)
        if len(dedup_keys) != len(events):
            raise ValueError(f"{len(events)} events but {len(dedup_keys)} dedup keys")
        now = time.time_ns() if wall_ns is None else wall_ns
        rows = []
        for event, key in zip(events, dedup_keys, strict=True):
            kind = kind_of(event)
            resolved = natural_key(event) if isinstance(key, _Auto) else key
            strategy, symbol, coid, bar = columns(event)
            payload = event.model_dump_json()
            rows.append((now, kind.value, source, strategy, symbol, coid, bar, resolved, payload))
        with self._lock:
            conn = self._conn
            joined = self._in_transaction  # inside transaction(): its BEGIN and COMMIT
            if not joined:
                conn.execute("BEGIN IMMEDIATE")
            try:
                out = []
                out = self._insert(conn, rows)
                if not joined:
                    conn.execute("COMMIT")
            except BaseException:
                if not joined and conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return out

    @staticmethod
    def _insert(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> list[Appended]:
        """Insert the rows whose key is new, in one statement; inside the write lock.

        The keys are looked up first, in one query (an ignored conflicting INSERT would still
        burn an AUTOINCREMENT seq and leave a gap); the new rows then take consecutive seqs,
        since no other writer can insert in between.
        """
        keys = [r[7] for r in rows if r[7] is not None]
        known: dict[object, int] = {}
        for start in range(0, len(keys), 500):  # SQLite's default limit is 999 variables
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            query = f"SELECT dedup_key, seq FROM events WHERE dedup_key IN ({marks})"
            known.update(conn.execute(query, part).fetchall())
        new: list[tuple[object, ...]] = []
        slots: list[int | None] = []  # index into new, or None for a duplicate
        pending: dict[object, int] = {}
        for row in rows:
            key = row[7]
            if key is not None and (key in known or key in pending):
                slots.append(None)
                continue
            if key is not None:
                pending[key] = len(new)
            slots.append(len(new))
            new.append(row)
        first = 0
        if new:
            conn.executemany(_INSERT, new)
            first = int(conn.execute("SELECT last_insert_rowid()").fetchone()[0]) - len(new) + 1
        out = []
        for row, slot in zip(rows, slots, strict=True):
            if slot is not None:
                out.append(Appended(first + slot, False))
            else:
                key = row[7]
                seq = known[key] if key in known else first + pending[key]
                out.append(Appended(seq, True))
        return out

    # ------------------------------------------------------------------ typed reads
    def read(
        self,
        kinds: Iterable[EventKind] | None = None,
        *,
        strategy: str | None = None,
        client_order_id: str | None = None,
        bar_index: int | None = None,
        since_seq: int = 0,
        limit: int | None = None,
    ) -> Iterator[Entry]:
        """Events in ``seq`` order, filtered; ``since_seq`` is exclusive (resume after it).

        Pages through the file, so a long read neither holds a lock nor loads everything.
        """
        where, params = ["seq > ?"], []
        if kinds is not None:
            kind_list = [EventKind(k).value for k in kinds]
            if not kind_list:
                return
            where.append(f"kind IN ({','.join('?' * len(kind_list))})")
            params.extend(kind_list)
        for column, value in (
            ("strategy", strategy), ("client_order_id", client_order_id), ("bar_index", bar_index),
        ):  # fmt: skip
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT seq, kind, payload FROM events WHERE {' AND '.join(where)} ORDER BY seq"
        sql += " LIMIT ?"
        remaining = limit if limit is not None else -1
        cursor_seq = since_seq
        while remaining != 0:
            page = _PAGE if remaining < 0 else min(_PAGE, remaining)
            with self._lock:
                rows = self._conn.execute(sql, [cursor_seq, *params, page]).fetchall()
            for seq, kind, payload in rows:
                yield self._entry(seq, kind, payload)
            if len(rows) < page:
                return
            cursor_seq = rows[-1][0]
            if remaining > 0:
                remaining -= len(rows)

    def _entry(self, seq: int, kind: str, payload: str) -> Entry:
        try:
            event_kind = EventKind(kind)
        except ValueError:
            raise JournalError(
                f"row {seq} has kind {kind!r}, unknown to this raytrader", path=str(self._path)
            ) from None
        return Entry(seq, event_kind, EVENT_MODELS[event_kind].model_validate_json(payload))

    def fills(self, strategy: str | None = None, *, since_seq: int = 0) -> list[OrderFilled]:
        """Every fill in ``seq`` order (a broker or host ledger rebuilds from these)."""
        entries = self.read([EventKind.ORDER_FILLED], strategy=strategy, since_seq=since_seq)
        return [e.event for e in entries]  # type: ignore[misc]

    def verdict(self, client_order_id: str) -> RiskVerdict | None:
        """The risk decision on one order, typed, if any (the broker checks ``approval``)."""
        for entry in self.read([EventKind.RISK_DECISION], client_order_id=client_order_id):
            return entry.event  # type: ignore[return-value]
        return None

    def approval(self, client_order_id: str) -> Approval | None:
        """The fields of the risk decision on one order that the broker checks, or None.

        One indexed query and the standard library's JSON parser instead of ``verdict``'s
        typed read: on a bar's path, cold, parsing the whole model cost twice the lookup.
        The payload's numbers are read back exactly (a float's shortest repr round-trips).
        """
        with self._lock:
            row = self._conn.execute(
                _APPROVAL_SQL, (client_order_id, EventKind.RISK_DECISION.value)
            ).fetchone()
        if row is None:
            return None
        fields = json.loads(row[0])
        qty = fields.get("approved_qty")
        return Approval(
            decision=str(fields.get("decision")), strategy_id=str(fields.get("strategy_id")),
            symbol=str(fields.get("symbol")),
            approved_qty=float(qty) if type(qty) in (int, float) else None,  # not a bool
        )  # fmt: skip

    def last(
        self, kind: EventKind, *, strategy: str | None = None, symbol: str | None = None
    ) -> Entry | None:
        """The latest event of a kind (optionally of one strategy or symbol), or None."""
        where, params = ["kind = ?"], [EventKind(kind).value]
        if strategy is not None:
            where.append("strategy = ?")
            params.append(strategy)
        if symbol is not None:
            where.append("symbol = ?")
            params.append(symbol)
        sql = f"SELECT seq, kind, payload FROM events WHERE {' AND '.join(where)}"
        with self._lock:
            row = self._conn.execute(sql + " ORDER BY seq DESC LIMIT 1", params).fetchone()
        return None if row is None else self._entry(*row)

    def max_bar(self, kind: EventKind) -> int | None:
        """The highest ``bar_index`` of a kind (the feed's cursor from ``bar_done``), or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT max(bar_index) FROM events WHERE kind = ?", (EventKind(kind).value,)
            ).fetchone()
        return None if row[0] is None else int(row[0])

    def max_seq(self, kind: EventKind | None = None) -> int:
        """The highest seq written so far, of one kind if given (0 when there is none):
        a cheap "did anything of this kind happen since" check (no payload is parsed)."""
        sql, params = "SELECT max(seq) FROM events", []
        if kind is not None:
            sql, params = sql + " WHERE kind = ?", [EventKind(kind).value]
        with self._lock:
            row = self._conn.execute(sql, params).fetchone()
        return int(row[0] or 0)

    # ------------------------------------------------------------------ aggregates
    def counts_by_kind(self) -> dict[EventKind, int]:
        """How many rows of each kind (kinds without rows are left out)."""
        with self._lock:
            rows = self._conn.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall()
        return {EventKind(k): int(n) for k, n in rows}

    def decision_counts(
        self, strategy: str | None = None
    ) -> dict[tuple[Decision, RiskReason | None], int]:
        """Risk decisions counted by (decision, first reason): ``risk_decisions_total``'s labels."""
        sql = (
            "SELECT json_extract(payload, '$.decision'), json_extract(payload, '$.reasons[0]'),"
            " count(*) FROM events WHERE kind = ?"
        )
        params: list[str] = [EventKind.RISK_DECISION.value]
        if strategy is not None:
            sql += " AND strategy = ?"
            params.append(strategy)
        with self._lock:
            rows = self._conn.execute(sql + " GROUP BY 1, 2", params).fetchall()
        return {(Decision(d), RiskReason(r) if r else None): int(n) for d, r, n in rows}

    def orders(self, strategy: str | None = None) -> list[OrderRow]:
        """Every order with its risk decision and latest broker status, in first-seen order."""
        kinds = (
            EventKind.RISK_DECISION, EventKind.ORDER_ACCEPTED, EventKind.ORDER_REJECTED,
            EventKind.ORDER_CANCELED, EventKind.ORDER_FILLED,
        )  # fmt: skip
        return fold_orders((e.seq, e.event) for e in self.read(kinds, strategy=strategy))
