"""check_bar and validate_bars on small hand-built frames (every expected number is in the test)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone

import polars as pl
import pytest

from core.data.validation import (
    MAX_BAD_BARS,
    BadBarAction,
    ValidationReport,
    check_bar,
    validate_bars,
)
from core.errors import DataValidationError
from core.panel import BAR_COLUMNS, TIMESTAMP_DTYPE
from core.types import BadBarPolicy, BadBarRule

NAN, INF = math.nan, math.inf


def _frame(rows: list[tuple]) -> pl.DataFrame:
    """Long frame from (day, symbol, open, high, low, close, volume); day n is 2020-01-01 + n."""
    base = datetime(2020, 1, 1)
    data = {c: [r[i] for r in rows] for i, c in enumerate(BAR_COLUMNS)}
    data["timestamp"] = [None if d is None else base + timedelta(days=d) for d in data["timestamp"]]
    schema = {"timestamp": pl.Datetime("us"), "symbol": pl.String}
    schema.update({c: pl.Float64 for c in BAR_COLUMNS[2:]})
    return pl.DataFrame(data, schema=schema)


def _bar(day: int | None, close: float = 10.0, sym: str = "A") -> tuple:
    """A valid bar closing at ``close`` with a 1-wide range around it."""
    return (day, sym, close, close + 1, close - 1, close, 100.0)


# ---------------------------------------------------------------- check_bar


@pytest.mark.parametrize(
    ("bar", "rule"),
    [
        ((10, 11, 9, 10.5, 100), None),
        ((10, 10, 10, 10, 0), None),  # flat bar, zero volume: valid (ESTX50 has volume 0)
        ((NAN, 11, 9, 10, 100), BadBarRule.NOT_FINITE),
        ((10, 11, 9, 10, INF), BadBarRule.NOT_FINITE),
        ((NAN, 0, -1, 10, -5), BadBarRule.NOT_FINITE),  # NaN outranks every other rule
        ((0, 11, 9, 10, 100), BadBarRule.NON_POSITIVE_PRICE),
        ((10, 11, -9, 10, -5), BadBarRule.NON_POSITIVE_PRICE),  # outranks range and volume
        ((10, 10.4, 9, 10.5, 100), BadBarRule.HIGH_BELOW_OPEN_CLOSE),  # high < close
        ((10, 8, 9, 9.5, 100), BadBarRule.HIGH_BELOW_OPEN_CLOSE),  # high < low: high rule first
        ((10, 11, 9.6, 9.5, 100), BadBarRule.LOW_ABOVE_OPEN_CLOSE),  # low > close
        ((10, 11, 10.2, 10.5, -1), BadBarRule.LOW_ABOVE_OPEN_CLOSE),  # outranks volume
        ((10, 11, 9, 10.5, -1), BadBarRule.NEGATIVE_VOLUME),
        ((None, 11, 9, 10.5, 1), BadBarRule.MISSING_VALUE),
        (("x", 11, 9, 10.5, 1), BadBarRule.NON_NUMERIC),
    ],
)
def test_check_bar_returns_first_broken_rule_in_priority_order(
    bar: tuple, rule: BadBarRule | None
) -> None:
    assert check_bar(*bar) is rule


# ---------------------------------------------------------------- validate_bars basics


def test_validate_bars_clean_frame_passes_unchanged_and_sorted() -> None:
    df = _frame([_bar(0, 10, "B"), _bar(0, 20, "A"), _bar(1, 11, "B"), _bar(1, 21, "A")])
    out, report = validate_bars(df)
    assert out.columns == list(BAR_COLUMNS)
    assert out.schema["timestamp"] == TIMESTAMP_DTYPE
    # timestamp first, then symbols in order of first appearance (B before A)
    assert out.get_column("symbol").to_list() == ["B", "A", "B", "A"]
    assert out.get_column("close").to_list() == [10.0, 20.0, 11.0, 21.0]
    assert (report.rows_in, report.rows_out, report.counts) == (4, 4, {})
    assert report.summary() == "4 rows in, 4 out; 0 bad (none); policy raise"


def test_validate_bars_date_and_aware_timestamps_normalised_to_utc() -> None:
    as_date = pl.DataFrame(
        {"timestamp": [date(2020, 1, 2)], "symbol": ["A"],
         **{c: [1.0] for c in BAR_COLUMNS[2:]}}
    )  # fmt: skip
    out, _ = validate_bars(as_date)
    assert out.get_column("timestamp").to_list() == [datetime(2020, 1, 2, tzinfo=UTC)]
    plus2 = timezone(timedelta(hours=2))
    aware = as_date.with_columns(
        timestamp=pl.lit(datetime(2020, 1, 2, 10)).dt.replace_time_zone("Etc/GMT-2")
    )
    out, _ = validate_bars(aware)
    assert out.get_column("timestamp")[0] == datetime(2020, 1, 2, 10, tzinfo=plus2)
    assert out.get_column("timestamp")[0].hour == 8  # 10:00 at UTC+2 is 08:00 UTC


def test_validate_bars_missing_column_raises_data_validation_error() -> None:
    df = _frame([_bar(0)]).drop("volume")
    with pytest.raises(DataValidationError) as info:
        validate_bars(df, source="feed")
    assert (info.value.file, info.value.rule) == ("feed", "missing_column")


def test_validate_bars_string_values_flag_non_numeric_and_missing() -> None:
    df = _frame([_bar(0), _bar(1), _bar(2)]).with_columns(pl.col("close").cast(pl.String))
    df = df.with_columns(close=pl.Series(["10", " abc ", ""]), volume=pl.Series([1.0, 1.0, 1.0]))
    _, report = validate_bars(df, policy=BadBarPolicy.DROP)
    assert report.counts == {BadBarRule.MISSING_VALUE: 1, BadBarRule.NON_NUMERIC: 1}
    assert [b.detail for b in report.bad_bars] == [
        "close 'abc' is not a number",
        "missing value in close",
    ]


# ---------------------------------------------------------------- RAISE


def test_validate_bars_raise_reports_first_bad_row_in_input_order() -> None:
    df = _frame([_bar(0), (1, "A", 10, 9, 8, 10, 1), (2, "A", 10, 11, 9, 10, -1)])
    df = df.with_columns(_row=pl.Series([5, 6, 7]), _file=pl.lit("x.parquet"))
    with pytest.raises(DataValidationError) as info:
        validate_bars(df)
    err = info.value
    assert (err.file, err.row, err.symbol, err.rule) == (
        "x.parquet",
        6,
        "A",
        BadBarRule.HIGH_BELOW_OPEN_CLOSE,
    )
    assert "high 9 < max(open 10, close 10)" in str(err)
    assert "line" not in str(err)  # only CSV files have lines


# ---------------------------------------------------------------- sequence rules


def test_validate_bars_out_of_order_drops_until_strictly_increasing() -> None:
    # days 0,1,2,10,4,5,6,11: rows 5-7 are each earlier than day 10, so all three go
    days = [0, 1, 2, 10, 4, 5, 6, 11]
    df = _frame([_bar(d) for d in days])
    out, report = validate_bars(df, policy=BadBarPolicy.DROP)
    assert out.height == 5
    assert report.counts == {BadBarRule.OUT_OF_ORDER: 3}
    assert [b.row for b in report.bad_bars] == [5, 6, 7]
    ts = out.get_column("timestamp")
    assert (ts.diff().drop_nulls().dt.total_days() > 0).all()


def test_validate_bars_duplicate_keeps_first_and_is_per_symbol() -> None:
    df = _frame([_bar(0, 10), _bar(0, 99, "B"), _bar(0, 11), _bar(1, 12)])
    out, report = validate_bars(df, policy=BadBarPolicy.FFILL)
    assert report.counts == {BadBarRule.DUPLICATE_TIMESTAMP: 1}
    assert report.bad_bars[0].row == 3
    assert report.bad_bars[0].action is BadBarAction.DROPPED
    assert out.filter(pl.col("symbol") == "A").get_column("close").to_list() == [10.0, 12.0]
    assert out.height == 3


def test_validate_bars_null_timestamp_is_missing_value() -> None:
    df = _frame([_bar(0), _bar(None), _bar(1)])
    out, report = validate_bars(df, policy=BadBarPolicy.FFILL)
    assert out.height == 2
    assert report.counts == {BadBarRule.MISSING_VALUE: 1}
    assert report.bad_bars[0].action is BadBarAction.DROPPED  # cannot be placed in time


# ---------------------------------------------------------------- FFILL


def test_validate_bars_ffill_consecutive_bad_bars_use_last_valid_close() -> None:
    df = _frame([
        _bar(0, 10), (1, "A", NAN, 1, 1, 1, 1), (2, "A", 0, 1, 1, 1, 1), _bar(3, 12),
        _bar(0, 50, "B"), (1, "B", 50, 40, 45, 50, 1),
    ])  # fmt: skip
    out, report = validate_bars(df, policy=BadBarPolicy.FFILL)
    a = out.filter(pl.col("symbol") == "A")
    assert a.get_column("close").to_list() == [10.0, 10.0, 10.0, 12.0]
    assert a.row(1)[2:] == (10.0, 10.0, 10.0, 10.0, 0.0)
    b = out.filter(pl.col("symbol") == "B")
    assert b.row(1)[2:] == (50.0, 50.0, 50.0, 50.0, 0.0)  # B's own previous close
    assert report.counts == {
        BadBarRule.NOT_FINITE: 1,
        BadBarRule.NON_POSITIVE_PRICE: 1,
        BadBarRule.HIGH_BELOW_OPEN_CLOSE: 1,
    }
    assert {b.action for b in report.bad_bars} == {BadBarAction.FILLED}
    assert report.rows_out == 6


# ---------------------------------------------------------------- report


def test_validate_bars_report_caps_listed_bars_but_counts_all() -> None:
    n = MAX_BAD_BARS + 5
    df = pl.DataFrame({
        "timestamp": pl.datetime_range(
            datetime(2020, 1, 1), datetime(2020, 1, 1) + timedelta(minutes=n - 1), "1m",
            eager=True,
        ),
        "symbol": ["A"] * n, "open": [1.0] * n, "high": [1.0] * n, "low": [1.0] * n,
        "close": [1.0] * n, "volume": [-1.0] * n,
    })  # fmt: skip
    out, report = validate_bars(df, policy=BadBarPolicy.DROP)
    assert out.height == 0
    assert report.counts == {BadBarRule.NEGATIVE_VOLUME: n}
    assert len(report.bad_bars) == MAX_BAD_BARS
    assert report.truncated


def test_validation_report_combine_adds_counts_in_order() -> None:
    one = validate_bars(_frame([_bar(0), (1, "A", 1, 1, 1, 1, -1)]), policy="drop")[1]
    two = validate_bars(_frame([_bar(0, sym="B"), _bar(0, sym="B")]), policy="drop")[1]
    both = ValidationReport.combine([one, two], source="2 files")
    assert (both.rows_in, both.rows_out) == (4, 2)
    assert both.counts == {BadBarRule.NEGATIVE_VOLUME: 1, BadBarRule.DUPLICATE_TIMESTAMP: 1}
    assert [b.symbol for b in both.bad_bars] == ["A", "B"]
    assert both.summary().startswith("2 files: 4 rows in, 2 out; 2 bad")
