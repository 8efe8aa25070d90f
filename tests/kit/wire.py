"""A small actor serving a few methods on the wire (``actors.wire``), for its tests. Importable
by name in Ray workers (their working directory is the repository)."""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any

from actors.common import ActorShell, exclusive

__all__ = ["Echo", "PickyError", "Unreachable"]


class PickyError(ValueError):
    """An application error with a field, to check that the class and value travel back."""

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(f"bad {field}")

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return type(self), (self.field,)


class Echo(ActorShell):
    """Echoes, fails or sleeps on the wire; counts the calls it ran."""

    WIRE_METHODS = frozenset({"echo", "fail", "sleep", "defer", "litter"})
    COLLECT_AFTER = frozenset({"litter"})

    def __init__(self) -> None:
        self._mutex = threading.RLock()
        self._ran: list[str] = []
        self._pending: list[str] = []

    @exclusive
    def defer(self, work: str) -> dict[str, list[str]]:
        """Leave ``work`` for after the answer (``after_reply``); answers what is pending."""
        self._ran.append("defer")
        self._pending.append(work)
        return {"pending": list(self._pending), "done": [r for r in self._ran if ":" in r]}

    @exclusive
    def after_reply(self) -> None:
        """Do the work ``defer`` left, once its answer has gone."""
        while self._pending:
            self._ran.append(f"after:{self._pending.pop(0)}")

    @exclusive
    def echo(self, value: Any) -> Any:
        """The value, with this process's pid."""
        self._ran.append("echo")
        return {"value": value, "pid": os.getpid()}

    @exclusive
    def fail(self, field: str) -> None:
        """Raise ``PickyError(field)``."""
        self._ran.append("fail")
        raise PickyError(field)

    def sleep(self, seconds: float) -> int:
        """Sleep, then answer the pid."""
        self._ran.append("sleep")
        time.sleep(seconds)
        return os.getpid()

    def secret(self) -> str:
        """Not served on the wire."""
        self._ran.append("secret")
        return "hidden"

    def litter(self, n: int) -> int:
        """Leave ``n`` unreachable cycles (one self-referencing list each) for the collector;
        answers the pid."""
        for _ in range(n):
            cycle: list[Any] = []
            cycle.append(cycle)
        return os.getpid()

    def heap(self) -> dict[str, Any]:
        """This process's collector: counts, thresholds, frozen objects, each generation's
        collections and objects collected (``gc.get_stats``). Not served on the wire."""
        return {"count": gc.get_count(), "threshold": gc.get_threshold(),
                "frozen": gc.get_freeze_count(), "stats": gc.get_stats()}  # fmt: skip

    @exclusive
    def ping(self) -> int:
        """A probe that counts itself: answers the pid."""
        self._ran.append("ping")
        return os.getpid()

    @exclusive
    def ran(self) -> list[str]:
        """The methods run so far, in order."""
        return list(self._ran)


class Unreachable:
    """An actor whose wire endpoint names a port nobody listens on (a firewall, say)."""

    def endpoint(self) -> dict[str, Any]:
        """A loopback port just closed again: connecting to it is refused."""
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return {"host": "127.0.0.1", "port": port, "key": "00" * 32, "pid": os.getpid()}

    def pid(self) -> int:
        """The worker process id."""
        return os.getpid()
