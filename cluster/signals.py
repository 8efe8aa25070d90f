"""SIGTERM handled like Ctrl-C by the long-running commands (``run``, ``demo``, ``serve``).

SIGTERM is how a service manager, ``kill`` or Kubernetes stops a process. Ray's handler in
a driver dumps a stack and dies; these commands instead end the way Ctrl-C ends them.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

__all__ = ["Terminated", "sigterm_as_interrupt"]


class Terminated(KeyboardInterrupt):
    """SIGTERM (what a service manager, ``kill`` or Kubernetes sends to stop a process):
    ended the way Ctrl-C ends a run, with exit code 143."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[list[int]]:
    """Inside: SIGTERM raises ``Terminated`` in the main thread, like Ctrl-C's
    KeyboardInterrupt, instead of Ray's handler (a stack dump, then death with no word of how
    far the run got), and is noted in the list yielded: Ray turns any exception a signal
    handler raises inside its calls into a plain KeyboardInterrupt. A second SIGTERM kills
    at once."""
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding program's): left as it is
        yield received
        return
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)
