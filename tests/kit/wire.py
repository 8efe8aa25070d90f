"""A small actor serving a few methods on the wire (``actors.wire``), for its tests. Importable
by name in Ray workers (their working directory is the repository)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from actors.common import ActorShell, exclusive

__all__ = ["AsyncEcho", "Echo", "PickyError"]


class PickyError(ValueError):
    """An application error with a field, to check that the class and value travel back."""

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(f"bad {field}")

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return type(self), (self.field,)


class Echo(ActorShell):
    """Echoes, fails or sleeps on the wire; counts the calls it ran."""

    WIRE_METHODS = frozenset({"echo", "fail", "sleep"})

    def __init__(self) -> None:
        self._mutex = threading.RLock()
        self._ran: list[str] = []

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

    @exclusive
    def ran(self) -> list[str]:
        """The methods run so far, in order."""
        return list(self._ran)


class AsyncEcho(ActorShell):
    """``Echo`` as an asyncio actor serving on its loop (``actors.wire_aio``), like risk."""

    WIRE_METHODS = frozenset({"echo", "fail"})

    def __init__(self) -> None:
        self._server: Any = None

    async def endpoint(self) -> dict[str, Any]:
        """The wire endpoint, served on this actor's event loop."""
        from actors.wire_aio import AsyncWireServer

        if self._server is None:
            self._server = await AsyncWireServer(self, self.WIRE_METHODS).start()
        return self._server.endpoint

    async def echo(self, value: Any) -> Any:
        """The value, with this process's pid."""
        return {"value": value, "pid": os.getpid()}

    async def fail(self, field: str) -> None:
        """Raise ``PickyError(field)``."""
        raise PickyError(field)
