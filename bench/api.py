"""W6: the control API under load, and how fast a kill over HTTP takes effect.

``python -m bench.api [--clients 50] [--seconds 10] [--kills 5] [--poll-hz 1]``

Starts Ray in this process, a live system of three strategies (flip-every-bar Flippers on
ORCL, NVDA and YHOO) replaying at a paced 50 bars a second, and the control API with Ray Serve
on loopback. Then, while the replay runs:

- **Reads**: ``--clients`` concurrent clients (one asyncio httpx client each) send
  ``GET /strategies``, then ``GET /positions``, back to back for ``--seconds`` each; printed:
  requests/s, p50, p99 and max latency, and any non-200 answers. Target: p99 under 50 ms.
- **Polling**: the same clients, each sending one request every ``1/--poll-hz`` seconds
  (open loop, staggered starts: dashboards and scripts polling), so the latency is the
  service time rather than the queue a closed loop builds on 2 shared cores.
- **Serve's own ceiling** (the reference): the same closed loop against an empty FastAPI
  route (``{"ok": true}``: no token, no middleware, no actor) deployed as a second app on the
  same Serve, during the same replay: what any app served by Serve on this machine can do.
- **Kill**: ``--kills`` times ``POST /risk/kill {"scope": "global"}`` then ``/risk/resume``;
  printed per kill: the HTTP round trip, the orders the broker accepted after the kill's
  journal row (from the journal: must be none), the time from sending the POST to the last
  order the broker accepted, and in bars: the bar in flight at the kill and the last bar with
  an accepted order. Target: effective within one bar.

A benchmark prints; it asserts nothing about time. Clients and server share this machine;
the clients' process freezes its heap before each window (``gc.freeze``), so a garbage
collection of the load generator is not counted as the server's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import secrets
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

__all__ = ["deploy_ceiling", "main", "measure_kill", "measure_reads"]

DATA = Path(__file__).resolve().parents[1] / "data"
BARS_PER_S = 50


async def _client(url: str, path: str, headers: dict[str, str], start: float, until: float,
                  out: list[float], errors: list[int], period: float = 0.0,
                  offset: float = 0.0) -> None:  # fmt: skip
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        await http.get(path)  # connect and warm up before the window: not measured
        await asyncio.sleep(max(0.0, start + offset - time.perf_counter()))
        next_at = time.perf_counter()
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            answer = await http.get(path)
            out.append(time.perf_counter() - t0)
            if answer.status_code != 200:
                errors.append(answer.status_code)
            if period:  # open loop: the next request at its slot, however long this took
                next_at += period
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))


def measure_reads(url: str, path: str, headers: dict[str, str], clients: int,
                  seconds: float, hz: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """``clients`` concurrent clients reading ``path`` for ``seconds``: rate and latencies;
    back to back (closed loop) or, with ``hz``, each one request every ``1/hz`` s. Clients
    connect (one unmeasured request each) before the window opens."""
    latencies: list[float] = []
    errors: list[int] = []
    period = 1.0 / hz if hz else 0.0
    warm_up_s = 1.0 + 0.05 * clients

    async def run() -> None:
        start = time.perf_counter() + warm_up_s
        until = start + seconds
        await asyncio.gather(*(_client(url, path, headers, start, until, latencies, errors,
                                       period, period * i / clients)
                               for i in range(clients)))  # fmt: skip

    # The clients share this process with the Ray driver and its large heap: one full garbage
    # collection stopped every client for ~120 ms (seen once in 40 s), which the figures would
    # have counted as server latency. The heap is frozen before each window instead.
    gc.collect()
    gc.freeze()
    asyncio.run(run())
    elapsed = seconds
    ms = sorted(x * 1000 for x in latencies)
    return {
        "path": path, "requests": len(ms), "rps": len(ms) / elapsed,
        "p50_ms": statistics.median(ms), "p99_ms": ms[int(0.99 * (len(ms) - 1))],
        "max_ms": ms[-1], "errors": len(errors),
    }  # fmt: skip


def deploy_ceiling() -> str:
    """Deploy Serve's reference app (one empty route) next to the API; returns its path."""
    from fastapi import FastAPI
    from ray import serve

    empty = FastAPI()

    @empty.get("/")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)
    @serve.ingress(empty)
    class Ceiling:
        """An empty app: Serve's proxy and replica, nothing of ours."""

    serve.run(Ceiling.bind(), name="ceiling", route_prefix="/ceiling", blocking=False)
    return "/ceiling/"


