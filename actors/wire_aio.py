"""The wire (``actors.wire``) for an asyncio actor: the same frames, handshake, allowlist and
failure rules, on the actor's own event loop.

Risk is an asyncio actor (its ``state`` and ``kill`` are answered while a bar is in flight).
Served from threads, each bar would cross four thread hand-offs inside it (the connection's
thread to the loop, the loop to a worker thread for the broker call, and back twice), each a
GIL hand-off on two busy cores; on the loop, the feed's call and the broker's answer are just
two more readers the loop wakes for.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import pickle
import secrets
import time
from collections.abc import Iterable
from typing import Any

from actors.retry import ActorDownError, CallTimeoutError, actor_errors, call
from actors.wire import (
    _HANDSHAKE_S,
    _HEADER,
    _MAX_FRAME,
    _NONCE,
    _PING_EVERY_S,
    Endpoint,
    PeerBase,
    WireError,
    _mac,
    _node_ip,
    reply,
)

__all__ = ["AsyncWirePeer", "AsyncWireServer"]

log = logging.getLogger("raytrader.wire")


def _write(writer: asyncio.StreamWriter, payload: bytes) -> None:
    writer.write(_HEADER.pack(len(payload)) + payload)


async def _read(reader: asyncio.StreamReader) -> bytes:
    try:
        (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
        if size > _MAX_FRAME:
            raise WireError(f"frame of {size} bytes refused")
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise WireError("connection closed by the peer") from exc


async def _prove(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: bytes, *, server: bool
) -> None:
    """``actors.wire._prove`` on streams: each end checks the other's MAC of its nonce."""
    mine = secrets.token_bytes(_NONCE)
    _write(writer, mine)
    theirs = await _read(reader)
    if len(theirs) != _NONCE:
        raise WireError("bad handshake")
    _write(writer, _mac(key, theirs, b"S" if server else b"C"))
    await writer.drain()
    answer = await _read(reader)
    if not hmac.compare_digest(answer, _mac(key, mine, b"C" if server else b"S")):
        raise WireError("the peer does not hold the key")


class AsyncWireServer:
    """``actors.wire.WireServer`` on the running event loop: each connection is a task, each
    call awaited in turn (a coroutine method shares the actor's locks with its Ray calls).

    Args:
        target: the actor instance.
        methods: the method names callers may run.
    """

    def __init__(self, target: object, methods: Iterable[str]) -> None:
        self._target = target
        self._methods = frozenset(methods)
        self._key = secrets.token_bytes(32)
        self._server: asyncio.Server | None = None

    async def start(self, host: str | None = None) -> AsyncWireServer:
        """Listen on the node's IP (or ``host``) on a free port."""
        self._server = await asyncio.start_server(self._serve, host or _node_ip(), 0)
        return self

    @property
    def endpoint(self) -> Endpoint:
        """Where and how to connect: host, port, the key (hex) and this process's pid."""
        assert self._server is not None, "start() first"
        host, port = self._server.sockets[0].getsockname()[:2]
        return {"host": host, "port": port, "key": self._key.hex(), "pid": os.getpid()}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(_prove(reader, writer, self._key, server=True), _HANDSHAKE_S)
        except (OSError, WireError, TimeoutError) as exc:
            log.warning("wire: connection refused: %s", exc)
            writer.close()
            return
        try:
            while True:
                method, args = pickle.loads(await _read(reader))
                _write(writer, await self._dispatch(method, args))
                await writer.drain()
        except (OSError, WireError, EOFError):
            pass  # the caller went away
        finally:
            writer.close()

    async def _dispatch(self, method: str, args: tuple[Any, ...]) -> bytes:
        try:
            if method not in self._methods:
                raise AttributeError(f"method {method!r} is not served on the wire")
            result = getattr(self._target, method)(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return reply(True, result)
        except Exception as exc:
            return reply(False, exc)


class AsyncWirePeer(PeerBase):
    """``actors.wire.WirePeer`` for a caller on an event loop; one call at a time.
    Arguments as ``actors.wire.PeerBase``'s."""

    def __init__(self, name: str, handle: Any, *, restart_wait_s: float, timeout_s: float) -> None:
        super().__init__(name, handle, restart_wait_s=restart_wait_s, timeout_s=timeout_s)
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    async def _connect(self, started: float, retry: bool) -> None:
        left = max(self._wait_s - (time.monotonic() - started), 0.0)
        point: Endpoint = await call(self._handle.endpoint, name=self.name, restart_wait_s=left,
                                     timeout_s=self._timeout_s, retry=retry)  # fmt: skip
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(point["host"], point["port"]), _HANDSHAKE_S
        )
        try:
            await asyncio.wait_for(
                _prove(reader, writer, bytes.fromhex(point["key"]), server=False), _HANDSHAKE_S
            )
        except BaseException:
            writer.close()
            raise
        self._streams, self._pid = (reader, writer), point["pid"]

    def close(self) -> None:
        """Drop the connection (the next call reconnects)."""
        if self._streams is not None:
            self._streams[1].close()
        self._streams = None

    async def _once(self, method: str, args: tuple[Any, ...], started: float, retry: bool) -> Any:
        """One attempt: connect if needed, send, wait for the answer (pinging the actor)."""
        try:
            if self._streams is None:
                await self._connect(started, retry)
            assert self._streams is not None
            reader, writer = self._streams
            _write(writer, pickle.dumps((method, args), protocol=pickle.HIGHEST_PROTOCOL))
            await writer.drain()
            answer = asyncio.ensure_future(_read(reader))
            deadline = time.monotonic() + self._timeout_s
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    answer.cancel()
                    self.close()  # a late answer must not be read as the next call's
                    raise CallTimeoutError(self.name, method, self._timeout_s)
                done, _ = await asyncio.wait({answer}, timeout=min(left, _PING_EVERY_S))
                if done:
                    return pickle.loads(answer.result())
                await self._check_alive(answer)
        except ActorDownError:
            raise
        except (OSError, WireError, EOFError, TimeoutError, pickle.UnpicklingError,
                *actor_errors()) as exc:  # fmt: skip
            self.close()
            raise WireError(f"{self.name}: {type(exc).__name__}: {exc}") from exc

    async def _check_alive(self, answer: asyncio.Future[bytes]) -> None:
        try:
            pid = await asyncio.wait_for(self._handle.pid.remote(), _PING_EVERY_S)
        except actor_errors() as exc:
            answer.cancel()
            raise WireError(f"{self.name} is down") from exc
        except Exception:  # busy or slow to answer: keep waiting for the call
            return
        if pid != self._pid:
            answer.cancel()
            raise WireError(f"{self.name} restarted (pid {self._pid} -> {pid})")

    async def call(self, method: str, *args: Any, retry: bool = True) -> Any:
        """``WirePeer.call`` for coroutines: resent while the actor restarts.

        Raises:
            ActorDownError: the actor did not come back in time (or ``retry`` is False).
            CallTimeoutError: one attempt took longer than ``timeout_s``.
            Exception: whatever the method itself raised.
        """
        async with self._lock:
            started, attempt = time.monotonic(), 0
            while True:
                try:
                    ok, value = await self._once(method, args, started, retry)
                except WireError as exc:
                    waited = time.monotonic() - started
                    if not retry or waited >= self._wait_s:
                        raise ActorDownError(self.name, waited, exc) from exc
                    pause = min(0.05 * 2**attempt, 1.0, max(self._wait_s - waited, 0.0))
                    await asyncio.sleep(pause)
                    attempt += 1
                    continue
                if not ok:
                    raise value
                return value

