"""Indicator and event kernels shared by the built-in strategies.

Every kernel is a ``*_nb`` numba function taking arrays and scalars only; rolling kernels accept
a 1-D series or a 2-D (time x symbol) array and work per column. NaN marks "not defined": a
window containing a NaN (a symbol not yet listed) gives NaN. Comparisons that create events
use a relative tolerance (``|a - b| <= tol * |b|`` is a tie) so float noise never trades.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = [
    "TOL",
    "cmp_tol_nb",
    "cross_event_nb",
    "cross_signal_batch_nb",
    "cross_signal_columns_nb",
    "cross_signal_nb",
    "level_cross_signal_nb",
    "rolling_max_nb",
    "rolling_min_nb",
    "rolling_std_nb",
    "sma_cross_into_nb",
    "sma_into_nb",
    "sma_nb",
    "sma_stack_nb",
    "wilder_rsi_nb",
]

#: Relative tolerance of every event comparison (docs/semantics.md).
TOL = 1e-10


@njit(cache=True, error_model="numpy")
def cmp_tol_nb(a: float, b: float, tol: float = TOL) -> int:
    """+1 if a > b, -1 if a < b, 0 for a tie (``|a - b| <= tol * |b|``) or a NaN operand."""
    if math.isnan(a) or math.isnan(b):
        return 0
    diff = a - b
    if abs(diff) <= tol * abs(b):
        return 0
    return 1 if diff > 0 else -1


@njit(cache=True, error_model="numpy")
def cross_event_nb(a_prev: float, b_prev: float, a: float, b: float, tol: float = TOL) -> int:
    """+1 if a crosses above b at this bar, -1 if below, 0 otherwise (all four must be defined).

    Up-cross: a > b now beyond the tolerance and a <= b at the previous bar (a tie counts as <=).
    """
    if math.isnan(a_prev) or math.isnan(b_prev) or math.isnan(a) or math.isnan(b):
        return 0
    now = cmp_tol_nb(a, b, tol)
    if now == 0:
        return 0
    before = cmp_tol_nb(a_prev, b_prev, tol)
    if now > 0 and before <= 0:
        return 1
    if now < 0 and before >= 0:
        return -1
    return 0


@njit(cache=True, error_model="numpy")
def _as_2d_nb(x: np.ndarray) -> np.ndarray:
    """A C-contiguous (time x columns) view of a 1-D or 2-D array."""
    xc = np.ascontiguousarray(x)
    n_rows = xc.shape[0]
    n_cols = xc.size // n_rows if n_rows > 0 else 0
    return xc.reshape((n_rows, n_cols))


#: Bars between exact re-sums of a rolling sum: bounds float drift at a negligible cost.
RESUM_EVERY = 1024


@njit(cache=True, error_model="numpy", inline="always")
def _sma_step_nb(
    x: np.ndarray, i: int, n: int, nan_count: int, total: float, fresh: bool, countdown: int
) -> tuple[float, int, float, bool, int]:
    """Advance a rolling-mean state by bar i; returns (mean or NaN, new state...).

    A running sum, summed exactly afresh at the first defined bar, after every gap and every
    RESUM_EVERY bars, so float drift cannot accumulate. Every SMA in raytrader follows it.
    """
    if math.isnan(x[i]):
        nan_count += 1
    if i >= n and math.isnan(x[i - n]):
        nan_count -= 1
    if i < n - 1:
        return np.nan, nan_count, total, fresh, countdown
    if nan_count > 0:
        return np.nan, nan_count, total, True, countdown
    countdown -= 1
    if fresh or countdown <= 0:
        total = 0.0
        for k in range(i - n + 1, i + 1):
            total += x[k]
        fresh = False
        countdown = RESUM_EVERY
    else:
        total += x[i] - x[i - n]
    return total / n, nan_count, total, fresh, countdown


@njit(cache=True, error_model="numpy")
def sma_into_nb(x: np.ndarray, n: int, out: np.ndarray) -> None:
    """Rolling mean of one series into ``out``: NaN until n bars exist and while the window
    holds a NaN (see ``_sma_step_nb``)."""
    nan_count, total, fresh, countdown = 0, 0.0, True, n
    for i in range(x.shape[0]):
        out[i], nan_count, total, fresh, countdown = _sma_step_nb(
            x, i, n, nan_count, total, fresh, countdown
        )


@njit(cache=True, error_model="numpy")
def _sma_cross_clean_nb(x: np.ndarray, fast: int, slow: int, out: np.ndarray, tol: float) -> bool:
    """``sma_cross_into_nb`` for a series without NaN: the same sums in the same order (so the
    same bits) as ``_sma_step_nb``, minus the gap bookkeeping. Returns False, leaving ``out``
    partly written, at the first NaN, so the caller needs no separate pass to look for one."""
    tf = 0.0
    ts = 0.0
    cf = 0  # defined bars left until the next exact re-sum
    cs = 0
    before = 2
    for i in range(x.shape[0]):
        xi = x[i]
        if xi != xi:
            return False
        if i >= fast - 1:
            cf -= 1
            if cf <= 0:
                tf = 0.0
                for k in range(i - fast + 1, i + 1):
                    tf += x[k]
                cf = RESUM_EVERY
            else:
                tf += xi - x[i - fast]
        if i < slow - 1:
            out[i] = np.nan
            continue
        cs -= 1
        if cs <= 0:
            ts = 0.0
            for k in range(i - slow + 1, i + 1):
                ts += x[k]
            cs = RESUM_EVERY
        else:
            ts += xi - x[i - slow]
        a = tf / fast
        b = ts / slow
        diff = a - b
        band = tol * abs(b)
        now = 1 if diff > band else (-1 if diff < -band else 0)
        value = np.nan
        if before != 2:
            if now > 0 and before <= 0:
                value = 1.0
            elif now < 0 and before >= 0:
                value = 0.0
        out[i] = value
        before = now
    return True


@njit(cache=True, error_model="numpy")
def sma_cross_into_nb(x: np.ndarray, fast: int, slow: int, out: np.ndarray, tol: float) -> None:
    """Crossover events of SMA(fast) over SMA(slow) of one series, in a single pass.

    Bit for bit what ``sma_into_nb`` twice plus ``cross_signal_nb`` give, without the
    intermediate arrays: the single-backtest path reads the prices once. Requires fast < slow.
    """
    if _sma_cross_clean_nb(x, fast, slow, out, tol):
        return
    nf, tf, ff, cf = 0, 0.0, True, fast
    ns, ts, fs, cs = 0, 0.0, True, slow
    before = 2
    for i in range(x.shape[0]):
        a, nf, tf, ff, cf = _sma_step_nb(x, i, fast, nf, tf, ff, cf)
        b, ns, ts, fs, cs = _sma_step_nb(x, i, slow, ns, ts, fs, cs)
        now = 2 if math.isnan(a) or math.isnan(b) else cmp_tol_nb(a, b, tol)
        value = np.nan
        if before != 2 and now != 2:
            if now > 0 and before <= 0:
                value = 1.0
            elif now < 0 and before >= 0:
                value = 0.0
        out[i] = value
        before = now


@njit(cache=True, error_model="numpy")
def sma_nb(x: np.ndarray, n: int) -> np.ndarray:
    """Rolling mean over ``n`` bars of a 1-D series or each column of a (T x N) array."""
    if n < 1:
        raise ValueError("sma_nb: window must be >= 1")
    x2 = _as_2d_nb(x)
    n_bars, n_cols = x2.shape
    out = np.empty((n_bars, n_cols))
    for j in range(n_cols):
        sma_into_nb(x2[:, j], n, out[:, j])
    return out.reshape(x.shape)


@njit(parallel=True, cache=True, error_model="numpy")
def sma_stack_nb(series: np.ndarray, windows: np.ndarray, out: np.ndarray) -> None:
    """Every window's SMA of every series: ``series`` (N x T), ``out`` (W x N x T), in parallel.

    The layout a column-major sweep reads: each (window, symbol) series is contiguous.
    """
    n_sym = series.shape[0]
    for k in prange(windows.shape[0] * n_sym):
        w = k // n_sym
        s = k % n_sym
        sma_into_nb(series[s], windows[w], out[w, s])


@njit(cache=True, error_model="numpy")
def _window_mean_m2_nb(x2: np.ndarray, j: int, start: int, stop: int) -> tuple[float, float]:
    """Exact two-pass mean and sum of squared deviations of ``x2[start:stop, j]``."""
    total = 0.0
    for k in range(start, stop):
        total += x2[k, j]
    mean = total / (stop - start)
    m2 = 0.0
    for k in range(start, stop):
        m2 += (x2[k, j] - mean) ** 2
    return mean, m2


@njit(cache=True, error_model="numpy")
def rolling_std_nb(x: np.ndarray, n: int) -> np.ndarray:
    """Rolling sample standard deviation (ddof=1) over ``n`` >= 2 bars, NaN like ``sma_nb``.

    Sliding Welford update, recomputed exactly (two-pass) every n bars and after every gap.
    """
    if n < 2:
        raise ValueError("rolling_std_nb: window must be >= 2")
    x2 = _as_2d_nb(x)
    n_bars, n_cols = x2.shape
    out = np.empty((n_bars, n_cols))
    for j in range(n_cols):
        nan_count = 0
        mean = 0.0
        m2 = 0.0
        fresh = True
        for i in range(n_bars):
            if math.isnan(x2[i, j]):
                nan_count += 1
            if i >= n and math.isnan(x2[i - n, j]):
                nan_count -= 1
            if i < n - 1 or nan_count > 0:
                out[i, j] = np.nan
                fresh = True
                continue
            if fresh or (i + 1) % n == 0:
                mean, m2 = _window_mean_m2_nb(x2, j, i - n + 1, i + 1)
                fresh = False
            else:
                new, old = x2[i, j], x2[i - n, j]
                new_mean = mean + (new - old) / n
                m2 += (new - old) * (new - new_mean + old - mean)
                mean = new_mean
            out[i, j] = math.sqrt(max(m2, 0.0) / (n - 1))
    return out.reshape(x.shape)


@njit(cache=True, error_model="numpy")
def _rolling_extreme_nb(x: np.ndarray, n: int, sign: float) -> np.ndarray:
    """Rolling max (sign=+1) or min (sign=-1) with a monotone deque: O(T) per column."""
    if n < 1:
        raise ValueError("rolling window must be >= 1")
    x2 = _as_2d_nb(x)
    n_bars, n_cols = x2.shape
    out = np.empty((n_bars, n_cols))
    queue = np.empty(n_bars, dtype=np.int64)
    for j in range(n_cols):
        head = 0
        tail = 0
        last_nan = -1
        for i in range(n_bars):
            v = x2[i, j]
            if math.isnan(v):
                last_nan = i
            else:
                while tail > head and sign * x2[queue[tail - 1], j] <= sign * v:
                    tail -= 1
                queue[tail] = i
                tail += 1
            while head < tail and queue[head] <= i - n:
                head += 1
            if i >= n - 1 and last_nan <= i - n and head < tail:
                out[i, j] = x2[queue[head], j]
            else:
                out[i, j] = np.nan
    return out.reshape(x.shape)


@njit(cache=True, error_model="numpy")
def rolling_max_nb(x: np.ndarray, n: int) -> np.ndarray:
    """Highest value of the last ``n`` bars (inclusive of the current one), NaN like ``sma_nb``."""
    return _rolling_extreme_nb(x, n, 1.0)


@njit(cache=True, error_model="numpy")
def rolling_min_nb(x: np.ndarray, n: int) -> np.ndarray:
    """Lowest value of the last ``n`` bars (inclusive of the current one), NaN like ``sma_nb``."""
    return _rolling_extreme_nb(x, n, -1.0)


@njit(cache=True, error_model="numpy")
def _rsi_value_nb(avg_gain: float, avg_loss: float) -> float:
    """RSI from Wilder averages; no losses gives 100 (or 50 when there are no gains either)."""
    if avg_loss == 0.0:
        return 100.0 if avg_gain > 0.0 else 50.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


@njit(cache=True, error_model="numpy")
def wilder_rsi_nb(close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's RSI per column: seeded with the simple mean of the first ``period`` changes.

    Then ``avg = avg * (1 - 1/p) + x / p``. NaN closes are skipped (their bar gets NaN and the
    next change is taken from the last valid close), so leading NaNs shift the seed.
    """
    if period < 1:
        raise ValueError("wilder_rsi_nb: period must be >= 1")
    x2 = _as_2d_nb(close)
    n_bars, n_cols = x2.shape
    out = np.empty((n_bars, n_cols))
    decay = 1.0 - 1.0 / period
    for j in range(n_cols):
        prev = np.nan
        count = 0
        avg_gain = 0.0
        avg_loss = 0.0
        for i in range(n_bars):
            c = x2[i, j]
            out[i, j] = np.nan
            if math.isnan(c):
                continue
            if math.isnan(prev):
                prev = c
                continue
            change = c - prev
            prev = c
            gain = change if change > 0.0 else 0.0
            loss = -change if change < 0.0 else 0.0
            count += 1
            if count <= period:
                avg_gain += gain
                avg_loss += loss
                if count < period:
                    continue
                avg_gain = avg_gain / period
                avg_loss = avg_loss / period
            else:
                avg_gain = avg_gain * decay + gain / period
                avg_loss = avg_loss * decay + loss / period
            out[i, j] = _rsi_value_nb(avg_gain, avg_loss)
    return out.reshape(close.shape)


