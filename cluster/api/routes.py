"""The token-protected routes of the control API (DESIGN.md, "Control API"), a few lines each.

Each route parses its request (the models of ``cluster.api.schemas``), calls one backend
method and returns its model; errors are the backend's domain exceptions, mapped to status
codes in ``cluster.api.errors``. Mutating routes pass the caller's token name as ``by``. The
public routes (``/health``, ``/ready``, ``/metrics``) live in ``cluster.api.app``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query

from cluster.api.deps import Backend, Caller
from cluster.api.schemas import (
    CONFLICT,
    NOT_FOUND,
    NOT_SUPPORTED,
    STRATEGY_ID_PATTERN,
    BacktestRequest,
    JobAccepted,
    JobView,
    KillRequest,
    KillResponse,
    OptimizationRequest,
    OrdersQuery,
    OrdersResponse,
    PnlResponse,
    PositionsResponse,
    ResumeRequest,
    ResumeResponse,
    RiskLimits,
    RiskStateResponse,
    StrategyAction,
    StrategyDetail,
    StrategyLaunch,
    StrategyList,
)

__all__ = ["ROUTERS", "jobs", "portfolio", "risk", "strategies"]

StrategyPath = Annotated[str, Path(pattern=STRATEGY_ID_PATTERN, description="strategy id")]
JobPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_\-]{1,64}$", description="job id")]

LIFECYCLE = {**NOT_FOUND, **CONFLICT}

strategies = APIRouter(prefix="/strategies", tags=["strategies"])
portfolio = APIRouter(tags=["portfolio"])
risk = APIRouter(prefix="/risk", tags=["risk"])
jobs = APIRouter(tags=["research jobs"])


# ------------------------------------------------------------------ strategies
@strategies.get("", summary="Every strategy instance with its state")
async def list_strategies(backend: Backend) -> StrategyList:
    return await backend.list_strategies()


@strategies.get("/{strategy_id}", summary="One strategy: parameters, positions, P&L, error",
                responses=NOT_FOUND)  # fmt: skip
async def get_strategy(strategy_id: StrategyPath, backend: Backend) -> StrategyDetail:
    return await backend.get_strategy(strategy_id)


@strategies.post("", status_code=201, summary="Launch a strategy instance into the running system",
                 responses={**CONFLICT, **NOT_SUPPORTED})  # fmt: skip
async def launch_strategy(body: StrategyLaunch, backend: Backend, who: Caller) -> StrategyDetail:
    return await backend.launch_strategy(body, by=who)


@strategies.post(
    "/{strategy_id}/pause", responses=LIFECYCLE, summary="Keep following bars, send no orders"
)
async def pause_strategy(
    strategy_id: StrategyPath, backend: Backend, who: Caller
) -> StrategyAction:
    return await backend.pause_strategy(strategy_id, by=who)


@strategies.post(
    "/{strategy_id}/resume", responses=LIFECYCLE, summary="Send orders again after a pause"
)
async def resume_strategy(
    strategy_id: StrategyPath, backend: Backend, who: Caller
) -> StrategyAction:
    return await backend.resume_strategy(strategy_id, by=who)


@strategies.post(
    "/{strategy_id}/stop", responses=LIFECYCLE, summary="Stop for good (positions stay)"
)
async def stop_strategy(
    strategy_id: StrategyPath, backend: Backend, who: Caller
) -> StrategyAction:
    return await backend.stop_strategy(strategy_id, by=who)


# ------------------------------------------------------------------ positions, orders, P&L
@portfolio.get("/positions", summary="Open positions, marked at the last close")
async def positions(backend: Backend) -> PositionsResponse:
    return await backend.positions()


@portfolio.get("/orders", summary="Orders with their risk decision and status, newest first")
async def orders(query: Annotated[OrdersQuery, Query()], backend: Backend) -> OrdersResponse:
    return await backend.orders(query)


@portfolio.get("/pnl", summary="Equity and P&L of the account and each strategy")
async def pnl(backend: Backend) -> PnlResponse:
    return await backend.pnl()


# ------------------------------------------------------------------ risk
@risk.get("/limits", summary="The risk limits in force")
async def get_limits(backend: Backend) -> RiskLimits:
    return await backend.get_limits()


@risk.put("/limits", summary="Replace the risk limits in full (journaled)")
async def set_limits(body: RiskLimits, backend: Backend, who: Caller) -> RiskLimits:
    return await backend.set_limits(body, by=who)


@risk.get("/state", summary="Trading states and engaged kill switches")
async def risk_state(backend: Backend) -> RiskStateResponse:
    return await backend.risk_state()


@risk.post("/kill", summary="Kill switch: halt or reduce a scope, optionally flatten it")
async def kill(body: KillRequest, backend: Backend, who: Caller) -> KillResponse:
    return await backend.kill(body, by=who)


@risk.post("/resume", summary="Set a scope active again (journaled)")
async def resume(body: ResumeRequest, backend: Backend, who: Caller) -> ResumeResponse:
    return await backend.resume(body, by=who)


# ------------------------------------------------------------------ research jobs
@jobs.post("/backtests", status_code=202, summary="Queue a backtest; returns its job id at once")
async def submit_backtest(body: BacktestRequest, backend: Backend, who: Caller) -> JobAccepted:
    return await backend.submit_backtest(body, by=who)


@jobs.post("/optimizations", status_code=202, summary="Queue a research job (optimize, sweep, "
           "walkforward, montecarlo, stress); returns its job id at once")  # fmt: skip
async def submit_optimization(
    body: Annotated[OptimizationRequest, Body()], backend: Backend, who: Caller
) -> JobAccepted:
    return await backend.submit_optimization(body, by=who)


@jobs.get("/jobs/{job_id}", summary="A job's state, progress and (once done) result",
          responses=NOT_FOUND)  # fmt: skip
async def job_status(job_id: JobPath, backend: Backend) -> JobView:
    return await backend.job_status(job_id)


ROUTERS = (strategies, portfolio, risk, jobs)
