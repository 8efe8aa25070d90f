"""SmaCrossover: hand-computed crosses, ties, warm-up, and the batch path against single runs."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigError
from core.panel import WidePanel
from strategies.sma_crossover import SmaCrossover

NAN = np.nan


def _panel(close: np.ndarray | list[float]) -> WidePanel:
    """A wide panel whose every price field is ``close`` (1-D: one symbol)."""
    c = np.asarray(close, dtype=np.float64)
    c = c[:, None] if c.ndim == 1 else c
    ts = np.arange(c.shape[0]).astype("datetime64[D]").astype("datetime64[us]")
    syms = tuple(f"S{i}" for i in range(c.shape[1]))
    return WidePanel(ts, syms, c, c, c, c, np.ones_like(c))


def _random_panel(n_bars: int, n_sym: int, seed: int) -> WidePanel:
    """GBM closes rounded to cents (so exact ties happen), with NaN leading bars per symbol."""
    rng = np.random.default_rng(seed)
    close = np.round(50 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_bars, n_sym)), axis=0)), 2)
    for s in range(n_sym):
        close[: int(rng.integers(0, n_bars // 3)), s] = NAN
    return _panel(close)


def _weights(close: list[float], fast: int, slow: int) -> np.ndarray:
    return SmaCrossover(fast=fast, slow=slow).checked_weights(_panel(close))[:, 0]


def test_hand_series_gives_down_then_up_cross() -> None:
    # close     10    11    12    11     10    9     10     12     13
    # SMA2       -  10.5  11.5  11.5   10.5   9.5   9.5   11.0   12.5
    # SMA3       -     -  11.0  11.33  11.0  10.0   9.67  10.33  11.67
    # fast-slow            +     +      -     -     -      +      +
    # t2 is the first bar with both SMAs: fast > slow there is a state, not a cross.
    w = _weights([10, 11, 12, 11, 10, 9, 10, 12, 13], fast=2, slow=3)
    np.testing.assert_array_equal(w, [NAN, NAN, NAN, NAN, 0.0, NAN, NAN, 1.0, NAN])


def test_nothing_is_bought_at_the_first_bar_both_smas_exist() -> None:
    w = _weights(list(range(1, 11)), fast=2, slow=3)  # fast > slow from the first defined bar
    assert np.isnan(w).all()


def test_exact_tie_is_no_cross() -> None:
    # fast=1, slow=2: fast - slow = (close[t] - close[t-1]) / 2, so an unchanged close is an
    # exact tie (SMA2 of 2, 2 is exactly 2). Below -> tie -> tie -> below never buys.
    w = _weights([3, 2, 2, 2, 1], fast=1, slow=2)
    np.testing.assert_array_equal(w, [NAN, NAN, NAN, NAN, 0.0])  # t4: tie -> below is a down
    # A tie followed by fast above slow is an up-cross (the tie counts as <=).
    np.testing.assert_array_equal(_weights([3, 2, 2, 5], 1, 2), [NAN, NAN, NAN, 1.0])


def test_difference_of_1e14_relative_is_a_tie_but_1e9_is_a_cross() -> None:
    # close 3, 2, 2*(1+2e-14): at t2 fast = 2(1+2e-14), slow = 2(1+1e-14): they differ,
    # but only by ~1e-14 relative, inside the 1e-10 tolerance.
    close = [3.0, 2.0, 2.0 * (1 + 2e-14)]
    strategy = SmaCrossover(fast=1, slow=2)
    fast, slow = close[2], (close[1] + close[2]) / 2
    assert fast != slow and abs(fast - slow) / slow < 2e-14
    assert np.isnan(strategy.target_weights(_panel(close))).all()
    np.testing.assert_array_equal(_weights([3.0, 2.0, 2.0 * (1 + 2e-9)], 1, 2), [NAN, NAN, 1.0])


def test_leading_nan_bars_delay_the_smas() -> None:
    # The symbol lists at t2, so SMA3 first exists at t4: no event can happen before t5.
    w = _weights([NAN, NAN, 5, 4, 3, 4, 6], fast=1, slow=3)
    # t4: close 3 < SMA3 4 (state); t5: 4 vs 11/3 -> above = up-cross; t6: 6 vs 13/3 above
    np.testing.assert_array_equal(w, [NAN, NAN, NAN, NAN, NAN, 1.0, NAN])


def test_grid_has_174_pairs_with_fast_below_slow() -> None:
    grid = list(SmaCrossover.grid())
    assert len(grid) == 174  # fast 5..50 step 5, slow 20..200 step 10, fast < slow
    assert grid[0] == {"fast": 5, "slow": 20} and grid[-1] == {"fast": 50, "slow": 200}
    assert all(p["fast"] < p["slow"] for p in grid)


def test_fast_not_below_slow_is_a_config_error_naming_both() -> None:
    with pytest.raises(ConfigError, match=r"fast=30.*slow=20"):
        SmaCrossover(fast=30, slow=20)
    with pytest.raises(ConfigError, match=r"fast=20.*slow=20"):
        SmaCrossover(fast=20, slow=20)


def test_lookback_is_slow_and_weights_are_events_in_range() -> None:
    strategy = SmaCrossover(fast=5, slow=40)
    assert strategy.lookback == 40
    w = strategy.checked_weights(_random_panel(600, 5, seed=1))
    values = set(np.unique(w[~np.isnan(w)]).tolist())
    assert values == {0.0, 1.0}
    assert np.nanmin(w) >= -1 and np.nanmax(w) <= 1


def test_batch_equals_individual_evaluation_bitwise() -> None:
    """Reference: ``target_weights`` of each of the 174 grid sets on its own."""
    panel = _random_panel(400, 6, seed=2)
    sets = list(SmaCrossover.grid())
    batch = SmaCrossover.target_weights_batch(panel, sets)
    assert batch.shape == (400, 6 * 174)
    n = panel.n_symbols
    for p, params in enumerate(sets):
        single = SmaCrossover(**params).target_weights(panel)
        block = np.ascontiguousarray(batch[:, p * n : (p + 1) * n])
        assert np.array_equal(block.view(np.uint64), single.view(np.uint64)), params
    assert np.isfinite(batch).sum() > 1000  # the comparison saw many events


def test_batch_writes_chunks_into_a_caller_buffer() -> None:
    panel = _random_panel(300, 4, seed=3)
    sets = list(SmaCrossover.grid())
    whole = SmaCrossover.target_weights_batch(panel, sets)
    n = panel.n_symbols
    buffer = np.full((300, n * len(sets)), -7.0)
    for lo in range(0, len(sets), 50):
        hi = min(lo + 50, len(sets))
        view = buffer[:, lo * n : hi * n]  # a strided view: the kernel writes in place
        returned = SmaCrossover.target_weights_batch(panel, sets[lo:hi], out=view)
        assert returned is view
    np.testing.assert_array_equal(buffer, whole)


def test_batch_rejects_a_wrong_buffer_and_invalid_sets() -> None:
    panel = _random_panel(50, 2, seed=4)
    with pytest.raises(ConfigError, match="expected"):
        SmaCrossover.target_weights_batch(panel, [{"fast": 5, "slow": 20}], out=np.empty((50, 3)))
    with pytest.raises(ConfigError, match=r"fast=20.*slow=10"):
        SmaCrossover.target_weights_batch(panel, [{"fast": 20, "slow": 10}])
    assert SmaCrossover.target_weights_batch(panel, []).shape == (50, 0)


@pytest.mark.parametrize("column_major", [True, False])
def test_a_shared_cache_computes_each_window_once_and_changes_nothing(column_major) -> None:
    """Reference: the same sets without a cache. Chunks in a shuffled order add only the
    windows they lack to one cache (as a sweep worker's calls do); results stay bitwise equal."""
    panel = _random_panel(300, 4, seed=5)
    sets = list(SmaCrossover.grid())
    order = np.random.default_rng(0).permutation(len(sets))
    cache: dict = {}
    for lo in range(0, len(sets), 23):
        chunk = [sets[i] for i in order[lo : lo + 23]]
        n_cols = len(chunk) * panel.n_symbols
        out = np.empty((300, n_cols), order="F" if column_major else "C")
        got = SmaCrossover.target_weights_batch(panel, chunk, out=out, cache=cache)
        want = SmaCrossover.target_weights_batch(panel, chunk)
        np.testing.assert_array_equal(got, want)
    stack, where = cache[("sma_stack", column_major)]
    windows = {p["fast"] for p in sets} | {p["slow"] for p in sets}
    assert set(where) == windows and stack.shape[0] >= len(windows)  # each window once
    # (the cached buffer grows by doubling; rows past the windows held are spare capacity)
    assert sorted(where.values()) == list(range(len(windows)))
