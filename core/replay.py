"""The data feed's logic without Ray: load bars once, validate each bar as it is emitted.

``ReplaySource`` holds a wide panel and hands out ``BarSlice``s in order. Every symbol's bar is
checked with ``check_bar`` when its slice is first emitted; a bad bar (partly NaN, a price
<= 0, high below open/close, ...) is quarantined: its fields become NaN in the slice and in the
history the feed serves afterwards, and a ``BarQuarantined`` event reports it. Bars the loader's
``reject`` policy already removed (bad cells, duplicate or out-of-order timestamps) are reported
the same way when the replay reaches their time. A symbol with no bar at all at a timestamp
(every field NaN, e.g. before its listing) is a gap, not a bad bar.

The data feed actor (``actors/feed.py``) is a thin shell: it journals the events, drives the
per-bar protocol, and serves ``history`` to restarting hosts and the broker.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from core.config import DataSpec
from core.data.validation import BadBar, ValidationReport, check_bar
from core.errors import ConfigError
from core.events import BarQuarantined, BarSlice
from core.panel import WidePanel
from core.paper import ResumeMarks, bar_slice
from core.types import BadBarPolicy, BadBarRule

__all__ = ["Emitted", "ReplaySource", "load_source", "window"]

log = logging.getLogger("raytrader.feed")
_FIELDS = ("open", "high", "low", "close", "volume")


def _to_datetime(ts: np.datetime64) -> datetime:
    us = int(np.datetime64(ts, "us").astype(np.int64))
    return datetime.fromtimestamp(us / 1e6, UTC)


@dataclass(frozen=True, slots=True)
class Emitted:
    """One emitted bar: the slice (bad bars NaN) and what was quarantined at it.

    ``keys`` pairs with ``quarantined``: the journal dedup key of each event, so a re-emitted
    bar (after a feed restart) journals nothing twice.
    """

    bar: BarSlice
    quarantined: tuple[BarQuarantined, ...] = ()
    keys: tuple[str, ...] = ()


def _parse_bound(value: str, name: str) -> np.datetime64:
    try:
        return np.datetime64(value, "us")
    except ValueError:
        raise ConfigError(f"feed.data.{name} {value!r} is not an ISO date or datetime") from None


def window(panel: WidePanel, start: str | None, end: str | None) -> tuple[int, int]:
    """Bar range ``[lo, hi)`` of a panel inside ``start``/``end`` (inclusive ISO bounds)."""
    ts = panel.timestamps
    lo = 0 if start is None else int(np.searchsorted(ts, _parse_bound(start, "start")))
    hi = len(ts) if end is None else int(
        np.searchsorted(ts, _parse_bound(end, "end"), side="right")
    )  # fmt: skip
    if hi - lo < 1:
        raise ConfigError(f"the window start={start} end={end} leaves no bars to replay")
    return lo, hi


def load_source(data: DataSpec) -> ReplaySource:
    """Load the bars a spec names (files, or a seeded synthetic panel), windowed.

    The same loading as ``raytrader backtest`` (``strategies.backtest.load_panel``), so a run
    and a backtest on the same spec see the same panel; the validation report is kept so the
    loader's rejected bars can be reported at their time.
    """
    from core.data.loaders import load_wide
    from core.data.synthetic import synthetic_wide

    report = None
    if data.paths:
        panel, report = load_wide(data.paths, symbol=data.symbol, policy=data.bad_bars)
    else:
        panel = synthetic_wide(data.synthetic_symbols, data.synthetic_bars, seed=data.seed)
    lo, hi = window(panel, data.start, data.end)
    if (lo, hi) != (0, panel.n_bars):
        panel = panel.slice(lo, hi)
    return ReplaySource(panel, report)


@dataclass
class _Checked:
    through: int = -1  # last bar validated
    counts: Counter[BadBarRule] = field(default_factory=Counter)


class ReplaySource:
    """A panel replayed bar by bar, validated at emission (see the module docstring).

    Args:
        panel: the bars; copied, since quarantined bars are set to NaN in place.
        report: the loader's validation report; its quarantined rows are reported at their time.
    """

    def __init__(self, panel: WidePanel, report: ValidationReport | None = None) -> None:
        self.panel = WidePanel(
            panel.timestamps.copy(), panel.symbols, *(getattr(panel, f).copy() for f in _FIELDS)
        )
        self._checked = _Checked()
        self._suspect = _suspect_cells(self.panel)
        self._suspect_rows: list[bool] = self._suspect.any(axis=1).tolist()
        self._events: dict[int, tuple[tuple[BarQuarantined, ...], tuple[str, ...]]] = {}
        self._loader_bad: dict[int, list[BadBar]] = {}
        if report is not None and report.policy is BadBarPolicy.REJECT:
            for bad in report.bad_bars:
                if bad.timestamp is None:
                    continue
                ts = np.datetime64(bad.timestamp.astimezone(UTC).replace(tzinfo=None), "us")
                t = int(np.searchsorted(self.panel.timestamps, ts))
                if t < self.n_bars:
                    self._loader_bad.setdefault(t, []).append(bad)

    @property
    def n_bars(self) -> int:
        """Bars in the replay."""
        return self.panel.n_bars

    @property
    def symbols(self) -> tuple[str, ...]:
        """Every symbol of the data, in panel order."""
        return self.panel.symbols

    @property
    def quarantine_counts(self) -> dict[str, int]:
        """Bad bars quarantined so far (through the last bar validated), by rule."""
        return {rule.value: n for rule, n in sorted(self._checked.counts.items())}

    # ------------------------------------------------------------------ emission
    def emit(self, t: int) -> Emitted:
        """Bar ``t`` validated, with what was quarantined at it; emitting a bar again (a
        restarted feed) gives the same events and dedup keys."""
        if not 0 <= t < self.n_bars:
            raise IndexError(f"bar {t} outside the replay's {self.n_bars} bars")
        self.validate_through(t)
        events, keys = self._events.get(t, ((), ()))
        return Emitted(bar_slice(self.panel, t), events, keys)

    def validate_through(self, t: int) -> None:
        """Validate (and quarantine) every bar up to ``t``, once each."""
        for i in range(self._checked.through + 1, min(t, self.n_bars - 1) + 1):
            events, keys = self._validate(i)
            if events:
                self._events[i] = (tuple(events), tuple(keys))
            self._checked.through = i

    def _validate(self, t: int) -> tuple[list[BarQuarantined], list[str]]:
        p = self.panel
        ts = _to_datetime(p.timestamps[t])
        events: list[BarQuarantined] = []
        keys: list[str] = []
        for j in np.flatnonzero(self._suspect[t]).tolist() if self._suspect_rows[t] else ():
            symbol = p.symbols[j]
            values = [float(getattr(p, f)[t, j]) for f in _FIELDS]
            if all(math.isnan(v) for v in values):
                continue  # no bar: a gap, not a bad bar
            rule = check_bar(*values)
            if rule is None:
                continue
            for f in _FIELDS:
                getattr(p, f)[t, j] = np.nan
            detail = "open={} high={} low={} close={} volume={}".format(*values)
            events.append(BarQuarantined(symbol=symbol, bar_index=t, bar_ts=ts, rule=rule,
                                         detail=detail))  # fmt: skip
            keys.append(f"quarantined:{t}:{symbol}")
            log.warning("bar %d %s %s quarantined: %s (%s)", t, symbol, ts, rule.value, detail)
        for k, bad in enumerate(self._loader_bad.get(t, ())):
            where = f"{bad.file or '?'} row {bad.row}"
            events.append(BarQuarantined(
                symbol=bad.symbol or "?", bar_index=t, bar_ts=bad.timestamp or ts,
                rule=bad.rule, detail=f"removed by the loader ({where}): {bad.detail}",
            ))  # fmt: skip
            keys.append(f"quarantined:{t}:{bad.symbol}:loader:{bad.file}:{bad.row}:{k}")
        for event in events:
            self._checked.counts[event.rule] += 1
        return events, keys

    # ------------------------------------------------------------------ history
    def history(self, symbols: tuple[str, ...] | list[str] | None, through: int) -> WidePanel:
        """Bars ``0..through`` as emitted (quarantined bars NaN), of some symbols or all."""
        if through >= self.n_bars:
            raise IndexError(f"bar {through} outside the replay's {self.n_bars} bars")
        self.validate_through(through)
        panel = self.panel.slice(0, through + 1)
        panel = WidePanel(
            panel.timestamps.copy(), panel.symbols, *(getattr(panel, f).copy() for f in _FIELDS)
        )
        if symbols is None or tuple(symbols) == panel.symbols:
            return panel
        return panel.select(list(symbols))

    def resume_marks(self, through: int, bars: list[int] | tuple[int, ...] = ()) -> ResumeMarks:
        """What a restarting broker needs of bars ``0..through`` (``ResumeMarks``): bar
        ``through`` as emitted, each symbol's last close, and the times of ``bars``; a few
        values however long the replay has run, where ``history`` would copy all of it."""
        if not 0 <= through < self.n_bars:
            raise IndexError(f"bar {through} outside the replay's {self.n_bars} bars")
        self.validate_through(through)
        return ResumeMarks.of(self.panel.slice(0, through + 1), bars)

    def freshness(self, through: int) -> dict[str, tuple[datetime, float | None]]:
        """Each symbol's last bar with a finite close at or before bar ``through``: its time
        (UTC) and close; a symbol without one has bar 0's time and None (risk's clocks start
        when it first sees a symbol). A restarted risk actor's stale-data clocks and last
        prices start from these: they are not journaled."""
        if through < 0:
            return {}
        self.validate_through(through)
        panel = self.panel.slice(0, through + 1)
        out: dict[str, tuple[datetime, float | None]] = {}
        for j, (symbol, i) in enumerate(zip(self.symbols, panel.last_close_rows(), strict=True)):
            at = _to_datetime(panel.timestamps[max(i, 0)])
            out[symbol] = (at, float(panel.close[i, j]) if i >= 0 else None)
        return out

    def delay(self, t: int, speed: Literal["max"] | float) -> float:
        """Seconds between emitting bar ``t - 1`` and bar ``t`` at a speed factor (0 for max)."""
        if speed == "max" or t <= 0:
            return 0.0
        step = self.panel.timestamps[t] - self.panel.timestamps[t - 1]
        return float(step / np.timedelta64(1, "us")) / 1e6 / float(speed)


def _suspect_cells(panel: WidePanel) -> np.ndarray:
    """The (bar, symbol) cells that may break a rule of ``check_bar`` (which then names it):
    every cell but those passing all of its rules at once. Computed for the whole panel when
    the source is made, not bar by bar: a bar's own check was a score of numpy calls on tiny
    arrays, which a paced feed pays cold every bar (docs/live.md, "Cold bars")."""
    o, h, lo, c, v = (getattr(panel, f) for f in _FIELDS)
    with np.errstate(invalid="ignore"):
        good = (
            np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c) & np.isfinite(v)
            & (o > 0) & (h > 0) & (lo > 0) & (c > 0)
            & (h >= np.maximum(o, c)) & (lo <= np.minimum(o, c)) & (v >= 0)
        )  # fmt: skip
    return ~good
