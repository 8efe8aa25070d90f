"""Request and response models of the control API (DESIGN.md, "Control API"), in one module.

Requests forbid unknown fields (a typo is a 422 naming the field, never a silently ignored
key) and reuse the domain models where they exist: ``RiskLimits`` (``core.risk.limits``) for
``GET|PUT /risk/limits``, ``SimConfig`` for simulation settings, ``BacktestSpec`` and the
research specs of ``optimization.specs`` for jobs, ``JobStatus`` of ``optimization.api`` for
``GET /jobs/{id}``. Scopes travel as text (``global``, ``strategy:<id>``, ``symbol:<SYM>``)
and are parsed with ``core.events.Scope.parse``.

The API launches strategies and research only by registry name: a name that looks like a file
or module path (which the CLI would import) is refused, so an API token never lets anyone run
code from the server's disk.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from core.config import BacktestSpec
from core.events import (
    Decision,
    FillReason,
    KillMode,
    OrderStatus,
    RiskReason,
    Scope,
    StrategyState,
    TradingState,
)
from core.risk.limits import RiskLimits
from core.run_config import StrategyConfig
from core.sim import SimConfig
from optimization.api import JobState, JobStatus
from optimization.specs import (
    JobKind,
    MonteCarloSpec,
    OptimizeSpec,
    StressSpec,
    SweepSpec,
    WalkForwardSpec,
)

__all__ = [
    "CONFLICT",
    "NOT_FOUND",
    "NOT_SUPPORTED",
    "PROTECTED_RESPONSES",
    "PUBLIC_RESPONSES",
    "BacktestRequest",
    "ComponentCheck",
    "ErrorItem",
    "ErrorResponse",
    "HealthResponse",
    "JobAccepted",
    "JobStatus",
    "JobView",
    "KillRequest",
    "KillResponse",
    "MonteCarloJob",
    "OptimizationRequest",
    "OptimizeJob",
    "OrderView",
    "OrdersQuery",
    "OrdersResponse",
    "PnlResponse",
    "PnlView",
    "PositionView",
    "PositionsResponse",
    "ReadyResponse",
    "ResumeRequest",
    "ResumeResponse",
    "RiskLimits",
    "RiskStateResponse",
    "ScopeStateView",
    "ScopeText",
    "StrategyAction",
    "StrategyDetail",
    "StrategyId",
    "StrategyLaunch",
    "StrategyList",
    "StrategyName",
    "StrategySummary",
    "StressJob",
    "SweepJob",
    "Symbol",
    "ValidationErrorResponse",
    "WalkForwardJob",
]

_REQUEST = ConfigDict(frozen=True, extra="forbid")
_RESPONSE = ConfigDict(frozen=True, extra="forbid")

STRATEGY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
STRATEGY_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"

StrategyId = Annotated[
    str,
    Field(pattern=STRATEGY_ID_PATTERN, description="a strategy instance id", examples=["sma-1"]),
]
StrategyName = Annotated[
    str,
    Field(
        pattern=STRATEGY_NAME_PATTERN,
        description="a registered strategy name (no file or module paths over the API)",
        examples=["sma_crossover"],
    ),
]
_SCOPE_NAME = r"[A-Za-z0-9_.:\-/]{1,64}"  # core.events.Scope's name rule
Symbol = Annotated[str, Field(pattern=rf"^{_SCOPE_NAME}$", examples=["AAPL"])]


def _parse_scope(value: object) -> Scope:
    if isinstance(value, Scope):
        return value
    if not isinstance(value, str):
        raise ValueError("scope must be a string: 'global', 'strategy:<id>' or 'symbol:<SYM>'")
    try:
        return Scope.parse(value)
    except ValidationError as err:  # a name breaking Scope's rules: say which, plainly
        reasons = "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
        raise ValueError(f"scope {value!r}: {reasons}") from None


ScopeText = Annotated[
    Scope,
    BeforeValidator(_parse_scope),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": rf"^(global|strategy:{_SCOPE_NAME}|symbol:{_SCOPE_NAME})$",
            "description": "global, strategy:<id> or symbol:<SYM>",
            "examples": ["global", "strategy:sma-1", "symbol:AAPL"],
        }
    ),
]


def _registered_name(strategy: str, where: str) -> None:
    if not re.match(STRATEGY_NAME_PATTERN, strategy):
        raise ValueError(
            f"{where}: {strategy!r} is not a registered strategy name (the API does not load "
            "strategies from file or module paths)"
        )


# ------------------------------------------------------------------ errors
class ErrorItem(BaseModel):
    """One invalid input: where (dotted path, e.g. ``mode`` or ``query.limit``) and why."""

    model_config = _RESPONSE

    field: str
    reason: str


class ValidationErrorResponse(BaseModel):
    """422: every invalid field with its reason."""

    model_config = _RESPONSE

    detail: list[ErrorItem]


class ErrorResponse(BaseModel):
    """Any other error: a plain sentence."""

    model_config = _RESPONSE

    detail: str


_ERR = {"model": ErrorResponse}
PUBLIC_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {**_ERR, "description": "Too many requests (see Retry-After)"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {**_ERR, "description": "No such strategy or job"}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {**_ERR, "description": "Not possible in the current state (e.g. the strategy stopped)"}
}
NOT_SUPPORTED: dict[int | str, dict[str, Any]] = {
    501: {**_ERR, "description": "The running system cannot do this yet"}
}
PROTECTED_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {**_ERR, "description": "Missing or invalid API token"},
    413: {**_ERR, "description": "Request body too large"},
    422: {"model": ValidationErrorResponse, "description": "Invalid request"},
    429: {**_ERR, "description": "Too many requests (see Retry-After)"},
    503: {**_ERR, "description": "A live actor is unreachable"},
}


# ------------------------------------------------------------------ health
class HealthResponse(BaseModel):
    """``GET /health``: the API process is up."""

    model_config = _RESPONSE

    status: Literal["ok"] = "ok"
    version: str


class ComponentCheck(BaseModel):
    """One readiness check (risk, broker, journal reachable; data fresh)."""

    model_config = _RESPONSE

    ok: bool
    detail: str = ""


class ReadyResponse(BaseModel):
    """``GET /ready``: ready only if every check passes (503 otherwise, same body)."""

    model_config = _RESPONSE

    ready: bool
    checks: dict[str, ComponentCheck]


# ------------------------------------------------------------------ strategies
class PositionView(BaseModel):
    """One open position of one strategy, marked at the last close."""

    model_config = _RESPONSE

    strategy: str
    symbol: str
    qty: float
    avg_price: float | None = None
    last_price: float | None = None
    market_value: float = 0.0
    unrealized_pnl: float = 0.0


class PnlView(BaseModel):
    """Equity and P&L of one scope (``global`` or ``strategy:<id>``), in account currency."""

    model_config = _RESPONSE

    scope: str
    equity: float
    cash: float
    realized: float
    unrealized: float
    commission: float = 0.0
    day_start_equity: float | None = None
    peak_equity: float | None = None
    drawdown: float | None = Field(None, description="fraction below the peak (0.1 = 10%)")


class StrategySummary(BaseModel):
    """A strategy instance as listed by ``GET /strategies``."""

    model_config = _RESPONSE

    id: str
    strategy: str
    state: StrategyState
    symbols: list[str]
    equity: float | None = None
    realized_pnl: float | None = None


class StrategyList(BaseModel):
    """``GET /strategies``."""

    model_config = _RESPONSE

    strategies: list[StrategySummary]


class StrategyDetail(StrategySummary):
    """``GET /strategies/{id}``: parameters, positions, P&L, and the error of a FAILED one."""

    params: dict[str, Any]
    sim: SimConfig | None = Field(None, description="None when the host does not report it")
    trading_state: TradingState = TradingState.ACTIVE
    positions: list[PositionView] = Field(default_factory=list)
    pnl: PnlView | None = None
    error: str | None = None
    traceback: str | None = None


class StrategyLaunch(StrategyConfig):
    """``POST /strategies``: run one strategy instance live (paper or Alpaca, per deployment).

    The run config's ``StrategyConfig`` (what a YAML file's ``strategies[i]`` holds, checked
    the same way: parameters against the strategy's declared ones, ``fast < slow``), with the
    strategy by registry name only: an API token never loads code from the server's disk.
    """

    @field_validator("strategy")
    @classmethod
    def _by_name(cls, value: str) -> str:
        _registered_name(value, "strategy")
        return value

    @field_validator("symbols")
    @classmethod
    def _unique_symbols(cls, value: list[str]) -> list[str]:  # overrides the config's message
        dupes = sorted({s for s in value if value.count(s) > 1})
        if dupes:
            raise ValueError(f"symbols listed more than once: {', '.join(dupes)}")
        return value

    def to_config(self) -> StrategyConfig:
        """The same settings as a plain ``StrategyConfig`` (what the actors take)."""
        return StrategyConfig.model_validate(self.model_dump())


class StrategyAction(BaseModel):
    """``POST /strategies/{id}/pause|resume|stop``: the state after the action."""

    model_config = _RESPONSE

    id: str
    old: StrategyState
    state: StrategyState
    by: str


# ------------------------------------------------------------------ positions, orders, P&L
class PositionsResponse(BaseModel):
    """``GET /positions``: every open position, as of the last processed bar."""

    model_config = _RESPONSE

    positions: list[PositionView]
    bar_index: int | None = None


class OrdersQuery(BaseModel):
    """Query parameters of ``GET /orders``."""

    model_config = _REQUEST

    strategy: StrategyId | None = None
    symbol: Symbol | None = None
    status: OrderStatus | None = None
    open_only: bool = False
    limit: int = Field(100, ge=1, le=1000, description="newest first")


class OrderView(BaseModel):
    """One order with its risk decision and broker status."""

    model_config = _RESPONSE

    client_order_id: str
    strategy: str
    symbol: str
    qty: float
    filled_qty: float = 0.0
    status: OrderStatus
    reason: FillReason = FillReason.SIGNAL
    decision: Decision | None = None
    risk_reasons: list[RiskReason] = Field(default_factory=list)
    bar_index: int
    detail: str = ""


class OrdersResponse(BaseModel):
    """``GET /orders``."""

    model_config = _RESPONSE

    orders: list[OrderView]


class PnlResponse(BaseModel):
    """``GET /pnl``: the account and each strategy."""

    model_config = _RESPONSE

    total: PnlView
    strategies: list[PnlView]


# ------------------------------------------------------------------ risk
class ScopeStateView(BaseModel):
    """One scope's trading state, who set it, and its kill switch if one is engaged."""

    model_config = _RESPONSE

    scope: ScopeText
    state: TradingState
    reason: RiskReason | None = Field(None, description="the breaker, if a breaker set it")
    by: str
    until_bar: int | None = None
    kill_mode: KillMode | None = None
    flatten: bool | None = None


