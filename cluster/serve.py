"""The control API as a Ray Serve application: ``cluster.serve:app`` (FastAPI ingress).

The deployment only wraps ``cluster.api.app.build_app``. Each replica, at start, in this order:
``load_tokens()`` (environment or mounted secret file) -> ``check_bind`` (no token: only on
loopback with ``--insecure-local``) -> ``setup_logging`` (text or JSON, every API token and
broker key redacted) -> ``build_app`` over a ``RayBackend`` with the protected routers and the
live actors' metrics on ``/metrics``. ``check_health`` fails once the replica has not reached
risk, the broker or the journal for three checks in a row while they are registered, so
Serve replaces a broken replica; with no live system running the replica stays healthy (and
``/ready`` answers 503).

``app`` is an application builder: ``serve run cluster.serve:app host=0.0.0.0`` or a
RayService ``import_path: cluster.serve:app`` with ``args`` (the fields of
``ServeSettings``). ``deploy`` is what ``raytrader serve`` and ``raytrader demo`` call.

Tokens reach a replica through its environment (a Kubernetes Secret) or a token file: when
the CLI deploys, it writes the tokens to a private file (mode 0600) and passes only the path,
so no secret lands in Ray's stored deployment config or dashboard.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from cluster.api.app import DEFAULT_BODY_LIMIT, build_app
from cluster.api.ray_backend import RayBackend
from cluster.api.routes import ROUTERS
from cluster.logs import setup_logging
from cluster.metrics import actor_source
from cluster.security import (
    DEFAULT_HOST,
    ENV_TOKEN_FILE,
    ApiToken,
    RateLimit,
    check_bind,
    load_tokens,
)

__all__ = [
    "APP_NAME",
    "BROKER_KEY_ENVS",
    "Deployed",
    "ServeSettings",
    "app",
    "broker_secrets",
    "build_control_app",
    "deploy",
    "undeploy",
]

log = logging.getLogger("raytrader.serve")

APP_NAME = "raytrader"
#: Environment variables that may hold broker credentials (alpaca-py's names and ours).
BROKER_KEY_ENVS = ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "ALPACA_API_KEY", "ALPACA_SECRET_KEY")
_HEALTH_FAILURES = 3


class ServeSettings(BaseModel):
    """How the control API serves (the builder's ``args``; no secrets in here)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(DEFAULT_HOST, description="bind address of Serve's HTTP proxy")
    port: int = Field(8000, ge=1, le=65535)
    insecure_local: bool = Field(False, description="no token: only on loopback")
    log_format: Literal["text", "json"] = "text"
    token_file: str | None = Field(None, description="read tokens from this file only")
    data_dir: str | None = Field(None, description="the only directory job specs may read")
    timeout_s: float = Field(10.0, gt=0, le=600, description="longest wait for one actor")
    body_limit: int = Field(DEFAULT_BODY_LIMIT, ge=1024, le=16 * 1024 * 1024)
    rate: float = Field(50.0, gt=0, description="requests/s per client (never on a kill)")
    burst: int = Field(200, ge=1)


def broker_secrets(env: Mapping[str, str]) -> list[SecretStr]:
    """The broker credentials found in ``env`` (to redact; never logged)."""
    return [SecretStr(env[k]) for k in BROKER_KEY_ENVS if env.get(k)]


def build_control_app(
    settings: ServeSettings, env: Mapping[str, str] | None = None
) -> tuple[Any, RayBackend]:
    """Tokens, bind rule, logging, then the FastAPI app over a ``RayBackend``.

    Raises:
        TokenConfigError: Tokens are malformed or weak.
        InsecureBindError: No token, and not loopback with ``insecure_local``.
    """
    env = dict(os.environ if env is None else env)
    token_env = {ENV_TOKEN_FILE: settings.token_file} if settings.token_file else env
    tokens = load_tokens(token_env)
    check_bind(settings.host, tokens, settings.insecure_local)
    setup_logging(settings.log_format,
                  secrets=[*(t.secret for t in tokens), *broker_secrets(env)])  # fmt: skip
    backend = RayBackend(timeout_s=settings.timeout_s, data_dir=settings.data_dir)
    fastapi_app = build_app(
        backend, tokens=tokens, insecure_local=settings.insecure_local,
        body_limit=settings.body_limit, rate_limit=RateLimit(settings.rate, settings.burst),
        metrics_sources=[actor_source()], routers=ROUTERS,
    )  # fmt: skip
    return fastapi_app, backend


def _freeze_heap() -> None:
    """Move every object made so far (Ray, FastAPI, pydantic: ~210,000) out of the garbage
    collector's sight: a full collection then scans only what requests create. Otherwise one
    stops every request in flight for the whole scan (56 ms measured idle here, longer on
    busy cores), which is the read endpoints' p99 (the CPython documentation's advice for
    forked servers, applied to a long-lived replica)."""
    gc.collect()
    gc.freeze()


def _deployment() -> Any:
    """The Serve deployment class (made on first use: importing this module needs no Serve)."""
    from ray import serve

    @serve.deployment(
        name="control_api", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256,
        health_check_period_s=10, health_check_timeout_s=30,
    )  # fmt: skip
    @serve.ingress()
    class ControlAPI:
        """One replica of the control API (see the module docstring)."""

        def __init__(self, settings: dict[str, Any]) -> None:
            self._app, self._backend = build_control_app(ServeSettings.model_validate(settings))
            self._failures = 0
            _freeze_heap()

        def __serve_build_asgi_app__(self) -> Any:
            return self._app

        async def check_health(self) -> None:
            """Raise after ``_HEALTH_FAILURES`` checks in a row without risk, broker, journal."""
            ok = await self._backend.healthy()
            self._failures = 0 if ok else self._failures + 1
            if self._failures >= _HEALTH_FAILURES:
                raise RuntimeError(f"live actors unreachable for {self._failures} health checks")

    return ControlAPI


def app(args: Mapping[str, Any] | None = None) -> Any:
    """The application builder (``cluster.serve:app``): ``args`` are ``ServeSettings``."""
    settings = ServeSettings.model_validate(dict(args or {}))
    return _deployment().bind(settings.model_dump())


@dataclass
class Deployed:
    """A running control API: its URL, the private directory of its token file, and whether
    ``deploy`` started Serve (then ``undeploy`` shuts it down again)."""

    url: str
    token_dir: str | None = None
    started_serve: bool = False


def _serve_running() -> bool:
    import ray
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    try:
        ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    except ValueError:
        return False
    return True


def _token_file(tokens: Sequence[ApiToken]) -> str:
    folder = tempfile.mkdtemp(prefix="raytrader-api-")  # mode 0700
    path = Path(folder) / "tokens"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        for token in tokens:
            out.write(f"{token.name}: {token.secret.get_secret_value()}\n")
    return str(path)


def deploy(settings: ServeSettings, tokens: Sequence[ApiToken]) -> Deployed:
    """Start Serve on the connected Ray (HTTP on ``settings.host:port``) and run the API.

    ``tokens`` are checked here first (``check_bind``), then handed to the replicas through a
    private file. Returns once the replica answers. (Never hand a secret to a replica
    through a Ray ``runtime_env``: Ray's runtime-env agent writes its variables to its log.)
    """
    from ray import serve

    check_bind(settings.host, tokens, settings.insecure_local)
    token_file = _token_file(tokens) if tokens else None
    folder = None if token_file is None else str(Path(token_file).parent)
    started = not _serve_running()
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        built = app({**settings.model_dump(), "token_file": token_file})
        serve.run(built, name=APP_NAME, route_prefix="/", blocking=False)
    except BaseException:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return Deployed(url=f"http://{host}:{settings.port}", token_dir=folder, started_serve=started)


def undeploy(deployed: Deployed | None, *, leave_serve: bool = False) -> None:
    """Take the API down: its token file always; then Serve if ``deploy`` started it, else
    only the application.

    ``leave_serve``: Serve runs in a Ray this process started, which ends with the process,
    so Serve (the application with it) is left to end with it. (Ray's ``serve.shutdown()``
    has its controller kill itself while its ``graceful_shutdown`` call is still open, and
    Ray then prints that call as a failed task: an alarming last line for a run that went
    well.)
    """
    from ray import serve

    try:
        if deployed is not None and deployed.started_serve:
            if not leave_serve:
                serve.shutdown()
        else:
            serve.delete(APP_NAME)
    except Exception as exc:  # Serve already gone with its cluster
        log.debug("serve.delete failed: %s", exc)
    if deployed is not None and deployed.token_dir:
        shutil.rmtree(deployed.token_dir, ignore_errors=True)
