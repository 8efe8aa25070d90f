"""Risk limits: every pre-trade check and breaker is a field, None switches it off.

``RiskLimits`` holds the global values (which also apply to each strategy and, for the loss
breakers, to the account's total equity) and per-strategy overrides. An override replaces
exactly the fields it sets (setting one to None switches that check off for the strategy),
except ``restricted_symbols``, which adds to the global list: an override cannot un-restrict.
Units are in the names: ``_pct`` is percent (5 means 5%), ``_notional`` is account currency.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

from core.events import TradingState
from core.types import Pct, PositiveFloat, PositiveInt

__all__ = ["RiskLimits", "StrategyLimits"]

# Position and exposure limits may exceed 100% of equity when leverage is allowed.
_PctOfEquity = Annotated[float, Field(gt=0.0, le=10_000.0)]
_Collar = Annotated[float, Field(gt=0.0, le=1_000.0)]
_Leverage = Annotated[float, Field(gt=0.0, le=100.0)]
_SYMBOL = r"^[A-Za-z0-9_.:\-/]{1,64}$"
_BREAKER_STATES = ("daily_loss_state", "drawdown_state", "consecutive_losses_state")


class StrategyLimits(BaseModel):
    """The limits that can differ per strategy (all optional; None means off)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_order_notional: PositiveFloat | None = Field(
        None, description="largest |qty| x price of one order; bigger orders are cut"
    )
    max_position_pct: _PctOfEquity | None = Field(
        None, description="largest |position| per symbol, % of the strategy's equity"
    )
    max_gross_exposure_pct: _PctOfEquity | None = Field(
        None, description="largest sum of |position| x price, % of the strategy's equity"
    )
    max_open_orders: PositiveInt | None = Field(None, description="open orders per strategy")
    max_orders_per_minute: PositiveInt | None = Field(
        None, description="orders per strategy in any 60 s of the runtime clock (bar clock)"
    )
    price_collar_pct: _Collar | None = Field(
        None, description="reject an order whose ref_price is this far (%) from the last price"
    )
    restricted_symbols: tuple[Annotated[str, Field(pattern=_SYMBOL)], ...] = Field(
        (), description="symbols that may only be reduced, never bought or shorted further"
    )
    daily_loss_pct: Pct | None = Field(
        None, description="breaker: equity this far (%) below the day-start equity"
    )
    max_drawdown_pct: Pct | None = Field(
        None, description="breaker: equity this far (%) below its peak"
    )
    max_consecutive_losses: PositiveInt | None = Field(
        None, description="breaker: this many losing closed trades in a row"
    )
    cooldown_bars: PositiveInt | None = Field(
        None, description="bars the consecutive-losses breaker holds; None: until resumed"
    )
    daily_loss_state: TradingState = TradingState.HALTED
    drawdown_state: TradingState = TradingState.HALTED
    consecutive_losses_state: TradingState = TradingState.HALTED

    @field_validator("restricted_symbols", mode="after")
    @classmethod
    def _sorted_unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(value)))

    @field_validator(*_BREAKER_STATES, mode="after")
    @classmethod
    def _breaker_restricts(cls, value: TradingState) -> TradingState:
        if value is TradingState.ACTIVE:
            raise ValueError("a breaker switches to 'reducing' or 'halted', not 'active'")
        return value


class RiskLimits(StrategyLimits):
    """Global risk limits, account-wide limits, and per-strategy overrides.

    Account-wide fields (``max_leverage``, the stale-data breaker) cannot be overridden per
    strategy: they concern the whole account or a symbol, not one strategy.
    """

    max_leverage: _Leverage | None = Field(
        None, description="largest total gross exposure of all strategies / total equity"
    )
    stale_data_seconds: PositiveFloat | None = Field(
        None, description="breaker: a symbol without a fresh bar this long (runtime clock)"
    )
    stale_data_state: TradingState = TradingState.HALTED
    strategies: dict[Annotated[str, Field(pattern=_SYMBOL)], StrategyLimits] = Field(
        default_factory=dict, description="per-strategy overrides of the fields they set"
    )

    @field_validator("stale_data_state", mode="after")
    @classmethod
    def _stale_restricts(cls, value: TradingState) -> TradingState:
        if value is TradingState.ACTIVE:
            raise ValueError("a breaker switches to 'reducing' or 'halted', not 'active'")
        return value

    @model_validator(mode="after")
    def _cooldown_needs_breaker(self) -> RiskLimits:
        for sid in (None, *self.strategies):
            eff = self if sid is None else self.for_strategy(sid)
            if eff.cooldown_bars is not None and eff.max_consecutive_losses is None:
                where = "" if sid is None else f" (strategies.{sid})"
                raise ValueError(
                    f"cooldown_bars is set but max_consecutive_losses is not{where}: "
                    "a cooldown belongs to the consecutive-losses breaker"
                )
        return self

    @field_serializer("strategies")
    def _dump_overrides(self, value: dict[str, StrategyLimits]) -> dict[str, dict[str, Any]]:
        # Only the fields an override set: an explicit None (check off) must survive a round trip.
        return {sid: ov.model_dump(mode="json", exclude_unset=True) for sid, ov in value.items()}

    def for_strategy(self, strategy_id: str) -> RiskLimits:
        """The effective limits of one strategy: globals with its override applied."""
        override = self.strategies.get(strategy_id)
        if override is None:
            return self.model_copy(update={"strategies": {}})
        update: dict[str, Any] = {k: getattr(override, k) for k in override.model_fields_set}
        update["restricted_symbols"] = tuple(
            sorted(set(self.restricted_symbols) | set(override.restricted_symbols))
        )
        update["strategies"] = {}
        return self.model_copy(update=update)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for ``LimitsChanged.limits``; ``RiskLimits.model_validate`` reads it."""
        return self.model_dump(mode="json")
