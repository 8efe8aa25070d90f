"""``RiskBook.replay``: a restart's rebuild of risk's book from journaled broker events, and
the closed trades no journaled mark has counted yet (those after a given seq).

Two round trips of 10 shares of A, no commission, by hand: bought at 100 and sold at 90
(pnl -100), then bought at 50 and sold at 60 (pnl +100).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from core.events import FillReason, OrderAccepted, OrderFilled
from core.risk.book import RiskBook

TS = datetime(2024, 1, 2, tzinfo=UTC)


def _order(n: int, qty: float, price: float) -> list[BaseModel]:
    coid = f"o{n}"
    fields = {"client_order_id": coid, "strategy_id": "s", "symbol": "A", "qty": qty,
              "reason": FillReason.SIGNAL, "bar_index": n}  # fmt: skip
    fill = OrderFilled(fill_id=f"{coid}:1", price=price, commission=0.0, bar_ts=TS,
                       order_qty=qty, **fields)  # fmt: skip
    return [OrderAccepted(**fields), fill]


EVENTS = [*_order(1, 10, 100.0), *_order(2, -10, 90.0), *_order(3, 10, 50.0),
          *_order(4, -10, 60.0)]  # fmt: skip
ENTRIES = list(enumerate(EVENTS, start=1))  # seqs 1..8: the second sell's fill is seq 8


def _book() -> RiskBook:
    book = RiskBook()
    book.open_account("s", ["A"], 10_000.0)
    return book


def test_replay_returns_the_trades_closed_after_the_seq_given() -> None:
    assert _book().replay(ENTRIES, 0) == [("s", -100.0), ("s", 100.0)]
    assert _book().replay(ENTRIES, 4) == [("s", 100.0)]  # the first sell's fill is seq 4
    assert _book().replay(ENTRIES, 7) == [("s", 100.0)]
    assert _book().replay(ENTRIES, 8) == []


def test_replay_builds_the_same_book_as_applying_every_event() -> None:
    replayed, applied = _book(), _book()
    replayed.replay(ENTRIES, 4)
    assert applied.apply_all(EVENTS) == [("s", -100.0), ("s", 100.0)]
    for book in (replayed, applied):
        assert book.ledger("s").positions() == {}
        assert book.ledger("s").cash == 10_000.0  # -1000 + 900 - 500 + 600
        assert book.open_orders() == []
    assert replayed.ledger("s").snapshot() == applied.ledger("s").snapshot()
