"""Structured logs for headless operation, with secrets redacted before anything is written.

``setup_logging(format="json")`` writes one JSON object per line (``timestamp``, ``level``,
``logger``, ``message``, ``exception`` when there is one, and any of ``CONTEXT_FIELDS`` given
through ``extra=``), ready for a log shipper; ``format="text"`` writes the same fields for a
terminal. Either way a ``SecretRedactor`` on every root handler replaces each configured secret
(API tokens, broker keys) in the message, its arguments, the exception text and the context
fields with ``[REDACTED]``. Secrets registered later (a broker actor loading its keys) are added
with ``add_secrets`` and apply at once.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any, Literal

from pydantic import SecretStr

from core.errors import ConfigError

__all__ = [
    "CONTEXT_FIELDS",
    "REDACTED",
    "JsonFormatter",
    "SecretRedactor",
    "TextFormatter",
    "add_secrets",
    "redactor",
    "setup_logging",
]

CONTEXT_FIELDS = ("strategy", "symbol", "client_order_id", "scope")
REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 8  # shorter values would blank out ordinary words; real secrets are longer

LogFormat = Literal["text", "json"]


class SecretRedactor(logging.Filter):
    """A filter that rewrites a record so that no configured secret survives in it.

    Attach it to handlers (a logger's filter does not see records of child loggers).
    """

    def __init__(self, secrets: Iterable[str | SecretStr] = ()) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self.add(*secrets)

    def add(self, *secrets: str | SecretStr) -> None:
        """Redact these values too (empty and very short values are ignored)."""
        values = {s.get_secret_value() if isinstance(s, SecretStr) else s for s in secrets}
        with self._lock:
            merged = set(self._secrets) | {v for v in values if len(v) >= MIN_SECRET_LENGTH}
            # Longest first, so a secret containing another is replaced whole.
            self._secrets = tuple(sorted(merged, key=len, reverse=True))

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``REDACTED``."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; never drops it."""
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # bad format args: keep what there is, still redacted
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key in CONTEXT_FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                record.__dict__[key] = self.redact(str(value))
        return True


_REDACTOR = SecretRedactor()


def redactor() -> SecretRedactor:
    """The process-wide redactor that ``setup_logging`` installs."""
    return _REDACTOR


def add_secrets(*secrets: str | SecretStr) -> None:
    """Register secrets with the process-wide redactor (effective immediately)."""
    _REDACTOR.add(*secrets)


def _context(record: logging.LogRecord) -> dict[str, str]:
    return {
        k: str(record.__dict__[k]) for k in CONTEXT_FIELDS if record.__dict__.get(k) is not None
    }


def _exception(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    return record.exc_text or None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (UTC, ISO 8601), level, logger, message, context."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a single line of JSON."""
        doc: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update(_context(record))
        if (exc := _exception(self, record)) is not None:
            doc["exception"] = exc
        if record.stack_info:
            doc["stack"] = record.stack_info
        return json.dumps(doc, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [strategy=... symbol=...]`` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The standard line plus the context fields given through ``extra=``."""
        line = super().format(record)
        ctx = _context(record)
        if ctx:
            head, sep, tail = line.partition("\n")
            line = head + " [" + " ".join(f"{k}={v}" for k, v in ctx.items()) + "]" + sep + tail
        return line


def setup_logging(
    format: LogFormat = "text",
    level: int | str = "INFO",
    *,
    secrets: Iterable[str | SecretStr] = (),
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Configure the root logger: one handler with the chosen format, secrets redacted.

    Calling it again replaces the handler it installed before. Other handlers stay, and every
    handler that exists at the time (also on loggers that do not propagate, like uvicorn's)
    gets the redactor too.

    Args:
        format: ``text`` for people, ``json`` for log shippers.
        level: Root level (``"INFO"``, ``logging.DEBUG``, ...).
        secrets: Values never to write (API tokens, broker keys); added to ``redactor()``.
        stream: Where to write (default: standard error).

    Returns:
        The installed handler.
    """
    if format not in ("text", "json"):
        raise ConfigError(f"log format must be 'text' or 'json', got {format!r}")
    add_secrets(*secrets)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_raytrader", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    handler._raytrader = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    # Every handler that exists now, also on loggers that do not propagate to the root
    # (uvicorn's, Ray's), so an exception text they print is redacted too.
    loggers = [root, *(lg for lg in logging.Logger.manager.loggerDict.values()
                       if isinstance(lg, logging.Logger))]  # fmt: skip
    for h in {h for lg in loggers for h in lg.handlers}:
        if _REDACTOR not in h.filters:
            h.addFilter(_REDACTOR)
    root.setLevel(level if isinstance(level, int) else level.upper())
    return handler
