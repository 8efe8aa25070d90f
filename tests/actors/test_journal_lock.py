"""The driver that starts a run holds its journal until ``stop``; a driver that attaches to
the same live actors takes no lock (they are the same run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.runtime import start
from core.journal_lock import JournalInUseError, RunLock
from core.run_config import parse_run_config

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.mark.timeout(120)
def test_start_holds_the_journal_for_the_run_and_stop_frees_it(live, tmp_path: Path) -> None:
    config = parse_run_config({
        "strategies": [{"id": "s", "strategy": "sma_crossover", "symbols": ["ORCL"]}],
        "feed": {"data": {"paths": [str(DATA / "ORCL.csv")], "start": "2014-01-01"}},
    })  # fmt: skip
    journal = tmp_path / "j.sqlite"
    topo = start(config, str(journal))
    try:
        with pytest.raises(JournalInUseError):  # as another driver's start would be
            RunLock(journal)
        again = start(config, str(journal))  # the same live actors: attached, no lock
        assert again.lock is None and again.handles.keys() == topo.handles.keys()
    finally:
        topo.stop()
    RunLock(journal).release()
