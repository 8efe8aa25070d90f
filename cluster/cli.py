"""The ``raytrader`` command line: the group and the commands; shared options live in
``cluster.options``, bigger command families in their own modules registered at the end."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console

from cluster.options import (
    build_data,
    build_sim,
    data_options,
    friendly_errors,
    parse_assignments,
    sim_options,
)

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """raytrader: one strategy definition for backtests, cluster searches and live trading."""


@main.command()
@data_options
@click.option("--strategy", "strategy_name", required=True, help="built-in name or module:Class")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE")
@sim_options
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--equity-curve", is_flag=True, help="include the equity curve in --json output")
@friendly_errors
def backtest(strategy_name: str, params: tuple[str, ...], as_json: bool, equity_curve: bool,
             **opts: Any) -> None:  # fmt: skip
    """Backtest a strategy on bars from files (or synthetic data) and print the summary."""
    from cluster.render import jsonable, render_backtest
    from strategies.backtest import backtest as run
    from strategies.backtest import load_panel
    from strategies.registry import get_strategy

    strategy = get_strategy(strategy_name).from_strings(parse_assignments(params))
    sim = build_sim(opts)
    panel = load_panel(build_data(opts))
    result = run(strategy, panel, sim)
    if as_json:
        out = {"strategy": strategy.name, "params": strategy.params}
        out.update(result.to_dict(equity_curve=equity_curve))
        click.echo(json.dumps(jsonable(out)))
    else:
        render_backtest(Console(), strategy, result)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print the parameter specs as JSON")
def strategies(as_json: bool) -> None:
    """List the registered strategies with their parameters and search spaces."""
    from cluster.render import render_strategies
    from strategies.registry import list_strategies

    registry = list_strategies()
    if as_json:
        out = {
            name: {
                "description": cls.description,
                "params": {
                    k: {"kind": s.kind, "default": s.default, "space": s.space(), "doc": s.doc}
                    for k, s in cls.param_specs().items()
                },
            }
            for name, cls in registry.items()
        }
        click.echo(json.dumps(out))
    else:
        render_strategies(Console(), registry)


from cluster.cli_research import montecarlo, optimize, stress, sweep, walkforward  # noqa: E402

main.add_command(optimize)
main.add_command(sweep)
main.add_command(walkforward)
main.add_command(montecarlo)
main.add_command(stress)

from cluster.cli_live import demo, run  # noqa: E402

main.add_command(run)
main.add_command(demo)

from cluster.cli_control import kill, limits, resume, serve, status  # noqa: E402

main.add_command(serve)
main.add_command(status)
main.add_command(kill)
main.add_command(resume)
main.add_command(limits)


if __name__ == "__main__":
    main()
