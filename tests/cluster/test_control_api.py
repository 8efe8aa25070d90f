"""The control API end to end: the real Serve app over real HTTP against real live actors.

One module-wide system (``tests.kit.control.live_system``): three strategies on ORCL and NVDA
replayed at a paced speed, the API deployed with Ray Serve on a free loopback port with two
tokens (``ops``, ``ci``) and a fake broker key in the Ray workers' environment. The tests run in
file order: the first ones see the system before its replay, the kill switch test drives the
replay, the secrets test greps everything at the end.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.events import EventKind
from core.journal import Journal
from tests.kit.control import exposure_increasing_after, live_system, wall_ns
from tests.kit.live import DATA, config, wait_for_bar

FILES = [DATA / "ORCL.csv", DATA / "NVDA.csv"]
WINDOW = {"start": "2000-01-01", "end": "2002-12-31"}
SIM = {"size_pct": 0.45}
STRATEGIES = [
    {"id": "flip", "strategy": "tests.kit.live:Flipper", "params": {"period": 2},
     "symbols": ["ORCL", "NVDA"], "sim": SIM},
    {"id": "hold", "strategy": "tests.kit.live:Flipper", "params": {"period": 1000},
     "symbols": ["ORCL", "NVDA"], "sim": SIM},
    {"id": "idle", "strategy": "tests.kit.live:Flipper", "params": {"period": 1000},
     "symbols": ["ORCL"], "sim": SIM},
]  # fmt: skip
SPEED = 86_400 * 60  # about 60 weekday bars a second: the replay lasts ~15 s
# A fake broker key in the environment the Ray workers inherit, as a Kubernetes Secret puts
# real ones there. Set at import, so before the session's Ray starts; never a real key.
FAKE_BROKER_KEY = os.environ.setdefault("APCA_API_SECRET_KEY", "PKFAKE" + secrets.token_hex(16))

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def system(ray_session, tmp_path_factory):
    journal = tmp_path_factory.mktemp("control") / "journal.sqlite"
    cfg = config(STRATEGIES, FILES, journal, data=WINDOW, feed={"speed": SPEED,
                 "data": {"paths": [str(p) for p in FILES], **WINDOW}})  # fmt: skip
    with live_system(cfg, DATA) as sys_:
        yield sys_


@pytest.fixture
def ops(system):
    with httpx.Client(base_url=system.url, headers=system.bearer("ops"), timeout=60) as http:
        yield http


def _risk_view(system) -> tuple[Any, Any]:
    """Risk's limits and trading states (marks and the bar cursor left out)."""
    ray = pytest.importorskip("ray")
    state = ray.get(system.topo.risk.state.remote())
    return ray.get(system.topo.risk.limits.remote()), (state["global_state"], state["scopes"])


def test_public_routes_need_no_token_and_protected_ones_need_the_right_one(system) -> None:
    with httpx.Client(base_url=system.url, timeout=60) as http:
        health, ready = http.get("/health"), http.get("/ready")
        missing = http.get("/strategies")
        kill_missing = http.post("/risk/kill", json={"scope": "global"})
        wrong = http.get("/strategies", headers={"Authorization": "Bearer " + "x" * 43})
        right = http.get("/strategies", headers=system.bearer("ci"))
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert set(ready.json()["checks"]) == {"risk", "broker", "journal", "data"}
    for refused in (missing, kill_missing, wrong):
        assert refused.status_code == 401
    assert right.status_code == 200
    assert [s["id"] for s in right.json()["strategies"]] == ["flip", "hold", "idle"]
    assert _risk_view(system)[1] == ("active", [])  # the refused kill did nothing