class RiskStateResponse(BaseModel):
    """``GET /risk/state``: the global state and every scope that is not active."""

    model_config = _RESPONSE

    global_state: TradingState
    scopes: list[ScopeStateView]
    last_bar: int | None = None


class KillRequest(BaseModel):
    """``POST /risk/kill``: halt a scope (or let only reductions through), maybe flatten it."""

    model_config = _REQUEST

    scope: ScopeText
    mode: KillMode = KillMode.HALT
    flatten: bool = Field(False, description="also cancel open orders and close positions")


class KillResponse(BaseModel):
    """What the kill did, effective before this response was sent."""

    model_config = _RESPONSE

    scope: ScopeText
    mode: KillMode
    flatten: bool
    state: TradingState
    by: str
    at: datetime
    canceled_orders: list[str] = Field(default_factory=list)
    flatten_orders: list[str] = Field(default_factory=list)


class ResumeRequest(BaseModel):
    """``POST /risk/resume``: set one scope active again."""

    model_config = _REQUEST

    scope: ScopeText


class ResumeResponse(BaseModel):
    """The scope's state after the resume."""

    model_config = _RESPONSE

    scope: ScopeText
    state: TradingState
    by: str
    at: datetime


# ------------------------------------------------------------------ research jobs
class BacktestRequest(BacktestSpec):
    """``POST /backtests``: the CLI's ``BacktestSpec``, strategy by registry name only."""

    @field_validator("strategy")
    @classmethod
    def _by_name(cls, value: str) -> str:
        _registered_name(value, "strategy")
        return value


