"""The actors' plain answers turned into the API's response models (pure functions, no Ray).

Inputs are what the live actors return today: a host's ``status()`` (with its ledger
snapshot), the broker's ``accounts()``, the journal reader's ``orders()``, risk's ``state()``
(with the breakers' marks) and the feed's ``status()``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from cluster.api.schemas import (
    ComponentCheck,
    OrdersQuery,
    OrderView,
    PnlResponse,
    PnlView,
    PositionView,
    RiskStateResponse,
    ScopeStateView,
    StrategyDetail,
    StrategySummary,
)
from core.events import Decision, FillReason, OrderStatus, RiskReason, TradingState
from core.metric_names import TRADING_STATE_VALUE

__all__ = [
    "OPEN_STATUSES",
    "data_check",
    "detail",
    "orders",
    "pnl",
    "positions",
    "risk_state",
    "summary",
]

OPEN_STATUSES = (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
_FEED_BAD = ("failed",)


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _mark(marks: Mapping[str, Any], key: str, scope: str) -> float | None:
    """A risk mark of a scope: ``peak`` is a number, ``day_start`` a (day, equity) pair."""
    value = marks.get(key, {}).get(scope)
    if isinstance(value, list | tuple):
        value = value[-1] if value else None
    return _num(value)


def _positions(strategy: str, ledger: Mapping[str, Any]) -> list[PositionView]:
    avg = ledger.get("avg_prices", {})
    last = ledger.get("last_closes", {})
    out = []
    for symbol, qty in sorted(ledger.get("positions", {}).items()):
        if not qty:
            continue
        a, px = _num(avg.get(symbol)), _num(last.get(symbol))
        out.append(PositionView(
            strategy=strategy, symbol=symbol, qty=float(qty), avg_price=a, last_price=px,
            market_value=0.0 if px is None else qty * px,
            unrealized_pnl=0.0 if px is None or a is None else (px - a) * qty,
        ))  # fmt: skip
    return out


def positions(accounts: Mapping[str, Mapping[str, Any]]) -> list[PositionView]:
    """Every open position of every broker sub-account."""
    return [p for sid in sorted(accounts) for p in _positions(sid, accounts[sid])]


def _pnl_view(scope: str, ledger: Mapping[str, Any], marks: Mapping[str, Any]) -> PnlView:
    equity = float(ledger.get("equity", 0.0))
    unrealized = sum(p.unrealized_pnl for p in _positions(scope, ledger))
    peak = _mark(marks, "peak", scope)
    drawdown = None if not peak else max(0.0, 1.0 - equity / peak)
    return PnlView(
        scope=scope, equity=equity, cash=float(ledger.get("cash", 0.0)),
        realized=float(ledger.get("realized_pnl", 0.0)), unrealized=unrealized,
        commission=float(ledger.get("total_commission", 0.0)),
        day_start_equity=_mark(marks, "day_start", scope), peak_equity=peak,
        drawdown=drawdown,
    )  # fmt: skip


def pnl(accounts: Mapping[str, Mapping[str, Any]], marks: Mapping[str, Any]) -> PnlResponse:
    """The account (sum of the sub-accounts) and each strategy, with risk's marks."""
    per = [_pnl_view(f"strategy:{sid}", accounts[sid], marks) for sid in sorted(accounts)]
    total = {"equity": 0.0, "cash": 0.0, "realized_pnl": 0.0, "total_commission": 0.0}
    for ledger in accounts.values():
        for key in total:
            total[key] += float(ledger.get(key, 0.0))
    view = _pnl_view("global", total, marks)
    view = view.model_copy(update={"unrealized": sum(p.unrealized for p in per)})
    return PnlResponse(total=view, strategies=per)


def summary(status: Mapping[str, Any]) -> StrategySummary:
    """A host's ``status()`` as listed by ``GET /strategies``."""
    ledger = status.get("ledger", {})
    return StrategySummary(
        id=status["id"], strategy=status["strategy"], state=status["state"],
        symbols=list(status.get("symbols", [])), equity=_num(ledger.get("equity")),
        realized_pnl=_num(ledger.get("realized_pnl")),
    )  # fmt: skip


