"""The ``journal`` actor: read-only queries of the journal, and its WAL checkpoints.

Every other actor appends through its own connection with automatic checkpoints off (no
commit on the hot path pays for one); this actor checkpoints the WAL into the database file
in the background (``PRAGMA wal_checkpoint(PASSIVE)``: it never blocks a writer) so the WAL
stays small. Status, the CLI and the HTTP API read through it; it writes no events.

A checkpoint's two fsyncs take milliseconds of wall time, and a bar in flight meanwhile
waits on the disk too, so a paced feed says when a bar is done and the next is some way
off (``checkpoint_between_bars``) and the checkpoint runs then; without that word (a replay
as fast as possible) it runs every ``checkpoint_every_s`` (docs/live.md, "Journal").

Such a checkpoint copies the WAL but does not start it over while some process always reads
or writes it, which is the case as fast as possible: the file then grows by every commit's
pages for the whole run. So once it holds ``WAL_RESET_PAGES`` frames, a checkpoint also
resets it (new writers wait, ``RESET_WAIT_S`` at most beyond the copy), and the end of a run
cuts it to zero bytes (``close_wal``): no large WAL is left beside the journal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Any

from actors.background import HELPER_NICE
from actors.common import ActorShell, WriterJournal
from core.events import EventKind
from core.journal import OrderRow

__all__ = [
    "CHECKPOINT_EVERY_S",
    "CHECKPOINT_GAP_S",
    "RESET_WAIT_S",
    "WAL_RESET_PAGES",
    "JournalReader",
]

CHECKPOINT_EVERY_S = 1.0
#: The least time until the next bar for the feed to ask for a checkpoint between bars: a
#: checkpoint of half a second of a paced W5 run's WAL took 3-7 ms here, most of it fsyncs.
CHECKPOINT_GAP_S = 0.015
#: WAL frames (4 KiB pages: 32 MiB) after which a checkpoint also starts the WAL over. As
#: fast as possible W5 writes about that much a second, so the WAL stays under about twice it.
WAL_RESET_PAGES = 8192
#: The longest a reset waits for readers and writers to let go; it then gives up (nothing
#: lost) and the next round tries again.
RESET_WAIT_S = 0.05
log = logging.getLogger("raytrader.journal")


def _order_dict(r: OrderRow) -> dict[str, Any]:
    return {
        "client_order_id": r.client_order_id, "strategy": r.strategy_id, "symbol": r.symbol,
        "bar_index": r.bar_index, "requested_qty": r.requested_qty,
        "decision": r.decision.value if r.decision else None,
        "reasons": [x.value for x in r.reasons], "approved_qty": r.approved_qty,
        "status": r.status.value if r.status else None, "filled_qty": r.filled_qty,
        "avg_price": r.avg_price, "commission": r.commission,
        "reason": r.reason.value if r.reason else None, "order_qty": r.order_qty,
        "detail": r.detail,
    }  # fmt: skip


class JournalReader(ActorShell):
    """Queries over the journal file plus a background checkpoint thread.

    Args:
        journal_path: the journal file (it exists: the runtime creates it first).
        checkpoint_every_s: seconds between WAL checkpoints.
        wal_reset_pages: WAL frames after which a checkpoint also starts the WAL over.
    """

    def __init__(
        self,
        journal_path: str,
        checkpoint_every_s: float = CHECKPOINT_EVERY_S,
        *,
        wal_reset_pages: int = WAL_RESET_PAGES,
        fingerprint: str = "",
    ) -> None:
        self._fingerprint = fingerprint
        self._path = journal_path
        self._journal = WriterJournal(journal_path)  # checkpoints write the database file
        self._init_telemetry("journal", self._journal)  # restarts (it appends nothing)
        self._checkpoints = 0
        self._asked = 0  # of them, between bars at the feed's word
        self._reset_at = wal_reset_pages
        self._resets = 0  # checkpoints that also started the WAL over
        self._resets_busy = 0  # resets given up after RESET_WAIT_S
        self._reset_ms = 0.0  # the longest reset, wall time
        self._stop = threading.Event()
        self._wake = threading.Event()  # set: a checkpoint now (the feed's word)
        self._thread = threading.Thread(
            target=self._checkpoint_loop, args=(checkpoint_every_s,), daemon=True,
            name="journal-checkpoint",
        )  # fmt: skip
        self._thread.start()

    def _checkpoint_loop(self, every_s: float) -> None:
        """Checkpoint when the feed asks (between bars), else ``every_s`` after the last
        one, at the lowest CPU priority (nice 19, this thread only): the copying costs CPU
        (0.5-1.9 ms for half a second to a second of a paced W5 run's WAL), which at normal
        priority landed on whichever bar was in flight; at nice 19 it takes idle time, and
        still gets its share when a fast replay keeps every core busy."""
        with contextlib.suppress(OSError, AttributeError):  # not Linux: normal priority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HELPER_NICE)
        while True:
            asked = self._wake.wait(every_s)  # the periodic wait starts again after each one
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                frames, _copied = self._journal.checkpoint()
                self._checkpoints += 1
                self._asked += asked
                if frames >= self._reset_at:
                    self._reset()
            except Exception as exc:  # a busy file now is fine: the next round catches up
                log.warning("journal checkpoint failed: %s", exc)

    def _reset(self, wait_s: float = RESET_WAIT_S, *, truncate: bool = False) -> bool:
        """Start the WAL over (``Journal.reset_wal``), counted and timed."""
        started = time.monotonic()
        done = self._journal.reset_wal(wait_s, truncate=truncate)
        self._reset_ms = max(self._reset_ms, (time.monotonic() - started) * 1e3)
        self._resets += done
        self._resets_busy += not done
        return done

    def _stop_checkpoints(self) -> None:
        """End the background thread (the actor's process ending ends it too: a daemon)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    async def checkpoint_between_bars(self) -> None:
        """The feed's word that a bar is done and the next one is at least
        ``CHECKPOINT_GAP_S`` away: the background thread checkpoints now (and waits
        ``checkpoint_every_s`` from here before a periodic one), so the fsyncs land in
        the gap instead of in a bar. Answers at once."""
        self._wake.set()

    async def checkpoint(self) -> tuple[int, int]:
        """Checkpoint now; (WAL pages, pages copied)."""
        return self._journal.checkpoint()

    async def path(self) -> str:
        """The journal file."""
        return self._path

    async def counts(self) -> dict[str, int]:
        """Rows per event kind."""
        return {k.value: n for k, n in self._journal.counts_by_kind().items()}

    async def max_seq(self) -> int:
        """The highest seq written so far."""
        return self._journal.max_seq()

    async def max_bar(self, kind: str) -> int | None:
        """The highest bar index of a kind (``bar_done``: the replay cursor)."""
        return self._journal.max_bar(EventKind(kind))

    async def events(
        self,
        kinds: list[str] | None = None,
        strategy: str | None = None,
        client_order_id: str | None = None,
        since_seq: int = 0,
        limit: int | None = 1000,
    ) -> list[dict[str, Any]]:
        """Events in seq order as ``{"seq", "kind", "event"}`` dicts (JSON-ready)."""
        entries = self._journal.read(
            None if kinds is None else [EventKind(k) for k in kinds], strategy=strategy,
            client_order_id=client_order_id, since_seq=since_seq, limit=limit,
        )  # fmt: skip
        return [
            {"seq": e.seq, "kind": e.kind.value, "event": e.event.model_dump(mode="json")}
            for e in entries
        ]

    async def orders(self, strategy: str | None = None) -> list[dict[str, Any]]:
        """Every order with its risk decision and latest broker status."""
        return [_order_dict(r) for r in self._journal.orders(strategy)]

    async def decisions(self, strategy: str | None = None) -> list[dict[str, Any]]:
        """Risk decisions counted by (decision, first reason)."""
        return [
            {"decision": d.value, "reason": r.value if r else None, "count": n}
            for (d, r), n in self._journal.decision_counts(strategy).items()
        ]

    async def checkpoints(self) -> dict[str, float]:
        """Background checkpoints done so far: ``done`` in all, ``between_bars`` of them at
        the feed's word, ``wal_resets`` of them that also started the WAL over,
        ``wal_resets_busy`` resets given up (tried again later), ``wal_reset_ms`` the longest
        reset's wall time (``close_wal`` included)."""
        return {"done": self._checkpoints, "between_bars": self._asked,
                "wal_resets": self._resets, "wal_resets_busy": self._resets_busy,
                "wal_reset_ms": round(self._reset_ms, 2)}  # fmt: skip

    async def close_wal(self, wait_s: float = 2.0) -> bool:
        """At a run's end, its other actors gone: the whole WAL into the database file and
        the WAL cut to zero bytes. Actors are killed, not closed, and SQLite removes the WAL
        only when the last connection closes, so without this it stays on disk. True when
        done."""
        return self._reset(wait_s, truncate=True)
