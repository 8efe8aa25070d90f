"""Options and error handling shared by every ``raytrader`` command.

Command modules import from here (never from ``cluster.cli``), so each stays importable on
its own and heavy libraries (ray, optuna) are imported inside the command functions only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
from pydantic import ValidationError
from rich.console import Console

from core.errors import RaytraderError
from core.types import BadBarPolicy, FillMode, RebalanceMode

__all__ = [
    "build_data",
    "build_sim",
    "data_options",
    "describe_validation",
    "friendly_errors",
    "parse_assignments",
    "sim_options",
]

# SimConfig/DataSpec field -> the CLI option that sets it, for error messages.
_OPTION_OF = {
    "cash": "--cash", "fill": "--fill", "size_pct": "--size-pct", "fractional": "--fractional",
    "commission_bps": "--commission-bps", "commission_fixed": "--commission-fixed",
    "slippage_bps": "--slippage-bps", "stop_loss_pct": "--stop-loss-pct",
    "take_profit_pct": "--take-profit-pct", "leverage": "--leverage",
    "rebalance": "--rebalance", "min_trade_pct": "--min-trade-pct", "symbol": "--symbol",
}  # fmt: skip


def describe_validation(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        field = ".".join(str(x) for x in e["loc"])
        name = _OPTION_OF.get(str(e["loc"][-1]), field) if e["loc"] else "input"
        parts.append(f"{name}={e.get('input')!r}: {e['msg']}")
    return "; ".join(parts)


def friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn domain and validation errors into one red line and exit code 2, no traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        err = Console(stderr=True)
        try:
            return func(*args, **kwargs)
        except ValidationError as exc:
            err.print(f"[red]error:[/red] {describe_validation(exc)}", highlight=False)
        except RaytraderError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
        except FileNotFoundError as exc:
            err.print(f"[red]error:[/red] file not found: {exc.filename}", highlight=False)
        sys.exit(2)

    return wrapper


def parse_assignments(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="-p/--param")
        if key.strip() in out:
            raise click.BadParameter(f"{key.strip()} given twice", param_hint="-p/--param")
        out[key.strip()] = val.strip()
    return out


def sim_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The simulation options shared by backtest and the research commands."""
    options = [
        click.option("--cash", type=float, default=100_000.0, show_default=True),
        click.option("--fill", type=click.Choice([m.value for m in FillMode]),
                     default="next_open", show_default=True),
        click.option("--size-pct", type=float, default=1.0, show_default=True,
                     help="fraction of equity a target weight of 1 buys"),
        click.option("--fractional", is_flag=True, help="trade fractional shares"),
        click.option("--commission-bps", type=float, default=0.0, show_default=True),
        click.option("--commission-fixed", type=float, default=0.0, show_default=True),
        click.option("--slippage-bps", type=float, default=0.0, show_default=True),
        click.option("--stop-loss-pct", type=float, default=None),
        click.option("--take-profit-pct", type=float, default=None),
        click.option("--leverage", type=float, default=1.0, show_default=True),
        click.option("--rebalance", type=click.Choice([m.value for m in RebalanceMode]),
                     default="on_change", show_default=True),
        click.option("--min-trade-pct", type=float, default=0.0, show_default=True),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def data_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The data options shared by every command that reads bars."""
    options = [
        click.option("--data", "data_paths", multiple=True, metavar="PATH",
                     help="CSV/Parquet file or directory (repeatable); synthetic data if omitted"),
        click.option("--symbol", default=None, help="symbol of a single-symbol file"),
        click.option("--bad-bars", type=click.Choice([p.value for p in BadBarPolicy]),
                     default="raise", show_default=True,
                     help="policy for bars that fail validation"),
        click.option("--start", default=None, help="first date to use (ISO)"),
        click.option("--end", default=None, help="last date to use (ISO)"),
        click.option("--synthetic-symbols", type=int, default=5, show_default=True),
        click.option("--synthetic-bars", type=int, default=2520, show_default=True),
        click.option("--seed", type=int, default=0, show_default=True),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def build_sim(opts: dict[str, Any]) -> Any:
    """SimConfig from CLI options (validated by pydantic)."""
    from core.sim import SimConfig

    keys = SimConfig.model_fields.keys()
    return SimConfig(**{k: v for k, v in opts.items() if k in keys})


def build_data(opts: dict[str, Any]) -> Any:
    """DataSpec from CLI options."""
    from core.config import DataSpec

    return DataSpec(
        paths=list(opts["data_paths"]), symbol=opts["symbol"], bad_bars=opts["bad_bars"],
        start=opts["start"], end=opts["end"], synthetic_symbols=opts["synthetic_symbols"],
        synthetic_bars=opts["synthetic_bars"], seed=opts["seed"],
    )  # fmt: skip
