"""The control API's FastAPI application, built by a plain function (``cluster.serve`` wraps it).

``build_app`` assembles, from the outside in: request metrics (every answer counted, 429 and
413 included), the rate limiter (never on ``POST /risk/kill``), the body size limit, the error
handlers, the public router (``/health``, ``/ready``, ``/metrics``) and the token-protected
routers (``cluster.api.routes.ROUTERS`` in production), to each of which it adds the
bearer-token dependency.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Depends, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors.metrics import MetricsRecorder
from cluster.api.backend import ControlBackend
from cluster.api.deps import Backend, require_caller
from cluster.api.errors import install_error_handlers
from cluster.api.schemas import (
    PROTECTED_RESPONSES,
    PUBLIC_RESPONSES,
    HealthResponse,
    ReadyResponse,
)
from cluster.metrics import SnapshotSource, recorder_source, render
from cluster.security import (
    ApiToken,
    Authenticator,
    BodySizeLimitMiddleware,
    RateLimit,
    RateLimitMiddleware,
)
from core.errors import ConfigError
from core.metric_names import API_REQUEST_SECONDS, API_REQUESTS, HTTP_METHODS

__all__ = [
    "ANONYMOUS",
    "DEFAULT_BODY_LIMIT",
    "RequestMetricsMiddleware",
    "build_app",
    "public_router",
]

DEFAULT_BODY_LIMIT = 64 * 1024  # bytes: the largest real body (limits, a job spec) is a few KiB
ANONYMOUS = "insecure-local"  # the caller's name when serving without tokens (loopback only)


def _version() -> str:
    try:
        return version("raytrader")
    except PackageNotFoundError:
        return "0+unknown"


class RequestMetricsMiddleware:
    """Counts every request by route template, method and status, and times it.

    The route label is the matched route's template (``/strategies/{id}``), or ``unmatched``
    for anything the router did not match (404s, and requests refused before routing), so
    the label stays bounded whatever paths clients send.
    """

    def __init__(self, app: ASGIApp, recorder: MetricsRecorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"].upper()
            method = method if method in HTTP_METHODS else "other"
            self.recorder.inc(API_REQUESTS, route=route, method=method, code=str(status))
            self.recorder.observe(
                API_REQUEST_SECONDS, time.perf_counter() - start, route=route, method=method
            )


def public_router(sources: Sequence[SnapshotSource], app_version: str) -> APIRouter:
    """``GET /health``, ``GET /ready`` and ``GET /metrics``: no token, nothing secret."""
    router = APIRouter(tags=["public"], responses=PUBLIC_RESPONSES)

    @router.get("/health", summary="The API process is up")
    async def health() -> HealthResponse:
        return HealthResponse(version=app_version)

    @router.get(
        "/ready", summary="Risk, broker and journal reachable, data fresh (503 if not)",
        responses={503: {"model": ReadyResponse, "description": "Not ready (same body)"}},
    )  # fmt: skip
    async def ready(backend: Backend, response: Response) -> ReadyResponse:
        answer = await backend.ready()
        if not answer.ready:
            response.status_code = 503
        return answer

    # Synchronous on purpose: collecting asks the actors and blocks, so FastAPI runs it in
    # its thread pool instead of on the event loop.
    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def metrics() -> Response:
        return Response(render(sources), media_type=CONTENT_TYPE_LATEST)

    return router


def build_app(
    backend: ControlBackend | None,
    *,
    tokens: Sequence[ApiToken],
    insecure_local: bool = False,
    body_limit: int = DEFAULT_BODY_LIMIT,
    rate_limit: RateLimit | None = None,
    metrics_sources: Sequence[SnapshotSource] = (),
    recorder: MetricsRecorder | None = None,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The control API as a FastAPI app, testable without Serve.

    Args:
        backend: What the routes call; None serves only the public routes (the others
            answer 503).
        tokens: Accepted API tokens (``cluster.security.load_tokens``).
        insecure_local: With no tokens, let every caller in as ``ANONYMOUS``; only for a
            loopback bind, which ``cluster.security.check_bind`` enforces before serving.
        body_limit: Largest request body in bytes (413 above it).
        rate_limit: Per-client token bucket (default ``RateLimit()``); ``POST /risk/kill``
            is never limited.
        metrics_sources: Where ``/metrics`` gets the live actors' snapshots
            (``cluster.metrics.actor_source()``); the API's own recorder is always added.
        recorder: The API process's recorder (default: a new one named ``api``).
        routers: Token-protected routers; every route in them requires a bearer token.

    Raises:
        ConfigError: No token and not ``insecure_local`` (the API would refuse every call).
    """
    if not tokens and not insecure_local:
        raise ConfigError("no API token given; pass tokens, or insecure_local=True on loopback")
    recorder = recorder or MetricsRecorder("api")
    app_version = _version()
    app = FastAPI(
        title="raytrader control API",
        version=app_version,
        description="Watch and steer a running raytrader system. Every route except /health, "
        "/ready and /metrics needs Authorization: Bearer <token>.",
    )
    app.state.backend = backend
    app.state.authenticator = Authenticator(tokens, anonymous=ANONYMOUS if insecure_local else None)
    app.state.recorder = recorder
    install_error_handlers(app)
    app.include_router(public_router([*metrics_sources, recorder_source(recorder)], app_version))
    for router in routers:
        app.include_router(
            router, dependencies=[Depends(require_caller)], responses=PROTECTED_RESPONSES
        )
    # add_middleware puts each new one outside the previous: innermost first.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=body_limit)
    app.add_middleware(RateLimitMiddleware, limit=rate_limit or RateLimit())
    app.add_middleware(RequestMetricsMiddleware, recorder=recorder)
    return app
