"""How a running job reports progress and learns that it was cancelled.

The CLI and the jobs actor run the same job functions; they differ only in the context they
pass: the CLI's draws a rich progress bar, the actor's records progress for ``status()``. A job
checks ``ctx.check()`` between units of work and stops with ``JobCancelledError``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from core.errors import RaytraderError

__all__ = ["JobCancelledError", "JobContext", "Progress"]


class JobCancelledError(RaytraderError):
    """The job was cancelled (Ctrl-C or ``cancel(job_id)``); its partial state is kept."""


@dataclass
class Progress:
    """A snapshot of a job's progress."""

    done: int = 0
    total: int = 0
    best: float | None = None
    message: str = ""

    @property
    def fraction(self) -> float:
        """Fraction done in [0, 1]."""
        return min(1.0, self.done / self.total) if self.total else 0.0


@dataclass
class JobContext:
    """Progress sink and cancellation flag of one job."""

    on_progress: Callable[[Progress], None] | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    progress: Progress = field(default_factory=Progress)

    def report(
        self, done: int, total: int, best: float | None = None, message: str | None = None
    ) -> None:
        """Record progress and pass it on."""
        self.progress = Progress(
            done, total, best if best is not None else self.progress.best,
            message if message is not None else self.progress.message,
        )  # fmt: skip
        if self.on_progress is not None:
            self.on_progress(self.progress)

    @property
    def cancelled(self) -> bool:
        """Whether cancellation was asked for."""
        return self.cancel_event.is_set()

    def cancel(self) -> None:
        """Ask the job to stop at its next check."""
        self.cancel_event.set()

    def check(self) -> None:
        """Raise JobCancelledError if cancellation was asked for."""
        if self.cancel_event.is_set():
            raise JobCancelledError("job cancelled")
