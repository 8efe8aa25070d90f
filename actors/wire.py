"""The hot path's transport: one direct, authenticated socket per caller and live actor.

A Ray actor call costs about half a millisecond of CPU on each side here (task submission,
the raylet and core worker hops, cloudpickle), whatever it carries; the per-bar protocol makes
a dozen of them a bar, so Ray's calls, not the work, set the replay's speed. The bar path
(``host.on_bar``, ``risk.open_bar|close_bar``, the broker's calls from risk) therefore goes
over a plain TCP connection per caller and callee: a length-prefixed pickle each way, a few
tens of microseconds. Everything else stays a Ray call, and Ray still owns each actor's life:
its name, placement, restarts, the dashboard, and the endpoint itself, which the caller asks
the actor for through Ray (``endpoint()``), so the wire is as reachable, and as secret, as
Ray's own control plane.

Each server binds the node's IP on a free port and makes a fresh random key when it starts;
a connection proves both ends know it (HMAC-SHA256 challenges both ways) before any pickle is
read, and a server only runs the methods it was built with. A restarted actor has a new port
and key: the caller finds them by asking Ray again.

Failure rules are ``actors.retry``'s: a connection that breaks (the actor died, or restarted
while the caller waited) is the actor being down: the caller asks Ray for the endpoint again
(which waits for the restart), reconnects and sends the same call, for at most
``restart_wait_s`` in all. A call without an answer in ``timeout_s`` raises
``CallTimeoutError`` and is not resent. While it waits the caller checks every
``_PING_EVERY_S`` that the process it talks to is still the actor (a node that vanished
leaves a half-open socket, not an error).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import pickle
import secrets
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from actors.heap import collect_due
from actors.retry import ActorDownError, CallTimeoutError, actor_errors, call_sync, wait_back

__all__ = [
    "DeathWatch", "Endpoint", "WireError", "WirePeer", "WireServer", "Wires", "call_all",
    "reply",
]  # fmt: skip

log = logging.getLogger("raytrader.wire")

_HEADER = struct.Struct("!Q")
_NONCE = 32
_HANDSHAKE_S = 10.0
_PING_EVERY_S = 2.0
_MAX_FRAME = 1 << 31
Endpoint = dict[str, Any]  # {"host", "port", "key" (hex), "pid"}


class WireError(ConnectionError):
    """The connection broke or could not be made (the actor is down or restarting)."""


# ---------------------------------------------------------------------- framing
def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_HEADER.pack(len(payload)) + payload)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            raise WireError("connection closed by the peer")
        got += k
    return bytes(buf)


def _recv(sock: socket.socket) -> bytes:
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    if size > _MAX_FRAME:
        raise WireError(f"frame of {size} bytes refused")
    return _recv_exact(sock, size)


def _mac(key: bytes, nonce: bytes, role: bytes) -> bytes:
    return hmac.new(key, role + nonce, hashlib.sha256).digest()


def _prove(sock: socket.socket, key: bytes, *, server: bool) -> None:
    """Mutual challenge-response: each end sends a nonce and checks the other's MAC of it."""
    mine = secrets.token_bytes(_NONCE)
    _send(sock, mine)
    theirs = _recv(sock)
    if len(theirs) != _NONCE:
        raise WireError("bad handshake")
    _send(sock, _mac(key, theirs, b"S" if server else b"C"))
    answer = _recv(sock)
    if not hmac.compare_digest(answer, _mac(key, mine, b"C" if server else b"S")):
        raise WireError("the peer does not hold the key")


def _node_ip() -> str:
    try:
        import ray

        return str(ray.util.get_node_ip_address())
    except Exception:  # outside Ray (unit tests): loopback
        return "127.0.0.1"


