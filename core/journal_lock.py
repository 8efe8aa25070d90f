"""One live run per journal: an exclusive lock on ``<journal>.lock`` (``flock``), held by the
driver that created the run's actors for as long as the run lasts.

Two runs on one journal (two drivers, each with Ray in its own process) would each rebuild
from the other's rows and write their own: a replay that fails half way, or with a real broker
every order twice. Drivers that attach to the same run's live actors (the control API, a second
``raytrader run`` of the same config on a cluster) share its actors, so they take no lock. The
operating system releases the lock when its process ends, however it ends.

And no process of an earlier run still writing: every process that writes a run's journal (its
actors) holds a shared lock on ``<journal>.writers`` while it lives, and a driver that takes
the run lock waits until nobody holds that one (``wait_for_writers``) before it starts actors.
A driver killed outright (SIGKILL, the OOM killer) leaves its actors replaying for seconds
after it (until they notice their raylet is gone): a run resumed at once met their rows.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from core.errors import JournalError

__all__ = ["JournalInUseError", "RunLock", "WriterLock", "wait_for_writers"]

WRITERS = ".writers"  # beside the journal: the shared lock of the processes writing it


class JournalInUseError(JournalError):
    """Another live run holds the journal."""


class RunLock:
    """Take ``<journal_path>.lock`` now or raise ``JournalInUseError`` naming the holder.

    Args:
        journal_path: the journal file (the lock file sits beside it).
    """

    def __init__(self, journal_path: str | Path) -> None:
        self.path = Path(f"{journal_path}.lock")
        fd = _open(self.path, journal_path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "a process"
            os.close(fd)
            raise JournalInUseError(
                f"in use by another live run ({holder}): a journal takes one run at a time; "
                "stop that run, or give this one another journal (journal.path or --journal)",
                path=str(journal_path),
            ) from None
        os.ftruncate(fd, 0)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}".encode())
        self._fd: int | None = fd

    def release(self) -> None:
        """Let another run take the journal (idempotent)."""
        fd, self._fd = self._fd, None
        _unlock(fd)


def _open(path: Path, journal_path: str | Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise JournalError(
            f"cannot create its lock file {path}: {exc.strerror}", path=str(journal_path)
        ) from None


def _unlock(fd: int | None) -> None:
    """Drop a lock taken on ``fd`` and close it (nothing for None)."""
    if fd is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _holders(path: Path) -> list[int]:
    """The pids holding a ``flock`` on ``path`` (Linux's ``/proc/locks``; [] elsewhere)."""
    try:
        inode = os.stat(path).st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    pids = set()
    for line in lines:
        parts = line.split()
        if len(parts) > 5 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(inode):
            pids.add(int(parts[4]))
    return sorted(pids)


class WriterLock:
    """A shared lock on ``<journal>.writers``, held by a process that writes the journal for as
    long as it lives (or until ``release``), so a new run can tell when none is left.

    Args:
        journal_path: the journal file (the lock file sits beside it).
        wait_s: how long to wait while a driver checks for writers (it holds the lock
            exclusively for an instant; a longer hold is an error).
    """

    def __init__(self, journal_path: str | Path, *, wait_s: float = 10.0) -> None:
        self.path = Path(f"{journal_path}{WRITERS}")
        fd = _open(self.path, journal_path)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise JournalInUseError(
                        f"{self.path} held exclusively for over {wait_s:g} s",
                        path=str(journal_path),
                    ) from None
                time.sleep(0.01)
        self._fd: int | None = fd

    def release(self) -> None:
        """Stop counting as a writer (idempotent)."""
        fd, self._fd = self._fd, None
        _unlock(fd)


def wait_for_writers(
    journal_path: str | Path, timeout_s: float, on_wait: Callable[[list[int]], None] | None = None
) -> None:
    """Return once no process holds ``<journal>.writers`` (the writers of an earlier run have
    ended); ``on_wait`` is told their pids once if there is a wait.

    Raises:
        JournalInUseError: some are still there after ``timeout_s``, named by pid.
    """
    path = Path(f"{journal_path}{WRITERS}")
    fd = _open(path, journal_path)
    try:
        deadline, told = time.monotonic() + timeout_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return
            except BlockingIOError:
                if on_wait is not None and not told:
                    on_wait(_holders(path))
                    told = True
                if time.monotonic() >= deadline:
                    pids = ", ".join(map(str, _holders(path))) or "unknown"
                    raise JournalInUseError(
                        f"processes of an earlier run still write it {timeout_s:g} s later "
                        f"(pids {pids}, holding {path}); stop them, then start this run again",
                        path=str(journal_path),
                    ) from None
                time.sleep(0.05)
    finally:
        os.close(fd)
