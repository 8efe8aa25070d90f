"""Request models: strict, scope text parsed by core, domain models reused, no code paths."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from cluster.api import schemas as s
from core.config import BacktestSpec
from core.events import KillMode, Scope, ScopeKind
from core.risk.limits import RiskLimits
from optimization.api import JobStatus
from optimization.specs import JobKind, SweepSpec


def _errors(exc: ValidationError) -> dict[tuple, str]:
    return {e["loc"]: e["msg"] for e in exc.errors()}


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [("global", ScopeKind.GLOBAL, None), ("strategy:sma-1", ScopeKind.STRATEGY, "sma-1"),
     ("symbol:BRK.B", ScopeKind.SYMBOL, "BRK.B")],
)  # fmt: skip
def test_kill_scope_text_is_parsed_by_core_and_written_back_as_text(text, kind, name):
    kill = s.KillRequest.model_validate({"scope": text, "flatten": True})
    assert kill.scope == Scope(kind=kind, name=name)
    assert kill.mode is KillMode.HALT
    assert kill.model_dump(mode="json") == {"scope": text, "mode": "halt", "flatten": True}


@pytest.mark.parametrize(
    ("body", "loc", "reason"),
    [
        ({"scope": "planet:mars"}, ("scope",), "expected 'global', 'strategy:<id>'"),
        ({"scope": "global:x"}, ("scope",), "the global scope takes no name"),
        ({"scope": "symbol:two words"}, ("scope",), "should match pattern"),
        ({"scope": {"kind": "global"}}, ("scope",), "scope must be a string"),
        ({"scope": "global", "mode": "panic"}, ("mode",), "'halt' or 'reduce'"),
        ({"scope": "global", "flaten": True}, ("flaten",), "Extra inputs are not permitted"),
        ({}, ("scope",), "Field required"),
    ],
)
def test_bad_kill_bodies_name_the_field_and_the_reason(body, loc, reason):
    with pytest.raises(ValidationError) as err:
        s.KillRequest.model_validate(body)
    assert reason in _errors(err.value)[loc]


def test_resume_takes_only_a_scope():
    assert s.ResumeRequest.model_validate({"scope": "strategy:a"}).scope.name == "a"
    with pytest.raises(ValidationError):
        s.ResumeRequest.model_validate({"scope": "global", "mode": "halt"})


def test_scope_is_a_string_with_a_pattern_in_the_openapi_schema():
    schema = s.KillRequest.model_json_schema()["properties"]["scope"]
    assert schema["type"] == "string" and schema["pattern"].startswith("^(global|strategy:")


def test_launch_validates_id_registry_name_and_distinct_symbols():
    launch = s.StrategyLaunch.model_validate(
        {"id": "sma-1", "strategy": "sma_crossover", "params": {"fast": 10, "slow": 30},
         "symbols": ["AAPL", "MSFT"], "sim": {"cash": 50_000, "commission_bps": 5}}
    )  # fmt: skip
    assert launch.sim.cash == 50_000 and launch.max_history is None
    with pytest.raises(ValidationError) as err:
        s.StrategyLaunch.model_validate(
            {"id": "bad id", "strategy": "evil/file.py:Strategy", "symbols": ["A", "A"],
             "sim": {"cash": -1}}
        )  # fmt: skip
    errors = _errors(err.value)
    assert set(errors) == {("id",), ("strategy",), ("symbols",), ("sim", "cash")}
    assert "more than once: A" in errors[("symbols",)]


def test_backtest_request_is_the_backtest_spec_minus_code_paths():
    assert issubclass(s.BacktestRequest, BacktestSpec)
    ok = s.BacktestRequest.model_validate({"strategy": "rsi_reversion"})
    assert ok.strategy == "rsi_reversion"
    with pytest.raises(ValidationError, match="does not load strategies from file"):
        s.BacktestRequest.model_validate({"strategy": "/tmp/x.py:Evil"})


def test_optimization_request_picks_the_spec_by_kind():
    adapter = TypeAdapter(s.OptimizationRequest)
    job = adapter.validate_python({"kind": "sweep", "spec": {"strategy": "sma_crossover"}})
    assert job.kind is JobKind.SWEEP and isinstance(job.spec, SweepSpec)
    with pytest.raises(ValidationError) as err:
        adapter.validate_python(
            {"kind": "sweep", "spec": {"strategy": "sma_crossover", "trials": 5}}
        )
    assert ("sweep", "spec", "trials") in _errors(err.value)
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        adapter.validate_python({"kind": "backtest", "spec": {"strategy": "sma_crossover"}})
    with pytest.raises(ValidationError, match="not a registered strategy name"):
        adapter.validate_python({"kind": "optimize", "spec": {"strategy": "pkg.mod:Cls"}})


def test_domain_models_are_reused_not_copied():
    assert s.RiskLimits is RiskLimits
    assert s.JobStatus is JobStatus


def test_orders_query_bounds_the_page_size():
    assert s.OrdersQuery().limit == 100
    with pytest.raises(ValidationError):
        s.OrdersQuery(limit=100_000)
