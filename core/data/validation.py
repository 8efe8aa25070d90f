"""Bar validation: one cheap scalar check for live bars and a vectorized pass for whole files.

Rules (``core.types.BadBarRule``), per bar in priority order: missing value, non-numeric cell,
NaN/inf, price <= 0, high < max(open, close), low > min(open, close), volume < 0; per symbol, in
input (file) order: a timestamp equal to an earlier row's (duplicate) or earlier than any earlier
row's (out of order). A row breaking a sequence rule is reported under that rule, because it is
removed whatever its values are. What happens to bad rows is the ``BadBarPolicy``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import polars as pl

from core.errors import DataValidationError
from core.panel import BAR_COLUMNS, PRICE_COLUMNS, TIMESTAMP_DTYPE
from core.types import BadBarPolicy, BadBarRule

__all__ = [
    "MAX_BAD_BARS",
    "BadBar",
    "BadBarAction",
    "ValidationReport",
    "check_bar",
    "normalize_timestamps",
    "validate_bars",
]

logger = logging.getLogger("raytrader.data")

MAX_BAD_BARS = 10_000
"""How many bad bars a report lists; its counts stay exact beyond this."""

VALUE_COLUMNS = (*PRICE_COLUMNS, "volume")
_SEQUENCE_RULES = (BadBarRule.DUPLICATE_TIMESTAMP, BadBarRule.OUT_OF_ORDER)
_RULE_WORDS = {
    BadBarRule.MISSING_VALUE: "a value is missing",
    BadBarRule.NON_NUMERIC: "a value is not a number",
    BadBarRule.NOT_FINITE: "a value is NaN or infinite",
    BadBarRule.NON_POSITIVE_PRICE: "a price is zero or negative",
    BadBarRule.HIGH_BELOW_OPEN_CLOSE: "high is below max(open, close)",
    BadBarRule.LOW_ABOVE_OPEN_CLOSE: "low is above min(open, close)",
    BadBarRule.NEGATIVE_VOLUME: "volume is negative",
    BadBarRule.DUPLICATE_TIMESTAMP: "timestamp repeats an earlier row of the same symbol",
    BadBarRule.OUT_OF_ORDER: "timestamp is earlier than an earlier row of the same symbol",
}


class BadBarAction(StrEnum):
    """What validation did with a bad bar."""

    QUARANTINED = "quarantined"
    DROPPED = "dropped"
    FILLED = "filled"


@dataclass(frozen=True)
class BadBar:
    """One bad row: where it came from, which rule it broke, the values, and what was done."""

    file: str | None
    row: int | None
    symbol: str | None
    timestamp: datetime | None
    rule: BadBarRule
    detail: str
    action: BadBarAction


@dataclass(frozen=True)
class ValidationReport:
    """Outcome of validating a frame: exact counts per rule and the first bad bars, in order."""

    rows_in: int
    rows_out: int
    policy: BadBarPolicy
    counts: dict[BadBarRule, int] = field(default_factory=dict)
    bad_bars: list[BadBar] = field(default_factory=list)
    source: str | None = None

    @property
    def n_bad(self) -> int:
        """Total number of bad rows (removed or replaced)."""
        return sum(self.counts.values())

    @property
    def truncated(self) -> bool:
        """Whether ``bad_bars`` lists fewer rows than ``n_bad`` (capped at ``MAX_BAD_BARS``)."""
        return len(self.bad_bars) < self.n_bad

    def summary(self) -> str:
        """One line: rows in and out, bad rows per rule, and the policy applied."""
        where = f"{self.source}: " if self.source else ""
        rules = ", ".join(f"{rule} {n}" for rule, n in self.counts.items()) or "none"
        return (
            f"{where}{self.rows_in} rows in, {self.rows_out} out; "
            f"{self.n_bad} bad ({rules}); policy {self.policy}"
        )

    @classmethod
    def combine(
        cls, reports: list[ValidationReport], source: str | None = None
    ) -> ValidationReport:
        """Merge per-file reports, in the given order, into one."""
        counts: dict[BadBarRule, int] = {}
        bad: list[BadBar] = []
        for rep in reports:
            for rule, n in rep.counts.items():
                counts[rule] = counts.get(rule, 0) + n
            bad.extend(rep.bad_bars)
        policy = reports[0].policy if reports else BadBarPolicy.RAISE
        return cls(
            rows_in=sum(r.rows_in for r in reports),
            rows_out=sum(r.rows_out for r in reports),
            policy=policy,
            counts=_ordered_counts(counts),
            bad_bars=bad[:MAX_BAD_BARS],
            source=source,
        )


def check_bar(
    open: float, high: float, low: float, close: float, volume: float
) -> BadBarRule | None:
    """The first per-bar rule a bar breaks, or None; cheap and pure so it runs on every live bar."""
    try:
        finite = (
            math.isfinite(open)
            and math.isfinite(high)
            and math.isfinite(low)
            and math.isfinite(close)
            and math.isfinite(volume)
        )
    except TypeError:
        if None in (open, high, low, close, volume):
            return BadBarRule.MISSING_VALUE
        return BadBarRule.NON_NUMERIC
    if not finite:
        return BadBarRule.NOT_FINITE
    if open <= 0 or high <= 0 or low <= 0 or close <= 0:
        return BadBarRule.NON_POSITIVE_PRICE
    if high < (open if open > close else close):
        return BadBarRule.HIGH_BELOW_OPEN_CLOSE
    if low > (open if open < close else close):
        return BadBarRule.LOW_ABOVE_OPEN_CLOSE
    if volume < 0:
        return BadBarRule.NEGATIVE_VOLUME
    return None


def normalize_timestamps(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Cast a Date/Datetime expression to UTC microseconds: naive means UTC, aware is converted."""
    if dtype == pl.Date:
        return expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if isinstance(dtype, pl.Datetime):
        expr = expr.dt.cast_time_unit("us")
        if dtype.time_zone is None:
            return expr.dt.replace_time_zone("UTC")
        return expr.dt.convert_time_zone("UTC")
    raise TypeError(f"timestamp column has dtype {dtype}, expected Date or Datetime")


