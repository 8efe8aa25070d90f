"""Structured logs: JSON lines with context fields, and no secret ever written."""

from __future__ import annotations

import io
import json
import logging
import secrets

import pytest
from pydantic import SecretStr

from cluster.logs import REDACTED, add_secrets, setup_logging
from core.errors import ConfigError


@pytest.fixture
def root_logger():
    """Restore the root logger's handlers and level after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    for h in handlers:
        if h not in root.handlers:
            root.addHandler(h)
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_level_logger_message_and_context_fields(root_logger):
    out = io.StringIO()
    setup_logging("json", "DEBUG", stream=out)
    log = logging.getLogger("raytrader.test.json")
    context = {"strategy": "sma-1", "symbol": "AAPL", "client_order_id": "rt-1", "scope": "global"}
    log.info("order %s sent", "rt-1", extra=context)
    log.debug("plain")
    first, second = _lines(out)
    assert first["level"] == "INFO" and first["logger"] == "raytrader.test.json"
    assert first["message"] == "order rt-1 sent"
    assert (first["strategy"], first["symbol"], first["client_order_id"], first["scope"]) == (
        "sma-1", "AAPL", "rt-1", "global",
    )  # fmt: skip
    assert first["timestamp"].endswith("+00:00")
    assert second["message"] == "plain" and "strategy" not in second


def test_tokens_never_reach_the_output_in_message_args_exception_or_context(root_logger):
    token = secrets.token_urlsafe(32)
    out = io.StringIO()
    setup_logging("json", stream=out, secrets=[SecretStr(token)])
    log = logging.getLogger("raytrader.test.secret")
    log.warning(f"header was Bearer {token}")
    log.warning("header was Bearer %s", token)
    log.info("context", extra={"scope": f"strategy:{token}"})
    try:
        raise ValueError(f"bad token {token}")
    except ValueError:
        log.exception("auth failed")
    text = out.getvalue()
    assert token not in text
    lines = _lines(out)
    assert lines[0]["message"] == f"header was Bearer {REDACTED}"
    assert lines[1]["message"] == f"header was Bearer {REDACTED}"
    assert lines[2]["scope"] == f"strategy:{REDACTED}"
    assert f"bad token {REDACTED}" in lines[3]["exception"]


def test_text_format_redacts_too_and_appends_context(root_logger):
    key = secrets.token_hex(20)
    out = io.StringIO()
    setup_logging("text", stream=out)
    add_secrets(key)  # registered after setup, like a broker loading its keys
    logging.getLogger("raytrader.test.text").error("alpaca key %s refused", key,
                                                   extra={"symbol": "MSFT"})  # fmt: skip
    line = out.getvalue()
    assert key not in line
    assert f"alpaca key {REDACTED} refused [symbol=MSFT]" in line


def test_setting_up_twice_keeps_one_handler(root_logger):
    first = setup_logging("text", stream=io.StringIO())
    second = setup_logging("json", stream=io.StringIO())
    assert second in root_logger.handlers and first not in root_logger.handlers


def test_short_values_are_not_treated_as_secrets(root_logger):
    out = io.StringIO()
    setup_logging("json", stream=out, secrets=["abc"])
    logging.getLogger("raytrader.test.short").warning("abc stays")
    assert _lines(out)[0]["message"] == "abc stays"


def test_unknown_format_is_a_config_error():
    with pytest.raises(ConfigError, match="'text' or 'json'"):
        setup_logging("xml")  # type: ignore[arg-type]


def test_handlers_of_non_propagating_loggers_get_the_redactor(root_logger):
    token = secrets.token_urlsafe(32)
    out = io.StringIO()
    own = logging.getLogger("raytrader.test.own_handler")
    handler = logging.StreamHandler(out)
    own.addHandler(handler)
    own.propagate = False
    try:
        setup_logging("text", stream=io.StringIO(), secrets=[token])
        own.error("server crashed with %s", token)
    finally:
        own.removeHandler(handler)
    assert token not in out.getvalue() and REDACTED in out.getvalue()