def test_bad_requests_get_4xx_with_field_and_reason_and_change_nothing(system, ops) -> None:
    before = _risk_view(system)
    answers = {
        "unknown strategy": ops.get("/strategies/nope"),
        "unknown strategy pause": ops.post("/strategies/nope/pause"),
        "malformed json": ops.post("/risk/kill", content=b'{"scope": "global",',
                                   headers={"content-type": "application/json"}),
        "wrong types": ops.post("/risk/kill", json={"scope": "global", "flatten": "please",
                                                    "mode": 3}),
        "unknown scope kind": ops.post("/risk/kill", json={"scope": "planet:mars"}),
        "unknown scope strategy": ops.post("/risk/kill", json={"scope": "strategy:nope"}),
        "unknown scope symbol": ops.post("/risk/resume", json={"scope": "symbol:ZZZZ"}),
        "out of range limit": ops.put("/risk/limits", json={"max_position_pct": -5}),
        "unknown limit": ops.put("/risk/limits", json={"max_positon_pct": 5}),
        "override of unknown strategy": ops.put(
            "/risk/limits", json={"strategies": {"nope": {"max_open_orders": 2}}}),
        "bad orders query": ops.get("/orders", params={"limit": 0}),
    }  # fmt: skip
    codes = {k: v.status_code for k, v in answers.items()}
    assert codes == {k: 404 if k.startswith("unknown strategy") and "scope" not in k else 422
                     for k in answers}  # fmt: skip
    fields = {k: [i["field"] for i in v.json()["detail"]] for k, v in answers.items()
              if v.status_code == 422}  # fmt: skip
    assert fields == {
        "malformed json": ["body"], "wrong types": ["mode", "flatten"],
        "unknown scope kind": ["scope"], "unknown scope strategy": ["scope"],
        "unknown scope symbol": ["scope"], "out of range limit": ["max_position_pct"],
        "unknown limit": ["max_positon_pct"], "override of unknown strategy": ["strategies.nope"],
        "bad orders query": ["query.limit"],
    }  # fmt: skip
    assert "greater than 0" in answers["out of range limit"].json()["detail"][0]["reason"]
    assert "unknown strategy 'nope'" in answers["unknown scope strategy"].json()["detail"][0][
        "reason"]  # fmt: skip
    assert answers["unknown strategy"].json() == {"detail": "no strategy 'nope'"}
    assert _risk_view(system) == before


def test_cli_client_prints_tables_and_exits_2_with_field_and_reason_on_4xx(system) -> None:
    from click.testing import CliRunner

    from cluster.cli import main

    env = {"RAYTRADER_API_URL": system.url, "RAYTRADER_API_TOKEN": system.tokens["ops"]}
    runner = CliRunner()
    status = runner.invoke(main, ["status"], env=env)
    limits = runner.invoke(main, ["limits", "get", "--json"], env=env)
    bad_kill = runner.invoke(main, ["kill", "--scope", "strategy:nope"], env=env)
    bad_limit = runner.invoke(main, ["limits", "set", "max_position_pct=-5"], env=env)
    no_token = runner.invoke(main, ["status", "--token", "x" * 43], env=env)
    assert status.exit_code == 0 and "flip" in status.output and "ready: yes" in status.output
    assert "no scope halted or reducing" in status.output  # before any kill
    assert limits.exit_code == 0 and "max_position_pct" in limits.output
    assert bad_kill.exit_code == 2 and "scope: unknown strategy 'nope'" in bad_kill.output
    assert bad_limit.exit_code == 2 and "max_position_pct: Input should be greater than 0" in (
        bad_limit.output)  # fmt: skip
    assert no_token.exit_code == 2 and "401" in no_token.output


def test_strategy_pause_resume_stop_over_http_are_journaled_with_the_token_name(
    system, ops
) -> None:
    steps = [ops.post(f"/strategies/idle/{a}") for a in ("pause", "resume", "stop")]
    again = ops.post("/strategies/idle/resume")
    assert [(r.status_code, r.json()["state"], r.json()["by"]) for r in steps] == [
        (200, "paused", "ops"), (200, "running", "ops"), (200, "stopped", "ops"),
    ]  # fmt: skip
    assert again.status_code == 409 and "stopped" in again.json()["detail"]
    assert ops.get("/strategies/idle").json()["state"] == "stopped"
    with Journal(system.topo.journal_path, readonly=True) as journal:
        changes = [e.event for e in journal.read([EventKind.STRATEGY_STATE_CHANGED],
                                                 strategy="idle")]  # fmt: skip
    assert [(c.new.value, c.by) for c in changes][1:] == [  # type: ignore[attr-defined]
        ("paused", "ops"), ("running", "ops"), ("stopped", "ops"),
    ]  # fmt: skip