def _rows(journal: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        return db.execute(sql, args).fetchall()


def measure_kill(url: str, headers: dict[str, str], journal: str) -> dict[str, Any]:
    """One kill (global halt) and resume over HTTP during the replay, read from the journal."""
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        sent = time.time_ns()
        answer = http.post("/risk/kill", json={"scope": "global", "mode": "halt"})
        answered = time.time_ns()
        assert answer.status_code == 200, answer.text
        time.sleep(0.5)  # let the replay go on under the kill for ~25 bars
        (kill_seq,) = _rows(journal, "SELECT max(seq) FROM events WHERE kind = "
                            "'kill_switch_engaged'")[0]  # fmt: skip
        in_flight = _rows(journal, "SELECT max(bar_index) FROM events WHERE kind = "
                          "'bar_processed' AND seq < ?", kill_seq)[0][0]  # fmt: skip
        after = _rows(journal, "SELECT bar_index, wall_ns FROM events WHERE kind = "
                      "'order_accepted' AND seq > ?", kill_seq)  # fmt: skip
        last = _rows(journal, "SELECT bar_index, wall_ns FROM events WHERE kind = 'order_accepted'"
                     " AND seq < ? ORDER BY seq DESC LIMIT 1", kill_seq)  # fmt: skip
        done = _rows(journal, "SELECT max(bar_index) FROM events WHERE kind = 'bar_done'")[0][0]
        http.post("/risk/resume", json={"scope": "global"})
    last_bar, last_ns = (after or last or [(None, sent)])[-1]
    return {
        "round_trip_ms": (answered - sent) / 1e6, "accepted_after_kill": len(after),
        "last_accept_ms_after_post": (last_ns - sent) / 1e6, "bar_at_kill": in_flight,
        "last_accepted_bar": last_bar, "bars_done_under_kill": (done or 0) - (in_flight or 0),
    }  # fmt: skip


def _config(journal: Path) -> Any:
    from core.run_config import parse_run_config

    files = [str(DATA / f"{s}.csv") for s in ("ORCL", "NVDA", "YHOO")]
    strategies = [
        {"id": f"flip-{s.lower()}", "strategy": "tests.kit.live:Flipper", "params": {"period": 1},
         "symbols": [s], "sim": {"size_pct": 0.9}} for s in ("ORCL", "NVDA", "YHOO")
    ]  # fmt: skip
    return parse_run_config({
        "strategies": strategies, "journal": {"path": str(journal)},
        "feed": {"data": {"paths": files, "start": "2000-01-01"}, "speed": 86_400 * BARS_PER_S},
    })  # fmt: skip


def main() -> None:
    """Run W6 and print its figures."""
    import os
    import tempfile

    import ray

    from actors.runtime import start
    from cluster.security import ApiToken
    from cluster.serve import ServeSettings, deploy, undeploy
    from tests.kit.control import free_port

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--poll-hz", type=float, default=1.0, help="open-loop rate per client")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             namespace="raytrader")  # fmt: skip
    journal = Path(tempfile.mkdtemp(prefix="bench-api-")) / "journal.sqlite"
    topo = start(_config(journal))
    token = secrets.token_urlsafe(32)
    deployed = deploy(ServeSettings(port=free_port(), rate=1e6, burst=1_000_000),
                      [ApiToken(name="bench", secret=SecretStr(token))])  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    ceiling = deploy_ceiling()
    try:
        topo.feed.start.remote()
        time.sleep(2.0)
        print(f"W6 control API: {args.clients} clients on loopback, replay at {BARS_PER_S} "
              "bars/s running, 2 vCPUs shared by clients, Serve and the actors")
        for hz in (0.0, args.poll_hz):
            if hz:
                print(f"  polling: each client one request every {1 / hz:g} s (open loop)")
            for path in ("/strategies", "/positions", *([] if hz else [ceiling])):
                r = measure_reads(deployed.url, path, headers, args.clients, args.seconds, hz)
                what = ("reference: Serve's own ceiling, an empty route" if path == ceiling
                        else "target p99 < 50 ms")  # fmt: skip
                print(f"  GET {r['path']:<12} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.1f} ms  "
                      f"p99 {r['p99_ms']:6.1f} ms  max {r['max_ms']:6.1f} ms  "
                      f"({r['requests']} requests, {r['errors']} not 200)  {what}")
        print(f"  kill switch over HTTP (global halt, {BARS_PER_S} bars/s, 3 flip-every-bar "
              "strategies), target: effective within one bar")
        for _ in range(args.kills):
            k = measure_kill(deployed.url, headers, str(journal))
            print(f"    round trip {k['round_trip_ms']:6.1f} ms, accepted after the kill: "
                  f"{k['accepted_after_kill']}, last accepted order "
                  f"{k['last_accept_ms_after_post']:+7.1f} ms from the POST (bar "
                  f"{k['last_accepted_bar']}; bar in flight at the kill {k['bar_at_kill']}), "
                  f"{k['bars_done_under_kill']} bars replayed under the kill")
            time.sleep(0.5)
    finally:
        undeploy(deployed)
        topo.stop()


if __name__ == "__main__":
    main()