@njit(cache=True, error_model="numpy")
def cross_signal_nb(a: np.ndarray, b: np.ndarray, out: np.ndarray, tol: float = TOL) -> None:
    """Event weights for "a crosses b" (T x N): 1.0 up-cross, 0.0 down-cross, NaN elsewhere."""
    n_bars, n_cols = a.shape
    if n_bars == 0:
        return
    for j in range(n_cols):
        before = 2  # comparison at t-1; 2 = undefined
        for t in range(n_bars):
            x = a[t, j]
            y = b[t, j]
            now = 2 if math.isnan(x) or math.isnan(y) else cmp_tol_nb(x, y, tol)
            value = np.nan
            if before != 2 and now != 2:
                if now > 0 and before <= 0:
                    value = 1.0
                elif now < 0 and before >= 0:
                    value = 0.0
            out[t, j] = value
            before = now


@njit(cache=True, error_model="numpy")
def cross_signal_batch_nb(
    stack: np.ndarray,
    fast_idx: np.ndarray,
    slow_idx: np.ndarray,
    out: np.ndarray,
    tol: float = TOL,
) -> None:
    """``cross_signal_nb`` for many pairs of precomputed series at once.

    ``stack`` is (W x T x N), one series per distinct window; pair p crosses
    ``stack[fast_idx[p]]`` over ``stack[slow_idx[p]]`` into ``out[:, p * N + s]``. Row-major
    order (bar, pair, symbol) keeps the reads in cache and the writes sequential; the sign of
    the previous bar is carried per column so each comparison is made once.
    """
    _, n_bars, n_sym = stack.shape
    n_pairs = fast_idx.shape[0]
    prev = np.full(n_pairs * n_sym, 2, dtype=np.int8)  # cmp at t-1; 2 = undefined
    for t in range(n_bars):
        for p in range(n_pairs):
            fast = stack[fast_idx[p], t]
            slow = stack[slow_idx[p], t]
            base = p * n_sym
            for s in range(n_sym):
                a = fast[s]
                b = slow[s]
                before = prev[base + s]
                now = 2 if math.isnan(a) or math.isnan(b) else cmp_tol_nb(a, b, tol)
                value = np.nan
                if before != 2 and now != 2:
                    if now > 0 and before <= 0:
                        value = 1.0
                    elif now < 0 and before >= 0:
                        value = 0.0
                out[t, base + s] = value
                prev[base + s] = now


