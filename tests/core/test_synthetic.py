"""Synthetic panels: determinism, validity, shape, timestamps and the volatility model."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from core.data.synthetic import periods_per_year, synthetic_bars, synthetic_wide
from core.data.validation import validate_bars
from core.panel import BAR_COLUMNS, TIMESTAMP_DTYPE, to_long

FIELDS = ("open", "high", "low", "close", "volume")


def test_synthetic_wide_same_seed_gives_identical_output() -> None:
    a, b = synthetic_wide(3, 500, seed=7), synthetic_wide(3, 500, seed=7)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    np.testing.assert_array_equal(a.timestamps, b.timestamps)


def test_synthetic_wide_different_seeds_differ() -> None:
    a, b = synthetic_wide(3, 500, seed=1), synthetic_wide(3, 500, seed=2)
    assert not np.array_equal(a.close, b.close)


def test_synthetic_bars_is_the_long_form_of_synthetic_wide() -> None:
    df = synthetic_bars(4, 300, seed=3)
    assert df.equals(to_long(synthetic_wide(4, 300, seed=3)))
    assert df.columns == list(BAR_COLUMNS)
    assert df.schema["timestamp"] == TIMESTAMP_DTYPE
    assert df.height == 4 * 300


@pytest.mark.parametrize(("n_symbols", "n_bars", "freq"), [(20, 2520, "1d"), (2, 5000, "1min")])
def test_synthetic_bars_pass_strict_validation(n_symbols: int, n_bars: int, freq: str) -> None:
    df = synthetic_bars(n_symbols, n_bars, seed=11, freq=freq)
    out, report = validate_bars(df)  # RAISE: any bad bar would raise
    assert report.n_bad == 0
    assert out.height == n_symbols * n_bars
    assert (df.get_column("volume") > 0).all()


def test_synthetic_wide_shape_and_symbol_names() -> None:
    panel = synthetic_wide(12, 250)
    assert panel.close.shape == (250, 12)
    assert panel.symbols[:3] == ("SYN000", "SYN001", "SYN002")
    assert panel.symbols[-1] == "SYN011"


def test_synthetic_wide_daily_timestamps_are_business_days() -> None:
    panel = synthetic_wide(1, 10, start="2000-01-01")  # a Saturday: rolls to Monday 01-03
    days = panel.timestamps.astype("datetime64[D]")
    assert str(days[0]) == "2000-01-03"
    assert str(days[5]) == "2000-01-10"  # Mon..Fri then the next Monday
    assert np.is_busday(days).all()
    assert panel.timestamps.dtype == np.dtype("datetime64[us]")


def test_synthetic_wide_intraday_timestamps_are_consecutive() -> None:
    panel = synthetic_wide(1, 4, start="2020-01-03 09:30", freq="5min")
    assert [str(t) for t in panel.timestamps.astype("datetime64[m]")] == [
        "2020-01-03T09:30",
        "2020-01-03T09:35",
        "2020-01-03T09:40",
        "2020-01-03T09:45",
    ]


def test_synthetic_wide_bad_freq_raises_value_error() -> None:
    with pytest.raises(ValueError, match="freq"):
        synthetic_wide(1, 10, freq="weekly")


def test_synthetic_wide_realised_vol_between_calm_and_turbulent() -> None:
    # defaults: calm 0.15, turbulent 0.45, p(calm->turb) 0.02, p(turb->calm) 0.10, so the
    # stationary turbulent share is 0.02 / 0.12 = 1/6 and the mixture's annual vol is
    # sqrt(5/6 * 0.15**2 + 1/6 * 0.45**2) = 0.229
    calm, turbulent = 0.15, 0.45
    panel = synthetic_wide(4, 20_000, seed=5, calm_vol=calm, turbulent_vol=turbulent)
    log_ret = np.diff(np.log(panel.close), axis=0)
    vol = log_ret.std(axis=0) * np.sqrt(periods_per_year("1d"))
    assert ((vol > calm) & (vol < turbulent)).all()
    assert vol.mean() == pytest.approx(np.sqrt(5 / 6 * calm**2 + 1 / 6 * turbulent**2), rel=0.05)


def test_synthetic_wide_symbols_are_positively_correlated() -> None:
    panel = synthetic_wide(5, 5000, seed=2, correlation=0.5)
    corr = np.corrcoef(np.diff(np.log(panel.close), axis=0).T)
    off_diagonal = corr[~np.eye(5, dtype=bool)]
    assert (off_diagonal > 0.2).all()


def test_synthetic_wide_builds_the_benchmark_shapes() -> None:
    big = synthetic_wide(1, 1_000_000, freq="1min")
    wide = synthetic_wide(100, 2520)
    assert big.close.shape == (1_000_000, 1)
    assert wide.close.shape == (2520, 100)
    assert not pl.Series(big.close[:, 0]).is_nan().any()
