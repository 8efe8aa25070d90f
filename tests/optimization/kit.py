"""Builders for the optimization tests: a strategy with a known optimum and tiny bar files.

``Oracle`` holds a constant target weight ``0.9 - (|a - 7| + |b - 13|) / 50`` from the first
bar, with the constraint ``a < b`` (at most 0.9: a next-open buy is never short of cash). On a
strictly rising price (``trend_csv``) a larger weight means a larger total return, so the
unique best valid set is a=7, b=13 -- known by construction, not by running anything. The
file is loaded by path in Ray workers, as a user's strategy would be
(``--strategy tests/optimization/kit.py:Oracle``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.errors import ConfigError
from core.panel import WidePanel
from strategies.base import Strategy
from strategies.params import IntParam

KIT = str(Path(__file__).resolve())
ORACLE = f"{KIT}:Oracle"
BEST = {"a": 7, "b": 13}


class Oracle(Strategy):
    """A constant weight peaking at a=7, b=13; requires a < b."""

    name = "oracle"
    a = IntParam(0, low=0, high=20, search_low=0, search_high=20)
    b = IntParam(20, low=0, high=20, search_low=0, search_high=20)

    def check(self) -> None:
        if not self.a < self.b:
            raise ConfigError(f"strategy oracle: a={self.a} must be less than b={self.b}")

    def target_weights(self, panel: WidePanel) -> np.ndarray:
        weight = 0.9 - (abs(self.a - 7) + abs(self.b - 13)) / 50.0
        return np.full((panel.n_bars, panel.n_symbols), weight)


def trend_csv(path: Path, n_bars: int = 300, growth: float = 0.001) -> str:
    """A single-symbol CSV whose flat bars (o=h=l=c) rise by ``growth`` every day."""
    days = np.datetime64("2020-01-01") + np.arange(n_bars)
    close = 100.0 * (1.0 + growth) ** np.arange(n_bars)
    lines = ["timestamp,open,high,low,close,volume"]
    rows = zip(days, close, strict=True)
    lines += [f"{d},{c:.10f},{c:.10f},{c:.10f},{c:.10f},1000" for d, c in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)
