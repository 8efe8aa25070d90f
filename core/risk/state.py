"""Trading states at three scopes (global, ``strategy:<id>``, ``symbol:<SYM>``).

An order's effective state is the most restrictive of its three scopes. Each scope also
remembers who restricted it (an operator's kill switch, or which breaker), so that a breaker
lifts only its own restriction (a fresh bar ends a stale-data halt, a cooldown ends a loss
streak halt) and never an operator's. State changes only through events (``apply``), so the
live object and one rebuilt from the journal are the same by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pydantic import BaseModel

from core.events import (
    BreakerTripped,
    KillMode,
    KillSwitchEngaged,
    KillSwitchReleased,
    RiskReason,
    Scope,
    ScopeKind,
    TradingState,
    TradingStateChanged,
)

__all__ = [
    "BREAKER",
    "GLOBAL",
    "ScopeStatus",
    "TradingStates",
    "most_restrictive",
    "rank",
    "strategy_scope",
    "symbol_scope",
]

BREAKER = "breaker"  # the ``by`` of every change a breaker makes
GLOBAL = Scope(kind=ScopeKind.GLOBAL)
_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}
_KILL_STATE = {KillMode.HALT: TradingState.HALTED, KillMode.REDUCE: TradingState.REDUCING}


def rank(state: TradingState) -> int:
    """0 for ACTIVE, 1 for REDUCING, 2 for HALTED: higher is more restrictive."""
    return _RANK[state]


def most_restrictive(*states: TradingState) -> TradingState:
    """The most restrictive of some states (ACTIVE when given none)."""
    return max(states, key=rank, default=TradingState.ACTIVE)


def strategy_scope(strategy_id: str) -> Scope:
    """``strategy:<id>``."""
    return Scope(kind=ScopeKind.STRATEGY, name=strategy_id)


def symbol_scope(symbol: str) -> Scope:
    """``symbol:<SYM>``."""
    return Scope(kind=ScopeKind.SYMBOL, name=symbol)


@dataclass(frozen=True, slots=True)
class ScopeStatus:
    """A scope's state and who set it: ``reason`` None with ``by`` an operator for a kill."""

    state: TradingState = TradingState.ACTIVE
    reason: RiskReason | None = None
    by: str = "system"
    until_bar: int | None = None  # a cooldown's first bar of trading again


_ACTIVE = ScopeStatus()


