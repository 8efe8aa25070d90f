"""``raytrader run`` and ``raytrader demo`` end to end, in this process's Ray.

Reference: ``raytrader backtest --json`` on the same data, strategy, parameters and fill
model, run through the same CLI; the two JSON objects must be equal, field by field.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cluster.cli import main
from tests.kit.control import free_port

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture
def live(ray_session):
    """The session's Ray, with every live-runtime actor killed after the test."""
    from actors.runtime import kill_live_actors

    kill_live_actors()
    yield ray_session
    kill_live_actors()


def write(tmp_path: Path, body: dict) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


SMA = {"id": "sma", "strategy": "sma_crossover", "params": {"fast": 5, "slow": 20},
       "symbols": ["NVDA"],
       "sim": {"size_pct": 0.95, "commission_bps": 10.0, "stop_loss_pct": 5.0}}  # fmt: skip
WINDOW = {"start": "2010-01-01"}


@pytest.mark.timeout(180)
def test_run_json_prints_the_object_backtest_json_prints(live, tmp_path) -> None:
    body = {"strategies": [SMA], "feed": {"data": {"paths": [str(DATA / "NVDA.csv")], **WINDOW}},
            "journal": {"path": "journal.sqlite"}}  # fmt: skip
    result = invoke("run", str(write(tmp_path, body)), "--json")
    assert result.exit_code == 0, result.stderr
    ours = json.loads(result.stdout)
    ref = invoke("backtest", "--data", str(DATA / "NVDA.csv"), "--start", WINDOW["start"],
                 "--strategy", "sma_crossover", "-p", "fast=5", "-p", "slow=20", "--size-pct",
                 "0.95", "--commission-bps", "10", "--stop-loss-pct", "5", "--json")  # fmt: skip
    assert ref.exit_code == 0
    assert ours == json.loads(ref.stdout)
    assert ours["trades"] and any(t["exit_reason"] == "stop_loss" for t in ours["trades"])
    assert "live run (paper) summary" in result.stderr
    assert (tmp_path / "journal.sqlite").is_file()  # resolved against the config's folder


#: A strategy of the user's own, as the README writes one (its mean reversion example).
USER_STRATEGY = """
import numpy as np
from core.panel import WidePanel
from strategies.base import Strategy
from strategies.indicators import sma_nb
from strategies.params import FloatParam, IntParam


class MeanReversion(Strategy):
    name = "mean_reversion"
    description = "buy when the close falls a given fraction below its moving average"

    window = IntParam(20, low=2, high=500)
    depth = FloatParam(0.05, low=0.001, high=0.5)

    @property
    def lookback(self) -> int:
        return self.window

    def target_weights(self, panel: WidePanel) -> np.ndarray:
        ma = sma_nb(panel.close, self.window)
        w = np.full(panel.close.shape, np.nan)
        w[panel.close < ma * (1 - self.depth)] = 1.0
        w[panel.close > ma] = 0.0
        return w
"""


@pytest.mark.timeout(180)
def test_a_strategy_file_of_the_users_runs_live_like_its_backtest(live, tmp_path) -> None:
    # ``file.py:Class`` in the config, relative to the config's folder: every host (its own
    # process) loads the file by its path; the run's JSON equals the backtest's of that file.
    (tmp_path / "strats").mkdir()
    (tmp_path / "strats" / "mr.py").write_text(USER_STRATEGY)
    strategy = {"id": "mr", "strategy": "strats/mr.py:MeanReversion",
                "params": {"window": 15, "depth": 0.04}, "symbols": ["ORCL"],
                "sim": {"size_pct": 0.95, "commission_bps": 10.0}}  # fmt: skip
    body = {"strategies": [strategy], "feed": {"data": {"paths": [str(DATA / "ORCL.csv")],
                                                        **WINDOW}}}  # fmt: skip
    result = invoke("run", str(write(tmp_path, body)), "--json")
    assert result.exit_code == 0, result.stderr
    ours = json.loads(result.stdout)
    ref = invoke("backtest", "--data", str(DATA / "ORCL.csv"), "--start", WINDOW["start"],
                 "--strategy", f"{tmp_path / 'strats' / 'mr.py'}:MeanReversion", "-p",
                 "window=15", "-p", "depth=0.04", "--size-pct", "0.95", "--commission-bps",
                 "10", "--json")  # fmt: skip
    assert ref.exit_code == 0, ref.stderr
    assert ours == json.loads(ref.stdout)
    assert len(ours["trades"]) >= 5 and ours["params"] == {"window": 15, "depth": 0.04}


