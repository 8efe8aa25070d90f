"""The backend's request checks that need no Ray: data paths inside the data directory, job
sizes under the API's limits."""

from __future__ import annotations

import pytest

from cluster.api.errors import FieldError
from cluster.api.ray_backend import JOB_LIMITS, check_data_paths, check_job_size
from core.config import BacktestSpec
from optimization.specs import MonteCarloSpec, OptimizeSpec


def test_data_paths_resolve_inside_the_data_dir_and_nothing_outside(tmp_path):
    (tmp_path / "AAA.csv").write_text("x")
    ok = check_data_paths(BacktestSpec(strategy="s", data={"paths": ["AAA.csv"]}), tmp_path)
    assert ok.data.paths == [str((tmp_path / "AAA.csv").resolve())]
    for bad in ("../secret.csv", "/etc/passwd", "sub/../../x"):
        with pytest.raises(FieldError) as err:
            check_data_paths(BacktestSpec(strategy="s", data={"paths": [bad]}), tmp_path)
        assert err.value.field == "data.paths.0"
    with pytest.raises(FieldError, match="no data directory"):
        check_data_paths(BacktestSpec(strategy="s", data={"paths": ["AAA.csv"]}), None)


def test_a_symbolic_link_out_of_the_data_dir_is_refused(tmp_path):
    (tmp_path / "link.csv").symlink_to("/etc/hostname")
    with pytest.raises(FieldError, match="inside the server's data directory"):
        check_data_paths(BacktestSpec(strategy="s", data={"paths": ["link.csv"]}), tmp_path)


def test_optuna_storage_only_as_a_sqlite_file_inside_the_data_dir(tmp_path):
    ok = check_data_paths(OptimizeSpec(strategy="s", storage="sqlite:///study.db"), tmp_path)
    assert ok.storage == f"sqlite:///{(tmp_path / 'study.db').resolve()}"
    for bad in ("sqlite:////tmp/x.db", "sqlite:///../x.db", "postgresql://db.example/x"):
        with pytest.raises(FieldError) as err:
            check_data_paths(OptimizeSpec(strategy="s", storage=bad), tmp_path, "spec")
        assert err.value.field == "spec.storage"


def test_job_sizes_over_the_api_limits_are_refused_with_their_field():
    check_job_size(BacktestSpec(strategy="s"))  # the defaults pass
    big = BacktestSpec(strategy="s", data={"synthetic_symbols": 100, "synthetic_bars": 1_000_000})
    with pytest.raises(FieldError) as err:
        check_job_size(big)
    assert err.value.field == "data.synthetic_bars"
    with pytest.raises(FieldError) as err:
        check_job_size(MonteCarloSpec(strategy="s", paths=JOB_LIMITS["paths"] + 1), "spec")
    assert err.value.field == "spec.paths"


def test_reads_share_one_fetch_are_reused_briefly_and_dropped_by_a_command():
    import asyncio

    from cluster.api.ray_backend import RayBackend

    backend = RayBackend(read_ttl_s=60.0)
    calls: list[int] = []

    async def fetch() -> int:
        calls.append(len(calls))
        await asyncio.sleep(0.05)
        return len(calls)

    async def failing() -> int:
        calls.append(-1)
        raise RuntimeError("actor down")

    async def scenario() -> None:
        crowd = await asyncio.gather(*(backend._shared("k", fetch) for _ in range(20)))
        assert crowd == [1] * 20 and len(calls) == 1  # 20 concurrent reads, one fetch
        assert await backend._shared("k", fetch) == 1 and len(calls) == 1  # fresh: reused
        backend._changed()  # a command went through
        assert await backend._shared("k", fetch) == 2 and len(calls) == 2
        backend.read_ttl_s = 0.0  # expired at once
        assert await backend._shared("k", fetch) == 3
        for _ in range(2):  # a failure is never served again
            with pytest.raises(RuntimeError, match="actor down"):
                await backend._shared("f", failing)
        assert calls.count(-1) == 2

    asyncio.run(scenario())
