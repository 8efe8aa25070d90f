"""``raytrader optimize | sweep | walkforward | montecarlo | stress``: research on Ray.

Each command builds the job's spec (``optimization.specs``) from its options and runs it with
``optimization.runner.run_job`` in this process (Ray in-process, or the cluster at
``RAY_ADDRESS``): the same code the jobs API runs in its actor. Progress is a rich bar with
the best value so far; results go to ``--out`` (default ``results/<command>-<timestamp>/``)
as Parquet, JSON and a self-contained HTML report. Ctrl-C cancels the outstanding Ray work
and exits with status 130 (an Optuna study in ``--storage`` stays resumable). ``--seed``
seeds the synthetic data and the sampler or bootstrap alike, and is recorded in result.json.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from cluster.options import (
    build_data,
    build_sim,
    data_options,
    friendly_errors,
    parse_assignments,
    sim_options,
)
from core.errors import ConfigError

__all__ = ["montecarlo", "optimize", "stress", "sweep", "walkforward"]

_SAMPLERS = ["tpe", "cmaes", "random", "grid", "nsga2"]


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    """Strategy, fixed parameters, workers and output options shared by every command."""
    options = [
        click.option("--strategy", "strategy_name", required=True,
                     help="built-in name, package.module:Class or path/file.py:Class"),
        click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
                     help="fix a parameter (repeatable)"),
        click.option("--workers", type=int, default=None,
                     help="worker actors / tasks (default: one per CPU of the Ray cluster)"),
        click.option("--out", type=click.Path(file_okay=False), default=None,
                     help="results directory (default results/<command>-<timestamp>)"),
        click.option("--json", "as_json", is_flag=True, help="print the summary as JSON"),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def _strategy_ref(name: str) -> str:
    """A ``file.py:Class`` strategy with its file made absolute (workers may run elsewhere)."""
    target, sep, attr = name.rpartition(":")
    if sep and (target.endswith(".py") or "/" in target):
        return f"{Path(target).resolve()}:{attr}"
    return name


def _base(strategy_name: str, params: tuple[str, ...], workers: int | None,
          opts: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    data = build_data(opts)
    data = data.model_copy(update={"paths": [str(Path(p).resolve()) for p in data.paths]})
    return {"strategy": _strategy_ref(strategy_name), "params": parse_assignments(params),
            "data": data, "sim": build_sim(opts), "workers": workers}  # fmt: skip


def _metrics(values: tuple[str, ...]) -> list[str]:
    from optimization.metrics import parse_metrics

    return [m.value for m in parse_metrics(list(values) or ["sharpe"])]


_PCT = {"total_return", "window_return", "max_drawdown", "worst_bar", "oos_total_return"}
_MONEY = {"pnl", "window_pnl"}


def _fmt(value: Any, col: str = "") -> str:
    if isinstance(value, str) and col == "params" and value.startswith("{"):
        value = json.loads(value)
    if isinstance(value, dict):
        return " ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, float) and math.isfinite(value) and col in _PCT:
        return f"{value:.1%}"
    if isinstance(value, float) and math.isfinite(value) and col in _MONEY:
        return f"{value:,.0f}"
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:,.4g}"
    return "-" if value is None else str(value)


def _table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if col in ("params", "scenario") else "right")
    for row in rows:
        table.add_row(*(_fmt(row.get(c), c) for c in columns))
    return table


_FIELD_OPTION = {"metrics": "--metric", "data_paths": "--data", "scenarios": "scenario"}


def _describe(exc: ValidationError) -> str:
    """A spec's validation errors named by the CLI options that set the fields."""
    parts = []
    for e in exc.errors():
        field = str(e["loc"][-1]) if e["loc"] else ""
        option = _FIELD_OPTION.get(field, "--" + field.replace("_", "-")) if field else "input"
        shown = f"{option}={e['input']!r}" if field and not isinstance(e["input"], dict) else option
        parts.append(f"{shown}: {e['msg']}")
    return "; ".join(parts)