@pytest.mark.timeout(180)
def test_run_on_a_terminal_shows_the_live_table_and_keeps_stdout_for_the_json(live, tmp_path):
    """Long runs show progress: on a terminal (rich's FORCE_COLOR stands in for one) ``run``
    draws the demo's live table, on stderr with ``--json``, whose stdout stays the object.
    The bar count is the CSV's rows from the window's start, counted here."""
    import csv

    with (DATA / "NVDA.csv").open() as f:
        n = sum(1 for row in csv.DictReader(f) if row["timestamp"] >= WINDOW["start"])
    body = {"strategies": [SMA], "feed": {"data": {"paths": [str(DATA / "NVDA.csv")], **WINDOW}}}
    result = CliRunner().invoke(main, ["run", str(write(tmp_path, body)), "--json"],
                                env={"FORCE_COLOR": "1"}, catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["trades"]
    err = " ".join(result.stderr.split())
    assert f"bar {n:,}/{n:,}" in err and "live run (paper) summary" in err


@pytest.mark.timeout(180)
def test_run_json_of_several_strategies_keys_them_by_id(live, tmp_path) -> None:
    flip = {"id": "flip", "strategy": "tests.kit.live:Flipper", "symbols": ["ORCL", "NVDA"],
            "sim": {"fill": "close", "size_pct": 0.45}}  # fmt: skip
    paths = [str(DATA / "ORCL.csv"), str(DATA / "NVDA.csv")]
    body = {"strategies": [SMA, flip], "feed": {"data": {"paths": paths, "start": "2013-06-01"}}}
    result = invoke("run", str(write(tmp_path, body)), "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert list(out) == ["strategies"] and list(out["strategies"]) == ["sma", "flip"]
    assert out["strategies"]["flip"]["strategy"] == "flipper"
    assert out["strategies"]["flip"]["symbols"] == ["ORCL", "NVDA"]
    assert out["strategies"]["flip"]["trades"]


@pytest.mark.timeout(180)
def test_a_strategy_that_failed_makes_the_run_exit_1_after_its_whole_output(live, tmp_path):
    """A strategy that raises stops alone (the others trade on to the end), but the command
    must not end 0: its result stops at the failure, and a script comparing JSON objects
    would take it for a whole run's. Reference for the healthy one: ``backtest --json``."""
    boom = {"id": "boom", "strategy": "tests.kit.live:Boom", "params": {"fail_at": 60},
            "symbols": ["NVDA"], "sim": {"fill": "close", "size_pct": 0.5}}  # fmt: skip
    body = {"strategies": [SMA, boom], "feed": {"data": {"paths": [str(DATA / "NVDA.csv")],
                                                         **WINDOW}}}  # fmt: skip
    result = invoke("run", str(write(tmp_path, body)), "--json")
    assert result.exit_code == 1, result.stderr
    out = json.loads(result.stdout)["strategies"]
    ref = invoke("backtest", "--data", str(DATA / "NVDA.csv"), "--start", WINDOW["start"],
                 "--strategy", "sma_crossover", "-p", "fast=5", "-p", "slow=20", "--size-pct",
                 "0.95", "--commission-bps", "10", "--stop-loss-pct", "5", "--json")  # fmt: skip
    assert out["sma"] == json.loads(ref.stdout)
    assert out["boom"]["trades"]  # it traded before bar 60 (Flipper's weights)
    err = " ".join(result.stderr.split())
    assert "strategy boom failed: StrategyError" in err and "boom at 60 bars" in err
    assert "exit 1: strategy boom failed" in err


def test_a_bad_config_exits_2_naming_the_field(tmp_path) -> None:
    body = {"strategies": [{**SMA, "params": {"fast": 0}}]}
    result = invoke("run", str(write(tmp_path, body)))
    assert result.exit_code == 2
    err = " ".join(result.stderr.split())  # rich wraps long lines at the terminal width
    assert "strategies[0].params.fast: must be in [1, 1000]" in err
    assert str(tmp_path / "run.yaml") in err


@pytest.mark.timeout(120)
def test_a_symbol_missing_from_the_data_exits_2_naming_strategy_and_symbol(live, tmp_path):
    body = {"strategies": [{**SMA, "symbols": ["NVDA", "MSFT"]}],
            "feed": {"data": {"paths": [str(DATA / "NVDA.csv")]}}}  # fmt: skip
    result = invoke("run", str(write(tmp_path, body)))
    assert result.exit_code == 2
    err = " ".join(result.stderr.split())
    assert "strategies[0].symbols[1]" in err
    assert "strategy 'sma' trades 'MSFT', which is not in the feed's data (NVDA)" in err


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", ["missing file", "bad bar under raise"])
def test_data_the_feed_refuses_exits_2_with_its_error_and_leaves_nothing_running(
    live, tmp_path, case
) -> None:
    """The feed loads its data in its constructor, where an error reached the driver as
    Ray's ActorDiedError with a traceback's text; now it is the data error, in one line, and
    the run's actors are gone and its journal free again."""
    from actors.runtime import live_actor_names
    from core.journal_lock import RunLock

    if case == "missing file":
        missing = tmp_path / "NOPE.csv"
        data, rule = {"paths": [str(missing)]}, f"data path {missing} does not exist"
    else:
        lines = (DATA / "NVDA.csv").read_text().splitlines()[:60]
        ts, o, _, low, c, v = lines[30].split(",")
        lines[30] = ",".join([ts, o, str(float(low) - 1), low, c, v])  # high below the low
        (tmp_path / "NVDA.csv").write_text("\n".join(lines) + "\n")
        data = {"paths": ["NVDA.csv"], "bad_bars": "raise"}
        rule = f"row 30, symbol NVDA, rule high_below_open_close: high {float(low) - 1:g}"
    journal = tmp_path / "journal.sqlite"
    body = {"strategies": [SMA], "feed": {"data": data}, "journal": {"path": str(journal)}}
    result = invoke("run", str(write(tmp_path, body)))
    assert result.exit_code == 2, result.stderr
    err = " ".join(result.stderr.split())
    assert rule in err and "Traceback" not in err and "ActorDiedError" not in err
    assert not live_actor_names()
    RunLock(str(journal)).release()  # free: taking it does not raise


@pytest.mark.timeout(180)
def test_demo_replays_three_strategies_and_ends_with_a_summary(live, tmp_path) -> None:
    journal = tmp_path / "demo.sqlite"
    result = invoke("demo", "--start", "2014-01-01", "--journal", str(journal))
    assert result.exit_code == 0, result.output
    for word in ("sma-orcl", "rsi-nvda", "momentum", "live run (paper) summary", str(journal)):
        assert word in result.output
    assert journal.is_file()


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("signame", "code", "what"), [
    ("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated (SIGTERM)"),
    ("SIGKILL", -9, None),
])  # fmt: skip
def test_ctrl_c_or_sigterm_says_how_far_the_run_got_and_the_same_command_resumes_it(
    live, tmp_path, signame, code, what
):
    """SIGINT (Ctrl-C) or SIGTERM (a service manager's stop; Ray's own handler dumped a stack
    and died without a word) mid-replay (a child process, paced so it is mid-run): exit
    130 / 143 and a line naming the bars journaled (read from the journal independently) and
    the command to go on; that command (here at full speed) finishes the run with exactly the
    trades of ``raytrader backtest``. SIGKILL (the OOM killer, a crash) says nothing, and the
    same command started at once (a service manager's restart) resumes it just as well: the
    killed run's actors, which outlive their driver for a few seconds, are waited for."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    bar_ms = 6  # about 1,250 bars: a paced run of several seconds
    body = {"strategies": [SMA], "journal": {"path": "j.sqlite"},
            "feed": {"data": {"paths": [str(DATA / "NVDA.csv")], **WINDOW},
                     "speed": 86_400 / (bar_ms / 1e3)}}  # fmt: skip
    config, journal = write(tmp_path, body), tmp_path / "j.sqlite"

    def bars_done() -> int:
        if not journal.is_file():
            return 0
        with sqlite3.connect(journal) as db:
            row = db.execute("SELECT max(bar_index) FROM events WHERE kind = 'bar_done'")
            last = row.fetchone()[0]
        return 0 if last is None else last + 1

    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)

    def default_sigint() -> None:  # a child of a non-interactive shell may ignore SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen([sys.executable, "-m", "cluster.cli", "run", str(config), "--json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)  # fmt: skip
    deadline = time.monotonic() + 150
    while bars_done() < 100 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(getattr(signal, signame))
    out, err = proc.communicate(timeout=60)
    err = " ".join(err.split())
    assert proc.returncode == code, err
    assert out == ""  # no JSON for a run that did not finish
    if what is not None:
        done = bars_done()
        assert 100 <= done < 1000, done  # stopped mid-run
        assert f"{what} after {done:,} bars of " in err and "SIGTERM received" not in err
        resume = f"raytrader run {config} --json --journal {journal}"
        assert f"to go on from there: {resume}" in err

    fast = tmp_path / "fast.yaml"  # the same run at full speed: speed is not what a run is
    fast.write_text(yaml.safe_dump({**body, "feed": {**body["feed"], "speed": "max"}}))
    result = invoke("run", str(fast), "--json", "--journal", str(journal))
    assert result.exit_code == 0, result.stderr
    ref = invoke("backtest", "--data", str(DATA / "NVDA.csv"), "--start", WINDOW["start"],
                 "--strategy", "sma_crossover", "-p", "fast=5", "-p", "slow=20", "--size-pct",
                 "0.95", "--commission-bps", "10", "--stop-loss-pct", "5", "--json")  # fmt: skip
    assert json.loads(result.stdout) == json.loads(ref.stdout)


@pytest.mark.timeout(180)
def test_a_journal_is_refused_to_a_config_that_would_change_its_trades(live, tmp_path) -> None:
    """A journal resumes only the run that wrote it: other parameters are refused, naming
    each field with both values, and nothing is written to it."""
    import sqlite3

    journal = tmp_path / "j.sqlite"
    body = {"strategies": [SMA], "feed": {"data": {"paths": [str(DATA / "NVDA.csv")], **WINDOW}}}
    assert invoke("run", str(write(tmp_path, body)), "--journal", str(journal)).exit_code == 0
    with sqlite3.connect(journal) as db:
        rows = db.execute("SELECT count(*) FROM events").fetchone()[0]
    other = {**body, "strategies": [{**SMA, "params": {"fast": 3, "slow": 20}}]}
    result = invoke("run", str(write(tmp_path, other)), "--journal", str(journal))
    err = " ".join(result.stderr.split())
    assert result.exit_code == 2, result.stderr
    assert "strategies[0].params.fast: 3 here, 5 in the run that wrote the journal" in err
    assert "params.slow" not in err  # the same in both
    assert f"the journal {journal} resumes only the run that wrote it" in err
    with sqlite3.connect(journal) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == rows


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["demo", "serve"])
def test_a_taken_port_is_refused_before_anything_starts_saying_what_to_do(command) -> None:
    """The demo serves its API by default: on a taken port it started Ray and the actors and
    only then refused; now it refuses first, naming the port and the two ways out; ``serve``
    names ``--port``."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = {"demo": ["demo", "--port", str(port)],
                "serve": ["serve", "--insecure-local", "--port", str(port)]}[command]  # fmt: skip
        result = invoke(*args)
    err = " ".join(result.output.split())
    assert result.exit_code == 2, err
    assert f"cannot serve on 127.0.0.1:{port}: Address already in use; another port: --port N" in (
        err)  # fmt: skip
    assert ("or no API: --no-serve" in err) == (command == "demo")


