"""The research commands through click (in-process, on the session's Ray) and one real
subprocess interrupted with Ctrl-C (SIGINT) and resumed.

Numbers are checked against the library calls' own tests; here: the outputs exist and agree
with each other (JSON summary vs Parquet tables), errors exit 2 naming the option, and an
interrupted search resumes the same study.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import polars as pl
import pytest
from click.testing import CliRunner

from cluster.cli import main

REPO = Path(__file__).resolve().parents[2]
ORCL = str(REPO / "data" / "ORCL.csv")
SYN = ["--synthetic-symbols", "2", "--synthetic-bars", "500"]


def _run(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.mark.timeout(120)
def test_sweep_writes_json_parquet_and_a_self_contained_report(ray_session, tmp_path):
    out = tmp_path / "sweep"
    res = _run(["sweep", *SYN, "--strategy", "sma_crossover", "--grid", "fast=5:15:5",
                "--grid", "slow=20,40", "--out", str(out), "--json", "--top-k", "2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    table = pl.read_parquet(out / "sweep.parquet")
    assert summary["n_sets"] == table.height == 6
    assert summary["top"][0]["sharpe"] == pytest.approx(table["sharpe"].max())
    doc = json.loads((out / "result.json").read_text())
    assert doc["spec"]["data"]["seed"] == 0 and doc["kind"] == "sweep"
    report = (out / "report.html").read_text()
    assert "Heatmap" in report or "heatmap" in report
    assert '<script src="http' not in report and len(report) > 1_000_000  # plotly.js inlined


@pytest.mark.timeout(180)
def test_optimize_walkforward_montecarlo_stress_run_on_the_real_file(ray_session, tmp_path):
    res = _run(["optimize", "--data", ORCL, "--strategy", "sma_crossover", "--trials", "12",
                "--metric", "sharpe,max_drawdown", "--sampler", "nsga2", "--seed", "3",
                "--out", str(tmp_path / "o"), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["seed"] == 3 and summary["directions"] == ["maximize", "minimize"]
    assert summary["best"] and pl.read_parquet(tmp_path / "o" / "trials.parquet").height >= 12
    res = _run(["walkforward", "--data", ORCL, "--strategy", "sma_crossover", "--train", "5y",
                "--test", "2y", "--trials", "6", "--out", str(tmp_path / "w")])  # fmt: skip
    assert res.exit_code == 0, res.output
    folds = pl.read_parquet(tmp_path / "w" / "folds.parquet")
    assert folds.height == 7 and "walk_forward_efficiency" in res.output.replace("\n", "")
    res = _run(["montecarlo", "--data", ORCL, "--strategy", "sma_crossover", "--paths", "2000",
                "--method", "iid", "--out", str(tmp_path / "m"), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    mc = json.loads(res.output.strip().splitlines()[-1])
    assert mc["paths"] == 2000 and pl.read_parquet(tmp_path / "m" / "paths.parquet").height == 2000
    res = _run(["stress", "--data", ORCL, "--strategy", "sma_crossover", "--gap",
                "2008-10-06:-20", "--window", "2007-10-01:2009-03-31:gfc",
                "--out", str(tmp_path / "s"), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    names = [r["scenario"] for r in json.loads(res.output.strip().splitlines()[-1])["scenarios"]]
    assert names == ["baseline", "gap -20% on 2008-10-06", "gfc"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["optimize", "--metric", "sharp"], "unknown metric 'sharp' in --metric"),
        (["optimize", "--workers", "0"], "--workers=0: Input should be greater than or equal to 1"),
        (["montecarlo", "--paths", "0"], "--paths=0"),
        (["sweep", "--grid", "fast=50", "--grid", "slow=20,30"], "empty after its constraints"),
        (["walkforward", "--train", "9000", "--test", "100"], "--train 9000 bars is not shorter"),
        (["stress", "--gap", "2008-10-06"], "--gap '2008-10-06'"),
        (["optimize", "--resume"], "resume needs a storage"),
        (["optimize", "--workers", "64"], "--workers 64: the Ray cluster has 2 CPUs"),
    ],
)
@pytest.mark.timeout(120)
def test_bad_input_exits_2_naming_the_thing(ray_session, args, message):
    res = CliRunner().invoke(main, [args[0], *SYN, "--strategy", "sma_crossover", *args[1:]])
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())


def _evaluated(storage: str) -> int:
    try:
        study = optuna.load_study(study_name="sma_crossover-sharpe", storage=storage)
    except KeyError:
        return 0
    return sum(1 for t in study.trials if t.user_attrs.get("raytrader", {}).get("status") == "ok")


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("signame", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_leaves_a_resumable_study(ray_session, tmp_path, signame, code):
    """Ctrl-C, or SIGTERM (a service manager's stop), cancels the search at its next check:
    the study keeps every trial done and ``--resume`` goes on from there."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    cmd = [sys.executable, "-m", "cluster.cli", "optimize", "--data", ORCL, "--strategy",
           "sma_crossover", "--trials", "100000", "--batch-size", "1", "--workers", "1",
           "--storage", storage, "--sampler", "random", "--out", str(tmp_path / "o")]  # fmt: skip
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while _evaluated(storage) < 5 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "--resume" in err and "SIGTERM received" not in err
    done = _evaluated(storage)
    assert done >= 5
    res = _run(["optimize", "--data", ORCL, "--strategy", "sma_crossover", "--trials",
                str(done + 4), "--storage", storage, "--resume", "--sampler", "random",
                "--out", str(tmp_path / "r"), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["counts"]["this_run"] == 4
    assert _evaluated(storage) == done + 4
