"""W1 and W2 of DESIGN.md, each with raytrader and its references (same data, same semantics).

Semantics shared by every implementation so the final equities are comparable: SMA crossover
(long on an up-cross, flat on a down-cross), fills at the deciding bar's close, 0.1% fee per
side, all-in long-only (fractional shares, the fee included in what cash buys).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

FEE = 0.001
CASH = 100_000.0
W1_BARS = 1_000_000
W1_PARAMS = {"golden": (50, 200), "turnover": (10, 30)}
W2_SYMBOLS = 100
W2_BARS = 2_520


def w1_panel() -> Any:
    """One synthetic symbol, 1,000,000 one-minute bars (seeded)."""
    from core.data.synthetic import synthetic_wide

    return synthetic_wide(1, W1_BARS, freq="1min", seed=1)


def w2_panel() -> Any:
    """100 synthetic symbols x 2,520 daily bars (ten years, seeded)."""
    from core.data.synthetic import synthetic_wide

    return synthetic_wide(W2_SYMBOLS, W2_BARS, seed=2)


def w2_pairs() -> list[tuple[int, int]]:
    """fast in 5..50 step 5, slow in 20..200 step 10, fast < slow: 174 pairs."""
    return [(f, s) for f in range(5, 51, 5) for s in range(20, 201, 10) if f < s]


def _sim_config() -> Any:
    from core.sim import SimConfig

    return SimConfig(
        fill="close", commission_bps=FEE * 1e4, fractional=True, size_pct=1 / (1 + FEE)
    )


# ---------------------------------------------------------------------------- W1
def w1_raytrader(variant: str) -> Callable[[], float]:
    """raytrader's engine: the strategy's weights, then the kernel (summary only)."""
    from core.sim import simulate_batch
    from strategies.sma_crossover import SmaCrossover

    panel, cfg = w1_panel(), _sim_config()
    strategy = SmaCrossover(fast=W1_PARAMS[variant][0], slow=W1_PARAMS[variant][1])

    def run() -> float:
        batch = simulate_batch(panel, strategy.target_weights(panel), cfg)
        return float(batch.field("final_equity")[0])

    return run


def w1_raytrader_full(variant: str) -> Callable[[], float]:
    """The user-facing path: weights, kernel with trade/equity records, and all statistics."""
    from core.sim import run_backtest
    from strategies.sma_crossover import SmaCrossover

    panel, cfg = w1_panel(), _sim_config()
    strategy = SmaCrossover(fast=W1_PARAMS[variant][0], slow=W1_PARAMS[variant][1])
    return lambda: run_backtest(panel, strategy.checked_weights(panel), cfg).final_equity


def w1_hand(variant: str) -> Callable[[], float]:
    """A hand-written single-purpose numba loop."""
    from bench.hand_nb import sma_cross_all_in_nb

    close = np.ascontiguousarray(w1_panel().close[:, 0])
    fast, slow = W1_PARAMS[variant]
    return lambda: float(sma_cross_all_in_nb(close, fast, slow, FEE, CASH))


def w1_vectorbt(variant: str) -> Callable[[], float]:
    """vectorbt: MA indicator, crossed_above/below signals, Portfolio.from_signals."""
    import pandas as pd

    warnings.simplefilter("ignore")
    import vectorbt as vbt

    close = pd.Series(w1_panel().close[:, 0])
    fast, slow = W1_PARAMS[variant]

    def run() -> float:
        f, s = vbt.MA.run(close, fast), vbt.MA.run(close, slow)
        pf = vbt.Portfolio.from_signals(
            close, f.ma_crossed_above(s), f.ma_crossed_below(s), fees=FEE, init_cash=CASH,
            size=np.inf, freq="1min",
        )  # fmt: skip
        return float(pf.final_value())

    return run


# ---------------------------------------------------------------------------- W2
def w2_raytrader() -> Callable[[], np.ndarray]:
    """raytrader's sweep evaluator: chunked, column-major, indicators shared across the grid."""
    from strategies.evaluate import evaluate_grid
    from strategies.sma_crossover import SmaCrossover

    panel, cfg = w2_panel(), _sim_config()
    sets = [{"fast": f, "slow": s} for f, s in w2_pairs()]
    return lambda: evaluate_grid(SmaCrossover, panel, sets, cfg).metrics["final_equity"].ravel()


def w2_hand() -> Callable[[], np.ndarray]:
    """The hand loop over every (pair, symbol) in parallel threads."""
    from bench.hand_nb import sma_grid_all_in_nb

    close = w2_panel().close
    pairs = w2_pairs()
    fast = np.array([f for f, _ in pairs])
    slow = np.array([s for _, s in pairs])
    return lambda: sma_grid_all_in_nb(close, fast, slow, FEE, CASH)


def w2_vectorbt() -> Callable[[], np.ndarray]:
    """vectorbt: MA over all windows, signals per pair, one from_signals over 17,400 columns."""
    import pandas as pd

    warnings.simplefilter("ignore")
    import vectorbt as vbt

    close = pd.DataFrame(w2_panel().close)
    pairs = w2_pairs()

    def run() -> np.ndarray:
        fast = vbt.MA.run(close, [f for f, _ in pairs], short_name="fast")
        slow = vbt.MA.run(close, [s for _, s in pairs], short_name="slow")
        f, s = fast.ma.to_numpy(), slow.ma.to_numpy()
        entries = vbt.generic.nb.crossed_above_nb(f, s)
        exits = vbt.generic.nb.crossed_above_nb(s, f)
        prices = np.tile(close.to_numpy(), len(pairs))
        pf = vbt.Portfolio.from_signals(
            prices, entries, exits, fees=FEE, init_cash=CASH, size=np.inf, freq="1D"
        )
        return np.asarray(pf.final_value())

    return run


WORKLOADS: dict[str, dict[str, Callable[[], Callable[[], Any]]]] = {
    "W1": {
        "raytrader": lambda: w1_raytrader("golden"),
        "raytrader (full report)": lambda: w1_raytrader_full("golden"),
        "hand numba loop": lambda: w1_hand("golden"),
        "vectorbt": lambda: w1_vectorbt("golden"),
    },
    "W1-turnover": {
        "raytrader": lambda: w1_raytrader("turnover"),
        "hand numba loop": lambda: w1_hand("turnover"),
        "vectorbt": lambda: w1_vectorbt("turnover"),
    },
    "W2": {
        "raytrader": w2_raytrader,
        "hand numba loop": w2_hand,
        "vectorbt": w2_vectorbt,
    },
}
UNITS = {"W1": W1_BARS, "W1-turnover": W1_BARS, "W2": len(w2_pairs()) * W2_SYMBOLS}
UNIT_NAMES = {"W1": "bars/s", "W1-turnover": "bars/s", "W2": "backtests/s"}

from bench.research import (  # noqa: E402  (research workloads live in their own module)
    RESEARCH_UNIT_NAMES,
    RESEARCH_UNITS,
    RESEARCH_WORKLOADS,
)

WORKLOADS.update(RESEARCH_WORKLOADS)
UNITS.update(RESEARCH_UNITS)
UNIT_NAMES.update(RESEARCH_UNIT_NAMES)