@contextlib.contextmanager
def _ctrl_c_cancels(ctx: Any, received: list[int]) -> Iterator[None]:
    """The first Ctrl-C (or SIGTERM; each signal is noted in ``received``) cancels the job at
    its next check (every 0.25 s at most), so it stops at a known point with its storage
    consistent; a second one interrupts (kills) at once. A KeyboardInterrupt raised anywhere
    (inside a Ray call or a storage write) could leave the process hanging on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        ctx.cancel()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _execute(kind: str, spec_dict: dict[str, Any], out: str | None, as_json: bool,
             render: Callable[[Console, Any], None], resume_hint: str = "") -> None:  # fmt: skip
    """Validate, start Ray, run with a progress bar, save, print; Ctrl-C -> exit 130
    (SIGTERM: 143)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from optimization.context import JobCancelledError, JobContext
    from optimization.report import default_out, save
    from optimization.runner import jsonable, parse_spec, run_job
    from optimization.runtime import ensure_ray
    from optimization.specs import JobKind

    try:
        spec = parse_spec(kind, spec_dict)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    console, err = Console(), Console(stderr=True)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("best {task.fields[best]}"),
               TextColumn("{task.fields[note]}"))  # fmt: skip
    received: list[int] = []  # the signals that cancelled the job
    try:
        ensure_ray()
        with Progress(*columns, console=err, transient=as_json) as bar:
            task = bar.add_task(kind, total=None, best="-", note="")

            def show(p: Any) -> None:
                bar.update(task, completed=p.done, total=p.total or None,
                           best=_fmt(p.best), note=p.message)  # fmt: skip

            ctx = JobContext(on_progress=show)
            with _ctrl_c_cancels(ctx, received):
                result = run_job(kind, spec, ctx)
    except (KeyboardInterrupt, JobCancelledError):
        term = signal.SIGTERM in received
        what = "terminated (SIGTERM)" if term else "interrupted"
        err.print(f"[yellow]{what}[/yellow]: outstanding Ray work cancelled. {resume_hint}",
                  highlight=False)  # fmt: skip
        sys.exit(143 if term else 130)
    path = Path(out) if out else default_out(kind)
    written = save(JobKind(kind), spec, result, path)
    if as_json:
        click.echo(json.dumps(jsonable(result.summary())))
    else:
        render(console, result)
        console.print(f"results: {written['json'].parent}/ (report.html, result.json, Parquet)")


# ----------------------------------------------------------------------------- optimize
def _render_search(console: Console, result: Any) -> None:
    metrics = [m.value for m in result.metrics]
    rows = [{"trial": b["number"], "params": b["params"], **b["values"]} for b in result.best]
    title = "Pareto front" if len(metrics) > 1 else "Best set"
    console.print(_table(f"{title} ({result.strategy}, {result.sampler}, seed {result.seed})",
                         rows[:20], ["trial", "params", *metrics]))  # fmt: skip
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()))
    console.print(f"trials: {counts}")


