"""Job specifications: one pydantic model per research job, shared by the CLI and the HTTP API.

Every model forbids unknown fields (a typo is an error, not a silently ignored key) and carries
the seed that makes its result reproducible. ``SPEC_OF`` maps a ``JobKind`` to its model.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.config import BacktestSpec, DataSpec
from core.sim import SimConfig
from optimization.metrics import Metric

__all__ = [
    "SPEC_OF",
    "Engine",
    "JobKind",
    "MonteCarloMethod",
    "MonteCarloSpec",
    "OptimizeSpec",
    "Sampler",
    "ShockKind",
    "ShockSpec",
    "StressSpec",
    "SweepSpec",
    "WalkForwardSpec",
    "WindowMode",
]


class JobKind(StrEnum):
    """What a job runs."""

    BACKTEST = "backtest"
    OPTIMIZE = "optimize"
    SWEEP = "sweep"
    WALKFORWARD = "walkforward"
    MONTECARLO = "montecarlo"
    STRESS = "stress"


class Sampler(StrEnum):
    """Optuna samplers a search can use; every one is seeded."""

    TPE = "tpe"
    CMAES = "cmaes"
    RANDOM = "random"
    GRID = "grid"
    NSGA2 = "nsga2"


class Engine(StrEnum):
    """Who drives the trials: our batched ask/tell on worker actors, or Ray Tune."""

    OPTUNA = "optuna"
    TUNE = "tune"


class WindowMode(StrEnum):
    """Walk-forward training windows: a fixed-length rolling one, or anchored at the start."""

    ROLLING = "rolling"
    ANCHORED = "anchored"


class MonteCarloMethod(StrEnum):
    """How Monte Carlo paths are drawn."""

    IID = "iid"
    BLOCK = "block"
    TRADES = "trades"


class ShockKind(StrEnum):
    """Shocks applied to the bars."""

    GAP = "gap"
    VOL = "vol"
    CORRELATION = "correlation"
    HISTORICAL = "historical"


_FROZEN = ConfigDict(frozen=True, extra="forbid")


class _Research(BaseModel):
    """What every research job needs: data, strategy, fixed parameters, simulator, workers."""

    model_config = _FROZEN

    data: DataSpec = Field(default_factory=DataSpec)
    strategy: str
    params: dict[str, Any] = Field(default_factory=dict, description="fixed parameter values")
    sim: SimConfig = Field(default_factory=SimConfig)
    workers: int | None = Field(None, ge=1, le=4096, description="worker actors (default: CPUs)")


class _Search(BaseModel):
    """How a parameter search runs (also each walk-forward fold's in-sample search)."""

    model_config = _FROZEN

    metrics: list[Metric] = Field(default_factory=lambda: [Metric.SHARPE], min_length=1)
    trials: int = Field(100, ge=1, le=10_000_000)
    sampler: Sampler = Sampler.TPE
    seed: int = Field(0, ge=0)
    min_trades: int = Field(0, ge=0)
    batch_size: int | None = Field(None, ge=1, le=100_000, description="sets per worker call")

    @field_validator("metrics")
    @classmethod
    def _distinct(cls, value: list[Metric]) -> list[Metric]:
        if len(set(value)) != len(value):
            raise ValueError("metrics must be distinct")
        return value


class OptimizeSpec(_Research, _Search):
    """``raytrader optimize``: search the strategy's declared spaces."""

    engine: Engine = Engine.OPTUNA
    storage: str | None = Field(None, description="Optuna storage URL, e.g. sqlite:///study.db")
    study_name: str | None = None
    resume: bool = False

    @model_validator(mode="after")
    def _coherent(self) -> OptimizeSpec:
        if self.resume and self.storage is None:
            raise ValueError("resume needs a storage (e.g. sqlite:///study.db) to resume from")
        if self.sampler is Sampler.CMAES and len(self.metrics) > 1:
            raise ValueError("sampler cmaes is single-objective; use nsga2 or tpe")
        if self.engine is Engine.TUNE and (self.resume or self.storage):
            raise ValueError("engine tune keeps its own experiment state; storage/resume are "
                             "for engine optuna")  # fmt: skip
        return self


class SweepSpec(_Research):
    """``raytrader sweep``: every valid combination of the (optionally narrowed) grids."""

    grid: dict[str, list[Any]] = Field(default_factory=dict, description="values per parameter")
    metric: Metric = Metric.SHARPE
    min_trades: int = Field(0, ge=0)
    top_k: int = Field(10, ge=1, le=10_000)
    chunk_size: int | None = Field(None, ge=1, le=1_000_000, description="sets per worker call")
    per_symbol: bool = Field(False, description="also keep the (set x symbol) metrics table")


class WalkForwardSpec(_Research, _Search):
    """``raytrader walkforward``: in-sample search, out-of-sample test, fold after fold."""

    train: str = Field(..., description="train window: bars ('504') or a period ('2y', '6m')")
    test: str = Field(..., description="test window: bars ('126') or a period ('6m', '90d')")
    mode: WindowMode = WindowMode.ROLLING
    max_candidates: int = Field(256, ge=2, le=5000, description="configurations in PBO/DSR")
    pbo_splits: int = Field(16, ge=2, le=24, description="CSCV submatrices (even)")

    @field_validator("pbo_splits")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"pbo_splits={value} must be even (CSCV halves the submatrices)")
        return value


