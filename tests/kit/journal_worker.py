"""A separate process that appends fills to a journal: ``python -m tests.kit.journal_worker``.

Arguments: PATH TAG N. Waits for ``PATH.go`` to exist (so several workers start together),
then appends N fills with ids ``TAG:i`` (N < 0: forever) and prints ``seq duplicate`` after
each commit, flushed, so a parent knows exactly which appends were committed.
"""

from __future__ import annotations

import itertools
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from core.events import FillReason, OrderFilled
from core.journal import Journal


def fill(tag: str, i: int) -> OrderFilled:
    """A fill whose id (and so dedup key) is ``tag:i``."""
    return OrderFilled(
        fill_id=f"{tag}:{i}", client_order_id=f"{tag}-{i}", strategy_id=tag, symbol="AAPL",
        qty=1.0, price=100.0 + i, commission=0.0, reason=FillReason.SIGNAL, bar_index=i,
        bar_ts=datetime(2024, 1, 2, tzinfo=UTC), order_qty=1.0,
    )  # fmt: skip


def main() -> None:
    path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    go = Path(path + ".go")
    while not go.exists():
        time.sleep(0.002)
    journal = Journal(path)
    for i in range(n) if n >= 0 else itertools.count():
        seq, dup = journal.append(fill(tag, i), source=f"worker:{tag}")
        print(seq, int(dup), flush=True)
    journal.close()


if __name__ == "__main__":
    main()
