"""Vocabularies (StrEnum) and constrained scalar types shared across raytrader.

Every vocabulary that crosses a process or wire boundary (CLI, HTTP, journal, metrics labels)
is a StrEnum here, so its spelling lives in one place.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Annotated

from pydantic import Field

__all__ = [
    "BadBarPolicy",
    "BadBarRule",
    "Bps",
    "ExitReason",
    "FillMode",
    "NonNegFloat",
    "Pct",
    "PositiveFloat",
    "PositiveInt",
    "RebalanceMode",
    "RejectReason",
    "Side",
    "Weight",
]


class FillMode(StrEnum):
    """When a market order decided on bar t's close fills."""

    NEXT_OPEN = "next_open"
    CLOSE = "close"


class RebalanceMode(StrEnum):
    """When target weights turn into orders."""

    ON_CHANGE = "on_change"
    EVERY_BAR = "every_bar"


class BadBarPolicy(StrEnum):
    """What to do with a bar that breaks a validation rule."""

    RAISE = "raise"
    REJECT = "reject"
    DROP = "drop"
    FFILL = "ffill"


class BadBarRule(StrEnum):
    """The validation rules a bar can break; also the `reason` label of `bad_bars_total`."""

    MISSING_VALUE = "missing_value"
    NON_NUMERIC = "non_numeric"
    NOT_FINITE = "not_finite"
    NON_POSITIVE_PRICE = "non_positive_price"
    HIGH_BELOW_OPEN_CLOSE = "high_below_open_close"
    LOW_ABOVE_OPEN_CLOSE = "low_above_open_close"
    NEGATIVE_VOLUME = "negative_volume"
    DUPLICATE_TIMESTAMP = "duplicate_timestamp"
    OUT_OF_ORDER = "out_of_order"


class Side(StrEnum):
    """Order or trade direction."""

    BUY = "buy"
    SELL = "sell"
    LONG = "long"
    SHORT = "short"


class ExitReason(IntEnum):
    """Why a trade (or part of it) closed; integer codes are what the numba kernel records."""

    SIGNAL = 0
    STOP_LOSS = 1
    TAKE_PROFIT = 2
    FLATTEN = 3  # live only: a kill switch's closing order (the backtest never records it)

    @property
    def label(self) -> str:
        """The lower-case name used in JSON output."""
        return self.name.lower()


class RejectReason(IntEnum):
    """Why the simulator rejected an order; integer codes are what the kernel records."""

    INSUFFICIENT_CASH = 0
    INSUFFICIENT_MARGIN = 1
    NO_PRICE = 2

    @property
    def label(self) -> str:
        """The lower-case name used in JSON output."""
        return self.name.lower()


Weight = Annotated[float, Field(ge=-1.0, le=1.0)]
Bps = Annotated[float, Field(ge=0.0, le=10_000.0)]
Pct = Annotated[float, Field(gt=0.0, le=100.0)]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]