@click.command()
@data_options
@_common
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="objective(s): sharpe, sortino, calmar, cagr, total_return, max_drawdown, "
    "profit_factor, win_rate, expectancy, final_equity; two or more: Pareto front",
)
@click.option(
    "--trials",
    type=int,
    default=100,
    show_default=True,
    help="evaluated trials in total (a resumed study counts its earlier ones)",
)
@click.option("--sampler", type=click.Choice(_SAMPLERS), default="tpe", show_default=True)
@click.option(
    "--engine",
    type=click.Choice(["optuna", "tune"]),
    default="optuna",
    show_default=True,
    help="batched ask/tell on worker actors, or Ray Tune",
)
@click.option(
    "--min-trades",
    type=int,
    default=0,
    show_default=True,
    help="sets with fewer closed trades (summed over symbols) are infeasible",
)
@click.option("--storage", default=None, help="Optuna storage URL, e.g. sqlite:///study.db")
@click.option("--study-name", default=None, help="default: <strategy>-<metrics>")
@click.option("--resume", is_flag=True, help="continue the study in --storage")
@click.option("--batch-size", type=int, default=None, help="parameter sets per worker call")
@sim_options
@friendly_errors
def optimize(strategy_name: str, params: tuple[str, ...], workers: int | None, out: str | None,
             as_json: bool, metrics: tuple[str, ...], trials: int, sampler: str, engine: str,
             min_trades: int, storage: str | None, study_name: str | None, resume: bool,
             batch_size: int | None, **opts: Any) -> None:  # fmt: skip
    """Search a strategy's parameter space with Optuna on Ray workers."""
    spec = _base(strategy_name, params, workers, opts) | {
        "metrics": _metrics(metrics), "trials": trials, "sampler": sampler, "engine": engine,
        "seed": opts["seed"], "min_trades": min_trades, "storage": storage,
        "study_name": study_name, "resume": resume, "batch_size": batch_size,
    }  # fmt: skip
    hint = ("The study is kept in " + storage + ": run the same command with --resume to "
            "continue it." if storage else "Nothing was stored: add --storage "
            "sqlite:///study.db to make a search resumable.")  # fmt: skip
    _execute("optimize", spec, out, as_json, _render_search, hint)


# ----------------------------------------------------------------------------- sweep
def _render_sweep(console: Console, result: Any) -> None:
    m = result.metric.value
    title = f"Top {len(result.top)} of {result.n_sets} sets by {m} ({result.n_feasible} feasible)"
    console.print(_table(title, result.top, ["rank", "params", m]))
    q = result.summary()["metric_quantiles"]
    if q:
        console.print(f"{m} quantiles 5/25/50/75/95%: " + " / ".join(_fmt(v) for v in q.values()))


def _grid(strategy_name: str, grid: tuple[str, ...]) -> dict[str, list[Any]]:
    from optimization.space import parse_grid_text
    from strategies.registry import get_strategy

    cls = get_strategy(_strategy_ref(strategy_name))
    return {k: parse_grid_text(cls, k, v) for k, v in parse_assignments(grid).items()}


@click.command()
@data_options
@_common
@click.option(
    "--grid",
    multiple=True,
    metavar="KEY=LO:HI:STEP|V1,V2",
    help="narrow a parameter's grid (default: its declared grid)",
)
@click.option("--metric", default="sharpe", show_default=True, help="ranking metric")
@click.option("--min-trades", type=int, default=0, show_default=True)
@click.option("--top-k", type=int, default=10, show_default=True)
@click.option("--chunk-size", type=int, default=None, help="parameter sets per worker call")
@click.option("--per-symbol", is_flag=True, help="also save the (set x symbol) metrics table")
@sim_options
@friendly_errors
def sweep(strategy_name: str, params: tuple[str, ...], workers: int | None, out: str | None,
          as_json: bool, grid: tuple[str, ...], metric: str, min_trades: int, top_k: int,
          chunk_size: int | None, per_symbol: bool, **opts: Any) -> None:  # fmt: skip
    """Backtest every valid combination of the parameter grids, streamed in chunks."""
    spec = _base(strategy_name, params, workers, opts) | {
        "grid": _grid(strategy_name, grid), "metric": _metrics((metric,))[0],
        "min_trades": min_trades, "top_k": top_k, "chunk_size": chunk_size,
        "per_symbol": per_symbol,
    }  # fmt: skip
    _execute("sweep", spec, out, as_json, _render_sweep)


# ----------------------------------------------------------------------------- walkforward
def _render_walkforward(console: Console, result: Any) -> None:
    m = result.metric
    cols = ["fold", "test_start", "test_end", "params", f"is_{m}", f"oos_{m}", "oos_total_return"]
    console.print(_table(f"Walk-forward folds ({result.stats['mode']})", result.folds.to_dicts(),
                         cols))  # fmt: skip
    s = result.stats
    keys = ["walk_forward_efficiency", "oos_total_return", "dsr", "pbo", "n_candidates"]
    console.print(_table("Overfitting", [s], [k for k in keys if k in s]))