def _journaled(journal_path: str, kind: EventKind, since: int = 0) -> list[tuple[int, Any]]:
    with Journal(journal_path, readonly=True) as journal:
        return [(e.seq, e.event) for e in journal.read([kind], since_seq=since)]


def test_kill_with_flatten_during_a_replay_stops_new_exposure_and_resume_undoes_it(
    system, ops
) -> None:
    topo, path = system.topo, system.topo.journal_path
    topo.feed.start.remote()
    wait_for_bar(topo, 120)
    t0 = time.time_ns()
    killed = ops.post("/risk/kill", json={"scope": "strategy:flip", "mode": "halt",
                                          "flatten": True})  # fmt: skip
    t1 = time.time_ns()
    assert killed.status_code == 200, killed.text
    body = killed.json()
    assert (body["state"], body["by"], body["scope"]) == ("halted", "ops", "strategy:flip")
    [(kill_seq, kill)] = _journaled(path, EventKind.KILL_SWITCH_ENGAGED)
    assert kill.by == "ops" and kill.flatten and t0 <= wall_ns(path, kill_seq) <= t1
    bar = ops.get("/risk/state").json()["last_bar"]
    status = wait_for_bar(topo, bar + 40)
    assert status["state"] == "running", "the replay must still run after the kill"
    assert exposure_increasing_after(path, "flip", kill_seq) == []
    positions = ops.get("/positions").json()["positions"]
    assert [p for p in positions if p["strategy"] == "flip"] == []
    assert {p["strategy"] for p in positions} == {"hold"}  # other scopes untouched
    assert ops.get("/strategies/flip").json()["trading_state"] == "halted"

    ci = httpx.Client(base_url=system.url, headers=system.bearer("ci"), timeout=60)
    with ci:
        t2 = time.time_ns()
        resumed = ci.post("/risk/resume", json={"scope": "strategy:flip"})
        t3 = time.time_ns()
    assert resumed.status_code == 200 and resumed.json()["state"] == "active"
    [(release_seq, release)] = _journaled(path, EventKind.KILL_SWITCH_RELEASED)
    assert release.by == "ci" and t2 <= wall_ns(path, release_seq) <= t3
    state = ops.get("/risk/state").json()
    assert state["scopes"] == []
    bar = state["last_bar"]
    wait_for_bar(topo, bar + 20)
    accepted = _journaled(path, EventKind.ORDER_ACCEPTED, since=release_seq)
    assert any(e.strategy_id == "flip" for _, e in accepted), "flip trades again"


