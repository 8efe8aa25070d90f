"""Security of the control API: bearer tokens, the bind rule, body size and rate limits.

Ray Serve brings no request authentication, so the API brings its own:

- Tokens come from the environment (``RAYTRADER_API_TOKEN``: one token named ``default``;
  ``RAYTRADER_API_TOKENS``: ``name=token,name2=token2``) and/or a mounted secret file
  (``RAYTRADER_API_TOKEN_FILE``: lines ``name: token``, or one bare token). Each is a
  ``SecretStr`` that never prints, and must look random enough (``check_token_strength``).
  The token's *name* is who did something: the journal records it, never the token.
- ``Authenticator.authenticate`` compares a presented token with every configured one in
  constant time (SHA-256 digests through ``hmac.compare_digest``, no early exit).
- ``check_bind`` refuses to start without a token unless the server binds to loopback and the
  operator passed ``--insecure-local``. The default bind is ``DEFAULT_HOST`` (127.0.0.1).
- ``BodySizeLimitMiddleware`` answers 413 for bodies over the limit, chunked ones included;
  ``RateLimitMiddleware`` is a token bucket per client address (429 with ``Retry-After``) that
  never applies to ``POST /risk/kill``: a kill switch must always get through.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import itertools
import json
import logging
import math
import os
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import ConfigError

__all__ = [
    "BEARER",
    "DEFAULT_HOST",
    "ENV_TOKEN",
    "ENV_TOKENS",
    "ENV_TOKEN_FILE",
    "KILL_ROUTE",
    "MIN_TOKEN_LENGTH",
    "ApiToken",
    "Authenticator",
    "BodySizeLimitMiddleware",
    "InsecureBindError",
    "RateLimit",
    "RateLimitMiddleware",
    "TokenBucketLimiter",
    "TokenConfigError",
    "authenticate",
    "check_bind",
    "check_token_strength",
    "is_loopback",
    "load_tokens",
]

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
ENV_TOKEN = "RAYTRADER_API_TOKEN"
ENV_TOKENS = "RAYTRADER_API_TOKENS"
ENV_TOKEN_FILE = "RAYTRADER_API_TOKEN_FILE"
MIN_TOKEN_LENGTH = 32
KILL_ROUTE = ("POST", "/risk/kill")

_TOKEN_NAME = r"^[A-Za-z0-9_.\-]{1,64}$"
_NAMED_LINE = re.compile(r"^\s*([A-Za-z0-9_.\-]{1,64})\s*:\s*(\S+)\s*$")
BEARER = HTTPBearer(
    auto_error=False, scheme_name="bearer", description="Authorization: Bearer <API token>"
)
_HOW_TO = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class TokenConfigError(ConfigError):
    """API tokens are missing, malformed, duplicated or too weak (the message names the rule)."""


class InsecureBindError(ConfigError):
    """The server would accept unauthenticated requests from beyond this machine."""


class ApiToken(BaseModel):
    """One API token: a name (who, for the journal) and the secret (never printed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(pattern=_TOKEN_NAME)]
    secret: SecretStr


