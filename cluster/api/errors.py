"""One place that maps domain errors to HTTP status codes and error bodies.

Routes stay a few lines because they never catch: the backend raises a domain error
(``core.errors`` or the API errors below) and ``install_error_handlers`` turns it into a status
code and a body, ``{"detail": [{"field", "reason"}]}`` for 422 and ``{"detail": "..."}``
otherwise. Every message passes the log redactor, so a secret can never leak through an error,
and an unexpected exception answers a bare 500 (its traceback goes to the log only).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cluster.logs import redactor
from core.errors import (
    BrokerError,
    ConfigError,
    DataValidationError,
    RaytraderError,
    StrategyError,
    TransientBrokerError,
)
from core.lifecycle import StrategyStateError
from optimization.api import JobNotFoundError

__all__ = [
    "ConflictError",
    "FieldError",
    "NotFoundError",
    "NotSupportedError",
    "UnavailableError",
    "error_items",
    "install_error_handlers",
    "status_for",
]

log = logging.getLogger(__name__)


class NotFoundError(RaytraderError, LookupError):
    """No such strategy, job or order (404)."""


class ConflictError(RaytraderError):
    """The request contradicts the current state: the id exists, the strategy is stopped (409)."""


class UnavailableError(RaytraderError):
    """A live actor (risk, broker, journal, feed) cannot be reached right now (503)."""


class NotSupportedError(RaytraderError):
    """The running system cannot do this (yet): e.g. an actor lacks the method (501)."""


class FieldError(RaytraderError, ValueError):
    """A request value the schema accepted but the domain refuses, with its field (422)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


# Most specific first: the first matching class decides.
_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (NotFoundError, 404),
    (JobNotFoundError, 404),
    (ConflictError, 409),
    (StrategyStateError, 409),
    (NotSupportedError, 501),
    (UnavailableError, 503),
    (TransientBrokerError, 503),
    (BrokerError, 502),
    (StrategyError, 409),
    (DataValidationError, 400),
    (ConfigError, 400),
)


def status_for(exc: BaseException) -> int:
    """The HTTP status of a domain error (500 for anything unexpected)."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def _field(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def error_items(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """pydantic/FastAPI error dicts as ``[{"field", "reason"}]`` (without echoing input)."""
    items = []
    for err in errors:
        reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "json_invalid":
            where = _field(err.get("loc", ()))
            why = (err.get("ctx") or {}).get("error", "")
            items.append({"field": "body", "reason": f"malformed JSON at {where}: {why}".strip()})
            continue
        items.append({"field": _field(err.get("loc", ())), "reason": redactor().redact(reason)})
    return items


def _detail(exc: BaseException) -> str:
    return redactor().redact(str(exc)) or type(exc).__name__


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers: request validation, HTTP errors, domain errors, the rest."""

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": error_items(exc.errors())}, status_code=422)

    @app.exception_handler(ValidationError)
    async def _invalid_domain_value(_: Request, exc: ValidationError) -> JSONResponse:
        return JSONResponse({"detail": error_items(exc.errors())}, status_code=422)

    @app.exception_handler(FieldError)
    async def _field_error(_: Request, exc: FieldError) -> JSONResponse:
        item = {"field": exc.field, "reason": redactor().redact(exc.reason)}
        return JSONResponse({"detail": [item]}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return JSONResponse(
            {"detail": redactor().redact(detail)}, status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )  # fmt: skip

    @app.exception_handler(RaytraderError)
    async def _domain_error(request: Request, exc: RaytraderError) -> JSONResponse:
        status = status_for(exc)
        if status >= 500:
            log.warning("%s %s failed: %s", request.method, request.url.path, _detail(exc))
        return JSONResponse({"detail": _detail(exc)}, status_code=status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s raised", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error (see the server log)"}, status_code=500)
