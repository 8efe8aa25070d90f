"""FastAPI dependencies every route module uses: who is calling, and the backend.

``Caller`` is the authenticated caller's token name (what the journal records as ``by``);
``Backend`` is the ``ControlBackend`` that ``build_app`` attached. Both read ``app.state``,
so route modules define plain module-level routers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from cluster.api.backend import ControlBackend
from cluster.api.errors import UnavailableError
from cluster.security import BEARER, Authenticator

__all__ = ["Backend", "Caller", "get_backend", "require_caller"]


async def require_caller(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
) -> str:
    """The caller's token name, or 401 (declares the bearer scheme in OpenAPI)."""
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator.require(request)


async def get_backend(request: Request) -> ControlBackend:
    """The attached backend (503 when the API runs without a live system)."""
    backend: ControlBackend | None = request.app.state.backend
    if backend is None:
        raise UnavailableError("no live system is attached to this API")
    return backend


Caller = Annotated[str, Depends(require_caller)]
Backend = Annotated[ControlBackend, Depends(get_backend)]
