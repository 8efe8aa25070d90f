"""Evaluate many parameter sets of one strategy with bounded memory: the unit of every sweep.

Parameter sets are processed in chunks; each chunk's weights go into one reused buffer and
through one kernel call, and only summary statistics survive the chunk. Per-symbol strategies
backtest every (set, symbol) on its own cash; cross-sectional ones backtest each set as one
portfolio. ``stop_loss_pct`` / ``take_profit_pct`` keys in a set are simulator parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from core.panel import WidePanel
from core.sim import SimConfig, simulate_batch
from core.stats import periods_per_year, summary_stats
from strategies.base import Strategy

__all__ = ["STOP_KEYS", "GridResult", "evaluate_grid"]

STOP_KEYS = ("stop_loss_pct", "take_profit_pct")


@dataclass(frozen=True)
class GridResult:
    """Summary metrics per parameter set (rows) and symbol or portfolio (columns)."""

    param_sets: list[dict[str, Any]]
    columns: tuple[str, ...]  # symbols, or ("portfolio",) for cross-sectional strategies
    metrics: dict[str, np.ndarray]  # name -> (n_sets x n_columns)

    def to_frame(self) -> pl.DataFrame:
        """Long table: one row per (parameter set, symbol) with parameters and metrics."""
        n_sets, n_cols = len(self.param_sets), len(self.columns)
        keys = list(self.param_sets[0]) if self.param_sets else []
        data: dict[str, Any] = {
            k: np.repeat([p[k] for p in self.param_sets], n_cols) for k in keys
        }
        data["symbol"] = np.tile(np.array(self.columns, dtype=object), n_sets).astype(str)
        data.update({name: arr.reshape(-1) for name, arr in self.metrics.items()})
        return pl.DataFrame(data)


def _split(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    stops = {k: params[k] for k in STOP_KEYS if params.get(k) is not None}
    return {k: v for k, v in params.items() if k not in STOP_KEYS}, stops


def _fortran_panel(panel: WidePanel) -> WidePanel:
    """Column-major prices: a one-symbol backtest then reads its series contiguously."""
    fields = [np.asfortranarray(getattr(panel, f)) for f in ("open", "high", "low", "close")]
    return WidePanel(panel.timestamps, panel.symbols, *fields, panel.volume)


def evaluate_grid(
    strategy_cls: type[Strategy],
    panel: WidePanel,
    param_sets: Sequence[dict[str, Any]],
    sim: SimConfig,
    *,
    max_columns: int = 2048,
    on_chunk: Callable[[int, int], None] | None = None,
    cache: dict[Any, Any] | None = None,
) -> GridResult:
    """Backtest every parameter set; memory is bounded by ``max_columns`` weight columns.

    ``cache`` keeps the strategy's shared indicators; pass the same dict to later calls on
    the same bars (as a sweep worker does) so they are not recomputed.
    """
    param_sets = list(param_sets)
    n_sym = panel.n_symbols
    per_symbol = not strategy_cls.cross_sectional
    n_out = n_sym if per_symbol else 1
    chunk = max(1, max_columns // n_sym)
    fpanel = _fortran_panel(panel) if per_symbol else panel
    cache = {} if cache is None else cache  # indicators shared by the chunks
    # The weights buffer lives in the cache too: a fresh 10 MB array per call is thousands of
    # page faults, paid again by every call of a sweep worker.
    shape = (panel.n_bars, min(chunk, max(len(param_sets), 1)) * n_sym)
    buffer = cache.get(("weights_buffer", shape))
    if buffer is None:
        buffer = cache[("weights_buffer", shape)] = np.empty(shape, order="F")
    ppy = sim.periods_per_year or periods_per_year(panel.timestamps)
    parts: list[dict[str, np.ndarray]] = []
    strategy_cls.prepare_batch(panel, [_split(p)[0] for p in param_sets], cache)
    for start in range(0, len(param_sets), chunk):
        sets = param_sets[start : start + chunk]
        split = [_split(p) for p in sets]
        n_cols = len(sets) * n_sym
        weights = strategy_cls.target_weights_batch(
            panel, [s for s, _ in split], out=buffer[:, :n_cols], cache=cache
        )
        stop_arrays = {
            key: np.repeat([stops.get(key, np.nan) for _, stops in split], n_sym)
            for key in STOP_KEYS
            if any(key in stops for _, stops in split)
        }
        group_len = np.ones(n_cols, np.int64) if per_symbol else np.full(len(sets), n_sym)
        batch = simulate_batch(
            fpanel, weights, sim, price_col=np.tile(np.arange(n_sym), len(sets)),
            group_len=group_len, stop_loss_pct=stop_arrays.get("stop_loss_pct"),
            take_profit_pct=stop_arrays.get("take_profit_pct"),
        )  # fmt: skip
        stats = summary_stats(batch.summary, sim.cash, ppy)
        parts.append({k: v.reshape(len(sets), n_out) for k, v in stats.items()})
        if on_chunk is not None:
            on_chunk(start + len(sets), len(param_sets))
    metrics = (
        {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
    )
    columns = panel.symbols if per_symbol else ("portfolio",)
    return GridResult(param_sets=param_sets, columns=tuple(columns), metrics=metrics)
