"""Typed parameter descriptors that validate values and export their own search space.

A strategy declares ``fast = IntParam(10, low=2, high=200)``; the descriptor validates values
given on the CLI, in YAML or over HTTP, and tells Optuna and grid sweeps where to search.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from core.errors import ConfigError

__all__ = ["BoolParam", "CategoricalParam", "FloatParam", "IntParam", "Param"]

T = TypeVar("T")


class Param(Generic[T]):
    """Base descriptor: a default, a doc line, and validation of one value."""

    kind = "param"

    def __init__(self, default: T, *, doc: str = "", optimize: bool = True) -> None:
        self.default = default
        self.doc = doc
        self.optimize = optimize
        self.name = "?"
        self.owner = "?"

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.owner = getattr(owner, "name", owner.__name__)

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return obj._params[self.name]

    def _fail(self, value: object, rule: str) -> ConfigError:
        return ConfigError(f"parameter {self.owner}.{self.name}={value!r}: {rule}")

    def validate(self, value: object) -> T:
        """Return the value coerced to the parameter's type, or raise ConfigError with the rule."""
        raise NotImplementedError

    def parse(self, text: str) -> T:
        """Parse a CLI string (``-p name=text``) and validate it."""
        return self.validate(text)

    def grid(self) -> list[T]:
        """Every value of the search space, for grid sweeps."""
        raise NotImplementedError

    def suggest(self, trial: Any) -> T:
        """Ask an Optuna trial for a value in this parameter's space."""
        raise NotImplementedError

    def space(self) -> str:
        """A short human description of the search space."""
        raise NotImplementedError


class IntParam(Param[int]):
    """An integer in [low, high] on a step grid (optionally log-scaled for search)."""

    kind = "int"

    def __init__(
        self,
        default: int,
        *,
        low: int,
        high: int,
        step: int = 1,
        search_low: int | None = None,
        search_high: int | None = None,
        log: bool = False,
        doc: str = "",
        optimize: bool = True,
    ) -> None:
        super().__init__(default, doc=doc, optimize=optimize)
        if not low <= default <= high:
            raise ValueError(f"IntParam default {default} outside [{low}, {high}]")
        self.low, self.high, self.step, self.log = low, high, step, log
        self.search_low = low if search_low is None else search_low
        self.search_high = high if search_high is None else search_high

    def validate(self, value: object) -> int:
        if isinstance(value, bool):
            raise self._fail(value, "must be an integer, not a boolean")
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise self._fail(value, "must be an integer") from None
        if isinstance(value, float):
            if not value.is_integer():
                raise self._fail(value, "must be an integer")
            value = int(value)
        if isinstance(value, numbers.Integral):  # numpy integers from grids and arrays
            value = int(value)
        if not isinstance(value, int):
            raise self._fail(value, "must be an integer")
        if not self.low <= value <= self.high:
            raise self._fail(value, f"must be in [{self.low}, {self.high}]")
        return value

    def grid(self) -> list[int]:
        return list(range(self.search_low, self.search_high + 1, self.step))

    def suggest(self, trial: Any) -> int:
        step = 1 if self.log else self.step
        return int(
            trial.suggest_int(self.name, self.search_low, self.search_high, step=step, log=self.log)
        )

    def space(self) -> str:
        step = f" step {self.step}" if self.step != 1 else ""
        return f"int [{self.search_low}, {self.search_high}]{step}{' log' if self.log else ''}"


class FloatParam(Param[float]):
    """A finite float in [low, high]; searched continuously, or on ``step`` for grids."""

    kind = "float"

    def __init__(
        self,
        default: float,
        *,
        low: float,
        high: float,
        step: float | None = None,
        search_low: float | None = None,
        search_high: float | None = None,
        log: bool = False,
        grid_points: int = 10,
        doc: str = "",
        optimize: bool = True,
    ) -> None:
        super().__init__(default, doc=doc, optimize=optimize)
        if not low <= default <= high:
            raise ValueError(f"FloatParam default {default} outside [{low}, {high}]")
        self.low, self.high, self.step, self.log = low, high, step, log
        self.search_low = low if search_low is None else search_low
        self.search_high = high if search_high is None else search_high
        self.grid_points = grid_points

    def validate(self, value: object) -> float:
        if isinstance(value, bool):
            raise self._fail(value, "must be a number, not a boolean")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise self._fail(value, "must be a number") from None
        if not isinstance(value, numbers.Real):  # numpy scalars included
            raise self._fail(value, "must be a number")
        value = float(value)
        if not math.isfinite(value):
            raise self._fail(value, "must be finite")
        if not self.low <= value <= self.high:
            raise self._fail(value, f"must be in [{self.low}, {self.high}]")
        return value

    def grid(self) -> list[float]:
        lo, hi = self.search_low, self.search_high
        if self.step is not None:
            n = math.floor((hi - lo) / self.step + 1e-9) + 1
            return [round(lo + i * self.step, 12) for i in range(n)]
        if self.log:
            ratio = (hi / lo) ** (1 / max(self.grid_points - 1, 1))
            return [lo * ratio**i for i in range(self.grid_points)]
        width = (hi - lo) / max(self.grid_points - 1, 1)
        return [lo + i * width for i in range(self.grid_points)]

    def suggest(self, trial: Any) -> float:
        step = None if self.log else self.step
        value = trial.suggest_float(
            self.name, self.search_low, self.search_high, step=step, log=self.log
        )
        return float(value)

    def space(self) -> str:
        step = f" step {self.step}" if self.step is not None else ""
        return f"float [{self.search_low}, {self.search_high}]{step}{' log' if self.log else ''}"


class CategoricalParam(Param[Any]):
    """One of a fixed list of choices (strings, numbers)."""

    kind = "categorical"

    def __init__(
        self, default: Any, *, choices: Sequence[Any], doc: str = "", optimize: bool = True
    ) -> None:
        super().__init__(default, doc=doc, optimize=optimize)
        self.choices = list(choices)
        if default not in self.choices:
            raise ValueError(f"CategoricalParam default {default!r} not in {self.choices}")

    def validate(self, value: object) -> Any:
        if value in self.choices:
            return value
        if isinstance(value, str):
            for choice in self.choices:
                if str(choice) == value.strip():
                    return choice
        raise self._fail(value, f"must be one of {self.choices}")

    def grid(self) -> list[Any]:
        return list(self.choices)

    def suggest(self, trial: Any) -> Any:
        return trial.suggest_categorical(self.name, self.choices)

    def space(self) -> str:
        return "one of " + ", ".join(map(str, self.choices))


class BoolParam(Param[bool]):
    """A boolean switch; accepts true/false/1/0/yes/no from text."""

    kind = "bool"
    _TEXT: ClassVar[dict[str, bool]] = {
        "true": True, "1": True, "yes": True, "false": False, "0": False, "no": False,
    }  # fmt: skip

    def validate(self, value: object) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in self._TEXT:
            return self._TEXT[value.strip().lower()]
        raise self._fail(value, "must be true or false")

    def grid(self) -> list[bool]:
        return [False, True]

    def suggest(self, trial: Any) -> bool:
        return bool(trial.suggest_categorical(self.name, [False, True]))

    def space(self) -> str:
        return "true or false"
