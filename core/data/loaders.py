"""Load OHLCV bars from CSV/Parquet files or directories into the validated long form.

Every file gets ``_file`` and ``_row`` (1-based data row; row 1 is the line after a CSV header)
before validation, so an error names the exact file and row. Files are validated one by one,
in the order given (a directory's files sorted by name), then concatenated.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import polars as pl

from core.data.validation import ValidationReport, validate_bars
from core.errors import ConfigError, DataValidationError
from core.panel import BAR_COLUMNS, WidePanel, to_wide
from core.types import BadBarPolicy

__all__ = ["SUFFIXES", "expand_paths", "load_bars", "load_wide", "read_bar_file"]

PathArg = str | PathLike[str]

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
"""File suffixes (lower-cased) the loaders read, and their format."""

_ALIASES = {
    "timestamp": "timestamp",
    "date": "timestamp",
    "datetime": "timestamp",
    "time": "timestamp",
    "symbol": "symbol",
    "ticker": "symbol",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
}
_REQUIRED = tuple(c for c in BAR_COLUMNS if c != "symbol")
_DATE_ONLY = r"^\d{4}-\d{2}-\d{2}$"


def load_bars(
    paths: PathArg | Sequence[PathArg],
    *,
    symbol: str | None = None,
    policy: BadBarPolicy | str = BadBarPolicy.RAISE,
) -> tuple[pl.DataFrame, ValidationReport]:
    """Read, validate and concatenate bar files into one long frame sorted by timestamp.

    Args:
        paths: A .csv/.parquet/.pq file or a directory of them (sorted by name), or a sequence.
        symbol: Symbol for a single file without a ``symbol`` column; by default the file stem
            (``data/ORCL.csv`` -> ``ORCL``).
        policy: What to do with bad bars (see ``validate_bars``). An unparseable timestamp
            raises DataValidationError under every policy: the row cannot be placed in time.

    Returns:
        The long frame (symbols in order of first appearance within a timestamp) and the
        combined validation report.

    Raises:
        ConfigError: A path is missing or has an unknown suffix, or ``symbol`` is ambiguous.
        DataValidationError: A file is empty, lacks a column, has an unparseable timestamp,
            shares a symbol with another file, or (under RAISE) has a bad bar.
    """
    df, report, _ = _load(paths, symbol, policy)
    return df, report


def load_wide(
    paths: PathArg | Sequence[PathArg],
    *,
    symbol: str | None = None,
    policy: BadBarPolicy | str = BadBarPolicy.RAISE,
) -> tuple[WidePanel, ValidationReport]:
    """``load_bars`` then pivot to the wide form, symbols in order of first appearance."""
    df, report, order = _load(paths, symbol, policy)
    present = set(df.get_column("symbol").unique().to_list())
    return to_wide(df, [s for s in order if s in present]), report


def expand_paths(paths: PathArg | Sequence[PathArg]) -> list[Path]:
    """The files to read: each path as is, or a directory's csv/parquet files sorted by name."""
    items = [paths] if isinstance(paths, str | PathLike) else list(paths)
    if not items:
        raise ConfigError("no data paths given")
    files: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            found = sorted(
                p for p in item.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES
            )
            if not found:
                raise ConfigError(f"directory {item} has no {'/'.join(SUFFIXES)} files")
            files.extend(found)
        elif not item.exists():
            raise ConfigError(f"data path {item} does not exist")
        elif item.suffix.lower() not in SUFFIXES:
            raise ConfigError(
                f"data file {item} has unknown suffix {item.suffix!r}; "
                f"expected one of {', '.join(SUFFIXES)}"
            )
        else:
            files.append(item)
    return files


def read_bar_file(path: PathArg, *, symbol: str | None = None) -> pl.DataFrame:
    """Read one file to the long form (values as read, timestamps parsed) plus ``_row``/``_file``.

    Args:
        path: A .csv (read as text, so bad cells can be reported) or .parquet/.pq file.
        symbol: Symbol for a file without a ``symbol`` column; default the file stem.
    """
    path = Path(path)
    file = str(path)
    df = _read_raw(path)
    df = _canonical_columns(df, file)
    if "symbol" in df.columns:
        if symbol is not None:
            raise ConfigError(
                f"symbol={symbol!r} given, but {file} has its own symbol column; "
                "symbol= applies only to a single-symbol file"
            )
        df = df.with_columns(pl.col("symbol").cast(pl.String).str.strip_chars())
    else:
        df = df.with_columns(symbol=pl.lit(symbol if symbol is not None else path.stem))
    df = df.with_columns(
        _row=pl.int_range(1, df.height + 1, dtype=pl.Int64), _file=pl.lit(file, dtype=pl.String)
    )
    return df.with_columns(timestamp=_parse_timestamps(df, file)).select(
        *BAR_COLUMNS, "_row", "_file"
    )