@click.command()
@data_options
@_common
@click.option("--train", required=True, help="train window: bars (504) or a period (2y, 6m)")
@click.option("--test", "test_window", required=True, help="test window: bars or a period")
@click.option(
    "--mode", type=click.Choice(["rolling", "anchored"]), default="rolling", show_default=True
)
@click.option("--metric", "metrics", multiple=True, help="selection metric (first one)")
@click.option("--trials", type=int, default=50, show_default=True, help="trials per fold")
@click.option("--sampler", type=click.Choice(_SAMPLERS), default="tpe", show_default=True)
@click.option("--min-trades", type=int, default=0, show_default=True)
@click.option(
    "--max-candidates",
    type=int,
    default=256,
    show_default=True,
    help="distinct sets in the DSR/PBO computation",
)
@click.option(
    "--pbo-splits", type=int, default=16, show_default=True, help="CSCV submatrices (even)"
)
@sim_options
@friendly_errors
def walkforward(strategy_name: str, params: tuple[str, ...], workers: int | None,
                out: str | None, as_json: bool, train: str, test_window: str, mode: str,
                metrics: tuple[str, ...], trials: int, sampler: str, min_trades: int,
                max_candidates: int, pbo_splits: int, **opts: Any) -> None:  # fmt: skip
    """Walk-forward: in-sample search per fold, out-of-sample test, DSR and PBO."""
    spec = _base(strategy_name, params, workers, opts) | {
        "train": train, "test": test_window, "mode": mode, "metrics": _metrics(metrics),
        "trials": trials, "sampler": sampler, "seed": opts["seed"], "min_trades": min_trades,
        "max_candidates": max_candidates, "pbo_splits": pbo_splits,
    }  # fmt: skip
    _execute("walkforward", spec, out, as_json, _render_walkforward)


# ----------------------------------------------------------------------------- montecarlo
def _render_montecarlo(console: Console, result: Any) -> None:
    s = result.stats
    rows = [{"statistic": name, **s[f"{name}_quantiles"]}
            for name in ("final_return", "max_drawdown", "sharpe")]  # fmt: skip
    cols = ["statistic", *s["final_return_quantiles"]]
    console.print(_table(f"Quantiles over {s['paths']:,} {s['method']} paths (seed {s['seed']})",
                         rows, cols))  # fmt: skip
    console.print(f"P(ruin: equity < {s['ruin_level']:.0%} of start) = {s['prob_ruin']:.4f}   "
                  f"VaR/CVaR {1 - s['alpha']:.0%} of the final return: {s['var']:.4f} / "
                  f"{s['cvar']:.4f}   P(loss) = {s['prob_loss']:.4f}")  # fmt: skip


@click.command()
@data_options
@_common
@click.option(
    "--method",
    type=click.Choice(["iid", "block", "trades"]),
    default="iid",
    show_default=True,
    help="i.i.d. or stationary block bootstrap, trade reshuffling",
)
@click.option("--paths", type=int, default=10_000, show_default=True)
@click.option("--horizon", type=int, default=None, help="steps per path (default: all bars)")
@click.option(
    "--block-length",
    type=float,
    default=20.0,
    show_default=True,
    help="mean block length of the stationary bootstrap",
)
@click.option(
    "--ruin",
    type=float,
    default=0.5,
    show_default=True,
    help="ruin: equity below this fraction of the start",
)
@click.option("--alpha", type=float, default=0.05, show_default=True, help="VaR/CVaR tail")
@sim_options
@friendly_errors
def montecarlo(strategy_name: str, params: tuple[str, ...], workers: int | None,
               out: str | None, as_json: bool, method: str, paths: int, horizon: int | None,
               block_length: float, ruin: float, alpha: float, **opts: Any) -> None:  # fmt: skip
    """Monte Carlo of one backtest: bootstrap its returns or reshuffle its trades."""
    spec = _base(strategy_name, params, workers, opts) | {
        "method": method, "paths": paths, "horizon": horizon, "block_length": block_length,
        "seed": opts["seed"], "ruin": ruin, "alpha": alpha,
    }  # fmt: skip
    _execute("montecarlo", spec, out, as_json, _render_montecarlo)


