"""``RayBackend``: the ``ControlBackend`` over the live actors and the research jobs API.

Every call goes to a named actor of namespace ``raytrader`` (``risk``, ``broker``, ``journal``,
``feed``, ``strategy:<id>``) as ``await handle.method.remote(...)`` through
``actors.retry.call``: a call to an actor that is restarting is sent again until it is back
(bounded by ``restart_wait_s``), one answer waits at most ``timeout_s``. An actor that is not
there, stays down or does not answer is ``UnavailableError`` (503); an unknown strategy id is
``NotFoundError`` (404); an actor that lacks a method this API needs is ``NotSupportedError``
(501). Domain errors the actors raise (a forbidden lifecycle change) come back as themselves.

Mutating calls pass the caller's token name as the actors' ``by``, which they journal. Scopes
of a kill or a resume must name a strategy or a symbol of the running system, so a typo never
halts nothing (nor journals a stray scope).

Research jobs run in the detached ``jobs`` actor (``optimization.api``). A job spec may name
data files only inside ``data_dir`` (``check_data_paths``): an API token must not read, or make
Optuna write, any other file of the server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from actors.common import BROKER, FEED, JOURNAL, NAMESPACE, RISK, host_name
from actors.retry import ActorDownError, CallTimeoutError, call
from cluster.api import views
from cluster.api.errors import FieldError, NotFoundError, NotSupportedError, UnavailableError
from cluster.api.schemas import (
    BacktestRequest,
    ComponentCheck,
    JobAccepted,
    JobView,
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
from core.errors import RaytraderError
from core.events import Scope, ScopeKind
from optimization.api import JobState

__all__ = ["JOB_LIMITS", "LAUNCH_METHOD", "RayBackend", "check_data_paths", "check_job_size"]

log = logging.getLogger("raytrader.api")

#: The feed method ``POST /strategies`` calls (see ``RayBackend.launch_strategy``).
LAUNCH_METHOD = "launch_strategy"
_NAMES_TTL_S = 1.0  # how long a listing of the strategy actors is reused
READ_TTL_S = 0.25  # how long a finished read is served again (``RayBackend._shared``)

#: Upper bounds for a job submitted over HTTP (the CLI has none): field -> largest value.
#: One token must not be able to make the jobs actor allocate tens of GB.
JOB_LIMITS = {
    "data.synthetic_cells": 5_000_000,  # synthetic symbols x bars
    "trials": 100_000,
    "paths": 1_000_000,
    "horizon": 100_000,
}


def check_job_size(spec: BaseModel, where: str = "") -> None:
    """``FieldError`` for a job spec over ``JOB_LIMITS`` (synthetic data, trials, paths)."""
    prefix = f"{where}." if where else ""
    data = getattr(spec, "data", None)
    if data is not None and not data.paths:
        cells = data.synthetic_symbols * data.synthetic_bars
        if cells > JOB_LIMITS["data.synthetic_cells"]:
            raise FieldError(f"{prefix}data.synthetic_bars", f"synthetic_symbols x synthetic_bars "
                             f"= {cells} is over this API's limit of "
                             f"{JOB_LIMITS['data.synthetic_cells']}")  # fmt: skip
    for name in ("trials", "paths", "horizon"):
        value = getattr(spec, name, None)
        if value is not None and value > JOB_LIMITS[name]:
            raise FieldError(f"{prefix}{name}", f"{value} is over this API's limit of "
                             f"{JOB_LIMITS[name]}")  # fmt: skip


def check_data_paths(spec: BaseModel, data_dir: Path | None, where: str = "") -> BaseModel:
    """``spec`` with its data paths resolved inside ``data_dir``, or ``FieldError``.

    Relative paths are taken relative to ``data_dir``; any path that resolves (symbolic links
    followed) outside it is refused, and so is every path when no data directory is set. An
    Optuna ``storage`` may only be a SQLite file inside ``data_dir`` (another URL could write
    anywhere, or reach a database server).
    """
    prefix = f"{where}." if where else ""
    data = getattr(spec, "data", None)
    update: dict[str, Any] = {}
    if data is not None and data.paths:
        if data_dir is None:
            raise FieldError(f"{prefix}data.paths", "this server takes no file paths (no data "
                             "directory configured); use synthetic data")  # fmt: skip
        root = data_dir.resolve()
        paths = []
        for i, raw in enumerate(data.paths):
            path = (root / raw).resolve()
            if not path.is_relative_to(root):
                raise FieldError(f"{prefix}data.paths.{i}", "must be inside the server's data "
                                 "directory (give a path relative to it)")  # fmt: skip
            paths.append(str(path))
        update["data"] = data.model_copy(update={"paths": paths})
    storage = getattr(spec, "storage", None)
    if storage is not None:
        update["storage"] = _sqlite_inside(storage, data_dir, f"{prefix}storage")
    return spec.model_copy(update=update) if update else spec


def _sqlite_inside(url: str, data_dir: Path | None, field: str) -> str:
    head = "sqlite:///"
    if data_dir is None or not url.startswith(head):
        raise FieldError(field, "only sqlite:///<file> inside the server's data directory")
    root = data_dir.resolve()
    path = (root / url[len(head) :]).resolve()
    if not path.is_relative_to(root) or path == root:
        raise FieldError(field, "the SQLite file must be inside the server's data directory")
    return head + str(path)


class RayBackend:
    """The control API's backend over the live actors (see the module docstring).

    Args:
        namespace: The live actors' Ray namespace.
        timeout_s: Longest wait for one actor answer.
        restart_wait_s: Longest wait for an actor that is restarting.
        data_dir: The only directory job specs may read data from (None: synthetic only).
        read_ttl_s: How long a finished read (strategies, positions, P&L, risk state) is
            served again from memory; any command through this backend drops them at once.
    """

    def __init__(
        self,
        *,
        namespace: str = NAMESPACE,
        timeout_s: float = 10.0,
        restart_wait_s: float = 15.0,
        data_dir: str | Path | None = None,
        read_ttl_s: float = READ_TTL_S,
    ) -> None:
        self.namespace = namespace
        self.timeout_s = timeout_s
        self.restart_wait_s = restart_wait_s
        self.data_dir = None if data_dir is None else Path(data_dir)
        self._handles: dict[str, Any] = {}
        self._names: tuple[float, list[str]] = (0.0, [])
        self._in_flight: dict[str, asyncio.Future[Any]] = {}
        self._fresh: dict[str, tuple[float, Any]] = {}
        self._generation = 0
        self.read_ttl_s = read_ttl_s

    async def _shared(self, key: str, fetch: Callable[[], Awaitable[Any]]) -> Any:
        """One fetch for every concurrent read of ``key``: a read arriving while the same
        read is in flight shares its answer, and a finished answer is served again for
        ``read_ttl_s``, so a crowd of clients polling during a replay costs the actors one
        call per interval, not one per client (their queue is the bar's, not ours)."""
        fresh = self._fresh.get(key)
        if fresh is not None and time.monotonic() - fresh[0] < self.read_ttl_s:
            return fresh[1]
        future = self._in_flight.get(key)
        if future is None:
            generation = self._generation
            future = asyncio.ensure_future(fetch())
            self._in_flight[key] = future

            def done(f: asyncio.Future[Any]) -> None:
                self._in_flight.pop(key, None)
                if not f.cancelled() and f.exception() is None and generation == self._generation:
                    self._fresh[key] = (time.monotonic(), f.result())

            future.add_done_callback(done)
        return await asyncio.shield(future)

    def _changed(self) -> None:
        """A command went through: no read answered before it is served again."""
        self._generation += 1
        self._fresh.clear()

    # ------------------------------------------------------------------ plumbing
    async def _handle(self, name: str) -> Any:
        handle = self._handles.get(name)
        if handle is not None:
            return handle
        if name.startswith("strategy:") and name.removeprefix("strategy:") not in (
            await self.strategy_ids()
        ):
            # Never ask Ray for a name a client made up: Ray logs failed lookups by name.
            raise NotFoundError(f"no strategy {name.removeprefix('strategy:')!r}")
        import ray

        try:
            handle = await asyncio.to_thread(ray.get_actor, name, namespace=self.namespace)
        except ValueError:
            if name.startswith("strategy:"):
                raise NotFoundError(f"no strategy {name.removeprefix('strategy:')!r}") from None
            raise UnavailableError(f"the {name} actor is not running (no live system?)") from None
        self._handles[name] = handle
        return handle

    async def call(self, name: str, method: str, *args: Any, timeout_s: float | None = None) -> Any:
        """One actor call with the module's error rules; returns its answer."""
        handle = await self._handle(name)
        try:
            bound = getattr(handle, method)
        except AttributeError:
            raise NotSupportedError(
                f"the {name} actor has no method {method!r}: this runtime cannot do that yet"
            ) from None
        try:
            return await call(bound, *args, name=name, restart_wait_s=self.restart_wait_s,
                              timeout_s=timeout_s or self.timeout_s, probe=handle.pid)  # fmt: skip
        except (ActorDownError, CallTimeoutError) as exc:
            self._handles.pop(name, None)  # a new run may hold the name next time
            raise UnavailableError(str(exc)) from None
        except RaytraderError:
            raise
        except Exception as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, RaytraderError):
                raise cause from None
            log.error("%s.%s failed: %s", name, method, type(exc).__name__)
            raise

    async def _gather(self, *calls: Awaitable[Any]) -> list[Any]:
        return list(await asyncio.gather(*calls))

    async def strategy_ids(self) -> list[str]:
        """Ids of the strategy actors that exist now (a listing is reused for a second)."""
        stamp, ids = self._names
        if time.monotonic() - stamp < _NAMES_TTL_S:
            return ids
        import ray

        found = await asyncio.to_thread(ray.util.list_named_actors, all_namespaces=True)
        ids = sorted(
            a["name"].removeprefix("strategy:") for a in found
            if a.get("namespace") == self.namespace and a["name"].startswith("strategy:")
        )  # fmt: skip
        self._names = (time.monotonic(), ids)
        return ids

    async def _symbols(self) -> list[str]:
        cached = getattr(self, "_feed_symbols", None)
        if cached is None:
            cached = self._feed_symbols = await self.call(FEED, "symbols")
        return cached

    async def _check_scope(self, scope: Scope) -> None:
        if scope.kind is ScopeKind.STRATEGY:
            known = await self.strategy_ids()
            if scope.name not in known:
                raise FieldError("scope", f"unknown strategy {scope.name!r} (running: "
                                 f"{', '.join(known) or 'none'})")  # fmt: skip
        elif scope.kind is ScopeKind.SYMBOL and scope.name not in await self._symbols():
            raise FieldError("scope", f"unknown symbol {scope.name!r}: not in the feed's data")

    # ------------------------------------------------------------------ health
    async def _probe(self, name: str, method: str, *args: Any) -> tuple[ComponentCheck, Any]:
        try:
            answer = await self.call(name, method, *args, timeout_s=min(self.timeout_s, 3.0))
        except Exception as exc:  # any failure makes this check fail, with why
            return ComponentCheck(ok=False, detail=f"{type(exc).__name__}: {exc}"[:300]), None
        return ComponentCheck(ok=True), answer

    async def ready(self) -> ReadyResponse:
        """Risk, broker, journal reachable; the feed not failed and no stale-data breaker."""
        (risk, state), (broker, _), (journal, _), (feed, status) = await self._gather(
            self._probe(RISK, "state"), self._probe(BROKER, "last_bar"),
            self._probe(JOURNAL, "max_seq"), self._probe(FEED, "status"),
        )  # fmt: skip
        data = views.data_check(feed, status, state)
        checks = {"risk": risk, "broker": broker, "journal": journal, "data": data}
        return ReadyResponse(ready=all(c.ok for c in checks.values()), checks=checks)

    async def healthy(self) -> bool:
        """False when live actors are registered but this process cannot get answers from
        risk, the broker or the journal (what Serve's ``check_health`` restarts a replica
        for); True when they answer, or when no live system is running (a restart would not
        help)."""
        import ray

        found = await asyncio.to_thread(ray.util.list_named_actors, all_namespaces=True)
        names = {a["name"] for a in found if a.get("namespace") == self.namespace}
        wanted = [n for n in (RISK, BROKER, JOURNAL) if n in names]
        probes = await self._gather(*(self._probe(n, "ready") for n in wanted))
        return all(check.ok for check, _ in probes)

    # ------------------------------------------------------------------ strategies
    async def list_strategies(self) -> StrategyList:
        """``GET /strategies``: every strategy actor's status."""
        return await self._shared("strategies", self._list_strategies)

    async def _list_strategies(self) -> StrategyList:
        ids = await self.strategy_ids()
        found = await self._gather(*(self._status_or_none(sid) for sid in ids))
        return StrategyList(strategies=[views.summary(s) for s in found if s is not None])

    async def _status_or_none(self, strategy_id: str) -> dict[str, Any] | None:
        try:
            return await self.call(host_name(strategy_id), "status")
        except NotFoundError:  # stopped for good between the listing and the call
            return None

    async def get_strategy(self, strategy_id: str) -> StrategyDetail:
        """``GET /strategies/{id}``."""
        status, state = await self._gather(
            self.call(host_name(strategy_id), "status"), self.call(RISK, "state")
        )
        return views.detail(status, state)

    async def launch_strategy(self, launch: StrategyLaunch, *, by: str) -> StrategyDetail:
        """``POST /strategies``: the feed's ``launch_strategy(config, by)`` creates the host,
        opens its broker sub-account and risk's view of it, and trades it from the next bar
        (docs/live.md, "Launching a strategy")."""
        if launch.id in await self.strategy_ids():
            from cluster.api.errors import ConflictError

            raise ConflictError(f"strategy {launch.id!r} exists already")
        missing = sorted(set(launch.symbols) - set(await self._symbols()))
        if missing:
            raise FieldError("symbols", f"not in the feed's data: {', '.join(missing)}")
        config = launch.to_config().model_dump(mode="json")
        await self.call(FEED, LAUNCH_METHOD, config, by, timeout_s=max(self.timeout_s, 60.0))
        self._names = (0.0, [])
        self._changed()
        return await self.get_strategy(launch.id)

    async def _lifecycle(self, strategy_id: str, method: str, by: str) -> StrategyAction:
        try:
            return StrategyAction.model_validate(
                await self.call(host_name(strategy_id), method, by)
            )
        finally:
            self._changed()

    async def pause_strategy(self, strategy_id: str, *, by: str) -> StrategyAction:
        """``POST /strategies/{id}/pause``."""
        return await self._lifecycle(strategy_id, "pause", by)

    async def resume_strategy(self, strategy_id: str, *, by: str) -> StrategyAction:
        """``POST /strategies/{id}/resume``."""
        return await self._lifecycle(strategy_id, "resume", by)

    async def stop_strategy(self, strategy_id: str, *, by: str) -> StrategyAction:
        """``POST /strategies/{id}/stop``."""
        return await self._lifecycle(strategy_id, "stop", by)

    # ------------------------------------------------------------------ portfolio
    async def positions(self) -> PositionsResponse:
        """``GET /positions``: the broker's sub-accounts, marked at the last close."""
        return await self._shared("positions", self._positions)

    async def _positions(self) -> PositionsResponse:
        accounts, last_bar = await self._gather(
            self.call(BROKER, "accounts"), self.call(BROKER, "last_bar")
        )
        return PositionsResponse(positions=views.positions(accounts), bar_index=last_bar)

    async def orders(self, query: OrdersQuery) -> OrdersResponse:
        """``GET /orders``: from the journal, newest first."""
        rows = await self.call(JOURNAL, "orders", query.strategy)
        return OrdersResponse(orders=views.orders(rows, query))

    async def pnl(self) -> PnlResponse:
        """``GET /pnl``: the account and every strategy."""
        return await self._shared("pnl", self._pnl)

    async def _pnl(self) -> PnlResponse:
        accounts, state = await self._gather(self.call(BROKER, "accounts"),
                                             self.call(RISK, "state"))  # fmt: skip
        return views.pnl(accounts, state.get("marks", {}))

    # ------------------------------------------------------------------ risk
    async def get_limits(self) -> RiskLimits:
        """``GET /risk/limits``."""
        return RiskLimits.model_validate(await self.call(RISK, "limits"))

    async def set_limits(self, limits: RiskLimits, *, by: str) -> RiskLimits:
        """``PUT /risk/limits``: every per-strategy override must name a running strategy."""
        known = set(await self.strategy_ids())
        for sid in limits.strategies:
            if sid not in known:
                raise FieldError(f"strategies.{sid}", "unknown strategy (not running here)")
        answer = await self.call(RISK, "set_limits", limits.model_dump(mode="json"), by)
        self._changed()
        return RiskLimits.model_validate(answer)

    async def risk_state(self) -> RiskStateResponse:
        """``GET /risk/state``."""
        return views.risk_state(await self._shared("risk_state", lambda: self.call(RISK, "state")))

    async def kill(self, request: KillRequest, *, by: str) -> KillResponse:
        """``POST /risk/kill``: journaled, orders canceled (and flattened) before it answers.

        Waits as long as it takes risk to come back from a restart (a kill must get
        through), bounded by ``restart_wait_s``.
        """
        await self._check_scope(request.scope)
        out = await self.call(RISK, "kill", str(request.scope), request.mode.value,
                              request.flatten, by, timeout_s=max(self.timeout_s, 60.0))  # fmt: skip
        self._changed()
        return KillResponse(
            scope=request.scope, mode=request.mode, flatten=request.flatten, state=out["state"],
            by=out["by"], at=datetime.now(UTC), canceled_orders=out.get("canceled_orders", []),
            flatten_orders=out.get("flatten_orders", []),
        )  # fmt: skip

    async def resume(self, request: ResumeRequest, *, by: str) -> ResumeResponse:
        """``POST /risk/resume``: the scope active again (journaled)."""
        await self._check_scope(request.scope)
        out = await self.call(RISK, "resume", str(request.scope), by)
        self._changed()
        return ResumeResponse(scope=request.scope, state=out["state"], by=out["by"],
                              at=datetime.now(UTC))  # fmt: skip

    # ------------------------------------------------------------------ research jobs
    async def _submit(self, kind: str, spec: BaseModel) -> JobAccepted:
        from optimization import api

        job_id = await asyncio.to_thread(api.submit, kind, spec)
        return JobAccepted(job_id=job_id, kind=kind, state=JobState.PENDING,
                           status_url=f"/jobs/{job_id}")  # fmt: skip

    async def submit_backtest(self, spec: BacktestRequest, *, by: str) -> JobAccepted:
        """``POST /backtests``: a backtest job, its id at once."""
        check_job_size(spec)
        checked = check_data_paths(spec, self.data_dir)
        log.info("backtest job submitted by %s", by)
        return await self._submit("backtest", _plain(checked))

    async def submit_optimization(self, request: OptimizationRequest, *, by: str) -> JobAccepted:
        """``POST /optimizations``: a research job, its id at once."""
        check_job_size(request.spec, "spec")
        spec = check_data_paths(request.spec, self.data_dir, "spec")
        log.info("%s job submitted by %s", request.kind.value, by)
        return await self._submit(request.kind.value, spec)

    async def job_status(self, job_id: str) -> JobView:
        """``GET /jobs/{id}``: status, and the result summary once it succeeded."""
        from optimization import api

        status = await asyncio.to_thread(api.status, job_id)
        result = None
        if status.state is JobState.SUCCEEDED:
            from optimization.runner import jsonable

            obj = await asyncio.to_thread(api.result, job_id)
            result = jsonable(obj.summary())
        return JobView(**status.model_dump(), result=result)


def _plain(spec: BacktestRequest) -> BaseModel:
    """The CLI's ``BacktestSpec`` of an API request (what the jobs actor validates)."""
    from core.config import BacktestSpec

    return BacktestSpec.model_validate(spec.model_dump())

