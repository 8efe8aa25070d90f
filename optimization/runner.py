"""One entry point for every job kind: validate a spec, run it, return its result object.

The CLI calls ``run_job`` in the driver with a progress context; the jobs actor calls the same
function in a thread. Every result has ``summary() -> dict`` (JSON-able up to non-finite
floats, which ``jsonable`` turns into null).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from core.config import BacktestSpec
from core.errors import ConfigError
from optimization.context import JobContext
from optimization.specs import SPEC_OF, JobKind

__all__ = ["BacktestJobResult", "jsonable", "parse_spec", "run_job"]


def jsonable(value: Any) -> Any:
    """Non-finite floats -> None, numpy scalars -> Python, recursively through dicts/lists."""
    if hasattr(value, "item") and not isinstance(value, dict | list | tuple | str):
        with contextlib.suppress(AttributeError, ValueError):
            value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def parse_spec(kind: JobKind | str, spec: BaseModel | dict[str, Any]) -> BaseModel:
    """The validated spec model of a job kind (pydantic ValidationError on a bad body)."""
    try:
        kind = JobKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in JobKind)
        raise ConfigError(f"unknown job kind {kind!r}; known: {known}") from None
    model = SPEC_OF[kind]
    if isinstance(spec, model):
        return spec
    if isinstance(spec, BaseModel):
        raise ConfigError(f"a {kind.value} job needs a {model.__name__}, got {type(spec).__name__}")
    return model.model_validate(spec)


@dataclass
class BacktestJobResult:
    """A backtest run as a job (what POST /backtests will return)."""

    strategy: str
    params: dict[str, Any]
    body: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """The same object as ``raytrader backtest --json``."""
        return {"strategy": self.strategy, "params": self.params, **self.body}


def _run_backtest(spec: BacktestSpec, ctx: JobContext) -> BacktestJobResult:
    from strategies.backtest import run_spec

    ctx.report(0, 1)
    strategy, result = run_spec(spec)
    ctx.report(1, 1)
    return BacktestJobResult(strategy.name, strategy.params, result.to_dict())


def _runner(kind: JobKind) -> Callable[[Any, JobContext], Any]:
    if kind is JobKind.BACKTEST:
        return _run_backtest
    if kind is JobKind.OPTIMIZE:
        from optimization.search import run_optimize

        return run_optimize
    if kind is JobKind.SWEEP:
        from optimization.sweep import run_sweep

        return run_sweep
    if kind is JobKind.WALKFORWARD:
        from optimization.walkforward import run_walkforward

        return run_walkforward
    if kind is JobKind.MONTECARLO:
        from optimization.montecarlo import run_montecarlo

        return run_montecarlo
    from optimization.stress import run_stress

    return run_stress


def run_job(
    kind: JobKind | str, spec: BaseModel | dict[str, Any], ctx: JobContext | None = None
) -> Any:
    """Validate and run one job; raises JobCancelledError when its context is cancelled."""
    model = parse_spec(kind, spec)
    return _runner(JobKind(kind))(model, ctx or JobContext())
