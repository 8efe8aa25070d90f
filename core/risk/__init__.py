"""The risk engine as pure Python: limits, trading states, pre-trade rules, circuit breakers.

The ``Risk`` actor (actors/) is a thin shell around ``RiskEngine``; everything here runs and
is tested without Ray. See docs/live.md ("Risk, gate", "Kill switch", "Restarts").
"""

from __future__ import annotations

from core.risk.breakers import MarkBook, Trip
from core.risk.engine import REBUILD_KINDS, FlattenOrders, RiskEngine
from core.risk.limits import RiskLimits, StrategyLimits
from core.risk.rules import PRE_TRADE_RULES, Cut, Reject
from core.risk.state import ScopeStatus, TradingStates
from core.risk.view import OpenOrder, RiskView

__all__ = [
    "PRE_TRADE_RULES",
    "REBUILD_KINDS",
    "Cut",
    "FlattenOrders",
    "MarkBook",
    "OpenOrder",
    "Reject",
    "RiskEngine",
    "RiskLimits",
    "RiskView",
    "ScopeStatus",
    "StrategyLimits",
    "TradingStates",
    "Trip",
]