class TradingStates:
    """The trading state of every scope; mutated only by ``apply``-ing events."""

    def __init__(self) -> None:
        self._status: dict[Scope, ScopeStatus] = {}
        self._kills: dict[Scope, KillSwitchEngaged] = {}

    # ------------------------------------------------------------------ queries
    def status(self, scope: Scope) -> ScopeStatus:
        """A scope's status (ACTIVE, by ``system``, for a scope never touched)."""
        return self._status.get(scope, _ACTIVE)

    def state(self, scope: Scope) -> TradingState:
        """A scope's own state (not combined with the other scopes)."""
        return self.status(scope).state

    def effective(self, strategy_id: str, symbol: str) -> tuple[TradingState, Scope]:
        """The state that applies to an order, and the scope that decides it.

        On a tie the broader scope decides (global, then strategy, then symbol), so a
        rejection names the widest restriction an operator would have to lift.
        """
        scopes = (GLOBAL, strategy_scope(strategy_id), symbol_scope(symbol))
        deciding = max(scopes, key=lambda s: (rank(self.state(s)), -scopes.index(s)))
        return self.state(deciding), deciding

    def restricted(self) -> dict[Scope, ScopeStatus]:
        """Every scope that is not ACTIVE (status and the control API)."""
        return {s: st for s, st in self._status.items() if st.state is not TradingState.ACTIVE}

    def kill_switches(self) -> dict[Scope, KillSwitchEngaged]:
        """Engaged kill switches by scope (until a resume of that scope)."""
        return dict(self._kills)

    def snapshot(self) -> dict[str, object]:
        """Plain data for comparing two instances (a live one and a rebuilt one)."""
        return {
            "status": {str(s): st for s, st in sorted(self._status.items(), key=_by_name)},
            "kills": {str(s): k for s, k in sorted(self._kills.items(), key=_by_name)},
        }

    # ------------------------------------------------------------------ commands -> events
    def kill(self, scope: Scope, mode: KillMode, *, flatten: bool, by: str) -> list[BaseModel]:
        """An operator's kill switch: the scope becomes at least HALTED or REDUCING, owned by them.

        A kill never loosens: ``reduce`` on a HALTED scope keeps it HALTED (resume first).
        Returns [TradingStateChanged (if the state changes), KillSwitchEngaged], applied.
        """
        old = self.status(scope).state
        new = most_restrictive(old, _KILL_STATE[mode])
        events: list[BaseModel] = []
        if new is not old:
            detail = f"kill switch {mode.value}" + (" with flatten" if flatten else "")
            events.append(TradingStateChanged(scope=scope, old=old, new=new, by=by, detail=detail))
        events.append(KillSwitchEngaged(scope=scope, mode=mode, flatten=flatten, by=by))
        for event in events:
            self.apply(event)
        return events

    def resume(self, scope: Scope, *, by: str) -> list[BaseModel]:
        """An operator sets a scope ACTIVE again, whoever restricted it (kill or breaker).

        Only this scope: resuming ``global`` leaves a halted ``strategy:x`` halted. A breaker
        whose condition still holds trips again on the next bar; to trade through it, change
        the limit (``set_limits``, journaled). Returns [TradingStateChanged?, KillSwitchReleased].
        """
        old = self.status(scope).state
        events: list[BaseModel] = []
        if old is not TradingState.ACTIVE:
            events.append(
                TradingStateChanged(
                    scope=scope, old=old, new=TradingState.ACTIVE, by=by, detail="resumed"
                )
            )
        events.append(KillSwitchReleased(scope=scope, by=by))
        for event in events:
            self.apply(event)
        return events

    def lift(self, scope: Scope, reason: RiskReason, detail: str) -> TradingStateChanged | None:
        """A breaker ends its own restriction (never another breaker's or an operator's)."""
        status = self.status(scope)
        if status.state is TradingState.ACTIVE or status.reason is not reason:
            return None
        event = TradingStateChanged(
            scope=scope, old=status.state, new=TradingState.ACTIVE, reason=reason, by=BREAKER,
            detail=detail,
        )  # fmt: skip
        self.apply(event)
        return event

    # ------------------------------------------------------------------ events -> state
    def apply(self, event: BaseModel) -> None:
        """Apply one state event (live or replayed from the journal); others are ignored."""
        match event:
            case TradingStateChanged():
                cur = self.status(event.scope)
                keep = event.new is not TradingState.ACTIVE and event.reason is cur.reason
                self._set(
                    event.scope,
                    ScopeStatus(event.new, event.reason, event.by, cur.until_bar if keep else None),
                )
            case BreakerTripped():
                cur = self.status(event.scope)
                if rank(event.new_state) > rank(cur.state):
                    self._set(
                        event.scope,
                        ScopeStatus(event.new_state, event.breaker, BREAKER, event.until_bar),
                    )
            case KillSwitchEngaged():
                cur = self.status(event.scope)
                new = most_restrictive(cur.state, _KILL_STATE[event.mode])
                self._set(event.scope, ScopeStatus(new, None, event.by))
                self._kills[event.scope] = event
            case KillSwitchReleased():
                self._set(event.scope, ScopeStatus(TradingState.ACTIVE, None, event.by))
                self._kills.pop(event.scope, None)

    def _set(self, scope: Scope, status: ScopeStatus) -> None:
        if status.state is TradingState.ACTIVE and status.reason is None:
            status = replace(status, until_bar=None)
        self._status[scope] = status


def _by_name(item: tuple[Scope, object]) -> str:
    return str(item[0])
