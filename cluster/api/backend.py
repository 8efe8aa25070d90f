"""What the control API's routes call: the ``ControlBackend`` protocol.

The routes (one per endpoint of DESIGN.md's "Control API") are thin: parse the request, call
one backend method, return its model. The backend over the live actors (``risk``, ``broker``,
``journal``, ``feed``, ``strategy:<id>`` in namespace ``raytrader``) and the research jobs API
implements this protocol; a test can drive the routes with any object that does.

Methods are ``async`` because the routes run on Serve's event loop: an implementation awaits
actor calls (``await handle.method.remote(...)``) instead of blocking in ``ray.get``. Mutating
methods take ``by``, the caller's token name, which the actors journal as who acted. Errors are
raised as domain exceptions (``cluster.api.errors``: ``NotFoundError``, ``ConflictError``,
``UnavailableError``, ``FieldError``; or ``core.errors``) and mapped to HTTP codes in one place.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cluster.api.schemas import (
    BacktestRequest,
    JobAccepted,
    JobStatus,
    KillRequest,
    KillResponse,
    OptimizationRequest,
    OrdersQuery,
    OrdersResponse,
    PnlResponse,
    PositionsResponse,
    ReadyResponse,
    ResumeRequest,
    ResumeResponse,
    RiskLimits,
    RiskStateResponse,
    StrategyAction,
    StrategyDetail,
    StrategyLaunch,
    StrategyList,
)

__all__ = ["ControlBackend"]


@runtime_checkable
class ControlBackend(Protocol):
    """The operations behind the control API, one per endpoint (see each method)."""

    async def ready(self) -> ReadyResponse:
        """``GET /ready``: risk, broker and journal reachable, and the feed's data fresh."""
        ...

    async def list_strategies(self) -> StrategyList:
        """``GET /strategies``."""
        ...

    async def get_strategy(self, strategy_id: str) -> StrategyDetail:
        """``GET /strategies/{id}`` (``NotFoundError`` for an unknown id)."""
        ...

    async def launch_strategy(self, launch: StrategyLaunch, *, by: str) -> StrategyDetail:
        """``POST /strategies``: start a host (``ConflictError`` if the id is taken)."""
        ...

    async def pause_strategy(self, strategy_id: str, *, by: str) -> StrategyAction:
        """``POST /strategies/{id}/pause``: the host keeps its bars but sends no intents."""
        ...

    async def resume_strategy(self, strategy_id: str, *, by: str) -> StrategyAction:
        """``POST /strategies/{id}/resume``."""
        ...

    async def stop_strategy(self, strategy_id: str, *, by: str) -> StrategyAction:
        """``POST /strategies/{id}/stop``: for good (positions stay unless flattened)."""
        ...

    async def positions(self) -> PositionsResponse:
        """``GET /positions``."""
        ...

    async def orders(self, query: OrdersQuery) -> OrdersResponse:
        """``GET /orders`` (from the journal)."""
        ...

    async def pnl(self) -> PnlResponse:
        """``GET /pnl``."""
        ...

    async def get_limits(self) -> RiskLimits:
        """``GET /risk/limits``."""
        ...

    async def set_limits(self, limits: RiskLimits, *, by: str) -> RiskLimits:
        """``PUT /risk/limits``: replace them in full (journaled as ``limits_changed``)."""
        ...

    async def risk_state(self) -> RiskStateResponse:
        """``GET /risk/state``."""
        ...

    async def kill(self, request: KillRequest, *, by: str) -> KillResponse:
        """``POST /risk/kill``: effective (journaled, orders canceled) before it returns."""
        ...

    async def resume(self, request: ResumeRequest, *, by: str) -> ResumeResponse:
        """``POST /risk/resume``."""
        ...

    async def submit_backtest(self, spec: BacktestRequest, *, by: str) -> JobAccepted:
        """``POST /backtests``: queue a job, return its id at once."""
        ...

    async def submit_optimization(self, request: OptimizationRequest, *, by: str) -> JobAccepted:
        """``POST /optimizations``: queue a research job, return its id at once."""
        ...

    async def job_status(self, job_id: str) -> JobStatus:
        """``GET /jobs/{id}`` (``JobNotFoundError`` for an unknown id)."""
        ...