# ---------------------------------------------------------------- joining a cluster
@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", ["run", "optimize", "serve"])
def test_a_ray_address_nothing_answers_at_fails_fast_naming_it(tmp_path, command) -> None:
    """Ray alone retries such an address for many minutes; each command that joins a
    cluster (the live runtime, the research runs, the control API) says what is wrong."""
    import os
    import subprocess
    import sys

    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "RAY_ADDRESS": address, "RAY_USAGE_STATS_ENABLED": "0"}
    body = {"strategies": [SMA], "feed": {"data": {"paths": [str(DATA / "NVDA.csv")]}}}
    args = {
        "run": ["run", str(write(tmp_path, body))],
        "optimize": ["optimize", "--data", str(DATA / "NVDA.csv"), "--strategy", "sma_crossover",
                     "--trials", "2", "--out", str(tmp_path / "o")],
        "serve": ["serve", "--insecure-local", "--port", str(free_port())],
    }[command]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "cluster.cli", *args], env=env,
                          capture_output=True, text=True, timeout=100)  # fmt: skip
    err = " ".join(proc.stderr.split())  # rich wraps the line
    assert proc.returncode == 2, proc.stderr
    assert f"RAY_ADDRESS={address}: nothing answers there" in err
    assert "ray start --head" in err and "Traceback" not in err


