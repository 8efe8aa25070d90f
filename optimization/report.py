"""Results on disk: Parquet tables, one JSON document and a self-contained HTML report.

``save`` writes ``result.json`` (the spec, including its seed, and the summary), one Parquet
file per table, and ``report.html`` with plotly figures whose JavaScript is inlined once (the
report opens offline). Default directory: ``results/<command>-<UTC timestamp>/``.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl
from pydantic import BaseModel

from optimization.runner import jsonable
from optimization.search import TrialStatus
from optimization.specs import JobKind

__all__ = ["default_out", "figures", "save", "tables"]


def default_out(command: str) -> Path:
    """``results/<command>-<UTC timestamp>``."""
    return Path("results") / f"{command}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


def tables(kind: JobKind, result: Any) -> dict[str, pl.DataFrame]:
    """The tables of a result, by file name."""
    if kind is JobKind.OPTIMIZE:
        return {"trials": result.trials}
    if kind is JobKind.SWEEP:
        out = {"sweep": result.table}
        if result.per_symbol is not None:
            out["sweep_per_symbol"] = result.per_symbol
        return out
    if kind is JobKind.WALKFORWARD:
        return {"folds": result.folds, "oos_equity": result.equity,
                "candidates": result.candidates}  # fmt: skip
    if kind is JobKind.MONTECARLO:
        return {"paths": result.paths, "fan": result.fan}
    if kind is JobKind.STRESS:
        return {"scenarios": result.table, "equity": result.equity}
    return {}


def _history(result: Any) -> list[go.Figure]:
    ok = (
        result.trials.filter(pl.col("status") == TrialStatus.OK.value)
        if result.trials.height
        else result.trials
    )
    if not ok.height:
        return []
    metrics = [m.value for m in result.metrics]
    m0 = metrics[0]
    vals = ok[m0].to_numpy().astype(float)
    best = np.minimum.accumulate(vals) if m0 == "max_drawdown" else np.maximum.accumulate(vals)
    fig = go.Figure([
        go.Scatter(x=ok["number"], y=vals, mode="markers", name=m0),
        go.Scatter(x=ok["number"], y=best, mode="lines", name="best so far"),
    ])  # fmt: skip
    fig.update_layout(title=f"Optimization history ({result.sampler}, seed {result.seed})",
                      xaxis_title="trial", yaxis_title=m0)  # fmt: skip
    out = [fig]
    if len(metrics) == 2:
        front = {b["number"] for b in result.best}
        color = ["Pareto front" if n in front else "dominated" for n in ok["number"]]
        pareto = go.Figure()
        for label in ("dominated", "Pareto front"):
            sel = [c == label for c in color]
            pareto.add_scatter(x=ok[metrics[1]].to_numpy()[sel], y=ok[m0].to_numpy()[sel],
                               mode="markers", name=label)  # fmt: skip
        pareto.update_layout(title="Pareto front", xaxis_title=metrics[1], yaxis_title=m0)
        out.append(pareto)
    params = [c for c in ok.columns if c.startswith("param_")]
    if len(params) >= 2:
        out.append(_heatmap(ok, params[0], params[1], m0, "Trials: mean " + m0))
    return out


def _heatmap(frame: pl.DataFrame, x: str, y: str, value: str, title: str) -> go.Figure:
    grid = frame.group_by(x, y).agg(pl.col(value).mean()).sort(x, y)
    xs, ys = sorted(grid[x].unique().to_list()), sorted(grid[y].unique().to_list())
    z = np.full((len(ys), len(xs)), np.nan)
    for row in grid.iter_rows(named=True):
        z[ys.index(row[y]), xs.index(row[x])] = np.nan if row[value] is None else row[value]
    fig = go.Figure(go.Heatmap(x=xs, y=ys, z=z, colorscale="RdYlGn", colorbar={"title": value}))
    fig.update_layout(title=title, xaxis_title=x.removeprefix("param_"),
                      yaxis_title=y.removeprefix("param_"))  # fmt: skip
    return fig


def _sweep(result: Any) -> list[go.Figure]:
    keys = list(result.grid)
    m = result.metric.value
    out = []
    if len(keys) >= 2:
        out.append(_heatmap(result.table, keys[0], keys[1], m, f"Sweep: {m} (mean over the rest)"))
    hist = go.Figure(go.Histogram(x=result.table[m].to_numpy(), nbinsx=50))
    hist.update_layout(title=f"Distribution of {m} over {result.n_sets} sets", xaxis_title=m)
    return [*out, hist]


def _walkforward(result: Any) -> list[go.Figure]:
    eq = go.Figure(go.Scatter(x=result.equity["timestamp"], y=result.equity["equity"],
                              name="stitched out-of-sample equity"))  # fmt: skip
    eq.update_layout(title="Stitched out-of-sample equity", yaxis_title="equity")
    m = result.metric
    folds = result.folds
    bars = go.Figure([
        go.Bar(x=folds["fold"], y=folds[f"is_{m}"], name=f"in-sample {m}"),
        go.Bar(x=folds["fold"], y=folds[f"oos_{m}"], name=f"out-of-sample {m}"),
    ])  # fmt: skip
    bars.update_layout(title="Per fold: in-sample best vs its out-of-sample result",
                       xaxis_title="fold", barmode="group")  # fmt: skip
    return [eq, bars]


def _montecarlo(result: Any) -> list[go.Figure]:
    fan, x = result.fan, result.fan["step"]
    fig = go.Figure([
        go.Scatter(x=x, y=fan["q95"], line={"width": 0}, showlegend=False),
        go.Scatter(x=x, y=fan["q05"], fill="tonexty", name="5-95%", line={"width": 0}),
        go.Scatter(x=x, y=fan["q75"], line={"width": 0}, showlegend=False),
        go.Scatter(x=x, y=fan["q25"], fill="tonexty", name="25-75%", line={"width": 0}),
        go.Scatter(x=x, y=fan["q50"], name="median"),
    ])  # fmt: skip
    stats = result.stats
    drawn = f"{stats['paths']:,} paths"
    if stats["fan_paths"] < stats["paths"]:
        drawn = f"the first {stats['fan_paths']:,} of {drawn}"
    fig.update_layout(title=f"Fan chart ({stats['method']}, {drawn}, seed {stats['seed']})",
                      xaxis_title="step", yaxis_title="equity")  # fmt: skip
    out = [fig]
    for name in ("final_return", "max_drawdown", "sharpe"):
        h = go.Figure(go.Histogram(x=result.paths[name].to_numpy(), nbinsx=60))
        h.update_layout(title=f"Distribution of {name}", xaxis_title=name)
        out.append(h)
    return out


def _stress(result: Any) -> list[go.Figure]:
    t = result.table
    bars = go.Figure([
        go.Bar(x=t["scenario"], y=t["total_return"], name="total return"),
        go.Bar(x=t["scenario"], y=-t["max_drawdown"], name="max drawdown (negative)"),
        go.Bar(x=t["scenario"], y=t["worst_bar"], name="worst bar"),
    ])  # fmt: skip
    bars.update_layout(title="Per scenario", barmode="group", yaxis_tickformat=".0%")
    lines = go.Figure()
    for name in t["scenario"]:
        part = result.equity.filter(pl.col("scenario") == name)
        lines.add_scatter(x=part["timestamp"], y=part["equity"], name=name)
    lines.update_layout(title="Equity per scenario", yaxis_title="equity")
    return [bars, lines]


def figures(kind: JobKind, result: Any) -> list[go.Figure]:
    """The report's plots for a result."""
    makers = {JobKind.OPTIMIZE: _history, JobKind.SWEEP: _sweep,
              JobKind.WALKFORWARD: _walkforward, JobKind.MONTECARLO: _montecarlo,
              JobKind.STRESS: _stress}  # fmt: skip
    return makers[kind](result) if kind in makers else []


def _html(title: str, summary: dict[str, Any], figs: list[go.Figure]) -> str:
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figs)]
    body = "\n".join(f"<div class='fig'>{p}</div>" for p in parts)
    text = html.escape(json.dumps(summary, indent=2, default=str))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            "</title><style>body{font-family:sans-serif;margin:2em}pre{background:#f4f4f4;"
            "padding:1em;max-height:30em;overflow:auto}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>{body}<h2>Summary</h2><pre>{text}</pre>"
            "</body></html>")  # fmt: skip


def save(kind: JobKind, spec: BaseModel, result: Any, out: Path) -> dict[str, Path]:
    """Write result.json, the Parquet tables and report.html into ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, frame in tables(kind, result).items():
        path = out / f"{name}.parquet"
        frame.write_parquet(path)
        written[name] = path
    summary = jsonable(result.summary())
    doc = {"kind": kind.value, "spec": spec.model_dump(mode="json"), "result": summary}
    (out / "result.json").write_text(json.dumps(doc, indent=2, default=str))
    written["json"] = out / "result.json"
    title = f"raytrader {kind.value}: {getattr(spec, 'strategy', '')}"
    (out / "report.html").write_text(_html(title, summary, figures(kind, result)))
    written["html"] = out / "report.html"
    return written
