"""The journal actor's background checkpoints: they run, at the lowest CPU priority, and
between bars when a paced feed asks for them.

The first two run in this process (the class, not a Ray actor): the thread and its
priority are local. The last runs a paced and a fast replay through the live actors.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime

import pytest

from actors.journal import JournalReader
from core.events import BarDone, EventKind
from core.journal import Journal
from tests.kit.live import DATA, config


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
@pytest.mark.timeout(30)
def test_checkpoints_run_in_a_thread_at_nice_19_and_lose_nothing(tmp_path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path, wal_autocheckpoint=0) as writer:
        for t in range(50):
            writer.append(BarDone(bar_index=t, bar_ts=datetime(2020, 1, 1, tzinfo=UTC)),
                          source="feed")  # fmt: skip
        wal = path.with_name(path.name + "-wal")
        assert wal.stat().st_size > 0
        reader = JournalReader(str(path), checkpoint_every_s=0.05)
        deadline = time.monotonic() + 20
        while reader._checkpoints < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reader._checkpoints >= 2
        tid = reader._thread.native_id
        assert tid is not None and os.getpriority(os.PRIO_PROCESS, tid) == 19
        assert os.getpriority(os.PRIO_PROCESS, 0) == 0  # the process itself is untouched
        reader._stop_checkpoints()
        frames, copied = reader._journal.checkpoint()
        assert frames == copied  # the WAL is all in the database file
        with Journal(path, readonly=True) as check:
            assert check.max_bar(EventKind.BAR_DONE) == 49


@pytest.mark.timeout(30)
def test_a_checkpoint_between_bars_runs_at_once(tmp_path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path, wal_autocheckpoint=0) as writer:
        reader = JournalReader(str(path), checkpoint_every_s=3600)  # never by itself here
        for t in range(50):
            writer.append(BarDone(bar_index=t, bar_ts=datetime(2020, 1, 1, tzinfo=UTC)),
                          source="feed")  # fmt: skip
        before = path.stat().st_size  # the rows are in the WAL only
        asyncio.run(reader.checkpoint_between_bars())
        deadline = time.monotonic() + 20
        while reader._checkpoints < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        done = asyncio.run(reader.checkpoints())
        assert (done["done"], done["between_bars"], done["wal_resets"]) == (1, 1, 0)
        assert path.stat().st_size > before  # copied into the database file
        frames, copied = reader._journal.checkpoint()
        assert frames == copied
        reader._stop_checkpoints()
        assert not reader._thread.is_alive()


@pytest.mark.timeout(60)
def test_a_wal_past_its_bound_is_started_over_once_no_reader_holds_it(tmp_path) -> None:
    # A reader that always holds the WAL (as the actors do as fast as possible) keeps PASSIVE
    # checkpoints from ever starting it over; past wal_reset_pages frames the checkpoint
    # thread resets it: given up while the reader holds on, done once it lets go.
    import sqlite3

    path = tmp_path / "j.sqlite"
    wal = path.with_name(path.name + "-wal")

    def wait_for(what, seconds: float = 20.0) -> None:
        deadline = time.monotonic() + seconds
        while not what() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert what()

    with Journal(path, wal_autocheckpoint=0) as writer:
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM events").fetchone()  # holds the WAL
        for t in range(200):
            writer.append(BarDone(bar_index=t, bar_ts=datetime(2020, 1, 1, tzinfo=UTC)),
                          source="feed")  # fmt: skip
        actor = JournalReader(str(path), checkpoint_every_s=0.02, wal_reset_pages=8)
        try:
            wait_for(lambda: actor._resets_busy >= 1)
            assert actor._resets == 0
            reader.execute("COMMIT")
            wait_for(lambda: actor._resets >= 1)
            size = wal.stat().st_size
            writer.append(BarDone(bar_index=200, bar_ts=datetime(2020, 1, 2, tzinfo=UTC)),
                          source="feed")  # fmt: skip
            assert wal.stat().st_size == size  # the commit went to the WAL's start
            stats = asyncio.run(actor.checkpoints())
            assert stats["wal_resets"] >= 1 and stats["wal_resets_busy"] >= 1, stats
            assert asyncio.run(actor.close_wal()) is True
            assert wal.stat().st_size == 0
        finally:
            actor._stop_checkpoints()
            reader.close()
        assert writer.max_bar(EventKind.BAR_DONE) == 200


@pytest.mark.timeout(240)
def test_a_paced_feed_asks_for_checkpoints_between_bars_and_a_fast_one_never(
    live, tmp_path
) -> None:
    # A daily bar every 40 ms (120 over a weekend) for three months: about 2.9 s, the next
    # bar due well over CHECKPOINT_GAP_S (15 ms) after most bars are done, so the feed asks
    # every half second (CHECKPOINT_EVERY_S / 2). As fast as possible, no bar is ever that
    # far off: the journal actor checkpoints by itself only.
    from actors.runtime import start

    strategies = [{"id": "flip", "strategy": "tests.kit.live:Flipper", "symbols": ["ORCL"],
                   "params": {"period": 4}}]  # fmt: skip
    window = {"start": "2001-01-01", "end": "2001-03-31"}
    for speed, asked in ((86_400 / 0.04, True), ("max", False)):
        cfg = config(strategies, [DATA / "ORCL.csv"], tmp_path / f"{speed}.sqlite", data=window)
        cfg = cfg.model_copy(update={"feed": cfg.feed.model_copy(update={"speed": speed})})
        topo = start(cfg)
        assert topo.run()["state"] == "done"
        counts = live.get(topo.handles["journal"].checkpoints.remote())
        topo.stop()
        assert (counts["between_bars"] >= 2) if asked else (counts["between_bars"] == 0), counts
        wal = tmp_path / f"{speed}.sqlite-wal"  # the actors are killed, not closed: without
        assert not wal.exists() or wal.stat().st_size == 0  # close_wal it stays on disk