def validate_bars(
    df: pl.DataFrame,
    *,
    policy: BadBarPolicy | str = BadBarPolicy.RAISE,
    source: str | None = None,
) -> tuple[pl.DataFrame, ValidationReport]:
    """Check every row of a long frame and apply ``policy`` to the bad ones.

    Args:
        df: Long form (``timestamp, symbol, open, high, low, close, volume``), optionally with
            ``_row`` (1-based data row in its file) and ``_file``. Value columns may be strings
            (as CSV loaders read them): a cell that does not parse as a number breaks
            NON_NUMERIC, an empty or null cell MISSING_VALUE.
        policy: RAISE (DataValidationError for the first bad row in input order), REJECT
            (remove, log each), DROP (remove, log a summary) or FFILL (replace a bad bar by a
            flat bar at the symbol's previous valid close with volume 0; drop it when there is
            none; drop duplicate and out-of-order rows).
        source: Names the data in messages when there is no ``_file`` column.

    Returns:
        The cleaned frame, sorted by timestamp then symbol (in order of first appearance), with
        exactly the long-form columns and dtypes; and the report of every bad row.
    """
    policy = BadBarPolicy(policy)
    work = _flag(_prepare(df, source))
    bad = work.filter(pl.col("_rule").is_not_null())
    if bad.height and policy is BadBarPolicy.RAISE:
        raise _error(bad.row(0, named=True))
    if policy is BadBarPolicy.FFILL:
        work, actions = _forward_fill(work)
        bad = bad.join(actions, on="_seq", how="left")
    else:
        work = work.filter(pl.col("_rule").is_null())
        action = BadBarAction.QUARANTINED if policy is BadBarPolicy.REJECT else BadBarAction.DROPPED
        bad = bad.with_columns(_action=pl.lit(str(action)))
    out = _finish(work)
    report = _report(df.height, out.height, policy, bad, source)
    _log(report, policy)
    return out, report


def _prepare(df: pl.DataFrame, source: str | None) -> pl.DataFrame:
    """Add helper columns (_seq, _row, _file, _missing, _nonnum) and cast values to Float64."""
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise DataValidationError(
            f"missing column(s) {missing}; found {df.columns}", file=source, rule="missing_column"
        )
    n = df.height
    extra = [pl.int_range(n, dtype=pl.Int64).alias("_seq")]
    if "_row" not in df.columns:
        extra.append(pl.int_range(1, n + 1, dtype=pl.Int64).alias("_row"))
    if "_file" not in df.columns:
        extra.append(pl.lit(source, dtype=pl.String).alias("_file"))
    work = df.with_columns(extra)
    missing_expr = pl.col("timestamp").is_null() | pl.col("symbol").is_null()
    nonnum_expr: pl.Expr = pl.lit(None, dtype=pl.String)
    casts = []
    for col in reversed(VALUE_COLUMNS):
        if work.schema[col] == pl.String:
            raw = pl.col(col).str.strip_chars()
            num = raw.cast(pl.Float64, strict=False)
            is_missing = raw.is_null() | (raw == "")
            is_nonnum = ~is_missing & num.is_null()
            nonnum_expr = (
                pl.when(is_nonnum).then(pl.format(f"{col} '{{}}'", raw)).otherwise(nonnum_expr)
            )
        else:
            num = pl.col(col).cast(pl.Float64)
            is_missing = num.is_null()
        missing_expr = missing_expr | is_missing
        casts.append(num.alias(col))
    ts_dtype = work.schema["timestamp"]
    return work.with_columns(
        *casts,
        normalize_timestamps(pl.col("timestamp"), ts_dtype).alias("timestamp"),
        pl.col("symbol").cast(pl.String),
        _missing=missing_expr,
        _nonnum=nonnum_expr,
    )


