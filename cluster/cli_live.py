"""``raytrader run CONFIG.yaml`` and ``raytrader demo``: the live runtime (paper) from the CLI.

Both start Ray in this process, or join the cluster at ``RAY_ADDRESS``, create the named
actors (``feed``, ``broker``, ``risk``, ``journal``, ``strategy:<id>``), replay the feed's
data as the config says and end with a summary built from the journal. ``run --json``
prints the object ``raytrader backtest --json`` prints (one strategy), or ``{"strategies":
{id: object}}``, so a run and a backtest compare by script. ``demo`` also serves the control
API while it runs (``--no-serve`` to skip) and prints its URL and a fresh token. Ray is
imported inside the commands.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from cluster.options import friendly_errors
from cluster.signals import sigterm_as_interrupt
from core.run_config import RunConfig, load_run_config, parse_run_config
from core.sim import BacktestResult

__all__ = ["demo", "demo_config", "run", "run_results", "serve_demo_api"]

DATA = Path(__file__).resolve().parents[1] / "data"


def _console(*, stderr: bool = False) -> Console:
    """A console as wide as the summary needs when output is not a terminal (rich's 80)."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 120)


def run_results(topo: Any) -> dict[str, BacktestResult]:
    """Each strategy's result from the journal, over the bars the broker processed."""
    import ray

    from core.journal import Journal
    from core.live_result import journal_result, processed_bars

    with Journal(topo.journal_path, readonly=True) as journal:
        n = processed_bars(journal)
        if n == 0:
            return {}
        panel = ray.get(topo.feed.history.remote(None, n - 1))
        return {s.id: journal_result(journal, s, panel) for s in topo.config.strategies}


def results_json(config: RunConfig, results: dict[str, BacktestResult]) -> dict[str, Any]:
    """``backtest --json``'s object for one strategy, ``{"strategies": {id: ...}}`` for more."""
    from cluster.render import jsonable
    from strategies.registry import get_strategy

    objects = {}
    for strategy in config.strategies:
        if strategy.id not in results:
            continue
        instance = get_strategy(strategy.strategy)(**strategy.params)
        out: dict[str, Any] = {"strategy": instance.name, "params": instance.params}
        out.update(results[strategy.id].to_dict())
        objects[strategy.id] = jsonable(out)
    if len(config.strategies) == 1:
        return next(iter(objects.values()), {})
    return {"strategies": objects}


def _snapshot(topo: Any) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Feed status, host statuses and risk state in one round trip."""
    import ray

    hosts = [topo.host(s.id).status.remote() for s in topo.config.strategies]
    found = ray.get([topo.feed.status.remote(), topo.risk.state.remote(), *hosts])
    return found[0], found[2:], found[1]


def _summary(console: Console, topo: Any, results: dict[str, BacktestResult]) -> list[str]:
    """Print the summary tables; the ids of the strategies that ended FAILED."""
    import ray

    from cluster.render_live import summary_tables

    feed, hosts, risk = _snapshot(topo)
    decisions = ray.get(topo.journal.decisions.remote())
    by_id = {h["id"]: h for h in hosts}
    console.print(summary_tables(results, by_id, feed, risk, decisions, topo.journal_path))
    return [h["id"] for h in hosts if h.get("state") == "failed"]


def _interrupted(console: Console, topo: Any, command: str, terminated: bool) -> int:
    """Ctrl-C (or SIGTERM) during a replay: the feed ends it after the bar in flight, the
    actors end with this command, and every finished bar is journaled, so ``command
    --journal PATH`` resumes after the last one (the feed's cursor, docs/live.md
    "Restarts"). Says how far the run got and how to go on; exit code 130 (143: SIGTERM)."""
    import ray

    from core.events import EventKind
    from core.journal import Journal

    try:  # the feed ends the replay after the bar in flight: the journal is final then
        total = f" of {ray.get(topo.feed.stop.remote(), timeout=30)['bars']:,}"
    except Exception:  # not answering: the actors are stopped with this command anyway
        total = ""
    with Journal(topo.journal_path) as journal:
        last = journal.max_bar(EventKind.BAR_DONE)
    done = 0 if last is None else last + 1
    what = "terminated (SIGTERM)" if terminated else "interrupted"
    console.print(
        f"[yellow]{what}[/yellow] after {done:,} bars{total}; every event of them is in "
        f"the journal {topo.journal_path}; to go on from there: {command} --journal "
        f"{topo.journal_path}",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
    return 143 if terminated else 130


def _replay(
    config: RunConfig,
    journal: str | None,
    console: Console,
    live_view: bool,
    command: str,
    api: Callable[[Any], Any] | None = None,
    on_results: Callable[[dict[str, BacktestResult]], None] | None = None,
) -> int:
    """Start (or attach), replay to the end (with the live table when ``live_view``), print
    the summary, hand the results to ``on_results``; the exit code (1 if a strategy ended
    FAILED, 130 after Ctrl-C and 143 after SIGTERM: ``_interrupted``, with ``command`` the
    way to resume).
    ``api``, if given, is called with the topology once the actors are up and returns a
    cleanup."""
    from actors.runtime import start

    topo = start(config, journal)
    with sigterm_as_interrupt() as sigterm:
        return _drive(topo, console, live_view, command, api, on_results, sigterm)


def _drive(
    topo: Any,
    console: Console,
    live_view: bool,
    command: str,
    api: Callable[[Any], Any] | None,
    on_results: Callable[[dict[str, BacktestResult]], None] | None,
    sigterm: list[int],
) -> int:
    """``_replay`` once the actors are up: the replay, the summary, the exit code
    (``sigterm`` holds the SIGTERM received, if one was)."""
    cleanup = api(topo) if api is not None else None
    try:
        if live_view:
            from rich.live import Live

            from cluster.render_live import live_table

            with Live(console=console, refresh_per_second=4, transient=False) as view:
                status = topo.run(on_tick=lambda t: view.update(live_table(*_snapshot(t))))
                view.update(live_table(*_snapshot(topo)))
            console.print()
        else:
            status = topo.run()
        results = run_results(topo)
        failed = _summary(console, topo, results)
        if on_results is not None:
            on_results(results)
        if failed:  # its result stops at its failure: a script must not take it for a run's
            console.print(f"[red]exit 1[/red]: strategy {', '.join(failed)} failed (above)",
                          highlight=False)  # fmt: skip
            return 1
        return 0 if status["state"] == "done" else 1
    except KeyboardInterrupt:
        if live_view:
            console.print()  # the live table's last line is open
        return _interrupted(console, topo, command, terminated=bool(sigterm))
    finally:
        if cleanup is not None:
            cleanup()
        topo.stop()


@click.command()
@click.argument("config_path", metavar="CONFIG.yaml", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True,
              help="print the backtest --json object(s) at the end (the summary goes to stderr)")
@click.option("--journal", "journal_path", default=None, metavar="PATH",
              help="journal file (overrides journal.path; an existing one is resumed, "
                   "if this config's run wrote it)")
@friendly_errors
def run(config_path: str, as_json: bool, journal_path: str | None) -> None:  # fmt: skip
    """Run the strategies of CONFIG.yaml live on the paper broker, through the Ray actors
    (on a terminal with the live table, like the demo)."""
    config = load_run_config(config_path)
    command = f"raytrader run {config_path}" + (" --json" if as_json else "")
    console = _console(stderr=as_json)  # with --json, stdout holds the JSON only

    def print_json(results: dict[str, BacktestResult]) -> None:
        click.echo(json.dumps(results_json(config, results)))

    sys.exit(_replay(config, journal_path, console, live_view=console.is_terminal,
                     command=command, on_results=print_json if as_json else None))  # fmt: skip


def demo_config(data_dir: Path = DATA, start: str | None = "2004-01-01") -> RunConfig:
    """The demo: SMA crossover with a stop on ORCL, RSI on NVDA, momentum on three stocks."""
    files = [str(data_dir / f"{s}.csv") for s in ("ORCL", "NVDA", "YHOO")]
    return parse_run_config({
        "strategies": [
            {"id": "sma-orcl", "strategy": "sma_crossover", "params": {"fast": 10, "slow": 30},
             "symbols": ["ORCL"],
             "sim": {"size_pct": 0.95, "commission_bps": 10, "stop_loss_pct": 5}},
            {"id": "rsi-nvda", "strategy": "rsi_reversion", "symbols": ["NVDA"],
             "sim": {"cash": 50_000, "fill": "close", "size_pct": 0.9, "commission_bps": 2}},
            {"id": "momentum", "strategy": "momentum",
             "params": {"lookback": 63, "top_k": 2, "rebalance_every": 21},
             "symbols": ["ORCL", "NVDA", "YHOO"],
             "sim": {"cash": 150_000, "commission_bps": 10, "slippage_bps": 5}},
        ],
        "risk": {"max_position_pct": 100, "price_collar_pct": 25, "max_drawdown_pct": 60,
                 "strategies": {"rsi-nvda": {"max_consecutive_losses": 6, "cooldown_bars": 20}}},
        "feed": {"data": {"paths": files, "start": start}, "speed": "max"},
    })  # fmt: skip


DEMO_PORT_HINT = "another port: --port N, or no API: --no-serve"


def serve_demo_api(console: Console, port: int, hold: bool) -> Callable[[Any], Any]:
    """What ``demo --serve`` runs once the actors are up: the control API on 127.0.0.1:port
    with a fresh token, printed with the URL; returns the cleanup (which, with ``hold``,
    first waits for Ctrl-C so the API can be tried on the finished run). Called before the
    replay connects: when that starts Ray in this process, Serve ends with it."""
    import ray

    ray_ends_with_us = not ray.is_initialized() and not os.environ.get("RAY_ADDRESS")

    def start_api(_: Any) -> Callable[[], None]:
        import logging
        import secrets

        from pydantic import SecretStr

        from cluster.cli_control import check_port_free
        from cluster.logs import add_secrets
        from cluster.security import ApiToken
        from cluster.serve import ServeSettings, deploy, undeploy

        check_port_free("127.0.0.1", port, DEMO_PORT_HINT)  # again: taken since?
        logging.getLogger("ray.serve").setLevel(logging.WARNING)
        token = secrets.token_urlsafe(32)
        add_secrets(token)
        tokens = [ApiToken(name="demo", secret=SecretStr(token))]
        deployed = deploy(ServeSettings(port=port), tokens)
        console.print(f"control API at [bold]{deployed.url}[/bold] (docs: {deployed.url}/docs)")
        console.print(f"API token: {token}", markup=False, soft_wrap=True)
        console.print(f"  e.g. RAYTRADER_API_URL={deployed.url} RAYTRADER_API_TOKEN={token} "
                      "raytrader status", markup=False, soft_wrap=True)

        def stop_api() -> None:
            if hold:
                console.print("the API stays up on the finished run; Ctrl-C (or SIGTERM) to end")
                try:
                    while True:
                        time.sleep(1.0)
                except KeyboardInterrupt:
                    pass
            undeploy(deployed, leave_serve=ray_ends_with_us)

        return stop_api

    return start_api


@click.command()
@click.option("--journal", "journal_path", default=None, metavar="PATH",
              help="journal file (default: a fresh one in a temporary directory; an existing "
                   "one is resumed, if a demo with the same --start wrote it)")
@click.option("--start", default="2004-01-01", show_default=True, help="first date to replay")
@click.option("--serve/--no-serve", "serve_api", default=True, show_default=True,
              help="serve the control API (127.0.0.1, a fresh token) while the demo runs")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535),
              help="the control API's port")
@click.option("--hold", is_flag=True,
              help="after the replay, keep the actors and the API up until Ctrl-C")
@friendly_errors
def demo(
    journal_path: str | None, start: str, serve_api: bool, port: int, hold: bool
) -> None:
    """Three strategies on the bundled data through the live actors, with a live table."""
    config = demo_config(start=start)
    console = _console()
    console.print(
        "[bold]raytrader demo[/bold]: sma_crossover on ORCL (5% stop), rsi_reversion on NVDA, "
        "momentum on ORCL+NVDA+YHOO; paper broker, one risk actor, replayed as fast as possible"
    )
    if serve_api:  # before Ray and the actors start, not after
        from cluster.cli_control import check_port_free

        check_port_free("127.0.0.1", port, DEMO_PORT_HINT)
    api = serve_demo_api(console, port, hold) if serve_api else None
    command = f"raytrader demo --start {start}"
    sys.exit(_replay(config, journal_path, console, live_view=True, command=command, api=api))
