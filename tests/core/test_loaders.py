"""Loaders on the real bundled files and on corrupted copies of data/ORCL.csv.

Row counts and first/last dates come from the table in data/README.md. Corruptions target
ORCL row 17 (line 18, 1995-01-25: open 2.104938, high 2.197531, low 2.086420, close 2.160494,
volume 67278400); its neighbour row 16 (1995-01-24) closed at 2.117284, which FFILL copies.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from core.data.loaders import expand_paths, load_bars, load_wide
from core.data.validation import BadBarAction
from core.errors import ConfigError, DataValidationError
from core.panel import BAR_COLUMNS, TIMESTAMP_DTYPE
from core.types import BadBarPolicy, BadBarRule

ORCL_ROWS = 5036  # data/README.md
ROW = 17  # the corrupted data row; line 18 of the file
ALL_POLICIES_BUT_RAISE = [BadBarPolicy.REJECT, BadBarPolicy.DROP, BadBarPolicy.FFILL]


# ---------------------------------------------------------------- helpers


def _orcl_lines(data_dir: Path) -> list[str]:
    """Lines of data/ORCL.csv without newlines; index 0 is the header, index r is data row r."""
    return (data_dir / "ORCL.csv").read_text().splitlines()


def _write(tmp_path: Path, lines: list[str]) -> Path:
    """Write a corrupted copy named ORCL.csv so the symbol stays ORCL."""
    path = tmp_path / "ORCL.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _set_field(lines: list[str], row: int, field: str, value: str) -> list[str]:
    """Replace one cell of a data row; fields are timestamp,open,high,low,close,volume."""
    names = lines[0].split(",")
    cells = lines[row].split(",")
    cells[names.index(field)] = value
    out = list(lines)
    out[row] = ",".join(cells)
    return out


def _corrupt(data_dir: Path, tmp_path: Path, fn: Callable[[list[str]], list[str]]) -> Path:
    """A copy of ORCL.csv with ``fn`` applied to its lines."""
    return _write(tmp_path, fn(_orcl_lines(data_dir)))


# Value corruptions of row 17, each with the rule it must break.
VALUE_CASES = {
    "nan_price": (lambda ls: _set_field(ls, ROW, "close", "NaN"), BadBarRule.NOT_FINITE),
    "zero_price": (lambda ls: _set_field(ls, ROW, "open", "0"), BadBarRule.NON_POSITIVE_PRICE),
    # high 2.0 < low 2.086420: the high-side range rule is the one checked first
    "high_below_low": (
        lambda ls: _set_field(ls, ROW, "high", "2.000000"),
        BadBarRule.HIGH_BELOW_OPEN_CLOSE,
    ),
    # 2.150000 is above open 2.104938 but below close 2.160494
    "high_below_close": (
        lambda ls: _set_field(ls, ROW, "high", "2.150000"),
        BadBarRule.HIGH_BELOW_OPEN_CLOSE,
    ),
    # 2.110000 is above open 2.104938 = min(open, close)
    "low_above_open": (
        lambda ls: _set_field(ls, ROW, "low", "2.110000"),
        BadBarRule.LOW_ABOVE_OPEN_CLOSE,
    ),
    "negative_volume": (
        lambda ls: _set_field(ls, ROW, "volume", "-100"),
        BadBarRule.NEGATIVE_VOLUME,
    ),
    "non_numeric": (lambda ls: _set_field(ls, ROW, "close", "abc"), BadBarRule.NON_NUMERIC),
    "empty_cell": (lambda ls: _set_field(ls, ROW, "volume", ""), BadBarRule.MISSING_VALUE),
}


# ---------------------------------------------------------------- real files


@pytest.mark.parametrize(
    ("name", "rows", "first", "last"),
    [
        ("ORCL", 5036, "1995-01-03", "2014-12-31"),
        ("NVDA", 4012, "1999-01-22", "2014-12-31"),
        ("YHOO", 4965, "1996-04-12", "2015-12-31"),
        ("ESTX50", 512, "2005-01-03", "2006-12-29"),
    ],
)
def test_load_bars_real_file_loads_all_rows_clean(
    data_dir: Path, name: str, rows: int, first: str, last: str
) -> None:
    df, report = load_bars(data_dir / f"{name}.csv")
    assert df.height == rows == report.rows_in == report.rows_out
    assert report.counts == {}
    assert df.columns == list(BAR_COLUMNS)
    assert df.schema["timestamp"] == TIMESTAMP_DTYPE
    assert all(df.schema[c] == pl.Float64 for c in ("open", "high", "low", "close", "volume"))
    assert df.get_column("symbol").unique().to_list() == [name]
    ts = df.get_column("timestamp")
    assert ts[0].date().isoformat() == first
    assert ts[-1].date().isoformat() == last


def test_load_bars_estx50_zero_volume_is_valid(data_dir: Path) -> None:
    df, report = load_bars(data_dir / "ESTX50.csv")
    assert df.height == 512
    assert (df.get_column("volume") == 0.0).all()  # README: volume is 0 on all 512 rows
    assert report.n_bad == 0


def test_load_bars_date_only_becomes_midnight_utc(data_dir: Path) -> None:
    df, _ = load_bars(data_dir / "ORCL.csv")
    assert df.get_column("timestamp")[0] == datetime(1995, 1, 3, tzinfo=UTC)
    assert df.row(0) == (
        datetime(1995, 1, 3, tzinfo=UTC),
        "ORCL",
        2.179012,
        2.191358,
        2.117284,
        2.117284,
        36301200.0,
    )  # line 2 of data/ORCL.csv


def test_load_bars_symbol_argument_overrides_stem(data_dir: Path) -> None:
    df, _ = load_bars(data_dir / "ORCL.csv", symbol="ORACLE")
    assert df.get_column("symbol").unique().to_list() == ["ORACLE"]


def test_load_bars_symbol_argument_with_several_files_raises_config_error(
    data_dir: Path,
) -> None:
    with pytest.raises(ConfigError, match="exactly one file"):
        load_bars([data_dir / "ORCL.csv", data_dir / "NVDA.csv"], symbol="X")


def test_load_bars_directory_loads_every_csv_sorted_by_name(data_dir: Path) -> None:
    assert [p.name for p in expand_paths(data_dir)] == [
        "ESTX50.csv",
        "NVDA.csv",
        "ORCL.csv",
        "YHOO.csv",
    ]  # README.md in the same directory is skipped
    df, report = load_bars(data_dir)
    assert df.height == 5036 + 4012 + 4965 + 512
    assert report.rows_out == df.height
    assert set(df.get_column("symbol").unique()) == {"ORCL", "NVDA", "YHOO", "ESTX50"}
    assert df.get_column("timestamp").is_sorted()


def test_load_wide_orders_symbols_by_path_order(data_dir: Path) -> None:
    panel, _ = load_wide([data_dir / "NVDA.csv", data_dir / "ORCL.csv"])
    assert panel.symbols == ("NVDA", "ORCL")
    assert panel.n_bars == 5036  # NVDA's dates are a subset of ORCL's (README: same date set)
    nvda_bars = (~pl.Series(panel.close[:, 0]).is_nan()).sum()
    assert nvda_bars == 4012


def test_load_bars_multi_symbol_long_csv_round_trips(data_dir: Path, tmp_path: Path) -> None:
    df, _ = load_bars([data_dir / "ORCL.csv", data_dir / "NVDA.csv"])
    path = tmp_path / "long.csv"
    df.write_csv(path)  # full tz-aware timestamps, e.g. 1995-01-03T00:00:00.000000+0000
    back, report = load_bars(path)
    assert back.equals(df)
    assert report.rows_in == 5036 + 4012


def test_load_bars_parquet_round_trips(data_dir: Path, tmp_path: Path) -> None:
    df, _ = load_bars(data_dir / "ESTX50.csv")
    path = tmp_path / "estx.parquet"
    df.write_parquet(path)
    back, _ = load_bars(path)
    assert back.equals(df)


def test_load_bars_parquet_without_symbol_column_uses_stem(data_dir: Path, tmp_path: Path) -> None:
    df, _ = load_bars(data_dir / "ESTX50.csv")
    path = tmp_path / "SX5E.pq"
    df.drop("symbol").write_parquet(path)
    back, _ = load_bars(path)
    assert back.get_column("symbol").unique().to_list() == ["SX5E"]
    assert back.drop("symbol").equals(df.drop("symbol"))


def test_load_bars_yahoo_header_aliases_and_adj_close_ignored(tmp_path: Path) -> None:
    path = tmp_path / "AAA.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2020-01-02,10,11,9,10.5,10.4,100\n"
        "2020-01-03,10.5,12,10,11,10.9,200\n"
    )
    df, _ = load_bars(path)
    assert df.columns == list(BAR_COLUMNS)
    assert df.get_column("close").to_list() == [10.5, 11.0]


def test_load_bars_ticker_alias_and_timezones_converted_to_utc(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(
        "datetime,ticker,open,high,low,close,volume\n"
        "2020-01-02T10:00:00+02:00,AAA,1,1,1,1,1\n"  # aware: 08:00 UTC
        "2020-01-02 10:00:00,AAA,1,1,1,1,1\n"  # naive: taken as UTC
    )
    df, _ = load_bars(path)
    assert df.get_column("timestamp").to_list() == [
        datetime(2020, 1, 2, 8, tzinfo=UTC),
        datetime(2020, 1, 2, 10, tzinfo=UTC),
    ]
    assert df.get_column("symbol").to_list() == ["AAA", "AAA"]


def test_load_bars_same_symbol_from_two_files_names_both(data_dir: Path, tmp_path: Path) -> None:
    shutil.copy(data_dir / "ORCL.csv", tmp_path / "ORCL.csv")
    load_bars(data_dir / "ORCL.csv")[0].write_parquet(tmp_path / "ORCL.parquet")
    with pytest.raises(DataValidationError) as info:
        load_bars(tmp_path)
    err = info.value
    assert (err.symbol, err.rule) == ("ORCL", "duplicate_symbol")
    assert str(tmp_path / "ORCL.csv") in str(err)
    assert str(tmp_path / "ORCL.parquet") in str(err)


def test_load_bars_unknown_suffix_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bars.txt"
    path.write_text("timestamp,open,high,low,close,volume\n")
    with pytest.raises(ConfigError, match=r"unknown suffix '\.txt'"):
        load_bars(path)


def test_load_bars_missing_path_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_bars(tmp_path / "nope.csv")


# ---------------------------------------------------------------- corrupted copies: RAISE


@pytest.mark.parametrize("case", list(VALUE_CASES))
def test_load_bars_raise_bad_value_names_file_row_symbol_rule(
    data_dir: Path, tmp_path: Path, case: str
) -> None:
    fn, rule = VALUE_CASES[case]
    path = _corrupt(data_dir, tmp_path, fn)
    with pytest.raises(DataValidationError) as info:
        load_bars(path)
    err = info.value
    assert type(err) is DataValidationError
    assert (err.file, err.row, err.symbol, err.rule) == (str(path), ROW, "ORCL", rule)
    msg = str(err)
    for part in (f"file {path}", f"row {ROW}", "symbol ORCL", f"rule {rule}", "line 18"):
        assert part in msg


def test_load_bars_raise_message_gives_offending_values(data_dir: Path, tmp_path: Path) -> None:
    path = _corrupt(data_dir, tmp_path, VALUE_CASES["high_below_close"][0])
    expected = r"high 2\.15 < max\(open 2\.104938, close 2\.160494\)"
    with pytest.raises(DataValidationError, match=expected):
        load_bars(path)


def test_load_bars_raise_non_numeric_quotes_the_cell(data_dir: Path, tmp_path: Path) -> None:
    path = _corrupt(data_dir, tmp_path, VALUE_CASES["non_numeric"][0])
    with pytest.raises(DataValidationError, match="close 'abc' is not a number"):
        load_bars(path)


def _duplicate_row(lines: list[str]) -> list[str]:
    """Line 18 repeated as line 19: the copy (data row 18) is the duplicate."""
    return [*lines[: ROW + 1], lines[ROW], *lines[ROW + 1 :]]


def _swap_rows(lines: list[str]) -> list[str]:
    """Rows 17 and 18 swapped: row 18 (1995-01-25) now follows 1995-01-26."""
    out = list(lines)
    out[ROW], out[ROW + 1] = out[ROW + 1], out[ROW]
    return out


@pytest.mark.parametrize(
    ("fn", "rule"),
    [(_duplicate_row, BadBarRule.DUPLICATE_TIMESTAMP), (_swap_rows, BadBarRule.OUT_OF_ORDER)],
)
def test_load_bars_raise_sequence_rule_points_at_later_row(
    data_dir: Path, tmp_path: Path, fn: Callable[[list[str]], list[str]], rule: BadBarRule
) -> None:
    path = _corrupt(data_dir, tmp_path, fn)
    with pytest.raises(DataValidationError) as info:
        load_bars(path)
    err = info.value
    assert (err.file, err.row, err.symbol, err.rule) == (str(path), ROW + 1, "ORCL", rule)
    assert "timestamp 1995-01-25" in str(err)


def test_load_bars_missing_column_names_it_and_columns_found(
    data_dir: Path, tmp_path: Path
) -> None:
    path = _corrupt(data_dir, tmp_path, lambda ls: [line.rsplit(",", 1)[0] for line in ls])
    with pytest.raises(DataValidationError) as info:
        load_bars(path)
    err = info.value
    assert (err.file, err.rule) == (str(path), "missing_column")
    assert "missing required column(s) volume" in str(err)
    assert "columns found: timestamp, open, high, low, close" in str(err)


@pytest.mark.parametrize("content", ["", "timestamp,open,high,low,close,volume\n"])
@pytest.mark.parametrize("policy", list(BadBarPolicy))
def test_load_bars_empty_or_header_only_file_raises(
    tmp_path: Path, content: str, policy: BadBarPolicy
) -> None:
    path = tmp_path / "ORCL.csv"
    path.write_text(content)
    with pytest.raises(DataValidationError, match="no rows") as info:
        load_bars(path, policy=policy)
    assert (info.value.file, info.value.rule) == (str(path), "empty_file")


@pytest.mark.parametrize("policy", list(BadBarPolicy))
def test_load_bars_unparseable_timestamp_raises_under_every_policy(
    data_dir: Path, tmp_path: Path, policy: BadBarPolicy
) -> None:
    path = _corrupt(data_dir, tmp_path, lambda ls: _set_field(ls, ROW, "timestamp", "1995-13-45"))
    with pytest.raises(DataValidationError, match="'1995-13-45'") as info:
        load_bars(path, policy=policy)
    assert (info.value.row, info.value.symbol, info.value.rule) == (
        ROW,
        "ORCL",
        "unparseable_timestamp",
    )


# ---------------------------------------------------------------- corrupted copies: policies


@pytest.mark.parametrize("case", list(VALUE_CASES))
@pytest.mark.parametrize("policy", [BadBarPolicy.REJECT, BadBarPolicy.DROP])
def test_load_bars_reject_or_drop_removes_the_bad_row(
    data_dir: Path, tmp_path: Path, case: str, policy: BadBarPolicy
) -> None:
    fn, rule = VALUE_CASES[case]
    path = _corrupt(data_dir, tmp_path, fn)
    df, report = load_bars(path, policy=policy)
    assert df.height == ORCL_ROWS - 1
    assert report.counts == {rule: 1}
    assert (report.rows_in, report.rows_out) == (ORCL_ROWS, ORCL_ROWS - 1)
    (bad,) = report.bad_bars
    assert (bad.file, bad.row, bad.symbol, bad.rule) == (str(path), ROW, "ORCL", rule)
    expected = BadBarAction.QUARANTINED if policy is BadBarPolicy.REJECT else BadBarAction.DROPPED
    assert bad.action is expected
    assert datetime(1995, 1, 25, tzinfo=UTC) not in df.get_column("timestamp").to_list()


@pytest.mark.parametrize("case", list(VALUE_CASES))
def test_load_bars_ffill_replaces_bad_bar_with_previous_close(
    data_dir: Path, tmp_path: Path, case: str
) -> None:
    fn, rule = VALUE_CASES[case]
    lines = _orcl_lines(data_dir)
    prev_close = float(lines[ROW - 1].split(",")[4])  # row 16 (1995-01-24) close: 2.117284
    path = _write(tmp_path, fn(lines))
    df, report = load_bars(path, policy=BadBarPolicy.FFILL)
    assert df.height == ORCL_ROWS
    assert report.counts == {rule: 1}
    assert report.bad_bars[0].action is BadBarAction.FILLED
    bar = df.row(ROW - 1, named=True)
    assert bar["timestamp"] == datetime(1995, 1, 25, tzinfo=UTC)
    assert [bar[c] for c in ("open", "high", "low", "close", "volume")] == [
        prev_close,
        prev_close,
        prev_close,
        prev_close,
        0.0,
    ]
    assert df.row(ROW, named=True)["close"] == float(lines[ROW + 1].split(",")[4])


def test_load_bars_ffill_bad_first_bar_is_dropped(data_dir: Path, tmp_path: Path) -> None:
    path = _corrupt(data_dir, tmp_path, lambda ls: _set_field(ls, 1, "close", "NaN"))
    df, report = load_bars(path, policy=BadBarPolicy.FFILL)
    assert df.height == ORCL_ROWS - 1
    assert report.bad_bars[0].action is BadBarAction.DROPPED
    assert df.get_column("timestamp")[0] == datetime(1995, 1, 4, tzinfo=UTC)


@pytest.mark.parametrize("policy", ALL_POLICIES_BUT_RAISE)
def test_load_bars_duplicate_date_later_row_removed(
    data_dir: Path, tmp_path: Path, policy: BadBarPolicy
) -> None:
    path = _corrupt(data_dir, tmp_path, _duplicate_row)  # 5037 rows
    df, report = load_bars(path, policy=policy)
    assert (report.rows_in, df.height) == (ORCL_ROWS + 1, ORCL_ROWS)
    assert report.counts == {BadBarRule.DUPLICATE_TIMESTAMP: 1}
    assert report.bad_bars[0].row == ROW + 1
    assert df.get_column("timestamp").is_unique().all()


@pytest.mark.parametrize("policy", ALL_POLICIES_BUT_RAISE)
def test_load_bars_out_of_order_row_removed(
    data_dir: Path, tmp_path: Path, policy: BadBarPolicy
) -> None:
    path = _corrupt(data_dir, tmp_path, _swap_rows)
    df, report = load_bars(path, policy=policy)
    assert df.height == ORCL_ROWS - 1
    assert report.counts == {BadBarRule.OUT_OF_ORDER: 1}
    assert report.bad_bars[0].row == ROW + 1
    assert datetime(1995, 1, 25, tzinfo=UTC) not in df.get_column("timestamp").to_list()


def test_load_bars_reject_logs_each_bad_bar(
    data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _corrupt(data_dir, tmp_path, VALUE_CASES["negative_volume"][0])
    with caplog.at_level(logging.WARNING, logger="raytrader.data"):
        load_bars(path, policy=BadBarPolicy.REJECT)
    first = caplog.records[0].getMessage()
    for part in (str(path), f"row {ROW}", "symbol ORCL", "rule negative_volume"):
        assert part in first


def test_load_bars_drop_logs_one_summary_line(
    data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def two_bad(ls: list[str]) -> list[str]:
        return _set_field(_set_field(ls, ROW, "close", "NaN"), ROW + 1, "open", "-1")

    path = _corrupt(data_dir, tmp_path, two_bad)
    with caplog.at_level(logging.WARNING, logger="raytrader.data"):
        df, report = load_bars(path, policy=BadBarPolicy.DROP)
    assert df.height == ORCL_ROWS - 2
    assert report.counts == {BadBarRule.NOT_FINITE: 1, BadBarRule.NON_POSITIVE_PRICE: 1}
    assert len(caplog.records) == 1
    assert "2 bad" in caplog.records[0].getMessage()
