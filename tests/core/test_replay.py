"""ReplaySource: validation at emission, quarantine, the loader's rejected bars, history, pace.

Expected rules are those of ``core.data.validation.check_bar`` applied by hand to each bar.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.config import DataSpec
from core.data.validation import check_bar
from core.errors import ConfigError
from core.panel import WidePanel
from core.replay import ReplaySource, _suspect_cells, load_source
from core.types import BadBarRule

NAN = math.nan
DATA = Path(__file__).resolve().parents[2] / "data"


def panel(a: list[tuple], b: list[tuple]) -> WidePanel:
    """Two symbols A, B, daily, bars as (open, high, low, close, volume)."""
    arr = np.array([a, b], dtype=np.float64)  # (2, T, 5)
    ts = np.datetime64("2024-01-02", "us") + np.arange(arr.shape[1]) * np.timedelta64(1, "D")
    return WidePanel(ts, ("A", "B"), *(np.ascontiguousarray(arr[:, :, k].T) for k in range(5)))


GOOD = (10.0, 11.0, 9.0, 10.5, 100.0)


def test_bad_bars_are_quarantined_at_emission_and_the_others_pass() -> None:
    src = ReplaySource(panel(
        [GOOD, (10.0, 11.0, 9.0, NAN, 100.0), GOOD, (NAN,) * 5],
        [GOOD, GOOD, (10.0, 9.5, 9.0, 10.5, 100.0), GOOD],
    ))  # fmt: skip
    first = src.emit(0)
    assert first.quarantined == () and first.bar.close.tolist() == [10.5, 10.5]
    partly_nan = src.emit(1)
    assert [(q.symbol, q.rule) for q in partly_nan.quarantined] == [("A", BadBarRule.NOT_FINITE)]
    assert np.isnan([partly_nan.bar.open[0], partly_nan.bar.close[0]]).all()
    assert partly_nan.bar.close[1] == 10.5  # the other symbol trades on
    high_low = src.emit(2)
    assert [(q.symbol, q.rule) for q in high_low.quarantined] == [
        ("B", BadBarRule.HIGH_BELOW_OPEN_CLOSE)
    ]
    assert src.emit(3).quarantined == ()  # a bar that is missing altogether is a gap
    assert src.quarantine_counts == {"high_below_open_close": 1, "not_finite": 1}


def test_a_re_emitted_bar_reports_the_same_events_and_history_holds_the_quarantine() -> None:
    src = ReplaySource(panel([GOOD, (10.0, 11.0, 9.0, -1.0, 5.0)], [GOOD, GOOD]))
    once = src.emit(1)
    again = src.emit(1)
    assert once.quarantined == again.quarantined and once.keys == again.keys
    assert once.keys == ("quarantined:1:A",)
    assert once.quarantined[0].rule is BadBarRule.NON_POSITIVE_PRICE
    hist = src.history(["B", "A"], 1)
    assert hist.symbols == ("B", "A") and math.isnan(hist.close[1, 1])
    fresh = src.freshness(1)  # A's last valid close is bar 0's
    assert {s: close for s, (_, close) in fresh.items()} == {"A": 10.5, "B": 10.5}
    assert fresh["A"][0] < fresh["B"][0]


def test_freshness_is_each_symbols_last_valid_bar_time_and_close() -> None:
    # A: valid on days 0 and 1, a negative close (quarantined) on day 2, no bar on day 3;
    # B: never a bar, so its clock is bar 0's time and it has no price.
    gap = (NAN,) * 5
    src = ReplaySource(panel([GOOD, (10.0, 11.0, 9.0, 10.25, 1.0), (10.0, 11.0, 9.0, -1.0, 1.0),
                              gap], [gap] * 4))  # fmt: skip
    day = [datetime(2024, 1, 2 + k, tzinfo=UTC) for k in range(4)]
    assert src.freshness(3) == {"A": (day[1], 10.25), "B": (day[0], None)}
    assert src.freshness(0) == {"A": (day[0], 10.5), "B": (day[0], None)}
    assert src.freshness(-1) == {}


def test_resume_marks_are_a_restarting_brokers_few_values_by_hand() -> None:
    # A: valid on days 0 and 1, a negative close (quarantined at the restart's catch-up) on
    # day 2, no bar on day 3; B: valid on day 0 only. By hand: A's last close is day 1's,
    # B's day 0's; bar 3 as emitted is all NaN; the times are those of the bars asked for.
    gap = (NAN,) * 5
    src = ReplaySource(panel([GOOD, (10.0, 11.0, 9.0, 10.25, 1.0), (10.0, 11.0, 9.0, -1.0, 1.0),
                              gap], [GOOD, gap, gap, gap]))  # fmt: skip
    marks = src.resume_marks(3, [1, 3, 7])
    assert marks.closes == {"A": 10.25, "B": 10.5}
    assert marks.last_bar.index == 3 and np.isnan(marks.last_bar.close).all()
    day = np.datetime64("2024-01-02", "us")
    assert marks.times == {1: day + np.timedelta64(1, "D"), 3: day + np.timedelta64(3, "D")}
    assert src.emit(2).quarantined[0].rule is BadBarRule.NON_POSITIVE_PRICE  # kept for emission
    with pytest.raises(IndexError, match="bar 4 outside the replay's 4 bars"):
        src.resume_marks(4)


def test_last_close_rows_are_each_symbols_last_finite_close_or_minus_one() -> None:
    gap = (NAN,) * 5
    p = panel([GOOD, GOOD, gap], [gap, gap, gap])  # by hand: A's last close is row 1, B none
    assert p.last_close_rows().tolist() == [1, -1]
    assert p.slice(0, 0).last_close_rows().tolist() == [-1, -1]  # no bars at all


def test_history_validates_bars_not_yet_emitted_without_losing_their_events() -> None:
    src = ReplaySource(panel([GOOD, GOOD, (10.0, 11.0, 12.0, 10.5, 1.0)], [GOOD] * 3))
    assert math.isnan(src.history(None, 2).low[2, 0])  # a restarted feed's catch-up
    assert [q.rule for q in src.emit(2).quarantined] == [BadBarRule.LOW_ABOVE_OPEN_CLOSE]


def test_bars_the_loader_rejected_are_reported_when_the_replay_reaches_their_time(tmp_path):
    lines = (DATA / "ORCL.csv").read_text().splitlines()[:41]
    lines[10] = lines[10].replace(lines[10].split(",")[4], "-3.0", 1)  # data row 10: bad close
    lines[20] = lines[19]  # data row 20 repeats row 19 (bar 17 once row 10 is out)
    (tmp_path / "ORCL.csv").write_text("\n".join(lines) + "\n")
    src = load_source(DataSpec(paths=[str(tmp_path / "ORCL.csv")], bad_bars="reject"))
    assert src.n_bars == 38
    found = {t: src.emit(t).quarantined for t in range(src.n_bars)}
    hits = {t: [(q.symbol, q.rule) for q in qs] for t, qs in found.items() if qs}
    assert hits == {
        9: [("ORCL", BadBarRule.NON_POSITIVE_PRICE)],
        17: [("ORCL", BadBarRule.DUPLICATE_TIMESTAMP)],
    }
    assert "row 10" in found[9][0].detail and "row 20" in found[17][0].detail


def test_the_pace_is_the_bar_spacing_divided_by_the_speed() -> None:
    src = ReplaySource(panel([GOOD] * 3, [GOOD] * 3))
    assert src.delay(1, "max") == 0.0
    assert src.delay(0, 2.0) == 0.0
    assert src.delay(1, 1.0) == 86_400.0
    assert src.delay(2, 86_400.0) == 1.0


def test_a_window_outside_the_data_is_refused() -> None:
    with pytest.raises(ConfigError, match="no bars"):
        load_source(DataSpec(paths=[str(DATA / "ESTX50.csv")], start="2010-01-01"))
    src = load_source(DataSpec(paths=[str(DATA / "ESTX50.csv")], start="2006-01-01"))
    assert str(src.panel.timestamps[0])[:10] == "2006-01-02"


_VALUE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, -1.0, 1.0, 2.0, 100.0]),  # ties and small integers, often equal
)


@given(st.lists(st.tuples(*[_VALUE] * 5), min_size=1, max_size=12))
def test_the_whole_bar_prefilter_suspects_exactly_the_bars_check_bar_refuses(bars) -> None:
    # Independent check: check_bar, one bar at a time, is the reference; the vectorized
    # prefilter must flag the same columns (so emission quarantines the same bars).
    # Two bars of the same symbols, the second in reverse order, checked as one panel.
    arr = np.array(bars, dtype=np.float64)  # (symbols, 5)
    two = np.stack([arr, arr[::-1]])  # (bar, symbol, field)
    n = len(bars)
    panel = WidePanel(
        np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[us]"),
        tuple(f"S{j}" for j in range(n)), *(two[:, :, k].copy() for k in range(5)),
    )  # fmt: skip
    refused = [j for j, b in enumerate(bars) if check_bar(*b) is not None]
    cells = _suspect_cells(panel)
    assert np.flatnonzero(cells[0]).tolist() == refused
    assert np.flatnonzero(cells[1]).tolist() == sorted(n - 1 - j for j in refused)
