"""Pydantic request models shared by the CLI, YAML configs and the HTTP API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.sim import SimConfig
from core.types import BadBarPolicy

__all__ = ["BacktestSpec", "DataSpec"]


class DataSpec(BaseModel):
    """Where bars come from: files or directories, or a seeded synthetic panel without paths."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    paths: list[str] = Field(default_factory=list)
    symbol: str | None = None
    bad_bars: BadBarPolicy = BadBarPolicy.RAISE
    start: str | None = Field(None, description="first timestamp to keep (ISO date)")
    end: str | None = Field(None, description="last timestamp to keep (ISO date)")
    synthetic_symbols: int = Field(5, ge=1, le=10_000)
    synthetic_bars: int = Field(2520, ge=2, le=100_000_000)
    seed: int = 0

    @field_validator("symbol")
    @classmethod
    def _symbol_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("symbol must not be blank")
        return value


class BacktestSpec(BaseModel):
    """One backtest: data, a strategy with parameters, and simulation settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: DataSpec = Field(default_factory=DataSpec)
    strategy: str
    params: dict[str, Any] = Field(default_factory=dict)
    sim: SimConfig = Field(default_factory=SimConfig)