def test_join_hint_names_the_missing_auth_mode_or_token(tmp_path) -> None:
    """Ray 2.60 sends a token to an explicit address only with RAY_AUTH_MODE=token: the
    hint names whichever half is missing (cases worked out from Ray's auth rules)."""
    from core.cluster_join import join_hint

    token, none = tmp_path / "auth_token", str(tmp_path / "none")
    token.write_text("x" * 64)
    where = "10.0.0.5:6379"
    with_file = {"RAY_AUTH_TOKEN_PATH": str(token)}
    hint = join_hint(where, with_file)
    assert f"has a Ray token ({token})" in hint and "RAY_AUTH_MODE is not set" in hint
    assert "export RAY_AUTH_MODE=token" in hint
    disabled = join_hint(where, {**with_file, "RAY_AUTH_MODE": "disabled"})
    assert "RAY_AUTH_MODE is 'disabled'" in disabled
    in_env = join_hint(where, {"RAY_AUTH_TOKEN": "y" * 64, "RAY_AUTH_TOKEN_PATH": none})
    assert "has a Ray token (RAY_AUTH_TOKEN)" in in_env
    missing = join_hint(where, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": none})
    assert f"no token: none in RAY_AUTH_TOKEN nor in {none}" in missing
    both = {**with_file, "RAY_AUTH_MODE": "token"}
    assert f"is a cluster running at {where}" in join_hint(where, both)
    assert "ray start --head" in join_hint("auto", with_file)
