"""Bar panels: the long polars form users hold and the wide numpy form kernels take.

Long form: one row per (timestamp, symbol) with columns ``timestamp`` (UTC datetime, us),
``symbol``, ``open``, ``high``, ``low``, ``close``, ``volume``. Wide form: one float64 array
(time x symbol) per field over the union of timestamps; a symbol without a bar at a timestamp
has NaN there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # polars is imported where a frame is made: the live actors hold none
    import polars as pl

__all__ = ["BAR_COLUMNS", "PRICE_COLUMNS", "WidePanel", "to_long", "to_wide"]

PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = ("timestamp", "symbol", *PRICE_COLUMNS, "volume")


def __getattr__(name: str) -> Any:
    """``TIMESTAMP_DTYPE`` (the long form's timestamp dtype, ``pl.Datetime("us", "UTC")``),
    made on first use: importing polars costs a live actor 0.2 s and 23 MiB at every start."""
    if name == "TIMESTAMP_DTYPE":
        import polars as pl

        return pl.Datetime("us", "UTC")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class WidePanel:
    """Time x symbol float64 arrays sharing one timestamp index (numpy datetime64[us], UTC)."""

    timestamps: np.ndarray
    symbols: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __post_init__(self) -> None:
        shape = (len(self.timestamps), len(self.symbols))
        for name in ("open", "high", "low", "close", "volume"):
            arr = getattr(self, name)
            if arr.shape != shape:
                raise ValueError(f"WidePanel.{name} has shape {arr.shape}, expected {shape}")

    @property
    def n_bars(self) -> int:
        """Number of timestamps."""
        return len(self.timestamps)

    @property
    def n_symbols(self) -> int:
        """Number of symbols."""
        return len(self.symbols)

    def select(self, symbols: list[str] | tuple[str, ...]) -> WidePanel:
        """A panel with only the given symbols, in the given order."""
        idx = [self.symbols.index(s) for s in symbols]
        return WidePanel(
            self.timestamps,
            tuple(symbols),
            *(np.ascontiguousarray(getattr(self, f)[:, idx]) for f in (*PRICE_COLUMNS, "volume")),
        )

    def last_close_rows(self) -> np.ndarray:
        """Each symbol's last row with a finite close, -1 for none: where its last price is
        (what a restarted broker or risk actor starts its marks and clocks from)."""
        finite = np.isfinite(self.close)
        if not self.n_bars:
            return np.full(self.n_symbols, -1)
        rows = self.n_bars - 1 - np.argmax(finite[::-1], axis=0)
        return np.where(finite.any(axis=0), rows, -1)

    def slice(self, start: int, stop: int) -> WidePanel:
        """Bars ``start:stop`` of every symbol."""
        return WidePanel(
            self.timestamps[start:stop],
            self.symbols,
            *(getattr(self, f)[start:stop] for f in (*PRICE_COLUMNS, "volume")),
        )


def to_wide(df: pl.DataFrame, symbols: list[str] | None = None) -> WidePanel:
    """Pivot a validated long panel to the wide form (symbols in order of first appearance)."""
    import polars as pl

    if symbols is None:
        symbols = df.get_column("symbol").unique(maintain_order=True).to_list()
    ts = df.get_column("timestamp").unique().sort()
    index = {s: i for i, s in enumerate(symbols)}
    t_idx = ts.search_sorted(df.get_column("timestamp")).to_numpy()
    s_idx = np.array([index[s] for s in df.get_column("symbol").to_list()], dtype=np.int64)
    out = {}
    for field in (*PRICE_COLUMNS, "volume"):
        arr = np.full((len(ts), len(symbols)), np.nan)
        arr[t_idx, s_idx] = df.get_column(field).cast(pl.Float64).to_numpy()
        out[field] = arr
    timestamps = ts.dt.replace_time_zone(None).to_numpy().astype("datetime64[us]")
    return WidePanel(timestamps, tuple(symbols), **out)


def to_long(panel: WidePanel) -> pl.DataFrame:
    """Unpivot a wide panel to the long form, dropping symbol-bars with no close."""
    import polars as pl

    n_t, n_s = panel.n_bars, panel.n_symbols
    frame = pl.DataFrame(
        {
            "timestamp": np.repeat(panel.timestamps, n_s),
            "symbol": np.tile(np.array(panel.symbols, dtype=object), n_t).astype(str),
            **{f: getattr(panel, f).reshape(-1) for f in (*PRICE_COLUMNS, "volume")},
        }
    )
    return (
        frame.with_columns(pl.col("timestamp").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
        .filter(pl.col("close").is_not_nan())
        .select(BAR_COLUMNS)
    )
