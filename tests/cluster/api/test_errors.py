"""One handler maps domain errors to status codes and bodies, and never leaks a secret."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ValidationError

from cluster.api.errors import (
    ConflictError,
    FieldError,
    NotFoundError,
    UnavailableError,
    error_items,
    install_error_handlers,
    status_for,
)
from cluster.logs import add_secrets
from core.errors import (
    ConfigError,
    PermanentBrokerError,
    RaytraderError,
    StrategyError,
    TransientBrokerError,
)
from core.risk.limits import RiskLimits
from optimization.api import JobNotFoundError
from tests.kit.http import serve

pytestmark = pytest.mark.timeout(120)


class Body(BaseModel):
    n: int


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (NotFoundError("no strategy 'x'"), 404),
        (JobNotFoundError("unknown job id 'j'"), 404),
        (ConflictError("id taken"), 409),
        (UnavailableError("risk down"), 503),
        (TransientBrokerError("timeout"), 503),
        (PermanentBrokerError("refused"), 502),
        (StrategyError("bad weights"), 409),
        (ConfigError("bad value"), 400),
        (RaytraderError("other"), 500),
        (RuntimeError("bug"), 500),
    ],
)
def test_status_for_maps_each_domain_error(exc, status):
    assert status_for(exc) == status


@contextmanager
def _client(exc: BaseException) -> Iterator[httpx.Client]:
    """A real server whose GET /boom raises ``exc`` and POST /typed takes a typed body."""
    app = FastAPI()
    install_error_handlers(app)
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise exc

    @router.post("/typed")
    async def typed(body: Body) -> int:
        return body.n

    app.include_router(router)
    with serve(app) as url, httpx.Client(base_url=url) as client:
        yield client


def test_not_found_is_a_plain_404():
    with _client(NotFoundError("no strategy 'x'")) as client:
        answer = client.get("/boom")
    assert (answer.status_code, answer.json()) == (404, {"detail": "no strategy 'x'"})


def test_field_error_is_a_422_with_the_field():
    with _client(FieldError("strategy", "unknown strategy 'nope'")) as client:
        answer = client.get("/boom")
    assert answer.status_code == 422
    assert answer.json() == {"detail": [{"field": "strategy", "reason": "unknown strategy 'nope'"}]}


def test_a_domain_model_refusing_a_value_is_a_422_naming_the_field():
    with pytest.raises(ValidationError) as err:  # a backend lets pydantic's error through
        RiskLimits.model_validate({"max_position_pct": -5})
    with _client(err.value) as client:
        answer = client.get("/boom")
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["field"] == "max_position_pct"


def test_wrong_types_are_422_with_field_and_reason_and_no_input_echo():
    with _client(RuntimeError()) as client:
        answer = client.post("/typed", json={"n": "seven"})
    assert answer.status_code == 422
    (item,) = answer.json()["detail"]
    assert item["field"] == "n" and "integer" in item["reason"]
    assert set(item) == {"field", "reason"}


def test_unexpected_errors_are_a_bare_500_and_secrets_never_leave():
    token = secrets.token_urlsafe(32)
    add_secrets(token)
    with _client(RuntimeError(f"token {token} in a bug")) as client:
        crash = client.get("/boom")
    assert crash.status_code == 500 and token not in crash.text
    with _client(ConfigError(f"bad token {token}")) as client:
        config = client.get("/boom")
    assert config.status_code == 400 and token not in config.text
    assert "[REDACTED]" in config.json()["detail"]


def test_error_items_turns_locations_into_dotted_fields():
    items = error_items(
        [{"loc": ("body", "limits", "strategies", "s1", "max_open_orders"), "msg": "bad"},
         {"loc": ("query", "limit"), "msg": "Value error, too big"},
         {"loc": ("body", 3), "msg": "JSON decode error", "type": "json_invalid",
          "ctx": {"error": "Expecting value"}}]
    )  # fmt: skip
    assert items == [
        {"field": "limits.strategies.s1.max_open_orders", "reason": "bad"},
        {"field": "query.limit", "reason": "too big"},
        {"field": "body", "reason": "malformed JSON at 3: Expecting value"},
    ]
