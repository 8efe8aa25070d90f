"""One live run per journal: an exclusive lock on ``<journal>.lock`` (``flock``), held by the
driver that created the run's actors for as long as the run lasts.

Two runs on one journal (two drivers, each with Ray in its own process) would each rebuild
from the other's rows and write their own: a replay that fails half way, or with a real broker
every order twice. Drivers that attach to the same run's live actors (the control API, a second
``raytrader run`` of the same config on a cluster) share its actors, so they take no lock. The
operating system releases the lock when its process ends, however it ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path

from core.errors import JournalError

__all__ = ["JournalInUseError", "RunLock"]


class JournalInUseError(JournalError):
    """Another live run holds the journal."""


class RunLock:
    """Take ``<journal_path>.lock`` now or raise ``JournalInUseError`` naming the holder.

    Args:
        journal_path: the journal file (the lock file sits beside it).
    """

    def __init__(self, journal_path: str | Path) -> None:
        self.path = Path(f"{journal_path}.lock")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise JournalError(
                f"cannot create its lock file {self.path}: {exc.strerror}", path=str(journal_path)
            ) from None
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
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
