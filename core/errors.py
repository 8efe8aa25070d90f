"""One exception tree for raytrader; callers branch on the class, never on the message text."""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ConfigError",
    "DataValidationError",
    "JournalError",
    "PermanentBrokerError",
    "RaytraderError",
    "StrategyError",
    "TransientBrokerError",
]


class RaytraderError(Exception):
    """Base of every error raytrader raises on purpose."""


class ConfigError(RaytraderError, ValueError):
    """A configuration value, CLI option or parameter breaks a rule; the message names it."""


class DataValidationError(RaytraderError, ValueError):
    """A bar breaks a validation rule; carries where (file, row) and what (symbol, rule)."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        symbol: str | None = None,
        rule: str | None = None,
    ) -> None:
        self.file = file
        self.row = row
        self.symbol = symbol
        self.rule = rule
        where = []
        if file is not None:
            where.append(f"file {file}")
        if row is not None:
            where.append(f"row {row}")
        if symbol is not None:
            where.append(f"symbol {symbol}")
        if rule is not None:
            where.append(f"rule {rule}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class JournalError(RaytraderError):
    """The journal file cannot be used: not a journal, or a schema this version cannot read."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"journal {path}: {message}" if path else message)


class StrategyError(RaytraderError):
    """A strategy raised or returned something outside its contract."""

    def __init__(self, message: str, *, strategy_id: str | None = None, bar_ts: object = None):
        self.strategy_id = strategy_id
        self.bar_ts = bar_ts
        where = []
        if strategy_id is not None:
            where.append(f"strategy {strategy_id}")
        if bar_ts is not None:
            where.append(f"bar {bar_ts}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class BrokerError(RaytraderError):
    """The broker refused or failed an operation."""


class TransientBrokerError(BrokerError):
    """A broker failure worth retrying with the same client_order_id (timeouts, 429, 5xx)."""


class PermanentBrokerError(BrokerError):
    """A broker refusal that retrying will not fix (bad symbol, insufficient buying power)."""
