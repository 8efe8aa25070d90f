"""The journal actor's background checkpoints: they run, and at the lowest CPU priority.

Run in this process (the class, not a Ray actor): the thread and its priority are local.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime

import pytest

from actors.journal import JournalReader
from core.events import BarDone, EventKind
from core.journal import Journal


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
        reader._stop.set()
        reader._thread.join(timeout=5)
        frames, copied = reader._journal.checkpoint()
        assert frames == copied  # the WAL is all in the database file
        with Journal(path, readonly=True) as check:
            assert check.max_bar(EventKind.BAR_DONE) == 49
