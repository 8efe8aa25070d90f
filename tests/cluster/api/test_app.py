"""The app skeleton's security over real HTTP: uvicorn on loopback, httpx as the client.

The routes under test are the public ones and two minimal protected test routes (one at the
path of the kill switch, which the rate limiter must never touch); no trading backend is
attached. Tokens are generated per test.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from cluster.api.app import ANONYMOUS, build_app
from cluster.api.deps import Backend, Caller
from cluster.api.schemas import KillRequest
from cluster.security import ApiToken, RateLimit
from core.errors import ConfigError
from tests.kit.http import serve

pytestmark = pytest.mark.timeout(120)


def _router() -> APIRouter:
    router = APIRouter()

    @router.get("/probe")
    async def probe(who: Caller) -> dict[str, str]:
        return {"who": who}

    @router.post("/risk/kill")
    async def kill(body: KillRequest, who: Caller) -> dict[str, Any]:
        # Test route at the kill switch's path: echoes the parsed request, kills nothing.
        return {"who": who, **body.model_dump(mode="json")}

    @router.post("/echo")
    async def echo(body: dict[str, Any], who: Caller) -> dict[str, int]:
        return {"keys": len(body)}

    @router.get("/needs-backend")
    async def needs_backend(backend: Backend, who: Caller) -> dict[str, str]:
        return {"backend": type(backend).__name__}

    return router


@pytest.fixture
def ops_token() -> str:
    return secrets.token_urlsafe(32)


def _app(token: str, **kwargs: Any):
    tokens = [ApiToken(name="ops", secret=SecretStr(token)),
              ApiToken(name="ci", secret=SecretStr(secrets.token_urlsafe(32)))]  # fmt: skip
    kwargs.setdefault("rate_limit", RateLimit(rate=1000.0, burst=1000))
    return build_app(None, tokens=tokens, routers=[_router()], **kwargs)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_protected_route_needs_the_right_token(ops_token):
    with serve(_app(ops_token)) as url, httpx.Client(base_url=url) as http:
        missing = http.get("/probe")
        wrong = http.get("/probe", headers=_bearer(secrets.token_urlsafe(32)))
        basic = http.get("/probe", headers={"Authorization": f"Basic {ops_token}"})
        right = http.get("/probe", headers=_bearer(ops_token))
    for refused in (missing, wrong, basic):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert refused.json()["detail"].startswith("missing or invalid API token")
    assert right.status_code == 200 and right.json() == {"who": "ops"}


def test_health_is_public_and_the_openapi_declares_bearer_auth(ops_token):
    with serve(_app(ops_token)) as url, httpx.Client(base_url=url) as http:
        health = http.get("/health")
        openapi = http.get("/openapi.json").json()
        docs = http.get("/docs")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert docs.status_code == 200
    assert openapi["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert openapi["paths"]["/probe"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in openapi["paths"]["/health"]["get"]
    assert "422" in openapi["paths"]["/risk/kill"]["post"]["responses"]


def test_bad_kill_body_gets_422_with_field_and_reason(ops_token):
    with (
        serve(_app(ops_token)) as url,
        httpx.Client(base_url=url, headers=_bearer(ops_token)) as http,
    ):
        ok = http.post("/risk/kill", json={"scope": "strategy:sma-1", "mode": "reduce"})
        bad_scope = http.post("/risk/kill", json={"scope": "planet:mars"})
        bad_mode = http.post("/risk/kill", json={"scope": "global", "mode": "panic", "x": 1})
        malformed = http.post("/risk/kill", content=b"{not json",
                              headers={"content-type": "application/json"})  # fmt: skip
    assert ok.status_code == 200
    assert ok.json() == {
        "who": "ops",
        "scope": "strategy:sma-1",
        "mode": "reduce",
        "flatten": False,
    }
    assert bad_scope.status_code == 422
    (item,) = bad_scope.json()["detail"]
    assert item["field"] == "scope" and "expected 'global'" in item["reason"]
    fields = {i["field"] for i in bad_mode.json()["detail"]}
    assert bad_mode.status_code == 422 and fields == {"mode", "x"}
    assert malformed.status_code == 422
    assert malformed.json()["detail"][0]["field"] == "body"


def test_bodies_over_the_limit_get_413_with_or_without_content_length(ops_token):
    app = _app(ops_token, body_limit=2048)
    with serve(app) as url, httpx.Client(base_url=url, headers=_bearer(ops_token)) as http:
        small = http.post("/echo", json={"a": "x" * 100})
        big = http.post("/echo", json={"a": "x" * 5000})

        def chunks():
            yield b'{"a": "'
            for _ in range(4):
                yield b"y" * 1000
            yield b'"}'

        chunked = http.post("/echo", content=chunks(), headers={"content-type": "application/json"})
    assert small.status_code == 200 and small.json() == {"keys": 1}
    assert big.status_code == 413
    assert "limit of 2048 bytes" in big.json()["detail"]
    assert "content-length" not in chunked.request.headers  # really sent chunked
    assert chunked.status_code == 413


def test_rate_limit_answers_429_after_the_burst_but_never_for_kill(ops_token):
    app = _app(ops_token, rate_limit=RateLimit(rate=0.001, burst=3))
    with serve(app) as url, httpx.Client(base_url=url, headers=_bearer(ops_token)) as http:
        probes = [http.get("/probe") for _ in range(5)]
        kills = [http.post("/risk/kill", json={"scope": "global"}) for _ in range(20)]
        after = http.get("/probe")
    assert [r.status_code for r in probes] == [200, 200, 200, 429, 429]
    assert int(probes[3].headers["retry-after"]) >= 1
    assert "too many requests" in probes[3].json()["detail"]
    assert [r.status_code for r in kills] == [200] * 20
    assert after.status_code == 429


def test_api_requests_are_counted_by_route_template_and_code(ops_token):
    with serve(_app(ops_token)) as url, httpx.Client(base_url=url) as http:
        http.get("/probe")
        http.get("/probe", headers=_bearer(ops_token))
        http.get("/nowhere/123", headers=_bearer(ops_token))
        text = http.get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }

    def count(route: str, code: str) -> float:
        key = (("code", code), ("method", "GET"), ("route", route))
        return samples.get(("raytrader_api_requests_total", key), 0.0)

    assert count("/probe", "401") == 1.0
    assert count("/probe", "200") == 1.0
    assert count("unmatched", "404") == 1.0
    assert samples[("raytrader_metrics_source_up", (("source", "api"),))] == 1.0
    assert ops_token not in text


def test_without_a_backend_routes_that_need_one_answer_503(ops_token):
    with (
        serve(_app(ops_token)) as url,
        httpx.Client(base_url=url, headers=_bearer(ops_token)) as http,
    ):
        answer = http.get("/needs-backend")
    assert answer.status_code == 503
    assert answer.json() == {"detail": "no live system is attached to this API"}


def test_insecure_local_lets_callers_in_anonymously_and_no_tokens_is_refused():
    app = build_app(None, tokens=[], insecure_local=True, routers=[_router()])
    with serve(app) as url, httpx.Client(base_url=url) as http:
        assert http.get("/probe").json() == {"who": ANONYMOUS}
    with pytest.raises(ConfigError, match="no API token"):
        build_app(None, tokens=[])
