"""The paper broker's realism options through the live actors: what a volume cap leaves of
an order must not outlive a halt.

The expectation is computed from the journal's rows here (positions rebuilt fill by fill),
not from the actors' own accounts.
"""

from __future__ import annotations

import pytest

from core.events import EventKind
from core.journal import Journal
from tests.kit.live import DATA, assert_journal_invariants, config


@pytest.mark.timeout(180)
def test_a_breaker_halt_cancels_what_a_volume_cap_left_of_orders_adding_exposure(
    live, tmp_path
) -> None:
    """A strategy with 50,000,000 of cash and a 0.5% volume cap buys over many bars; its 3%
    drawdown breaker halts it within days. The remainder of its buys is canceled at the next
    gate (``restricted``): before, it went on filling for the rest of the run (69
    exposure-adding fills after the halt in this window)."""
    from actors.runtime import start

    flip = {"id": "flip", "strategy": "tests.kit.live:Flipper", "params": {"period": 6},
            "symbols": ["ORCL", "NVDA"], "sim": {"cash": 50_000_000, "size_pct": 0.45}}  # fmt: skip
    cfg = config([flip], [DATA / "ORCL.csv", DATA / "NVDA.csv"], tmp_path / "journal.sqlite",
                 data={"start": "2000-01-01", "end": "2001-12-31"},
                 broker={"max_volume_pct": 0.5},
                 risk={"strategies": {"flip": {"max_drawdown_pct": 3}}})  # fmt: skip
    topo = start(cfg)
    assert topo.run()["state"] == "done"
    with Journal(topo.journal_path, readonly=True) as journal:
        trips = [e.event for e in journal.read([EventKind.BREAKER_TRIPPED])]
        assert trips and str(trips[0].scope) == "strategy:flip"  # type: ignore[attr-defined]
        halted_at = trips[0].bar_index  # type: ignore[attr-defined]
        canceled = [e.event for e in journal.read([EventKind.ORDER_CANCELED])
                    if e.event.why == "restricted"]  # type: ignore[attr-defined]  # fmt: skip
        assert canceled and {c.bar_index for c in canceled} == {halted_at}  # type: ignore[attr-defined]
        position: dict[str, float] = {}
        adding = []
        for fill in journal.fills():
            old = position.get(fill.symbol, 0.0)
            position[fill.symbol] = old + fill.qty
            if fill.bar_index > halted_at and abs(old + fill.qty) > abs(old):
                adding.append(fill)
    assert adding == []
    assert_journal_invariants(topo.journal_path)