# ----------------------------------------------------------------------------- stress
def _render_stress(console: Console, result: Any) -> None:
    cols = ["scenario", "pnl", "total_return", "window_pnl", "max_drawdown", "worst_bar",
            "daily_loss_breaches", "drawdown_breach"]  # fmt: skip
    lim = result.limits
    title = (f"Stress (limits: bar loss {lim['max_daily_loss_pct']}%, "
             f"drawdown {lim['max_drawdown_pct']}%)")  # fmt: skip
    console.print(_table(title, result.table.to_dicts(), cols))


def _split(text: str, n: tuple[int, ...], option: str) -> list[str]:
    parts = text.split(":")
    if len(parts) not in n:
        raise ConfigError(f"{option} {text!r}: expected {' or '.join(map(str, n))} ':'-separated "
                          "fields")  # fmt: skip
    return parts


def _scenarios(gaps: tuple[str, ...], vols: tuple[str, ...], corrs: tuple[str, ...],
               windows: tuple[str, ...]) -> list[dict[str, Any]]:  # fmt: skip
    def number(text: str, option: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{option}: {text!r} is not a number") from None

    out: list[dict[str, Any]] = []
    for g in gaps:
        d, pct = _split(g, (2,), "--gap")
        out.append({"kind": "gap", "start": d, "size": number(pct, "--gap")})
    for v in vols:
        a, b, k = _split(v, (3,), "--vol")
        out.append({"kind": "vol", "start": a, "end": b, "size": number(k, "--vol")})
    for c in corrs:
        a, b = _split(c, (2,), "--correlate")
        out.append({"kind": "correlation", "start": a, "end": b})
    for w in windows:
        parts = _split(w, (2, 3), "--window")
        out.append({"kind": "historical", "start": parts[0], "end": parts[1],
                    "name": parts[2] if len(parts) == 3 else None})  # fmt: skip
    return out


@click.command()
@data_options
@_common
@click.option(
    "--gap", "gaps", multiple=True, metavar="DATE:PCT", help="overnight gap, e.g. 2008-10-06:-20"
)
@click.option("--vol", "vols", multiple=True, metavar="START:END:K", help="volatility x K")
@click.option(
    "--correlate",
    "corrs",
    multiple=True,
    metavar="START:END",
    help="all symbols' returns fully correlated in the window",
)
@click.option(
    "--window",
    "windows",
    multiple=True,
    metavar="START:END[:NAME]",
    help="historical window, e.g. 2007-10-01:2009-03-31:gfc",
)
@click.option(
    "--max-daily-loss-pct",
    type=float,
    default=5.0,
    show_default=True,
    help="limit: loss of one bar, percent of equity",
)
@click.option(
    "--max-drawdown-pct",
    type=float,
    default=20.0,
    show_default=True,
    help="limit: drawdown from peak, percent",
)
@sim_options
@friendly_errors
def stress(strategy_name: str, params: tuple[str, ...], workers: int | None, out: str | None,
           as_json: bool, gaps: tuple[str, ...], vols: tuple[str, ...], corrs: tuple[str, ...],
           windows: tuple[str, ...], max_daily_loss_pct: float, max_drawdown_pct: float,
           **opts: Any) -> None:  # fmt: skip
    """Stress a strategy: shocks to the bars and historical windows, against risk limits.

    Without scenario options: the crises inside the data (2000-2002, 2007-2009, 2020) plus a
    -20% gap, volatility x3 and correlation 1 in the middle of the data.
    """
    spec = _base(strategy_name, params, workers, opts) | {
        "scenarios": _scenarios(gaps, vols, corrs, windows),
        "max_daily_loss_pct": max_daily_loss_pct, "max_drawdown_pct": max_drawdown_pct,
    }  # fmt: skip
    _execute("stress", spec, out, as_json, _render_stress)