class MonteCarloSpec(_Research):
    """``raytrader montecarlo``: resample one backtest's returns or trades."""

    method: MonteCarloMethod = MonteCarloMethod.IID
    paths: int = Field(10_000, ge=1, le=10_000_000)
    horizon: int | None = Field(None, ge=1, description="steps per path (default: the returns)")
    block_length: float = Field(20.0, ge=1.0, description="mean block length (stationary)")
    seed: int = Field(0, ge=0)
    ruin: float = Field(0.5, gt=0.0, lt=1.0, description="ruin: equity below this x initial")
    alpha: float = Field(0.05, gt=0.0, lt=0.5, description="VaR/CVaR tail probability")


class ShockSpec(BaseModel):
    """One scenario: a gap, a volatility multiple, full correlation, or a historical window."""

    model_config = _FROZEN

    kind: ShockKind
    name: str | None = None
    start: str | None = Field(None, description="first date (ISO) of the window or the gap")
    end: str | None = Field(None, description="last date (ISO) of the window")
    size: float | None = Field(None, description="gap in percent (-20) or volatility factor (3)")

    @model_validator(mode="after")
    def _complete(self) -> ShockSpec:
        need = {
            ShockKind.GAP: ("start", "size"),
            ShockKind.VOL: ("start", "end", "size"),
            ShockKind.CORRELATION: ("start", "end"),
            ShockKind.HISTORICAL: ("start", "end"),
        }[self.kind]
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.kind.value} shock needs {', '.join(missing)}")
        if self.kind is ShockKind.GAP and not -100.0 < float(self.size or 0) < 1000.0:
            raise ValueError(f"gap size {self.size}% must be in (-100, 1000)")
        if self.kind is ShockKind.VOL and float(self.size or 0) <= 0:
            raise ValueError(f"volatility factor {self.size} must be > 0")
        return self

    @property
    def label(self) -> str:
        """A readable scenario name."""
        if self.name:
            return self.name
        if self.kind is ShockKind.GAP:
            return f"gap {self.size:+g}% on {self.start}"
        if self.kind is ShockKind.VOL:
            return f"vol x{self.size:g} {self.start}..{self.end}"
        if self.kind is ShockKind.CORRELATION:
            return f"correlation 1 {self.start}..{self.end}"
        return f"history {self.start}..{self.end}"


class StressSpec(_Research):
    """``raytrader stress``: the strategy under shocks and in historical windows."""

    scenarios: list[ShockSpec] = Field(
        default_factory=list,
        description="empty: historical crises in the data plus one shock of each kind mid-data",
    )
    max_daily_loss_pct: float = Field(5.0, gt=0, le=100, description="limit: loss in one bar")
    max_drawdown_pct: float = Field(20.0, gt=0, le=100, description="limit: drawdown from peak")


SPEC_OF: dict[JobKind, type[BaseModel]] = {
    JobKind.BACKTEST: BacktestSpec,
    JobKind.OPTIMIZE: OptimizeSpec,
    JobKind.SWEEP: SweepSpec,
    JobKind.WALKFORWARD: WalkForwardSpec,
    JobKind.MONTECARLO: MonteCarloSpec,
    JobKind.STRESS: StressSpec,
}