# ---------------------------------------------------------------------- server
class WireServer:
    """Serves ``methods`` of ``target`` to authenticated callers, a thread per connection.

    Args:
        target: the actor instance.
        methods: the method names callers may run (anything else is refused); they run in
            the connection's thread and guard the actor's state themselves. Around each call
            the target's ``before_call()`` and, once the answer is sent, ``after_reply()``
            run on that thread, if it has them.
        host: the address to bind (default: this node's IP, reachable from the cluster).
        collect_after: the methods whose answer ends the target's part of a bar: after
            one, the collection that has come due runs (``actors.heap.collect_due``).
    """

    def __init__(
        self,
        target: object,
        methods: Iterable[str],
        *,
        host: str | None = None,
        collect_after: Iterable[str] = (),
    ) -> None:
        self._target = target
        self._methods = frozenset(methods)
        self._collect_after = frozenset(collect_after)
        self._key = secrets.token_bytes(32)
        self._sock = socket.create_server((host or _node_ip(), 0))
        self._closed = False
        threading.Thread(target=self._accept, name="wire-accept", daemon=True).start()

    @property
    def endpoint(self) -> Endpoint:
        """Where and how to connect: host, port, the key (hex) and this process's pid."""
        host, port = self._sock.getsockname()[:2]
        return {"host": host, "port": port, "key": self._key.hex(), "pid": os.getpid()}

    def close(self) -> None:
        """Stop accepting (connections in use end when their peer closes them)."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="wire-conn",
                             daemon=True).start()  # fmt: skip

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                conn.settimeout(_HANDSHAKE_S)
                _prove(conn, self._key, server=True)
                conn.settimeout(None)
            except (OSError, WireError) as exc:
                log.warning("wire: connection refused: %s", exc)
                return
            before = getattr(self._target, "before_call", None)
            after = getattr(self._target, "after_reply", None)
            while True:
                try:
                    method, args = pickle.loads(_recv(conn))
                except (OSError, WireError, EOFError):
                    return  # the caller went away
                if before is not None:
                    before()
                reply = self._dispatch(method, args)
                try:
                    _send(conn, reply)
                except OSError:
                    return
                finally:
                    if after is not None:
                        after()  # what the method left for after its answer (metrics, marks)
                    if method in self._collect_after:
                        collect_due()

    def _dispatch(self, method: str, args: tuple[Any, ...]) -> bytes:
        try:
            if method not in self._methods:
                raise AttributeError(f"method {method!r} is not served on the wire")
            return reply(True, getattr(self._target, method)(*args))
        except Exception as exc:  # the method's own error travels back to the caller
            return reply(False, exc)


def reply(ok: bool, value: Any) -> bytes:
    """An answer frame's payload: ``(True, result)`` or ``(False, the method's exception)``;
    an exception that cannot be pickled travels as a ``RuntimeError`` with its text."""
    try:
        return pickle.dumps((ok, value), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        if ok:
            raise
        return pickle.dumps((False, RuntimeError(f"{type(value).__name__}: {value}")))


# ---------------------------------------------------------------------- death watch
class DeathWatch:
    """An idle wire connection to an actor, held to learn at once that its process died:
    the kernel closes a dead process's sockets, so the connection reads end-of-file, where
    a Ray call in flight to it fails only some 1.5 s later. Nothing is ever sent on it, so
    the actor spends nothing on it (its connection thread waits in ``recv``).

    Args:
        name: the actor's name (for messages).
        handle: the actor's Ray handle (for its endpoint).
        restart_wait_s: longest wait for the actor while connecting.
    """

    def __init__(self, name: str, handle: Any, *, restart_wait_s: float) -> None:
        self._peer = WirePeer(name, handle, restart_wait_s=restart_wait_s, timeout_s=_HANDSHAKE_S)

    def watch(self) -> None:
        """Connect to the actor's current process (waiting for it while it restarts). A
        connection that cannot be made is logged and leaves nothing watched: the caller
        still learns of a death from its calls, later."""
        self._peer.close()
        try:
            self._peer._connect(time.monotonic(), retry=True)
        except (OSError, WireError) as exc:
            log.warning("%s: no death watch (%s); its calls will tell", self._peer.name, exc)

    def died(self) -> bool:
        """Whether the process watched has gone since ``watch`` (no wait)."""
        sock = self._peer._sock
        if sock is None:
            return False
        ready, _, _ = select.select([sock], [], [], 0)
        if not ready:
            return False
        try:
            gone = not sock.recv(1, socket.MSG_PEEK)
        except OSError:
            gone = True
        if gone:
            self._peer.close()
        return gone

    def close(self) -> None:
        """Stop watching (the actor's end of the connection closes)."""
        self._peer.close()


# ---------------------------------------------------------------------- client
class WirePeer:
    """The caller's end of one actor's wire; one call at a time (a lock keeps it so).

    Args:
        name: the actor's name (for messages).
        handle: the actor's Ray handle (for ``endpoint()`` and liveness checks).
        restart_wait_s: longest total wait for the actor to come back.
        timeout_s: longest wait for one answer.
    """

    def __init__(self, name: str, handle: Any, *, restart_wait_s: float, timeout_s: float) -> None:
        self.name = name
        self._handle = handle
        self._wait_s = restart_wait_s
        self._timeout_s = timeout_s
        self._pid: int | None = None  # the process the connection reaches
        self._sock: socket.socket | None = None
        self.lock = threading.Lock()

    # -------------------------------------------------------------- connection
    def _connect(self, started: float, retry: bool) -> None:
        """Ask Ray for the endpoint (of a restarting actor: ``wait_back``), connect and prove
        the key."""
        left = max(self._wait_s - (time.monotonic() - started), 0.0)
        point: Endpoint
        if retry:  # asked again and again while it restarts: seen as soon as it is up
            point = wait_back(self._handle.endpoint, name=self.name, restart_wait_s=left,
                              timeout_s=self._timeout_s)  # fmt: skip
        else:
            point = call_sync(self._handle.endpoint, name=self.name, restart_wait_s=left,
                              timeout_s=self._timeout_s, retry=False)  # fmt: skip
        sock = socket.create_connection((point["host"], point["port"]), timeout=_HANDSHAKE_S)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _prove(sock, bytes.fromhex(point["key"]), server=False)
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise
        self._sock, self._pid = sock, point["pid"]

    def close(self) -> None:
        """Drop the connection (the next call reconnects)."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None

    # -------------------------------------------------------------- one call, in two halves
    def send(
        self, method: str, args: tuple[Any, ...], started: float, *, retry: bool = True
    ) -> None:
        """Send one call, connecting first if needed (``retry``: as ``call``'s).

        Raises:
            WireError: the actor is unreachable (down, restarting, or refusing).
        """
        try:
            if self._sock is None:
                self._connect(started, retry)
            assert self._sock is not None
            _send(self._sock, pickle.dumps((method, args), protocol=pickle.HIGHEST_PROTOCOL))
        except ActorDownError:
            raise
        except (OSError, WireError, *actor_errors()) as exc:
            self.close()
            raise WireError(f"{self.name}: {type(exc).__name__}: {exc}") from exc

    def receive(self, method: str) -> tuple[bool, Any]:
        """The answer to the call sent: ``(ok, value)``; an error value is the method's own.

        Raises:
            WireError: the connection broke, or the process is no longer the actor.
            CallTimeoutError: no answer within ``timeout_s``.
        """
        sock = self._sock
        if sock is None:
            raise WireError(f"{self.name}: not connected")
        deadline = time.monotonic() + self._timeout_s
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.close()  # a late answer must not be read as the next call's
                    raise CallTimeoutError(self.name, method, self._timeout_s)
                ready, _, _ = select.select([sock], [], [], min(left, _PING_EVERY_S))
                if ready:
                    return pickle.loads(_recv(sock))
                self._check_alive()
        except (OSError, WireError, EOFError, pickle.UnpicklingError) as exc:
            self.close()
            raise WireError(f"{self.name}: {type(exc).__name__}: {exc}") from exc

    def _check_alive(self) -> None:
        """Raise ``WireError`` unless the actor still runs in the process we talk to."""
        import ray

        try:
            pid = ray.get(self._handle.pid.remote(), timeout=_PING_EVERY_S)
        except actor_errors() as exc:
            raise WireError(f"{self.name} is down") from exc
        except Exception:  # busy or slow to answer: keep waiting for the call
            return
        if pid != self._pid:
            raise WireError(f"{self.name} restarted (pid {self._pid} -> {pid})")

    def call(self, method: str, *args: Any, retry: bool = True) -> Any:
        """Call ``method(*args)`` on the actor; resent while it restarts (see module doc).

        Raises:
            ActorDownError: the actor did not come back in time (or ``retry`` is False).
            CallTimeoutError: one attempt took longer than ``timeout_s``.
            Exception: whatever the method itself raised.
        """
        with self.lock:
            return _settle(self, method, args, time.monotonic(), retry=retry)


def _settle(
    peer: WirePeer, method: str, args: tuple[Any, ...], started: float, *, retry: bool,
    sent: bool = False,
) -> Any:
    """Finish one call on ``peer`` (sending it unless ``sent``), resending it on a broken
    connection until it answers or ``restart_wait_s`` has passed since ``started``."""
    attempt = 0
    while True:
        try:
            if not sent:
                peer.send(method, args, started, retry=retry)
            ok, value = peer.receive(method)
            if not ok:
                raise value
            return value
        except WireError as exc:
            waited = time.monotonic() - started
            if not retry or waited >= peer._wait_s:
                raise ActorDownError(peer.name, waited, exc) from exc
            time.sleep(min(0.05 * 2**attempt, 1.0, max(peer._wait_s - waited, 0.0)))
            attempt, sent = attempt + 1, False


def call_all(
    calls: list[tuple[WirePeer, str, tuple[Any, ...]]], *, retry: bool = True
) -> list[Any]:
    """Send every ``(peer, method, args)`` first, then collect the answers in order: the
    callees work in parallel. A call whose actor is down is resent with ``WirePeer.call``'s
    rules (``retry`` False: ``ActorDownError`` at once); the first application error is
    raised after every call has answered."""
    started = time.monotonic()
    locks = [peer.lock for peer, _, _ in calls]
    for lock in locks:
        lock.acquire()
    unread = {id(peer): peer for peer, _, _ in calls}
    try:
        sent = []
        for peer, method, args in calls:
            try:
                peer.send(method, args, started, retry=retry)
                sent.append(True)
            except WireError:
                sent.append(False)
        out: list[Any] = []
        failed: BaseException | None = None
        for (peer, method, args), was_sent in zip(calls, sent, strict=True):
            try:
                out.append(_settle(peer, method, args, started, retry=retry, sent=was_sent))
            except Exception as exc:  # the method raised: report it once all have answered
                if isinstance(exc, ActorDownError | CallTimeoutError):
                    raise
                failed = failed or exc
                out.append(None)
            finally:
                unread.pop(id(peer), None)
        if failed is not None:
            raise failed
        return out
    finally:
        for peer in unread.values():  # answers never read must not answer a later call
            peer.close()
        for lock in locks:
            lock.release()


class Wires:
    """Wire peers by actor name, made on first use (one connection per caller and actor).

    Args:
        handles: the caller's ``Handles`` (name -> Ray handle).
        restart_wait_s: longest total wait for an actor to come back.
        timeout_s: longest wait for one answer.
    """

    def __init__(
        self, handles: Callable[[str], Any], *, restart_wait_s: float, timeout_s: float
    ) -> None:
        self._handles = handles
        self._wait_s = restart_wait_s
        self._timeout_s = timeout_s
        self._peers: dict[str, WirePeer] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str) -> WirePeer:
        """The peer of actor ``name``."""
        with self._lock:
            peer = self._peers.get(name)
            if peer is None:
                peer = self._peers[name] = WirePeer(
                    name, self._handles(name), restart_wait_s=self._wait_s,
                    timeout_s=self._timeout_s,
                )  # fmt: skip
            return peer

    def close(self) -> None:
        """Close every connection."""
        with self._lock:
            for peer in self._peers.values():
                peer.close()