class _Job(BaseModel):
    model_config = _REQUEST

    @model_validator(mode="after")
    def _by_name(self) -> _Job:
        _registered_name(self.spec.strategy, "spec.strategy")  # type: ignore[attr-defined]
        return self


class OptimizeJob(_Job):
    """A parameter search (``raytrader optimize``)."""

    kind: Literal[JobKind.OPTIMIZE]
    spec: OptimizeSpec


class SweepJob(_Job):
    """A grid sweep (``raytrader sweep``)."""

    kind: Literal[JobKind.SWEEP]
    spec: SweepSpec


class WalkForwardJob(_Job):
    """A walk-forward analysis (``raytrader walkforward``)."""

    kind: Literal[JobKind.WALKFORWARD]
    spec: WalkForwardSpec


class MonteCarloJob(_Job):
    """A Monte Carlo resampling (``raytrader montecarlo``)."""

    kind: Literal[JobKind.MONTECARLO]
    spec: MonteCarloSpec


class StressJob(_Job):
    """Stress scenarios (``raytrader stress``)."""

    kind: Literal[JobKind.STRESS]
    spec: StressSpec


OptimizationRequest = Annotated[
    OptimizeJob | SweepJob | WalkForwardJob | MonteCarloJob | StressJob,
    Field(discriminator="kind"),
]


class JobView(JobStatus):
    """``GET /jobs/{id}``: the job's status and, once it succeeded, its result summary (the
    object the CLI's ``--json`` prints for that kind)."""

    result: dict[str, Any] | None = None


class JobAccepted(BaseModel):
    """A research job was queued: follow it at ``status_url``."""

    model_config = _RESPONSE

    job_id: str
    kind: JobKind
    state: JobState
    status_url: str
