"""The jobs API on the local Ray: submit/status/result, failures, cancel and resume.

Cancellation is checked by its effects: the CPUs of the cluster are free again (no running
task or worker actor holds one), no worker actor name survives, and the study in storage
continues (trial numbers grow) when resumed.
"""

from __future__ import annotations

import time

import optuna
import pytest

from core.config import DataSpec
from core.errors import ConfigError
from optimization import api
from optimization.api import JobFailedError, JobNotFoundError, JobState
from optimization.search import ATTR

SYN = DataSpec(synthetic_symbols=3, synthetic_bars=400, seed=5)


def _until(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.timeout(120)
def test_backtest_and_sweep_jobs_report_and_return_results(ray_session):
    job = api.submit("backtest", {"strategy": "sma_crossover", "data": SYN.model_dump()})
    st = api.wait(job, timeout=60)
    assert st.state is JobState.SUCCEEDED and st.progress == 1.0
    body = api.result(job).summary()
    assert body["strategy"] == "sma_crossover" and body["final_equity"] > 0
    sweep = api.submit("sweep", {"strategy": "sma_crossover", "data": SYN.model_dump(),
                                 "grid": {"fast": [5, 10], "slow": [20, 40]}})  # fmt: skip
    assert api.wait(sweep, timeout=60).state is JobState.SUCCEEDED
    assert api.result(sweep).n_sets == 4
    assert {job, sweep} <= {s.job_id for s in api.list_jobs()}


def test_bad_specs_fail_at_submit():
    with pytest.raises(ConfigError, match="unknown job kind 'optimise'"):
        api.submit("optimise", {"strategy": "sma_crossover"})
    with pytest.raises(ValueError, match="trials"):
        api.submit("optimize", {"strategy": "sma_crossover", "trials": 0})
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        api.submit("optimize", {"strategy": "sma_crossover", "trails": 10})


@pytest.mark.timeout(120)
def test_a_failing_job_reports_its_error(ray_session):
    job = api.submit("optimize", {"strategy": "no_such_strategy", "trials": 3})
    st = api.wait(job, timeout=60)
    assert st.state is JobState.FAILED and "unknown strategy 'no_such_strategy'" in st.error
    with pytest.raises(JobFailedError, match="unknown strategy"):
        api.result(job)
    with pytest.raises(JobNotFoundError):
        api.status("nope")


def _evaluated(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=storage)
    evaluated = ("ok", "infeasible", "undefined")  # everything but constraint-pruned sets
    return [t for t in study.trials if t.user_attrs.get(ATTR, {}).get("status") in evaluated]


@pytest.mark.timeout(240)
def test_cancel_frees_every_worker_and_resume_continues_the_study(ray_session, tmp_path):
    storage = f"sqlite:///{tmp_path / 'cancel.db'}"
    spec = {
        "strategy": "sma_crossover", "data": SYN.model_dump(), "trials": 100_000,
        "storage": storage, "study_name": "cancel-me", "batch_size": 1, "sampler": "random",
    }  # fmt: skip
    job = api.submit("optimize", spec)
    assert _until(lambda: api.status(job).done >= 10)
    api.cancel(job)
    st = api.wait(job, timeout=60)
    assert st.state is JobState.CANCELLED
    workers = lambda: [n for n in ray_session.util.list_named_actors() if "worker" in n]  # noqa: E731
    assert _until(lambda: not workers())
    assert _until(lambda: ray_session.available_resources().get("CPU", 0) == 2.0)
    study = optuna.load_study(study_name="cancel-me", storage=storage)
    assert not [t for t in study.trials if t.state.name == "RUNNING"]  # nothing left open
    done = len(_evaluated(storage, "cancel-me"))
    last = max(t.number for t in study.trials)
    again = api.submit("optimize", {**spec, "trials": done + 6, "resume": True})
    assert api.wait(again, timeout=120).state is JobState.SUCCEEDED
    after = _evaluated(storage, "cancel-me")
    assert len(after) == done + 6
    assert min(t.number for t in after if t.number > last) > last  # continued, not restarted