def _read_raw(path: Path) -> pl.DataFrame:
    """The file's table as stored (CSV: all columns as strings); empty files are an error."""
    file = str(path)
    if path.stat().st_size == 0:
        raise DataValidationError(
            "file is empty (0 bytes): it has no rows", file=file, rule="empty_file"
        )
    try:
        if SUFFIXES[path.suffix.lower()] == "csv":
            df = pl.read_csv(path, infer_schema=False)
        else:
            df = pl.read_parquet(path)
    except pl.exceptions.PolarsError as exc:
        raise DataValidationError(f"cannot be read: {exc}", file=file, rule="unreadable") from exc
    if df.height == 0:
        raise DataValidationError(
            f"file has a header ({', '.join(df.columns)}) but no rows",
            file=file,
            rule="empty_file",
        )
    return df


def _canonical_columns(df: pl.DataFrame, file: str) -> pl.DataFrame:
    """Rename columns to the long-form names (case-insensitive, with aliases); drop the rest."""
    found = df.columns
    mapping: dict[str, str] = {}
    for col in found:
        name = _ALIASES.get(col.strip().lstrip("\ufeff").lower())
        if name is None:
            continue  # e.g. "Adj Close", "OpenInterest": not part of a bar
        if name in mapping.values():
            other = next(k for k, v in mapping.items() if v == name)
            raise DataValidationError(
                f"columns {other!r} and {col!r} both mean {name!r}",
                file=file,
                rule="duplicate_column",
            )
        mapping[col] = name
    missing = [c for c in _REQUIRED if c not in mapping.values()]
    if missing:
        raise DataValidationError(
            f"missing required column(s) {', '.join(missing)}; columns found: {', '.join(found)}",
            file=file,
            rule="missing_column",
        )
    return df.select(pl.col(k).alias(v) for k, v in mapping.items())


def _parse_timestamps(df: pl.DataFrame, file: str) -> pl.Series:
    """Timestamps as given (Date/Datetime) or parsed from ISO-8601 text; raise on bad text.

    Date-only text becomes midnight UTC, naive date-times are taken as UTC, and text with an
    offset is converted to UTC. Empty cells stay null (MISSING_VALUE, through the policy).
    """
    ts = df.get_column("timestamp")
    if ts.dtype == pl.Date or isinstance(ts.dtype, pl.Datetime):
        return ts
    if ts.dtype != pl.String:
        raise DataValidationError(
            f"timestamp column has dtype {ts.dtype}; expected date/datetime or ISO-8601 text",
            file=file,
            rule="unparseable_timestamp",
        )
    text = ts.str.strip_chars()
    text = pl.select(pl.when(text != "").then(text)).to_series()
    if text.drop_nulls().str.contains(_DATE_ONLY).all():
        parsed = text.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us"))
        parsed = parsed.dt.replace_time_zone("UTC")
    else:
        import pandas as pd  # here only: 0.35 s and 66 MiB a process, else paid by every actor

        as_pd = pd.to_datetime(text.to_pandas(), format="ISO8601", utc=True, errors="coerce")
        parsed = pl.Series("timestamp", as_pd).cast(pl.Datetime("us", "UTC"))
    bad = (text.is_not_null() & parsed.is_null()).arg_true()
    if bad.len():
        i = bad[0]
        raise DataValidationError(
            f"timestamp {text[i]!r} is not an ISO-8601 date or date-time",
            file=file,
            row=int(df.get_column("_row")[i]),
            symbol=df.get_column("symbol")[i],
            rule="unparseable_timestamp",
        )
    return parsed.alias("timestamp")


def _symbol_order(frames: list[pl.DataFrame], files: list[Path]) -> list[str]:
    """Symbols in order of first appearance across files; a symbol in two files is an error."""
    owner: dict[str, Path] = {}
    for frame, file in zip(frames, files, strict=True):
        for sym in frame.get_column("symbol").drop_nulls().unique(maintain_order=True):
            if sym in owner:
                raise DataValidationError(
                    f"symbol {sym} comes from both {owner[sym]} and {file}; "
                    "give each symbol one source",
                    file=str(file),
                    symbol=sym,
                    rule="duplicate_symbol",
                )
            owner[sym] = file
    return list(owner)


def _load(
    paths: PathArg | Sequence[PathArg], symbol: str | None, policy: BadBarPolicy | str
) -> tuple[pl.DataFrame, ValidationReport, list[str]]:
    """Shared body of the loaders; also returns symbols in order of first appearance by path."""
    files = expand_paths(paths)
    if symbol is not None and len(files) != 1:
        raise ConfigError(
            f"symbol={symbol!r} applies to exactly one file, but {len(files)} were given: "
            f"{', '.join(map(str, files))}"
        )
    frames = [read_bar_file(f, symbol=symbol) for f in files]
    order = _symbol_order(frames, files)
    results = [
        validate_bars(fr, policy=policy, source=str(f)) for fr, f in zip(frames, files, strict=True)
    ]
    source = str(files[0]) if len(files) == 1 else f"{len(files)} files"
    report = ValidationReport.combine([r for _, r in results], source=source)
    if len(results) == 1:
        return results[0][0], report, order
    rank = {s: i for i, s in enumerate(order)}
    df = (
        pl.concat([d for d, _ in results])
        .with_columns(_o=pl.col("symbol").replace_strict(rank, return_dtype=pl.Int64))
        .sort("timestamp", "_o", maintain_order=True)
        .drop("_o")
    )
    return df, report, order
