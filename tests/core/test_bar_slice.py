"""BarSlice on the wire: the compact pickle (one block of float64 bytes) and ``time``.

Expected values are the constructor's own arrays (round trip) and datetimes built by hand
from the epoch with ``timedelta``, an implementation independent of numpy's conversion.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from core.events import BarSlice

NAN = float("nan")


def _bar(ts: np.datetime64) -> BarSlice:
    return BarSlice(
        7, ts, ("A", "B", "C"), np.array([1.0, 2.0, NAN]), np.array([1.5, 2.5, NAN]),
        np.array([0.5, 1.5, NAN]), np.array([1.25, -0.0, NAN]), np.array([100.0, 0.0, NAN]),
    )  # fmt: skip


@pytest.mark.parametrize(
    "ts",
    [np.datetime64("2020-01-02T00:00:00", "us"), np.datetime64("2014-06-30", "D"),
     np.datetime64("2001-09-10T13:46:40.123456789", "ns"),
     np.datetime64("1969-12-31T23:59:59", "s")],
)  # fmt: skip
def test_a_pickled_bar_comes_back_field_for_field_with_its_timestamp_unit(ts) -> None:
    bar = _bar(ts)
    back = pickle.loads(pickle.dumps(bar, protocol=pickle.HIGHEST_PROTOCOL))
    assert (back.index, back.symbols) == (bar.index, bar.symbols)
    assert back.timestamp == bar.timestamp and back.timestamp.dtype == bar.timestamp.dtype
    for name in ("open", "high", "low", "close", "volume"):
        got, want = getattr(back, name), getattr(bar, name)
        assert got.dtype == np.float64 and got.tobytes() == want.tobytes()  # NaN and -0.0 too
    assert back.block is not None and back.block.shape == (5, 3)
    assert back.block[3].tobytes() == bar.close.tobytes()
    with pytest.raises(ValueError, match="read-only"):
        back.close[0] = 1.0  # shared by every reader of the bar: nobody may write it


def test_a_bar_built_from_columns_has_no_block_and_pickles_like_one_that_has() -> None:
    bar = _bar(np.datetime64("2020-01-02", "D"))
    assert bar.block is None
    once = pickle.loads(pickle.dumps(bar))
    twice = pickle.loads(pickle.dumps(once))
    assert pickle.dumps(once) == pickle.dumps(twice)


@pytest.mark.parametrize(
    ("ts", "micros"),
    [(np.datetime64("2020-01-02T00:00:00", "us"), 1_577_923_200_000_000),
     (np.datetime64("2001-09-09T01:46:40.123456", "us"), 1_000_000_000_123_456),
     (np.datetime64("1969-12-31T23:59:59", "s"), -1_000_000),
     (np.datetime64("2014-06-30", "D"), 1_404_086_400_000_000)],
)  # fmt: skip
def test_time_is_the_aware_utc_datetime_of_the_timestamp(ts, micros) -> None:
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    assert _bar(ts).time == expected and _bar(ts).time.tzinfo is UTC
