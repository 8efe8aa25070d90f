"""Search spaces from a strategy's declared parameters: fixed values, grid overrides, constraints.

A search covers every parameter declared with ``optimize=True`` that is not fixed by the user;
its space is the parameter's own (``Param.suggest`` for Optuna, ``Param.grid`` for grids), and
a grid may be narrowed per parameter (``fast=5:50:5`` or ``fast=5,10,20``). Cross-parameter
rules (``fast < slow``) come from ``Strategy.is_valid``: invalid sets are never evaluated.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

from core.errors import ConfigError
from strategies.base import Strategy
from strategies.params import FloatParam, IntParam, Param

__all__ = [
    "check_fixed",
    "ensure_nonempty",
    "grid_size",
    "grid_values",
    "iter_grid",
    "parse_grid_text",
    "search_specs",
    "suggest_params",
]


def check_fixed(strategy_cls: type[Strategy], fixed: Mapping[str, Any]) -> dict[str, Any]:
    """Validate user-fixed parameter values by their declared types and ranges."""
    specs = strategy_cls.param_specs()
    unknown = sorted(set(fixed) - set(specs))
    if unknown:
        raise ConfigError(
            f"strategy {strategy_cls.name}: unknown parameter(s) {', '.join(unknown)} in the "
            f"fixed parameters (-p); declared: {', '.join(specs) or 'none'}"
        )
    return {
        k: specs[k].parse(v) if isinstance(v, str) else specs[k].validate(v)
        for k, v in fixed.items()
    }


def search_specs(strategy_cls: type[Strategy], fixed: Mapping[str, Any]) -> dict[str, Param[Any]]:
    """The parameters a search varies: declared, optimizable, not fixed."""
    specs = {k: s for k, s in strategy_cls.param_specs().items() if s.optimize and k not in fixed}
    if not specs:
        raise ConfigError(
            f"strategy {strategy_cls.name}: nothing to search, every parameter is fixed "
            f"({', '.join(fixed) or 'none declared'})"
        )
    return specs


def suggest_params(trial: Any, specs: Mapping[str, Param[Any]], fixed: Mapping[str, Any]) -> dict:
    """One parameter set from an Optuna trial: each spec suggests its own value."""
    return {**fixed, **{k: spec.suggest(trial) for k, spec in specs.items()}}


def _number(spec: Param[Any], text: str) -> Any:
    return spec.parse(text.strip())


def parse_grid_text(strategy_cls: type[Strategy], name: str, text: str) -> list[Any]:
    """Values of one grid override: ``lo:hi:step`` (inclusive) or ``v1,v2,...``, each validated."""
    specs = strategy_cls.param_specs()
    if name not in specs:
        raise ConfigError(
            f"--grid {name}={text}: strategy {strategy_cls.name} has no parameter {name!r}; "
            f"declared: {', '.join(specs)}"
        )
    spec = specs[name]
    if ":" in text:
        if not isinstance(spec, IntParam | FloatParam):
            raise ConfigError(f"--grid {name}={text}: a lo:hi:step range needs a numeric parameter")
        parts = text.split(":")
        if len(parts) != 3:
            raise ConfigError(f"--grid {name}={text}: expected lo:hi:step")
        lo, hi, step = (_number(spec, p) if i < 2 else float(p) for i, p in enumerate(parts))
        if step <= 0 or hi < lo:
            raise ConfigError(f"--grid {name}={text}: need lo <= hi and step > 0")
        n = int((hi - lo) / step + 1e-9) + 1
        values = [lo + i * step for i in range(n)]
        if isinstance(spec, IntParam):
            values = [round(v) for v in values]
        return [spec.validate(v) for v in values]
    values = [_number(spec, part) for part in text.split(",") if part.strip()]
    if not values:
        raise ConfigError(f"--grid {name}={text}: no values")
    return values


def grid_values(
    strategy_cls: type[Strategy],
    fixed: Mapping[str, Any],
    overrides: Mapping[str, list[Any]] | None = None,
) -> dict[str, list[Any]]:
    """The value list of every searched parameter: the override if given, else its grid."""
    overrides = dict(overrides or {})
    specs = strategy_cls.param_specs()
    clash = sorted(set(overrides) & set(fixed))
    if clash:
        raise ConfigError(f"parameter(s) {', '.join(clash)} both fixed (-p) and gridded (--grid)")
    unknown = sorted(set(overrides) - set(specs))
    if unknown:
        raise ConfigError(
            f"--grid names unknown parameter(s) {', '.join(unknown)} of strategy "
            f"{strategy_cls.name}; declared: {', '.join(specs)}"
        )
    searched = {k for k, s in specs.items() if s.optimize and k not in fixed} | set(overrides)
    if not searched:
        raise ConfigError(f"strategy {strategy_cls.name}: nothing to sweep, every parameter fixed")
    return {
        k: [specs[k].validate(v) for v in overrides[k]] if k in overrides else specs[k].grid()
        for k in specs
        if k in searched
    }


def grid_size(values: Mapping[str, list[Any]]) -> int:
    """Number of combinations before constraints."""
    n = 1
    for vals in values.values():
        n *= len(vals)
    return n


def iter_grid(
    strategy_cls: type[Strategy], fixed: Mapping[str, Any], values: Mapping[str, list[Any]]
) -> Iterator[dict[str, Any]]:
    """Every combination that passes the strategy's checks (invalid ones are skipped)."""
    keys = list(values)
    for combo in itertools.product(*(values[k] for k in keys)):
        params = {**fixed, **dict(zip(keys, combo, strict=True))}
        if strategy_cls.is_valid(params):
            yield params


def ensure_nonempty(
    strategy_cls: type[Strategy], fixed: Mapping[str, Any], values: Mapping[str, list[Any]]
) -> None:
    """ConfigError naming the space when no combination passes the strategy's constraints."""
    if next(iter_grid(strategy_cls, fixed, values), None) is None:
        space = "; ".join(f"{k} in {v}" for k, v in values.items())
        pinned = f" with {fixed}" if fixed else ""
        raise ConfigError(
            f"the search space of strategy {strategy_cls.name} is empty after its constraints"
            f"{pinned}: no combination of {space} is valid (e.g. fast < slow)"
        )