def test_jobs_return_an_id_at_once_and_reach_a_result(system, ops) -> None:
    job = ops.post("/backtests", json={"strategy": "sma_crossover", "params": {"fast": 10,
                   "slow": 30}, "data": {"paths": ["ORCL.csv"], "start": "2010-01-01"}})
    assert job.status_code == 202 and job.json()["state"] == "pending"
    url = job.json()["status_url"]
    deadline = time.monotonic() + 120
    while (status := ops.get(url).json())["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status["state"] == "succeeded", status["error"]
    assert status["result"]["strategy"] == "sma_crossover" and "final_equity" in status["result"]
    sweep = ops.post("/optimizations", json={"kind": "sweep", "spec": {
        "strategy": "sma_crossover", "grid": {"fast": [5, 10], "slow": [30]},
        "data": {"synthetic_symbols": 1, "synthetic_bars": 300}}})  # fmt: skip
    assert sweep.status_code == 202 and sweep.json()["kind"] == "sweep"
    outside = ops.post("/backtests", json={"strategy": "sma_crossover",
                                           "data": {"paths": ["../pyproject.toml"]}})
    absolute = ops.post("/optimizations", json={"kind": "optimize", "spec": {
        "strategy": "sma_crossover", "storage": "sqlite:////tmp/elsewhere.db"}})  # fmt: skip
    code_path = ops.post("/backtests", json={"strategy": "tests.kit.live:Flipper"})
    assert [r.status_code for r in (outside, absolute, code_path)] == [422, 422, 422]
    assert outside.json()["detail"][0]["field"] == "data.paths.0"
    assert absolute.json()["detail"][0]["field"] == "spec.storage"
    assert ops.get("/jobs/0123456789ab").status_code == 404


def test_launch_a_strategy_into_the_running_system(system, ops) -> None:
    launched = ops.post("/strategies", json={"id": "sma-new", "strategy": "sma_crossover",
                        "params": {"fast": 5, "slow": 20}, "symbols": ["ORCL"]})  # fmt: skip
    assert launched.status_code == 201, launched.text
    assert ops.get("/strategies/sma-new").json()["state"] == "running"


def test_metrics_on_the_api_are_the_merged_exposition(system, ops) -> None:
    text = ops.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    up = {s.labels["source"]: s.value for s in families["raytrader_metrics_source_up"].samples}
    assert up["api"] == 1.0
    assert {"feed", "risk", "broker", "journal"} <= set(up)  # every live actor is asked


def test_metrics_after_the_replay_match_the_journal(system, ops) -> None:
    system.topo.run()  # to the end of the replay
    families = {f.name: f for f in text_string_to_metric_families(ops.get("/metrics").text)}

    def total(name: str, **labels: str) -> float:
        return sum(s.value for s in families[name].samples if s.name.endswith("_total")
                   and all(s.labels.get(k) == v for k, v in labels.items()))  # fmt: skip

    with Journal(system.topo.journal_path, readonly=True) as journal:
        counts = {k.value: n for k, n in journal.counts_by_kind().items()}
    assert total("raytrader_risk_decisions", ) == counts["risk_decision"]
    assert total("raytrader_orders", status="new") == counts["order_accepted"]
    assert total("raytrader_fills") == counts["order_filled"]


def test_orders_over_http_say_what_the_journal_says_of_each(system, ops) -> None:
    """After the replay: ``GET /orders`` against the journal's rows read with plain SQL (an
    independent fold): each order's quantity, what sent it (the kill's flatten included),
    fills and why it was canceled or rejected."""
    views = ops.get("/orders", params={"strategy": "flip", "limit": 1000}).json()["orders"]
    con = sqlite3.connect(f"file:{system.topo.journal_path}?mode=ro", uri=True)
    with contextlib.closing(con):
        sql = ("SELECT client_order_id, kind, json_extract(payload, '$.qty'),"
               " json_extract(payload, '$.reason'), json_extract(payload, '$.why'),"
               " json_extract(payload, '$.requested_qty'), json_extract(payload, '$.detail')"
               " FROM events WHERE strategy = 'flip' AND kind IN ('risk_decision',"
               " 'order_accepted', 'order_filled', 'order_canceled', 'order_rejected')"
               " ORDER BY seq")  # fmt: skip
        rows = con.execute(sql).fetchall()
    want: dict[str, dict[str, Any]] = {}
    for coid, kind, qty, reason, why, requested, detail in rows:
        order = want.setdefault(coid, {"filled_qty": 0.0, "detail": ""})
        if kind == "risk_decision":  # refused by risk: what was asked, and why
            order.update(qty=requested, reason="signal", detail=detail)
        elif kind == "order_accepted":
            order.update(qty=qty, reason=reason)
        elif kind == "order_filled":
            order["filled_qty"] += qty
        elif kind == "order_canceled":
            order["detail"] = why
        else:
            order["detail"] = reason
    assert len(views) == len(want) > 100
    keys = ("qty", "reason", "filled_qty", "detail")
    for view in views:
        assert {k: view[k] for k in keys} == pytest.approx(want[view["client_order_id"]])
    refused = [v for v in views if v["decision"] == "rejected"]
    assert refused and all(v["risk_reasons"] and v["detail"] for v in refused)  # in the halt
    # `raytrader status` shows each drawdown (a fraction in the API) as a percentage
    from click.testing import CliRunner

    from cluster.cli import main

    env = {"RAYTRADER_API_URL": system.url, "RAYTRADER_API_TOKEN": system.tokens["ops"]}
    printed = CliRunner().invoke(main, ["status"], env=env).output
    pnl = ops.get("/pnl").json()
    for scope in [pnl["total"], *pnl["strategies"]]:
        assert f"{scope['drawdown'] * 100:.2f}%" in printed
    # A kill's flatten once the replay has ended: its orders wait, told apart by their reason.
    held = {p["symbol"]: p["qty"] for p in ops.get("/positions").json()["positions"]
            if p["strategy"] == "hold"}  # fmt: skip
    killed = ops.post("/risk/kill", json={"scope": "strategy:hold", "flatten": True}).json()
    hold = ops.get("/orders", params={"strategy": "hold", "open_only": True}).json()["orders"]
    assert sorted(v["client_order_id"] for v in hold) == sorted(killed["flatten_orders"])
    assert {v["symbol"]: (v["qty"], v["reason"], v["status"]) for v in hold} == {
        sym: (-qty, "flatten", "new") for sym, qty in held.items()}  # fmt: skip
    assert len(held) == 2


def _ray_log_text() -> str:
    import ray

    session = Path(ray._private.worker._global_node.get_session_dir_path())
    parts = []
    for file in (session / "logs").rglob("*"):
        if file.is_file() and file.suffix in (".log", ".out", ".err", ""):
            parts.append(file.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def test_secrets_never_reach_logs_error_bodies_metrics_or_the_journal(system, ops) -> None:
    token, key = system.tokens["ops"], FAKE_BROKER_KEY
    with httpx.Client(base_url=system.url, timeout=60) as anon:
        probes = [
            anon.get("/strategies", headers={"Authorization": f"Bearer {key}"}),
            ops.get(f"/strategies/{key}"), ops.get(f"/strategies/{token}"),
            ops.post("/risk/kill", json={"scope": f"symbol:{key}"}),
            ops.post("/risk/kill", json={"scope": f"strategy:{token}"}),
            ops.post("/risk/kill", json={"scope": f"moon:{token}"}),
            ops.put("/risk/limits", json={"max_position_pct": token}),
            ops.get("/orders", params={"symbol": key, "limit": "x"}),
            ops.post("/backtests", content=f'{{"strategy": "{token}"'.encode(),
                     headers={"content-type": "application/json"}),
        ]  # fmt: skip
        metrics = ops.get("/metrics").text
    assert all(400 <= p.status_code < 500 for p in probes), [p.status_code for p in probes]
    bodies = "\n".join(p.text for p in probes)
    assert "[REDACTED]" in bodies  # the echoing answers were there, and redacted
    time.sleep(1.0)  # let Ray's log monitor flush the workers' files
    journal_bytes = b"".join(
        Path(system.topo.journal_path + suffix).read_bytes()
        for suffix in ("", "-wal") if Path(system.topo.journal_path + suffix).exists()
    )  # fmt: skip
    logs = _ray_log_text()
    assert "control_api" in logs  # the replica's log is among them
    import ray

    worker_env = ray.get(ray.remote(num_cpus=0)(lambda: os.environ.get("APCA_API_SECRET_KEY"))
                         .remote())  # fmt: skip
    assert worker_env == key  # the workers (the replica too) had it, to leak
    for secret in (token, system.tokens["ci"], key):
        assert secret not in bodies
        assert secret not in metrics
        assert secret.encode() not in journal_bytes
        assert secret not in logs