# ------------------------------------------------------------------ loading and checking
def check_token_strength(name: str, secret: str) -> None:
    """Refuse a token that is short or visibly non-random (never quoting the token).

    A string's true entropy cannot be measured, so this catches what humans type: fewer than
    ``MIN_TOKEN_LENGTH`` characters, fewer than 7 distinct characters, a repeated unit
    (``abcabcabc...``), or runs (``abcdef``, ``aaaa``) in three quarters of its neighbouring
    pairs. A token from ``secrets.token_urlsafe(32)`` or ``openssl rand -hex 16`` passes: for
    the latter (32 draws from 16 characters) 6 distinct characters or fewer come with
    probability 1.8e-10, and 24 of its 31 neighbouring pairs within one code point of each
    other about 3e-13, so a generated token is never refused in practice.

    Raises:
        TokenConfigError: The token is too weak, with the rule it broke.
    """
    problem = None
    n = len(secret)
    if n < MIN_TOKEN_LENGTH:
        problem = f"{n} characters, at least {MIN_TOKEN_LENGTH} are needed"
    elif n > 4096:
        problem = f"{n} characters, at most 4096 are allowed"
    elif any(c.isspace() for c in secret):
        problem = "it contains whitespace"
    elif len(set(secret)) < 7:
        problem = f"only {len(set(secret))} distinct characters"
    elif any(secret == secret[:k] * (n // k) + secret[: n % k] for k in range(1, n // 2 + 1)):
        problem = "it repeats a shorter pattern"
    elif sum(abs(ord(a) - ord(b)) <= 1 for a, b in itertools.pairwise(secret)) * 4 >= 3 * (n - 1):
        problem = "it is mostly runs of neighbouring characters"
    elif _shannon_bits(secret) < 80:
        problem = "too little variety in its characters"
    if problem:
        raise TokenConfigError(f"API token {name!r} is too weak: {problem}; {_HOW_TO}")


def _shannon_bits(text: str) -> float:
    n = len(text)
    return -n * sum(c / n * math.log2(c / n) for c in Counter(text).values())


def _named(name: str, secret: str, where: str) -> ApiToken:
    if not re.match(_TOKEN_NAME, name):
        raise TokenConfigError(f"{where}: token name {name!r} must match {_TOKEN_NAME}")
    check_token_strength(name, secret)
    return ApiToken(name=name, secret=SecretStr(secret))


def _parse_pairs(text: str) -> list[ApiToken]:
    out = []
    for i, item in enumerate(p for p in text.split(",") if p.strip()):
        name, sep, secret = item.strip().partition("=")
        if not sep or not name or not secret:
            raise TokenConfigError(f"{ENV_TOKENS}: entry {i + 1} is not 'name=token'")
        out.append(_named(name.strip(), secret.strip(), ENV_TOKENS))
    return out


def _parse_file(path: Path) -> list[ApiToken]:
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as err:
        raise TokenConfigError(f"{ENV_TOKEN_FILE}: cannot read {path}: {err.strerror}") from None
    lines = [(i + 1, ln) for i, ln in enumerate(raw.splitlines())
             if ln.strip() and not ln.lstrip().startswith("#")]  # fmt: skip
    if len(lines) == 1 and not _NAMED_LINE.match(lines[0][1]):
        return [_named("default", lines[0][1].strip(), str(path))]
    out = []
    for number, line in lines:
        match = _NAMED_LINE.match(line)
        if match is None:
            raise TokenConfigError(f"{path}: line {number} is not 'name: token'")
        out.append(_named(match[1], match[2], f"{path}:{number}"))
    return out


def load_tokens(env: Mapping[str, str] | None = None) -> tuple[ApiToken, ...]:
    """The API tokens configured in the environment and/or the secret file it names.

    Args:
        env: Where to read the variables (default: ``os.environ``).

    Returns:
        Every token, each under a unique name; empty if none is configured.

    Raises:
        TokenConfigError: Malformed entries, weak tokens, a name used twice, or two names
            sharing one token (the journal could not tell who acted).
    """
    env = os.environ if env is None else env
    tokens: list[ApiToken] = []
    if single := env.get(ENV_TOKEN, "").strip():
        tokens.append(_named("default", single, ENV_TOKEN))
    if pairs := env.get(ENV_TOKENS, "").strip():
        tokens.extend(_parse_pairs(pairs))
    if path := env.get(ENV_TOKEN_FILE, "").strip():
        tokens.extend(_parse_file(Path(path)))
    names: dict[str, ApiToken] = {}
    secrets_seen: dict[str, str] = {}
    for token in tokens:
        if token.name in names:
            raise TokenConfigError(f"API token name {token.name!r} is configured twice")
        names[token.name] = token
        value = token.secret.get_secret_value()
        if value in secrets_seen:
            raise TokenConfigError(
                f"API tokens {secrets_seen[value]!r} and {token.name!r} are the same token"
            )
        secrets_seen[value] = token.name
    return tuple(tokens)


# ------------------------------------------------------------------ authentication
def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


def _match(candidate: str | None, digests: Sequence[tuple[str, bytes]]) -> str | None:
    # Equal-length digests and a loop over every token: the time taken tells nothing about
    # how much of a token matched, nor which one.
    presented = _digest(candidate or "")
    found = None
    for name, digest in digests:
        if hmac.compare_digest(presented, digest) and found is None:
            found = name
    return found if candidate else None


def authenticate(header: str | None, tokens: Iterable[ApiToken]) -> str | None:
    """The name of the token in an ``Authorization: Bearer <token>`` header, or None."""
    digests = [(t.name, _digest(t.secret.get_secret_value())) for t in tokens]
    return _match(_bearer(header), digests)


class Authenticator:
    """Checks bearer tokens for the protected routes and says who the caller is.

    Args:
        tokens: The configured tokens.
        anonymous: The caller name to use when no token is configured (only with
            ``--insecure-local`` on loopback, see ``check_bind``); None: every call needs a
            token, and with no token configured every call is refused.
    """

    def __init__(self, tokens: Sequence[ApiToken], *, anonymous: str | None = None) -> None:
        self._digests = [(t.name, _digest(t.secret.get_secret_value())) for t in tokens]
        self._anonymous = anonymous if not tokens else None

    def authenticate(self, header: str | None) -> str | None:
        """The caller's token name, the anonymous name if allowed, or None."""
        if self._anonymous is not None:
            return self._anonymous
        return _match(_bearer(header), self._digests)

    def require(self, request: Request) -> str:
        """The caller's name, or HTTP 401 with ``WWW-Authenticate: Bearer``."""
        name = self.authenticate(request.headers.get("authorization"))
        if name is None:
            client = request.client.host if request.client else "unknown"
            log.warning("refused %s %s from %s: missing or wrong API token",
                        request.method, request.url.path, client)  # fmt: skip
            raise HTTPException(
                status_code=401,
                detail="missing or invalid API token (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": 'Bearer realm="raytrader"'},
            )
        return name

    def dependency(self) -> Callable[..., str]:
        """A FastAPI dependency returning the caller's token name (``require``); it also
        declares the bearer scheme in OpenAPI."""

        def caller(
            request: Request,
            _: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
        ) -> str:
            return self.require(request)

        return caller


# ------------------------------------------------------------------ bind rule
def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1) or ``localhost``.

    Other host names are not resolved (a name could point anywhere), so they count as not
    loopback.
    """
    h = host.strip().strip("[]").rstrip(".").lower()
    if h == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def check_bind(host: str, tokens: Sequence[ApiToken], insecure_local: bool) -> None:
    """Refuse to serve without a token unless bound to loopback with ``--insecure-local``.

    Raises:
        InsecureBindError: No token is configured and the bind or the flag does not allow it.
    """
    if tokens:
        return
    if not insecure_local:
        raise InsecureBindError(
            f"no API token configured: set {ENV_TOKEN}, {ENV_TOKENS} or {ENV_TOKEN_FILE} "
            f"({_HOW_TO}), or bind to {DEFAULT_HOST} and pass --insecure-local"
        )
    if not is_loopback(host):
        raise InsecureBindError(
            f"--insecure-local serves without authentication, so only on loopback "
            f"(127.0.0.1, ::1, localhost); {host!r} is not loopback: configure an API token"
        )
    log.warning("serving the control API WITHOUT authentication on %s (--insecure-local)", host)


# ------------------------------------------------------------------ middlewares
async def _send_json(send: Send, status: int, detail: str, headers: Mapping[str, str]) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimitMiddleware:
    """Answers 413 for a request body over ``max_bytes`` before the app sees any of it.

    A ``Content-Length`` over the limit is refused at once; a body without one (chunked) is
    read up to the limit and refused as soon as it goes over. An accepted body is buffered
    (it is at most ``max_bytes``) and replayed to the app.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ConfigError(f"body limit must be positive, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _send_json(send, 400, "invalid Content-Length header", {})
                return
            if int(declared) > self.max_bytes:
                await self._too_large(send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _too_large(self, send: Send) -> None:
        await _send_json(
            send, 413, f"request body is larger than the limit of {self.max_bytes} bytes",
            {"connection": "close"},
        )  # fmt: skip


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


@dataclass(frozen=True)
class RateLimit:
    """Requests per second per client address, with bursts up to ``burst`` requests.

    ``exempt`` lists ``(method, path)`` pairs never limited; ``KILL_ROUTE`` always is.
    """

    rate: float = 20.0
    burst: int = 40
    exempt: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    max_clients: int = 10_000

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1 or self.max_clients < 1:
            raise ConfigError(f"rate limit needs rate > 0, burst >= 1: got {self}")


class TokenBucketLimiter:
    """Token buckets by key (client address), refilled at ``rate`` per second up to ``burst``.

    Keeps at most ``max_clients`` buckets; the least recently seen is forgotten first (it
    comes back with a full bucket, which only ever errs on the side of letting a request in).
    """

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def acquire(self, key: str) -> float:
        """Take one token for ``key``: 0.0 if allowed, else the seconds until one is free."""
        now = self._clock()
        tokens, last = self._buckets.pop(key, (float(self.limit.burst), now))
        tokens = min(float(self.limit.burst), tokens + (now - last) * self.limit.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.limit.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.limit.max_clients:
            self._buckets.popitem(last=False)
        return wait


class RateLimitMiddleware:
    """429 with ``Retry-After`` once a client address empties its bucket; never for a kill."""

    def __init__(
        self, app: ASGIApp, limit: RateLimit, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.app = app
        self.limiter = TokenBucketLimiter(limit, clock)
        self.exempt = frozenset(limit.exempt) | {KILL_ROUTE}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.limiter.acquire(client[0] if client else "unknown")
        if wait > 0:
            retry = str(max(1, math.ceil(wait)))
            await _send_json(send, 429, f"too many requests; retry in {retry} s",
                             {"retry-after": retry})  # fmt: skip
            return
        await self.app(scope, receive, send)

    def _exempt(self, scope: Scope) -> bool:
        path: str = scope["path"]
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root) :]
        return (scope["method"].upper(), path.rstrip("/") or "/") in self.exempt
