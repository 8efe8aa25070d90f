"""The jobs API: submit research jobs, follow them, fetch results, cancel them.

``submit(kind, spec) -> job_id`` validates the spec here (a bad body fails at once, with the
field and the reason) and hands it to the named actor ``jobs`` (namespace ``raytrader``,
created on first use with ``get_if_exists``). The actor runs each job in its own thread with
the same ``optimization.runner.run_job`` the CLI uses, tracking state, progress (fraction done,
best so far), errors and results. It is detached, so on a cluster (``RAY_ADDRESS``) jobs
outlive the client that submitted them; the HTTP control API of the next issue calls these
functions. ``cancel`` stops a job at its next check: its worker actors are killed, its Ray
tasks cancelled, and an Optuna study in storage is left resumable.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import ray
from pydantic import BaseModel, ConfigDict

from core.errors import ConfigError, RaytraderError
from optimization.context import JobCancelledError, JobContext
from optimization.runtime import NAMESPACE, ensure_ray
from optimization.specs import JobKind

__all__ = [
    "JOBS_ACTOR",
    "JobFailedError",
    "JobManager",
    "JobNotFoundError",
    "JobState",
    "JobStatus",
    "cancel",
    "list_jobs",
    "result",
    "status",
    "submit",
    "wait",
]

JOBS_ACTOR = "jobs"


class JobState(StrEnum):
    """Lifecycle of a job."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True for the terminal states."""
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class JobNotFoundError(ConfigError):
    """No job has this id."""


class JobFailedError(RaytraderError):
    """The job raised; the message carries its error type and text."""


class JobStatus(BaseModel):
    """What ``status(job_id)`` returns (and GET /jobs/{id} will)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    kind: JobKind
    state: JobState
    progress: float = 0.0
    done: int = 0
    total: int = 0
    best: float | None = None
    message: str = ""
    error: str | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _Job:
    def __init__(self, kind: JobKind, spec: dict[str, Any]) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.kind = kind
        self.spec = spec
        self.ctx = JobContext()
        self.state = JobState.PENDING
        self.error: str | None = None
        self.result: Any = None
        self.created = _now()
        self.started: str | None = None
        self.finished: str | None = None

    def status(self) -> JobStatus:
        p = self.ctx.progress
        best = p.best if p.best is None or p.best == p.best else None
        return JobStatus(
            job_id=self.id, kind=self.kind, state=self.state, progress=p.fraction, done=p.done,
            total=p.total, best=best, message=p.message, error=self.error,
            created_at=self.created, started_at=self.started, finished_at=self.finished,
        )  # fmt: skip


class JobManager:
    """Runs jobs in threads and keeps their status and results (a Ray actor, see below)."""

    def __init__(self) -> None:
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    def submit(self, kind: str, spec: dict[str, Any]) -> str:
        """Start a job; returns its id."""
        job = _Job(JobKind(kind), spec)
        with self._lock:
            self._jobs[job.id] = job
        threading.Thread(target=self._run, args=(job,), daemon=True, name=job.id).start()
        return job.id

    def _run(self, job: _Job) -> None:
        from optimization.runner import run_job

        job.state, job.started = JobState.RUNNING, _now()
        try:
            job.result = run_job(job.kind, job.spec, job.ctx)
            job.state = JobState.SUCCEEDED
        except JobCancelledError:
            job.state = JobState.CANCELLED
        except Exception as exc:  # any failure is the job's, recorded for status()
            job.error = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, RaytraderError):
                job.error += "\n" + traceback.format_exc(limit=5)
            job.state = JobState.FAILED
        finally:
            job.finished = _now()

    def _get(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFoundError(f"unknown job id {job_id!r}")
        return job

    def status(self, job_id: str) -> JobStatus:
        """The job's state and progress."""
        return self._get(job_id).status()

    def result(self, job_id: str) -> Any:
        """The result object of a succeeded job."""
        job = self._get(job_id)
        if job.state is JobState.SUCCEEDED:
            return job.result
        if job.state is JobState.FAILED:
            raise JobFailedError(f"job {job_id} failed: {job.error}")
        if job.state is JobState.CANCELLED:
            raise JobCancelledError(f"job {job_id} was cancelled")
        raise ConfigError(f"job {job_id} is {job.state.value}; no result yet")

    def cancel(self, job_id: str) -> JobStatus:
        """Ask the job to stop; it cleans up its workers and tasks on its way out."""
        job = self._get(job_id)
        if not job.state.finished:
            job.ctx.cancel()
        return job.status()

    def list_jobs(self) -> list[JobStatus]:
        """Every job this actor knows, oldest first."""
        return [j.status() for j in self._jobs.values()]


_JobActor = ray.remote(num_cpus=0, max_concurrency=64, max_restarts=0)(JobManager)


def _actor() -> Any:
    ensure_ray()
    return _JobActor.options(
        name=JOBS_ACTOR, namespace=NAMESPACE, get_if_exists=True, lifetime="detached"
    ).remote()


def _call(method: str, *args: Any) -> Any:
    try:
        return ray.get(getattr(_actor(), method).remote(*args))
    except ray.exceptions.RayTaskError as err:
        cause = getattr(err, "cause", None)
        raise (cause if isinstance(cause, RaytraderError) else err) from None


def submit(kind: JobKind | str, spec: BaseModel | dict[str, Any]) -> str:
    """Validate a spec and start its job; returns the job id."""
    from optimization.runner import parse_spec

    model = parse_spec(kind, spec)
    return _call("submit", JobKind(kind).value, model.model_dump(mode="json"))


def status(job_id: str) -> JobStatus:
    """State, progress (fraction, best so far) and error of a job."""
    return _call("status", job_id)


def result(job_id: str) -> Any:
    """The result object of a finished job (JobFailedError / JobCancelledError otherwise)."""
    return _call("result", job_id)


def cancel(job_id: str) -> JobStatus:
    """Cancel a job; returns its status at the time of the request."""
    return _call("cancel", job_id)


def list_jobs() -> list[JobStatus]:
    """Every job of the jobs actor."""
    return _call("list_jobs")


def wait(job_id: str, timeout: float = 600.0, poll: float = 0.2) -> JobStatus:
    """Poll until the job finishes or ``timeout`` seconds pass; returns the last status."""
    deadline = time.monotonic() + timeout
    st = status(job_id)
    while not st.state.finished and time.monotonic() < deadline:
        time.sleep(poll)
        st = status(job_id)
    return st