@njit(parallel=True, cache=True, error_model="numpy")
def cross_signal_columns_nb(
    stack: np.ndarray,
    fast_idx: np.ndarray,
    slow_idx: np.ndarray,
    out: np.ndarray,
    tol: float = TOL,
) -> None:
    """``cross_signal_batch_nb`` for a column-major ``out``, one column per thread task.

    ``stack`` is (W x N x T): each window's series per symbol, contiguous in time, so every
    column reads two contiguous series and writes one contiguous column.
    """
    _, n_sym, n_bars = stack.shape
    n_cols = fast_idx.shape[0] * n_sym
    for col in prange(n_cols):
        p = col // n_sym
        s = col % n_sym
        fast = stack[fast_idx[p], s]
        slow = stack[slow_idx[p], s]
        before = 2
        for t in range(n_bars):
            a = fast[t]
            b = slow[t]
            now = 2 if math.isnan(a) or math.isnan(b) else cmp_tol_nb(a, b, tol)
            value = np.nan
            if before != 2 and now != 2:
                if now > 0 and before <= 0:
                    value = 1.0
                elif now < 0 and before >= 0:
                    value = 0.0
            out[t, col] = value
            before = now


@njit(cache=True, error_model="numpy")
def level_cross_signal_nb(
    x: np.ndarray, lower: float, upper: float, out: np.ndarray, tol: float = TOL
) -> None:
    """Oscillator events (T x N): 1.0 on a cross below ``lower``, 0.0 above ``upper``, else NaN.

    Both bars must be defined. Below L: ``x[t-1] >= L`` and ``x[t] < L``; above U:
    ``x[t-1] <= U`` and ``x[t] > U``.
    """
    n_bars, n_cols = x.shape
    if n_bars == 0:
        return
    for j in range(n_cols):
        out[0, j] = np.nan
    for t in range(1, n_bars):
        for j in range(n_cols):
            out[t, j] = np.nan
            before, now = x[t - 1, j], x[t, j]
            if math.isnan(before) or math.isnan(now):
                continue
            if cmp_tol_nb(before, lower, tol) >= 0 and cmp_tol_nb(now, lower, tol) < 0:
                out[t, j] = 1.0
            elif cmp_tol_nb(before, upper, tol) <= 0 and cmp_tol_nb(now, upper, tol) > 0:
                out[t, j] = 0.0