def _effective(state: Mapping[str, Any], scopes: Iterable[str]) -> TradingState:
    """The most restrictive state among the global one and the given scopes'."""
    found = [TradingState(state.get("global_state", "active"))]
    wanted = set(scopes)
    found += [TradingState(s["state"]) for s in state.get("scopes", []) if s["scope"] in wanted]
    return max(found, key=lambda s: TRADING_STATE_VALUE[s])


def detail(status: Mapping[str, Any], state: Mapping[str, Any]) -> StrategyDetail:
    """A host's ``status()`` with its positions, P&L and effective trading state."""
    sid = status["id"]
    ledger = status.get("ledger", {})
    base = summary(status).model_dump()
    return StrategyDetail(
        **base, params=dict(status.get("params", {})), sim=status.get("sim"),
        trading_state=_effective(state, [f"strategy:{sid}"]),
        positions=_positions(sid, ledger),
        pnl=_pnl_view(f"strategy:{sid}", ledger, state.get("marks", {})) if ledger else None,
        error=status.get("error"), traceback=status.get("traceback"),
    )  # fmt: skip


def _order(row: Mapping[str, Any]) -> OrderView:
    decision = Decision(row["decision"]) if row.get("decision") else None
    status = row.get("status")
    if status is None:  # never reached the broker: refused by risk, or in flight
        status = OrderStatus.REJECTED if decision is Decision.REJECTED else OrderStatus.NEW
    return OrderView(
        client_order_id=row["client_order_id"], strategy=row["strategy"], symbol=row["symbol"],
        qty=float(row.get("approved_qty") or row.get("requested_qty") or row.get("order_qty")
                  or 0.0),
        filled_qty=float(row.get("filled_qty") or 0.0), status=OrderStatus(status),
        reason=FillReason(row.get("reason") or FillReason.SIGNAL), decision=decision,
        risk_reasons=[RiskReason(r) for r in row.get("reasons", [])],
        bar_index=int(row.get("bar_index") or 0), detail=row.get("detail") or "",
    )  # fmt: skip


def orders(rows: Iterable[Mapping[str, Any]], query: OrdersQuery) -> list[OrderView]:
    """The journal's orders filtered by the query, newest first, at most ``query.limit``."""
    out: list[OrderView] = []
    for row in reversed(list(rows)):
        view = _order(row)
        if query.symbol is not None and view.symbol != query.symbol:
            continue
        if query.status is not None and view.status is not query.status:
            continue
        if query.open_only and view.status not in OPEN_STATUSES:
            continue
        out.append(view)
        if len(out) >= query.limit:
            break
    return out


def risk_state(state: Mapping[str, Any]) -> RiskStateResponse:
    """Risk's ``state()`` as ``GET /risk/state`` answers it."""
    scopes = [ScopeStateView.model_validate({**s, "by": s.get("by") or "system"})
              for s in state.get("scopes", [])]  # fmt: skip
    return RiskStateResponse(global_state=state["global_state"], scopes=scopes,
                             last_bar=state.get("last_bar"))  # fmt: skip


def data_check(
    feed: ComponentCheck, status: Mapping[str, Any] | None, state: Mapping[str, Any] | None
) -> ComponentCheck:
    """Data fresh: the feed answers and has not failed, and no stale-data breaker tripped."""
    if not feed.ok or status is None:
        return ComponentCheck(ok=False, detail=f"feed unreachable: {feed.detail}")
    where = f"feed {status['state']}, bar {status['next_bar']}/{status['bars']}"
    if status.get("current_ts"):
        where += f", at {status['current_ts']}"
    if status["state"] in _FEED_BAD:
        return ComponentCheck(ok=False, detail=f"{where}: {status.get('error')}")
    stale = [s["scope"] for s in (state or {}).get("scopes", [])
             if s.get("reason") == RiskReason.STALE_DATA.value]  # fmt: skip
    if stale:
        return ComponentCheck(ok=False, detail=f"{where}; stale data in {', '.join(stale)}")
    return ComponentCheck(ok=True, detail=where)