def _flag(work: pl.DataFrame) -> pl.DataFrame:
    """Add ``_rule``: the rule each row breaks (sequence rules first), null for a good row."""
    o, h, lo, c, v = (pl.col(x) for x in VALUE_COLUMNS)
    prices = [o, h, lo, c]
    ts = pl.col("timestamp")
    placed = ts.is_not_null() & pl.col("symbol").is_not_null()
    prev_max = ts.forward_fill().cum_max().shift(1).over("symbol")
    # a duplicate is never above the running max, so only those rows need the costly check
    repeated = ~ts.is_first_distinct().over("symbol")
    dup = placed & pl.when(ts <= prev_max).then(repeated).otherwise(False)
    ooo = placed & (ts < prev_max)
    not_finite = pl.any_horizontal(~x.is_finite() for x in (*prices, v))
    lit = pl.lit
    rule = (
        pl.when(dup).then(lit(str(BadBarRule.DUPLICATE_TIMESTAMP)))
        .when(ooo).then(lit(str(BadBarRule.OUT_OF_ORDER)))
        .when(pl.col("_missing")).then(lit(str(BadBarRule.MISSING_VALUE)))
        .when(pl.col("_nonnum").is_not_null()).then(lit(str(BadBarRule.NON_NUMERIC)))
        .when(not_finite).then(lit(str(BadBarRule.NOT_FINITE)))
        .when(pl.any_horizontal(x <= 0 for x in prices))
        .then(lit(str(BadBarRule.NON_POSITIVE_PRICE)))
        .when(h < pl.max_horizontal(o, c)).then(lit(str(BadBarRule.HIGH_BELOW_OPEN_CLOSE)))
        .when(lo > pl.min_horizontal(o, c)).then(lit(str(BadBarRule.LOW_ABOVE_OPEN_CLOSE)))
        .when(v < 0).then(lit(str(BadBarRule.NEGATIVE_VOLUME)))
    )  # fmt: skip
    return work.with_columns(_rule=rule, _prev_max=prev_max)


