"""A strategy instance's lifecycle as an explicit transition table.

RUNNING strategies evaluate every bar and send intents; PAUSED ones keep following the bars
(history, carried targets, fills) but send nothing; STOPPED and FAILED ones only keep their
ledger in step with the broker's fills. STOPPED and FAILED are final for the run: a failed
strategy's code raised, and starting it again is a new run's decision, not a button.
"""

from __future__ import annotations

from core.errors import RaytraderError
from core.events import StrategyState

__all__ = ["STRATEGY_TRANSITIONS", "StrategyStateError", "check_transition", "evaluates"]

#: Allowed moves: state -> states it may become.
STRATEGY_TRANSITIONS: dict[StrategyState, frozenset[StrategyState]] = {
    StrategyState.STARTING: frozenset(
        {StrategyState.RUNNING, StrategyState.FAILED, StrategyState.STOPPED}
    ),
    StrategyState.RUNNING: frozenset(
        {StrategyState.PAUSED, StrategyState.STOPPED, StrategyState.FAILED}
    ),
    StrategyState.PAUSED: frozenset(
        {StrategyState.RUNNING, StrategyState.STOPPED, StrategyState.FAILED}
    ),
    StrategyState.STOPPED: frozenset(),
    StrategyState.FAILED: frozenset(),
}


class StrategyStateError(RaytraderError, ValueError):
    """A lifecycle change the table forbids (e.g. resuming a stopped strategy)."""

    def __init__(self, strategy_id: str, old: StrategyState, new: StrategyState) -> None:
        self.strategy_id = strategy_id
        self.old = old
        self.new = new
        super().__init__(f"strategy {strategy_id}: cannot go from {old.value} to {new.value}")

    def __reduce__(self) -> tuple[type, tuple[str, StrategyState, StrategyState]]:
        # Rebuilt from its fields when it crosses a process boundary (a Ray actor's answer).
        return type(self), (self.strategy_id, self.old, self.new)


def check_transition(strategy_id: str, old: StrategyState, new: StrategyState) -> None:
    """Raise ``StrategyStateError`` unless ``old -> new`` is in the table."""
    if new not in STRATEGY_TRANSITIONS[old]:
        raise StrategyStateError(strategy_id, old, new)


def evaluates(state: StrategyState) -> bool:
    """Whether a strategy in this state still evaluates bars (RUNNING and PAUSED do)."""
    return state in (StrategyState.RUNNING, StrategyState.PAUSED)
