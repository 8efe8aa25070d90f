"""``python -m bench.journal_latency``: journal append latency, p50/p99 (prints, asserts nothing).

One ``append`` is one committed transaction of one event (a fill); one ``append_many`` is one
transaction of a typical bar's 8 events (bar_processed, 3 verdicts, 3 fills, the bar's risk marks).
Configurations: ``synchronous=NORMAL`` (the default) and ``FULL`` with SQLite's automatic
WAL checkpoint (every 1000 pages: an fsync on that one commit), and NORMAL with
``wal_autocheckpoint=0`` where another connection checkpoints every 100 appends, untimed (what
a read-only journal actor would do). On a temporary file.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from core.events import (
    BarProcessed,
    Decision,
    FillReason,
    OrderFilled,
    RiskMark,
    RiskMarkKind,
    RiskMarks,
    RiskVerdict,
    Scope,
)
from core.journal import Journal

T0 = datetime(2024, 1, 2, 21, tzinfo=UTC)


def _fill(i: int, k: int) -> OrderFilled:
    return OrderFilled(
        fill_id=f"o{i}-{k}:0", client_order_id=f"o{i}-{k}", strategy_id=f"s{k}", symbol="AAPL",
        qty=10.0, price=100.0, commission=0.1, reason=FillReason.SIGNAL, bar_index=i,
        bar_ts=T0 + timedelta(days=i), order_qty=10.0,
    )  # fmt: skip


def _bar_events(i: int) -> list[BaseModel]:
    ts = T0 + timedelta(days=i)
    events: list[BaseModel] = [
        BarProcessed(bar_index=i, bar_ts=ts, equity={f"s{k}": 1e5 for k in range(10)},
                     cash={f"s{k}": 5e4 for k in range(10)}),
    ]  # fmt: skip
    for k in range(3):
        events.append(RiskVerdict(
            client_order_id=f"v{i}-{k}", strategy_id=f"s{k}", symbol="AAPL",
            decision=Decision.APPROVED, requested_qty=10.0, approved_qty=10.0, bar_index=i,
            decided_at=ts,
        ))  # fmt: skip
        events.append(_fill(i, k))
    day = ts.date()
    marks = tuple(RiskMark(kind=RiskMarkKind.PEAK, scope=Scope.parse(f"strategy:s{k}"),
                           value=1e5 + i, bar_index=i, day=day) for k in range(3))  # fmt: skip
    events.append(RiskMarks(bar_index=i, day=day, marks=marks))
    return events


def _pct(samples: list[float]) -> str:
    a = np.array(samples) * 1e6
    return f"p50 {np.percentile(a, 50):8.1f} us   p99 {np.percentile(a, 99):8.1f} us"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.journal_latency")
    parser.add_argument("-n", type=int, default=2000, help="appends (and batches) per mode")
    args = parser.parse_args()
    for sync, auto in (("NORMAL", 1000), ("NORMAL", 0), ("FULL", 1000)):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.db"
            journal = Journal(path, synchronous=sync, wal_autocheckpoint=auto)  # type: ignore[arg-type]
            other = Journal(path)
            singles, batches = [], []
            for i in range(args.n):
                event = _fill(i, 99)
                t = time.perf_counter()
                journal.append(event, source="broker")
                singles.append(time.perf_counter() - t)
                if auto == 0 and i % 100 == 99:
                    other.checkpoint()
            for i in range(args.n):
                events = _bar_events(i)
                t = time.perf_counter()
                journal.append_many(events, source="broker")
                batches.append(time.perf_counter() - t)
                if auto == 0 and i % 100 == 99:
                    other.checkpoint()
            journal.close()
            other.close()
        label = f"synchronous={sync:6} wal_autocheckpoint={auto:4}"
        print(f"{label}  append (1 event)        {_pct(singles)}")
        print(f"{label}  append_many (8 events)  {_pct(batches)}")


if __name__ == "__main__":
    main()
