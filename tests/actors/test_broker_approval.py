"""The broker's approval rule (``actors.broker._approves``) on decisions read back from a real
SQLite journal: an order passes only with an approving decision of the same strategy, symbol
and quantity (the approved one when risk cut it). The cases are written out by hand."""

from __future__ import annotations

from pathlib import Path

from actors.broker import _approves
from core.events import Decision, RiskReason, RiskVerdict
from core.journal import Journal
from tests.kit.risk import T0, intent


def _decided(coid: str, decision: Decision, requested: float, approved: float) -> RiskVerdict:
    reasons = () if decision is Decision.APPROVED else (RiskReason.MAX_POSITION,)
    return RiskVerdict(client_order_id=coid, strategy_id="s1", symbol="AAPL", decision=decision,
                       requested_qty=requested, approved_qty=approved, reasons=reasons,
                       bar_index=0, decided_at=T0)  # fmt: skip


def test_only_an_approving_decision_of_the_same_order_passes(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.append_many([
            _decided("ok", Decision.APPROVED, 0.1 + 0.2, 0.1 + 0.2),
            _decided("cut", Decision.MODIFIED, 10.0, 1 / 3),
            _decided("no", Decision.REJECTED, 10.0, 0.0),
        ], source="risk")  # fmt: skip

        def passes(**kw: object) -> bool:
            order = intent(**kw)  # type: ignore[arg-type]
            return _approves(journal.approval(order.client_order_id), order)

        assert passes(qty=0.1 + 0.2, coid="ok")
        assert passes(qty=1 / 3, coid="cut")  # the size risk approved
        assert not passes(qty=10.0, coid="cut")  # the size asked for, not approved
        assert not passes(qty=0.3, coid="ok")  # 0.3 != 0.1 + 0.2: exact, not close
        assert not passes(qty=10.0, coid="no")  # rejected: no size passes
        assert not passes(qty=0.1 + 0.2, coid="ok", strategy="s2")
        assert not passes(qty=0.1 + 0.2, coid="ok", symbol="MSFT")
        assert not passes(qty=5.0, coid="never-decided")
