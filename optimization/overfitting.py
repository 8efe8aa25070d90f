"""Overfitting statistics: deflated Sharpe ratio and the probability of backtest overfitting.

Pure functions of arrays (no Ray, no strategy), each the formula of its paper:

- Bailey & Lopez de Prado (2014), "The Deflated Sharpe Ratio": the probabilistic Sharpe ratio
  ``PSR(SR*) = Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2))`` with sample
  skewness g3 and (non-excess) kurtosis g4 of the T returns, and the deflated one
  ``DSR = PSR(SR0)`` against the expected maximum Sharpe of N unskilled trials
  ``SR0 = sqrt(V[SR_n]) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e)))``,
  gamma the Euler-Mascheroni constant. Sharpe ratios here are per period (not annualized).
- Bailey, Borwein, Lopez de Prado & Zhu (2015), "The Probability of Backtest Overfitting":
  combinatorially symmetric cross-validation. The T x N matrix of per-period performance of N
  configurations is cut into S row blocks; for each of the C(S, S/2) choices of S/2 blocks as
  in-sample (the rest out-of-sample) the in-sample best configuration n* is found, its
  out-of-sample relative rank ``w = rank / (N + 1)`` (rank 1 = worst, ties ranked low) gives
  the logit ``l = ln(w / (1 - w))``, and PBO is the fraction of choices with ``l <= 0``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from core.errors import ConfigError

__all__ = [
    "EULER_GAMMA",
    "DeflatedSharpe",
    "Pbo",
    "deflated_sharpe",
    "expected_max_sharpe",
    "moments",
    "pbo_cscv",
    "probabilistic_sharpe",
    "sharpe",
]

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def sharpe(returns: np.ndarray, axis: int = 0) -> np.ndarray:
    """Per-period Sharpe ratio mean / std (ddof=1) along an axis; NaN where std is 0."""
    r = np.asarray(returns, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = r.std(axis=axis, ddof=1)
        return np.where(sd > 0, r.mean(axis=axis) / sd, np.nan)


def moments(returns: np.ndarray) -> tuple[float, float]:
    """Sample skewness m3 / m2^1.5 and kurtosis m4 / m2^2 (normal: 0 and 3), biased moments."""
    r = np.asarray(returns, dtype=np.float64)
    d = r - r.mean()
    m2 = float(np.mean(d**2))
    if m2 == 0:
        return 0.0, 3.0
    return float(np.mean(d**3)) / m2**1.5, float(np.mean(d**4)) / m2**2


def expected_max_sharpe(n_trials: int, var_sharpe: float) -> float:
    """SR0: the expected maximum per-period Sharpe of ``n_trials`` unskilled trials."""
    if n_trials < 1:
        raise ConfigError(f"n_trials={n_trials}: the deflated Sharpe needs at least one trial")
    if n_trials == 1 or var_sharpe <= 0:
        return 0.0
    z1 = _N.inv_cdf(1.0 - 1.0 / n_trials)
    z2 = _N.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(var_sharpe) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def probabilistic_sharpe(
    sr: float, sr_benchmark: float, n_obs: int, skew: float, kurtosis: float
) -> float:
    """PSR: the probability that the true per-period Sharpe exceeds ``sr_benchmark``."""
    if n_obs < 2:
        raise ConfigError(f"n_obs={n_obs}: the probabilistic Sharpe needs at least 2 returns")
    denom = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr**2
    if denom <= 0:
        return math.nan
    return _N.cdf((sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom))


@dataclass(frozen=True)
class DeflatedSharpe:
    """The deflated Sharpe ratio and what went into it (per-period Sharpe ratios)."""

    dsr: float
    sharpe: float
    sr0: float
    n_trials: int
    var_sharpe: float
    skew: float
    kurtosis: float
    n_obs: int


def deflated_sharpe(returns: np.ndarray, n_trials: int, var_sharpe: float) -> DeflatedSharpe:
    """DSR of a selected strategy's returns, given the number of trials and V[SR_n]."""
    r = np.asarray(returns, dtype=np.float64)
    sr = float(sharpe(r))
    skew, kurt = moments(r)
    sr0 = expected_max_sharpe(n_trials, var_sharpe)
    dsr = probabilistic_sharpe(sr, sr0, len(r), skew, kurt) if math.isfinite(sr) else math.nan
    return DeflatedSharpe(dsr, sr, sr0, n_trials, var_sharpe, skew, kurt, len(r))


@dataclass(frozen=True)
class Pbo:
    """PBO with the logits of every CSCV combination and the in-sample winners."""

    pbo: float
    logits: np.ndarray
    winners: np.ndarray
    n_splits: int
    n_configs: int


def _block_sums(perf: np.ndarray, n_splits: int) -> tuple[np.ndarray, np.ndarray, int]:
    n_rows = perf.shape[0] - perf.shape[0] % n_splits  # equal blocks: drop the oldest rows
    rows = perf[perf.shape[0] - n_rows :].reshape(n_splits, n_rows // n_splits, -1)
    return rows.sum(axis=1), (rows**2).sum(axis=1), n_rows // n_splits


def pbo_cscv(perf: np.ndarray, n_splits: int = 16, statistic: str = "sharpe") -> Pbo:
    """PBO by CSCV of a (T x N) per-period performance matrix (``statistic``: sharpe | mean).

    T is trimmed from the start to a multiple of ``n_splits``. A configuration whose
    statistic is undefined in a half (no variance) counts as 0 there.
    """
    perf = np.asarray(perf, dtype=np.float64)
    if perf.ndim != 2 or perf.shape[1] < 2:
        raise ConfigError(
            f"PBO needs a (T x N) matrix with N >= 2 configurations, got {perf.shape}"
        )
    if n_splits < 2 or n_splits % 2:
        raise ConfigError(f"PBO n_splits={n_splits} must be even and at least 2")
    if perf.shape[0] < max(n_splits, 4):
        raise ConfigError(
            f"PBO with {n_splits} splits needs at least {max(n_splits, 4)} periods, "
            f"got {perf.shape[0]}"
        )
    if statistic not in ("sharpe", "mean"):
        raise ConfigError(f"PBO statistic {statistic!r}: expected sharpe or mean")
    s1, s2, block = _block_sums(perf, n_splits)
    combos = list(itertools.combinations(range(n_splits), n_splits // 2))
    chosen = np.zeros((len(combos), n_splits))
    for c, blocks in enumerate(combos):
        chosen[c, list(blocks)] = 1.0

    def stat(sel: np.ndarray) -> np.ndarray:
        n = block * n_splits // 2
        mean = (sel @ s1) / n
        if statistic == "mean":
            return mean
        var = ((sel @ s2) - n * mean**2) / (n - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = mean / np.sqrt(var)
        out[~(var > 1e-300)] = 0.0
        return out

    is_stat, oos_stat = stat(chosen), stat(1.0 - chosen)
    winners = np.argmax(is_stat, axis=1)
    win_oos = oos_stat[np.arange(len(combos)), winners]
    rank = 1 + (oos_stat < win_oos[:, None]).sum(axis=1)
    omega = rank / (perf.shape[1] + 1.0)
    logits = np.log(omega / (1.0 - omega))
    return Pbo(float(np.mean(logits <= 0)), logits, winners, n_splits, perf.shape[1])
