"""``raytrader serve`` and the HTTP client commands: ``status``, ``kill``, ``resume``, ``limits``.

``serve`` deploys the control API (``cluster.serve``) with Ray Serve on the running cluster
(``RAY_ADDRESS``, default ``auto``: the one ``ray start --head`` started), where a ``raytrader
run`` or ``demo`` holds the live actors, and keeps it up until Ctrl-C. Optionally it also
serves the actors' metrics on a port of its own (``--metrics-port``).

The client commands talk to the API over HTTP only: the URL from ``--url`` or
``RAYTRADER_API_URL``, the token from ``--token`` or ``RAYTRADER_API_TOKEN``. Answers print as
tables; an API error prints its fields and reasons and exits with 2 for a 4xx (the request
was wrong) and 1 otherwise.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from cluster.options import friendly_errors
from cluster.signals import sigterm_as_interrupt

__all__ = ["ApiClient", "ApiError", "kill", "limits", "resume", "serve", "status"]

DEFAULT_URL = "http://127.0.0.1:8000"
ENV_URL = "RAYTRADER_API_URL"


class ApiError(Exception):
    """An error answer of the API (status code and its detail)."""

    def __init__(self, status: int, detail: Any) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"HTTP {status}: {detail}")

    def lines(self) -> list[str]:
        """The detail as lines: ``field: reason`` for a validation error."""
        if isinstance(self.detail, list):
            return [f"{i.get('field', '?')}: {i.get('reason', '')}" for i in self.detail]
        return [str(self.detail)]


class ApiClient:
    """A small synchronous client of the control API.

    Args:
        url: The API's base URL.
        token: The bearer token (None: send none).
        timeout_s: Longest wait for one answer.
    """

    def __init__(self, url: str, token: str | None, timeout_s: float = 60.0) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s)

    def request(self, method: str, path: str, body: Any = None, *, ok: tuple[int, ...] = ()) -> Any:
        """Send one request; the JSON answer, or ``ApiError`` (statuses in ``ok`` pass)."""
        answer = self._http.request(method, path, json=body)
        try:
            data = answer.json()
        except ValueError:
            data = answer.text
        if answer.status_code >= 400 and answer.status_code not in ok:
            raise ApiError(answer.status_code, data.get("detail", data) if isinstance(data, dict)
                           else data)  # fmt: skip
        return data

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


def _client_options(fn: Any) -> Any:
    fn = click.option("--token", default=None, metavar="TOKEN",
                      help="API token (default: $RAYTRADER_API_TOKEN)")(fn)  # fmt: skip
    return click.option("--url", default=None, metavar="URL",
                        help=f"API URL (default: ${ENV_URL} or {DEFAULT_URL})")(fn)  # fmt: skip


@contextmanager
def _client(url: str | None, token: str | None) -> Iterator[ApiClient]:
    import httpx

    base = url or os.environ.get(ENV_URL) or DEFAULT_URL
    client = ApiClient(base, token or os.environ.get("RAYTRADER_API_TOKEN"))
    try:
        yield client
    except ApiError as err:
        _fail(err)
    except httpx.HTTPError as err:
        Console(stderr=True).print(f"[red]error:[/red] cannot reach the API at {base}: {err}")
        sys.exit(1)
    finally:
        client.close()


def _fail(err: ApiError) -> NoReturn:
    console = Console(stderr=True)
    console.print(f"[red]error:[/red] the API answered {err.status}")
    for line in err.lines():
        console.print(f"  {line}", markup=False)
    sys.exit(2 if 400 <= err.status < 500 else 1)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "-"
    return str(value)


def _table(title: str, rows: list[Mapping[str, Any]], columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, justify="right" if col in _NUMERIC else "left")
    for row in rows:
        table.add_row(*(_cell(c, row.get(c)) for c in columns))
    return table


def _cell(column: str, value: Any) -> str:
    """A table cell: fractions (``drawdown``) as percentages, the rest as ``_fmt``."""
    if column in _FRACTIONS and isinstance(value, int | float):
        return f"{value * 100:.2f}%"
    return _fmt(value)


_NUMERIC = {"equity", "realized_pnl", "cash", "realized", "unrealized", "qty", "drawdown"}
_FRACTIONS = {"drawdown"}  # the API's fractions of the peak equity


# ------------------------------------------------------------------ status, kill, resume
@click.command()
@_client_options
@click.option("--json", "as_json", is_flag=True, help="print the answers as one JSON object")
@friendly_errors
def status(url: str | None, token: str | None, as_json: bool) -> None:
    """Readiness, strategies, trading states and P&L of the running system."""
    with _client(url, token) as api:
        ready = api.request("GET", "/ready", ok=(503,))
        found = {"ready": ready, "strategies": api.request("GET", "/strategies"),
                 "risk": api.request("GET", "/risk/state"), "pnl": api.request("GET", "/pnl")}
    if as_json:
        click.echo(json.dumps(found))
        return
    console = Console()
    checks = [{"check": k, "ok": "yes" if v["ok"] else "NO", "detail": v["detail"]}
              for k, v in ready.get("checks", {}).items()]  # fmt: skip
    console.print(_table(f"ready: {'yes' if ready.get('ready') else 'NO'}", checks,
                         ["check", "ok", "detail"]))  # fmt: skip
    console.print(_table("strategies", found["strategies"]["strategies"],
                         ["id", "strategy", "state", "symbols", "equity", "realized_pnl"]))
    risk = found["risk"]
    title = f"risk: global {risk['global_state']}, last bar {_fmt(risk['last_bar'])}"
    if risk["scopes"]:
        console.print(_table(title, risk["scopes"], ["scope", "state", "reason", "by",
                                                     "kill_mode"]))  # fmt: skip
    else:
        console.print(f"{title}; no scope halted or reducing")
    pnl = found["pnl"]
    console.print(_table("P&L", [pnl["total"], *pnl["strategies"]],
                         ["scope", "equity", "cash", "realized", "unrealized", "drawdown"]))


@click.command()
@click.option("--scope", required=True, help="global, strategy:<id> or symbol:<SYM>")
@click.option("--mode", type=click.Choice(["halt", "reduce"]), default="halt", show_default=True,
              help="halt: nothing trades; reduce: only exposure-reducing orders")
@click.option("--flatten", is_flag=True, help="also cancel open orders and close positions")
@_client_options
@friendly_errors
def kill(scope: str, mode: str, flatten: bool, url: str | None, token: str | None) -> None:
    """Kill switch: halt (or reduce) a scope, in force before this returns."""
    with _client(url, token) as api:
        out = api.request("POST", "/risk/kill", {"scope": scope, "mode": mode, "flatten": flatten})
    console = Console()
    console.print(f"[bold]{out['scope']}[/bold] is [bold]{out['state']}[/bold] "
                  f"(by {out['by']} at {out['at']})")  # fmt: skip
    console.print(f"canceled orders: {_fmt(out['canceled_orders'])}")
    if flatten:
        console.print(f"flatten orders: {_fmt(out['flatten_orders'])}")


@click.command()
@click.option("--scope", required=True, help="global, strategy:<id> or symbol:<SYM>")
@_client_options
@friendly_errors
def resume(scope: str, url: str | None, token: str | None) -> None:
    """Set a halted or reducing scope active again."""
    with _client(url, token) as api:
        out = api.request("POST", "/risk/resume", {"scope": scope})
    Console().print(f"[bold]{out['scope']}[/bold] is [bold]{out['state']}[/bold] "
                    f"(by {out['by']} at {out['at']})")  # fmt: skip


# ------------------------------------------------------------------ limits
@click.group()
def limits() -> None:
    """Show or change the risk limits."""


def _print_limits(body: Mapping[str, Any]) -> None:
    rows = [{"limit": k, "value": v} for k, v in body.items() if k != "strategies"]
    for sid, override in sorted(body.get("strategies", {}).items()):
        rows += [{"limit": f"strategies.{sid}.{k}", "value": v} for k, v in override.items()
                 if v not in (None, [], ())]  # fmt: skip
    Console().print(_table("risk limits (- = off)", rows, ["limit", "value"]))


@limits.command("get")
@_client_options
@click.option("--json", "as_json", is_flag=True, help="print the limits as JSON")
@friendly_errors
def limits_get(url: str | None, token: str | None, as_json: bool) -> None:
    """Print the limits in force."""
    with _client(url, token) as api:
        body = api.request("GET", "/risk/limits")
    if as_json:
        click.echo(json.dumps(body))
    else:
        _print_limits(body)


def apply_assignments(body: dict[str, Any], assignments: tuple[str, ...]) -> dict[str, Any]:
    """``body`` with ``KEY=VALUE`` set (``strategies.<id>.KEY`` for an override); values are
    YAML scalars or lists (``5``, ``null``, ``[AAPL, MSFT]``).

    Raises:
        click.BadParameter: An assignment is not ``KEY=VALUE``.
    """
    import yaml

    out = json.loads(json.dumps(body))
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="KEY=VALUE")
        value = yaml.safe_load(raw) if raw.strip() else None
        parts = key.strip().split(".")
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return out


@limits.command("set")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
@_client_options
@friendly_errors
def limits_set(assignments: tuple[str, ...], url: str | None, token: str | None) -> None:
    """Change some limits (the others stay): e.g. ``max_position_pct=20 daily_loss_pct=null``."""
    with _client(url, token) as api:
        current = api.request("GET", "/risk/limits")
        body = api.request("PUT", "/risk/limits", apply_assignments(current, assignments))
    _print_limits(body)


# ------------------------------------------------------------------ serve
def check_port_free(host: str, port: int, hint: str = "another port: --port N") -> None:
    """Raise ``click.UsageError`` when ``host:port`` is taken (Serve would fail obscurely),
    with ``hint``: what to do instead."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise click.UsageError(
                f"cannot serve on {host}:{port}: {err.strerror}; {hint}"
            ) from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="bind address")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--insecure-local", is_flag=True,
              help="serve without a token (only on a loopback --host)")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: one object per line, for log shippers")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              help="also serve the actors' metrics on this port (standalone exporter)")