def _forward_fill(work: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Apply FFILL: returns the kept rows and the action (filled/dropped) per bad ``_seq``."""
    seq_rules = [str(r) for r in _SEQUENCE_RULES]
    placed = pl.col("timestamp").is_not_null() & pl.col("symbol").is_not_null()
    keep = work.filter(~pl.col("_rule").is_in(seq_rules).fill_null(False) & placed)
    good = pl.col("_rule").is_null()
    prev = pl.when(good).then(pl.col("close")).forward_fill().over("symbol")
    keep = keep.with_columns(_prev=prev)
    fill = ~good & pl.col("_prev").is_not_null()
    filled = keep.with_columns(
        *(pl.when(fill).then(pl.col("_prev")).otherwise(pl.col(c)).alias(c) for c in PRICE_COLUMNS),
        pl.when(fill).then(0.0).otherwise(pl.col("volume")).alias("volume"),
    ).filter(good | fill)
    filled_seq = keep.filter(fill).select("_seq", "_prev")
    actions = (
        work.filter(~good)
        .select("_seq")
        .join(filled_seq, on="_seq", how="left")
        .with_columns(
            _action=pl.when(pl.col("_prev").is_not_null())
            .then(pl.lit(str(BadBarAction.FILLED)))
            .otherwise(pl.lit(str(BadBarAction.DROPPED)))
        )
    )
    return filled, actions


def _finish(work: pl.DataFrame) -> pl.DataFrame:
    """Sort by timestamp then symbol first appearance; keep exactly the long-form columns."""
    order = pl.col("_seq").min().over("symbol")
    return (
        work.with_columns(_order=order)
        .sort("timestamp", "_order", "_seq")
        .select(
            pl.col("timestamp").cast(TIMESTAMP_DTYPE),
            pl.col("symbol").cast(pl.String),
            *(pl.col(c).cast(pl.Float64) for c in VALUE_COLUMNS),
        )
    )


def _fmt_ts(ts: datetime | None) -> str:
    """A timestamp for a message: the date alone at midnight, else ISO-8601."""
    if ts is None:
        return "null"
    if (ts.hour, ts.minute, ts.second, ts.microsecond) == (0, 0, 0, 0):
        return ts.date().isoformat()
    return ts.isoformat()


def _fmt(x: object) -> str:
    """A value for a message: floats with up to 10 significant digits."""
    return f"{x:.10g}" if isinstance(x, float) else repr(x) if isinstance(x, str) else str(x)


def _detail(row: dict) -> str:
    """The offending values and the rule in words, for one flagged row."""
    rule = BadBarRule(row["_rule"])
    o, h, lo, c, v = (_fmt(row[x]) for x in VALUE_COLUMNS)
    if rule is BadBarRule.DUPLICATE_TIMESTAMP:
        return f"timestamp {_fmt_ts(row['timestamp'])} repeats an earlier row of the same symbol"
    if rule is BadBarRule.OUT_OF_ORDER:
        return f"timestamp {_fmt_ts(row['timestamp'])} < previous {_fmt_ts(row['_prev_max'])}"
    if rule is BadBarRule.MISSING_VALUE:
        empty = [x for x in ("timestamp", "symbol", *VALUE_COLUMNS) if row[x] is None]
        return f"missing value in {', '.join(empty)}"
    if rule is BadBarRule.NON_NUMERIC:
        return f"{row['_nonnum']} is not a number"
    if rule is BadBarRule.NOT_FINITE:
        return f"not finite: open {o}, high {h}, low {lo}, close {c}, volume {v}"
    if rule is BadBarRule.NON_POSITIVE_PRICE:
        return f"price <= 0: open {o}, high {h}, low {lo}, close {c}"
    if rule is BadBarRule.HIGH_BELOW_OPEN_CLOSE:
        return f"high {h} < max(open {o}, close {c})"
    if rule is BadBarRule.LOW_ABOVE_OPEN_CLOSE:
        return f"low {lo} > min(open {o}, close {c})"
    return f"volume {v} < 0"


def _error(row: dict) -> DataValidationError:
    """The DataValidationError for the first bad row under RAISE."""
    rule = BadBarRule(row["_rule"])
    file, n = row["_file"], row["_row"]
    line = f", line {n + 1}" if file and str(file).lower().endswith(".csv") else ""
    msg = f"{_detail(row)} ({_RULE_WORDS[rule]}; timestamp {_fmt_ts(row['timestamp'])}{line})"
    return DataValidationError(msg, file=file, row=n, symbol=row["symbol"], rule=str(rule))


def _report(
    rows_in: int, rows_out: int, policy: BadBarPolicy, bad: pl.DataFrame, source: str | None
) -> ValidationReport:
    """Exact counts per rule and the first ``MAX_BAD_BARS`` bad bars, in input order."""
    bad = bad.sort("_seq")
    tally = bad.group_by("_rule").len().iter_rows()
    counts = _ordered_counts({BadBarRule(r): n for r, n in tally})
    listed = [
        BadBar(
            file=row["_file"],
            row=row["_row"],
            symbol=row["symbol"],
            timestamp=row["timestamp"],
            rule=BadBarRule(row["_rule"]),
            detail=_detail(row),
            action=BadBarAction(row["_action"]),
        )
        for row in bad.head(MAX_BAD_BARS).iter_rows(named=True)
    ]
    return ValidationReport(rows_in, rows_out, policy, counts, listed, source)


def _ordered_counts(counts: dict[BadBarRule, int]) -> dict[BadBarRule, int]:
    """Counts in the rules' declaration order, zero entries left out."""
    return {rule: counts[rule] for rule in BadBarRule if counts.get(rule)}


def _log(report: ValidationReport, policy: BadBarPolicy) -> None:
    """REJECT logs each listed bad bar; every policy logs one summary line when anything was bad."""
    if not report.n_bad:
        return
    if policy is BadBarPolicy.REJECT:
        for b in report.bad_bars:
            logger.warning(
                "quarantined bar: file %s, row %s, symbol %s, rule %s: %s",
                b.file, b.row, b.symbol, b.rule, b.detail,
            )  # fmt: skip
        if report.truncated:
            logger.warning("... and %d more", report.n_bad - len(report.bad_bars))
    logger.warning("bad bars: %s", report.summary())
