"""Seeded synthetic OHLCV panels: GBM with volatility regimes and a common market factor.

For demos and tests: valid by construction (prices > 0, low <= min(open, close) <= max(open,
close) <= high, volume > 0), identical for the same seed, built in numpy so a million bars take
well under a second.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from core.panel import WidePanel, to_long

if TYPE_CHECKING:  # a frame comes from to_long: importing polars here would cost every actor
    import polars as pl

__all__ = ["periods_per_year", "synthetic_bars", "synthetic_wide"]

_FREQ = re.compile(r"^(\d+)(s|min|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "min": 60, "m": 60, "h": 3600, "d": 86_400}
_TRADING_SECONDS_PER_YEAR = 252 * 6.5 * 3600


def _parse_freq(freq: str) -> tuple[int, str]:
    """Split a frequency like "1d", "5min", "1h" into (count, unit); ValueError otherwise."""
    m = _FREQ.match(freq.strip())
    if m is None or int(m.group(1)) <= 0:
        raise ValueError(f"freq {freq!r} is not like '1d', '1h', '5min' or '30s'")
    return int(m.group(1)), m.group(2)


def periods_per_year(freq: str) -> float:
    """Bars per year used to scale annual drift/vol: 252 per "1d", a 6.5 h session intraday."""
    n, unit = _parse_freq(freq)
    if unit == "d":
        return 252.0 / n
    return _TRADING_SECONDS_PER_YEAR / (n * _UNIT_SECONDS[unit])


def _timestamps(start: str, n_bars: int, freq: str) -> np.ndarray:
    """datetime64[us] index: business days (Mon-Fri) for "Nd", consecutive steps intraday."""
    n, unit = _parse_freq(freq)
    if unit == "d":
        first = np.busday_offset(np.datetime64(start, "D"), 0, roll="forward")
        days = np.busday_offset(first, np.arange(n_bars, dtype=np.int64) * n)
        return days.astype("datetime64[us]")
    step = np.timedelta64(n * _UNIT_SECONDS[unit] * 1_000_000, "us")
    return np.datetime64(start, "us") + np.arange(n_bars, dtype=np.int64) * step


def _regimes(
    rng: np.random.Generator, n_bars: int, n_symbols: int, p_enter: float, p_exit: float
) -> np.ndarray:
    """Boolean (bars x symbols): True in the turbulent state of a 2-state Markov chain.

    A Markov chain's sojourn times are geometric, so each symbol's path is alternating
    geometric run lengths, starting from the stationary distribution; cutting the last run at
    ``n_bars`` is exact because the chain is memoryless.
    """
    out = np.zeros((n_bars, n_symbols), dtype=bool)
    if p_enter <= 0:
        return out  # never leaves the calm state
    if p_exit <= 0:
        p_exit_len = np.full(1, n_bars, dtype=np.int64)
    pi_turb = p_enter / (p_enter + p_exit)
    pairs = int(n_bars / (1 / p_enter + (1 / p_exit if p_exit > 0 else n_bars))) + 8
    for j in range(n_symbols):
        start_turb = bool(rng.random() < pi_turb)
        chunks, total = [], 0
        while total < n_bars:
            calm = rng.geometric(p_enter, pairs)
            turb = rng.geometric(p_exit, pairs) if p_exit > 0 else np.resize(p_exit_len, pairs)
            runs = np.empty(2 * pairs, dtype=np.int64)
            runs[0::2], runs[1::2] = (turb, calm) if start_turb else (calm, turb)
            chunks.append(runs)
            total += int(runs.sum())
        runs = np.concatenate(chunks)
        states = np.resize(np.array([start_turb, not start_turb]), len(runs))
        out[:, j] = np.repeat(states, runs)[:n_bars]
    return out


def synthetic_wide(
    n_symbols: int = 5,
    n_bars: int = 2520,
    *,
    seed: int = 0,
    start: str = "2000-01-03",
    freq: str = "1d",
    s0: float = 100.0,
    drift: float = 0.05,
    drift_dispersion: float = 0.05,
    calm_vol: float = 0.15,
    turbulent_vol: float = 0.45,
    p_calm_to_turbulent: float = 0.02,
    p_turbulent_to_calm: float = 0.10,
    correlation: float = 0.4,
    gap_scale: float = 0.2,
    range_scale: float = 0.5,
    base_volume: float = 1e6,
    volume_sigma: float = 0.4,
) -> WidePanel:
    """A seeded wide panel; the same arguments always give the same numbers.

    Args:
        n_symbols: Number of symbols, named "SYN000", "SYN001", ...
        n_bars: Number of bars per symbol.
        seed: Seed for ``numpy.random.default_rng``.
        start: First timestamp (ISO date or date-time, UTC); for "Nd" rolled to a business day.
        freq: "Nd" (business days, Mon-Fri) or intraday "Ns", "Nmin", "Nh" (consecutive, no
            sessions).
        s0: Every symbol's price before the first bar.
        drift: Mean annual log drift across symbols.
        drift_dispersion: Std of the per-symbol annual drift around ``drift``.
        calm_vol: Annualised volatility in the calm regime.
        turbulent_vol: Annualised volatility in the turbulent regime.
        p_calm_to_turbulent: Per-bar probability of switching calm -> turbulent.
        p_turbulent_to_calm: Per-bar probability of switching turbulent -> calm.
        correlation: Share of each shock's variance from the common market factor (pairwise
            correlation of shocks), in [0, 1].
        gap_scale: Overnight gap (open vs previous close) std as a multiple of the bar's vol.
        range_scale: Size of the high/low excursion beyond open/close, in bar vols.
        base_volume: Median volume of a calm bar; turbulent bars trade about twice as much.
        volume_sigma: Std of log volume.

    Close-to-close log returns have exactly the regime volatility (annualised with
    ``periods_per_year(freq)``); the open only places the bar, it does not change the path.
    """
    if n_symbols < 1 or n_bars < 1:
        raise ValueError(f"need n_symbols >= 1 and n_bars >= 1, got {n_symbols}, {n_bars}")
    if not 0.0 <= correlation <= 1.0:
        raise ValueError(f"correlation must be in [0, 1], got {correlation}")
    rng = np.random.default_rng(seed)
    dt = 1.0 / periods_per_year(freq)
    shape = (n_bars, n_symbols)
    turbulent = _regimes(rng, n_bars, n_symbols, p_calm_to_turbulent, p_turbulent_to_calm)
    sigma = np.where(turbulent, turbulent_vol, calm_vol) * np.sqrt(dt)
    mu = drift + drift_dispersion * rng.standard_normal(n_symbols)
    market = rng.standard_normal((n_bars, 1))
    idio = rng.standard_normal(shape)
    shocks = np.sqrt(correlation) * market + np.sqrt(1.0 - correlation) * idio
    log_ret = mu * dt - 0.5 * sigma**2 + sigma * shocks
    log_close = np.log(s0) + np.cumsum(log_ret, axis=0)
    close = np.exp(log_close)
    prev_close = np.exp(np.vstack([np.full((1, n_symbols), np.log(s0)), log_close[:-1]]))
    open_ = prev_close * np.exp(gap_scale * sigma * rng.standard_normal(shape))
    up, down = (range_scale * sigma * np.abs(rng.standard_normal(shape)) for _ in range(2))
    high = np.maximum(open_, close) * np.exp(up)
    low = np.minimum(open_, close) * np.exp(-down)
    volume = np.round(
        base_volume * np.exp(volume_sigma * rng.standard_normal(shape) + np.log(2.0) * turbulent)
    )
    volume = np.maximum(volume, 1.0)
    symbols = tuple(f"SYN{i:03d}" for i in range(n_symbols))
    return WidePanel(_timestamps(start, n_bars, freq), symbols, open_, high, low, close, volume)


def synthetic_bars(
    n_symbols: int = 5,
    n_bars: int = 2520,
    *,
    seed: int = 0,
    start: str = "2000-01-03",
    freq: str = "1d",
    **params: float,
) -> pl.DataFrame:
    """The long form of ``synthetic_wide`` (same arguments, same numbers), timestamps in UTC.

    ``params`` are the model parameters of ``synthetic_wide`` (``calm_vol``, ``drift``, ...).
    """
    panel = synthetic_wide(n_symbols, n_bars, seed=seed, start=start, freq=freq, **params)
    return to_long(panel)