@click.option("--data-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="the only directory research jobs may read data from")
@friendly_errors
def serve(host: str, port: int, insecure_local: bool, log_format: str, metrics_port: int | None,
          data_dir: str | None) -> None:  # fmt: skip
    """Serve the control API on the running Ray cluster until Ctrl-C (or SIGTERM).

    Tokens come from RAYTRADER_API_TOKEN, RAYTRADER_API_TOKENS or RAYTRADER_API_TOKEN_FILE;
    without one the server refuses to start unless bound to loopback with --insecure-local.
    """
    import ray

    from cluster.logs import setup_logging
    from cluster.metrics import actor_source, start_exporter
    from cluster.security import check_bind, load_tokens
    from cluster.serve import ServeSettings, broker_secrets, deploy, undeploy
    from core.cluster_join import join

    tokens = load_tokens()
    check_bind(host, tokens, insecure_local)
    setup_logging(log_format, secrets=[*(t.secret for t in tokens),  # type: ignore[arg-type]
                                       *broker_secrets(os.environ)])  # fmt: skip
    check_port_free(host, port)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = os.environ.get("RAY_ADDRESS", "auto")
    join(address, ray.init, namespace="raytrader", logging_level="warning", log_to_driver=False)
    settings = ServeSettings(host=host, port=port, insecure_local=insecure_local,
                             log_format=log_format, data_dir=data_dir)  # type: ignore[arg-type]
    deployed = deploy(settings, tokens)
    exporter = None
    if metrics_port is not None:
        exporter = start_exporter(metrics_port, [actor_source()], addr=host)
    console = Console()
    console.print(f"control API at [bold]{deployed.url}[/bold] (OpenAPI: {deployed.url}/docs)")
    if exporter is not None:
        console.print(f"metrics at http://{host}:{exporter.port}/metrics")
    try:
        with sigterm_as_interrupt():
            while True:
                time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("stopping the control API")
    finally:
        if exporter is not None:
            exporter.server.shutdown()
        undeploy(deployed)
