"""The strategy contract: typed parameters, a warm-up length, and one vectorized function.

``target_weights(panel)`` maps a wide bar panel to target weights (time x symbol) in [-1, 1];
NaN means "no new opinion", so the previous target stands. The same function runs in the
backtest (whole history) and live (the host evaluates it on its history and takes the last row).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from itertools import product
from typing import Any, ClassVar

import numpy as np

from core.errors import ConfigError, StrategyError
from core.panel import WidePanel
from strategies.params import Param

__all__ = ["Strategy"]


class Strategy:
    """Base class: subclasses declare Params as class attributes and implement target_weights."""

    name: ClassVar[str] = "strategy"
    description: ClassVar[str] = ""
    #: Exact number of symbols the strategy needs (None: any number).
    n_symbols: ClassVar[int | None] = None
    #: True when weights depend on several symbols at once (ranking, spreads): a sweep then
    #: backtests each parameter set as one portfolio instead of one backtest per symbol.
    cross_sectional: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        declared = self.param_specs()
        unknown = sorted(set(params) - set(declared))
        if unknown:
            raise ConfigError(
                f"strategy {self.name}: unknown parameter(s) {', '.join(unknown)}; "
                f"declared: {', '.join(declared) or 'none'}"
            )
        self._params: dict[str, Any] = {
            key: spec.validate(params[key]) if key in params else spec.default
            for key, spec in declared.items()
        }
        self.check()

    # ----------------------------------------------------------------- declarations
    @classmethod
    def param_specs(cls) -> dict[str, Param[Any]]:
        """Declared parameters in declaration order (base classes first)."""
        return dict(_declared_params(cls))

    @classmethod
    def from_strings(cls, assignments: Mapping[str, str]) -> Strategy:
        """Build from CLI text values (``-p fast=10``), each parsed by its declared type."""
        specs = cls.param_specs()
        unknown = sorted(set(assignments) - set(specs))
        if unknown:
            raise ConfigError(
                f"strategy {cls.name}: unknown parameter(s) {', '.join(unknown)}; "
                f"declared: {', '.join(specs) or 'none'}"
            )
        return cls(**{k: specs[k].parse(v) for k, v in assignments.items()})

    @classmethod
    def is_valid(cls, params: Mapping[str, Any]) -> bool:
        """Whether a parameter set passes type, range and cross-parameter checks."""
        try:
            cls(**params)
        except ConfigError:
            return False
        return True

    @classmethod
    def grid(cls, fixed: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every valid combination of the declared search spaces (``fixed`` pins some)."""
        fixed = dict(fixed or {})
        specs = cls.param_specs()
        keys = [k for k, s in specs.items() if k not in fixed and s.optimize]
        values = [specs[k].grid() for k in keys]
        for combo in product(*values):
            params = {**fixed, **dict(zip(keys, combo, strict=True))}
            if cls.is_valid(params):
                yield params

    def check(self) -> None:
        """Cross-parameter rules (e.g. fast < slow); raise ConfigError naming both values."""

    # ----------------------------------------------------------------- behaviour
    @property
    def params(self) -> dict[str, Any]:
        """The validated parameter values."""
        return dict(self._params)

    @property
    def lookback(self) -> int:
        """Bars of warm-up before the strategy can form an opinion."""
        return 1

    def target_weights(self, panel: WidePanel) -> np.ndarray:
        """Target weights (time x symbol, float64, in [-1, 1] or NaN) for the whole panel."""
        raise NotImplementedError

    @classmethod
    def target_weights_batch(
        cls,
        panel: WidePanel,
        param_sets: list[dict[str, Any]],
        out: np.ndarray | None = None,
        cache: dict[Any, Any] | None = None,
    ) -> np.ndarray:
        """Weights for many parameter sets at once: column ``p * n_symbols + s``.

        ``out`` (T x P*N float64, any strides) is filled and returned instead of a new array,
        so a sweep can evaluate chunks of parameter sets into one buffer. ``cache`` is one dict
        per sweep (same panel) where an override may keep indicators between chunks. The
        default evaluates each set in turn; built-ins override it to share indicators.
        """
        out = cls.batch_out(panel, len(param_sets), out)
        n = panel.n_symbols
        for p, params in enumerate(param_sets):
            out[:, p * n : (p + 1) * n] = cls(**params).checked_weights(panel)
        return out

    @classmethod
    def prepare_batch(
        cls, panel: WidePanel, param_sets: list[dict[str, Any]], cache: dict[Any, Any]
    ) -> None:
        """Called once per sweep with every parameter set before the chunks are evaluated;
        an override may precompute the indicators all chunks share into ``cache``."""

    @staticmethod
    def batch_out(panel: WidePanel, n_sets: int, out: np.ndarray | None = None) -> np.ndarray:
        """The output array of a batch: ``out`` checked for shape and dtype, or a new one."""
        shape = (panel.n_bars, panel.n_symbols * n_sets)
        if out is None:
            return np.empty(shape)
        if out.shape != shape or out.dtype != np.float64:
            raise ConfigError(
                f"batch output has shape {out.shape} and dtype {out.dtype}, "
                f"expected {shape} float64 ({n_sets} parameter sets x {panel.n_symbols} symbols)"
            )
        return out

    def checked_weights(self, panel: WidePanel) -> np.ndarray:
        """``target_weights`` plus the contract checks: shape, dtype, range."""
        if self.n_symbols is not None and panel.n_symbols != self.n_symbols:
            raise ConfigError(
                f"strategy {self.name} needs exactly {self.n_symbols} symbols, "
                f"got {panel.n_symbols}: {', '.join(panel.symbols)}"
            )
        weights = np.asarray(self.target_weights(panel), dtype=np.float64)
        if weights.shape != (panel.n_bars, panel.n_symbols):
            raise StrategyError(
                f"target_weights returned shape {weights.shape}, "
                f"expected {(panel.n_bars, panel.n_symbols)}",
                strategy_id=self.name,
            )
        bad = np.abs(weights) > 1.0  # NaN compares False: NaN is allowed
        if bad.any():
            t, s = np.argwhere(bad)[0]
            raise StrategyError(
                f"weight {float(weights[t, s])!r} for {panel.symbols[s]} outside [-1, 1]",
                strategy_id=self.name,
                bar_ts=str(panel.timestamps[t]),
            )
        return weights

    def checked_last_weights(self, panel: WidePanel) -> np.ndarray:
        """The newest row of ``target_weights`` with ``checked_weights``'s checks on it: what
        a live host uses each bar. The earlier rows were checked at their own bars (a causal
        strategy gives the same rows again); checking one row keeps numpy's masked
        whole-array operations, costly on a cold process, off the bar's path."""
        if self.n_symbols is not None and panel.n_symbols != self.n_symbols:
            return self.checked_weights(panel)[-1]  # its error
        weights = np.asarray(self.target_weights(panel), dtype=np.float64)
        if weights.shape != (panel.n_bars, panel.n_symbols):
            return self.checked_weights(panel)[-1]  # its error
        row = weights[-1]
        for s, weight in enumerate(row.tolist()):
            if abs(weight) > 1.0:  # NaN compares False: NaN is allowed
                raise StrategyError(
                    f"weight {weight!r} for {panel.symbols[s]} outside [-1, 1]",
                    strategy_id=self.name,
                    bar_ts=str(panel.timestamps[-1]),
                )
        return row

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{self.name}({args})"


@cache
def _declared_params(cls: type[Strategy]) -> tuple[tuple[str, Param[Any]], ...]:
    """A class's declared parameters, walked once per class: every set of a sweep builds a
    strategy, and walking the MRO each time was a tenth of a sweep worker's Python time."""
    specs: dict[str, Param[Any]] = {}
    for klass in reversed(cls.__mro__):
        for key, value in vars(klass).items():
            if isinstance(value, Param):
                specs[key] = value
    return tuple(specs.items())
