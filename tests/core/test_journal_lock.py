"""``core.journal_lock.RunLock``: one live run per journal, released however its holder ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import JournalError
from core.journal_lock import JournalInUseError, RunLock, WriterLock, wait_for_writers

REPO = Path(__file__).resolve().parents[2]


def _child_holding(lock: str, journal: Path) -> subprocess.Popen[str]:
    """A child process that takes ``core.journal_lock.<lock>`` on ``journal`` and sleeps;
    returned once it holds it."""
    code = (
        f"import time\nfrom core.journal_lock import {lock}\n"
        f"lock = {lock}({str(journal)!r})\nprint('held', flush=True)\ntime.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_a_held_journal_is_refused_naming_the_holder_until_released(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    first = RunLock(journal)
    with pytest.raises(JournalInUseError) as info:
        RunLock(journal)
    message = str(info.value)
    assert f"journal {journal}: in use by another live run (pid {os.getpid()} on " in message
    assert "give this one another journal" in message
    first.release()
    first.release()  # idempotent
    RunLock(journal).release()  # free again


@pytest.mark.timeout(60)
def test_the_lock_of_a_killed_process_is_free_at_once(tmp_path: Path) -> None:
    """SIGKILL leaves no chance to release: the operating system does it."""
    journal = tmp_path / "j.sqlite"
    child = _child_holding("RunLock", journal)
    try:
        with pytest.raises(JournalInUseError, match=f"pid {child.pid} on "):
            RunLock(journal)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    deadline = time.monotonic() + 10
    while True:  # the kernel drops the lock with the process's last descriptor
        try:
            RunLock(journal).release()
            break
        except JournalInUseError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_a_folder_where_no_lock_file_can_be_made_is_named(tmp_path: Path) -> None:
    journal = tmp_path / "missing-folder" / "j.sqlite"
    with pytest.raises(JournalError) as info:
        RunLock(journal)
    assert str(info.value) == (
        f"journal {journal}: cannot create its lock file {journal}.lock: No such file or directory"
    )


@pytest.mark.timeout(60)
def test_a_new_run_waits_for_the_writers_of_an_earlier_one_and_names_them(
    tmp_path: Path,
) -> None:
    """An earlier run's actor (a child process holding ``WriterLock``) keeps ``wait_for_writers``
    waiting, named by pid, until it dies; writers share the lock among themselves."""
    journal = tmp_path / "j.sqlite"
    child = _child_holding("WriterLock", journal)
    told: list[list[int]] = []
    try:
        mine = WriterLock(journal)  # a second writer (a restarted actor) is not refused
        mine.release()
        with pytest.raises(JournalInUseError) as info:
            wait_for_writers(journal, 0.3, on_wait=told.append)
        assert told == [[child.pid]]
        assert f"still write it 0.3 s later (pids {child.pid}, holding {journal}.writers)" in (
            str(info.value))  # fmt: skip
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    wait_for_writers(journal, 10)  # returns once the kernel has dropped the dead one's lock
    wait_for_writers(journal, 0, on_wait=told.append)  # nobody: no wait at all
    assert len(told) == 1
