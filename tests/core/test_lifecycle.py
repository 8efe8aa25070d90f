"""The strategy lifecycle table: allowed moves pass, the rest raise naming both states."""

from __future__ import annotations

import pytest

from core.events import StrategyState as S
from core.lifecycle import StrategyStateError, check_transition, evaluates


@pytest.mark.parametrize(
    ("old", "new"),
    [(S.STARTING, S.RUNNING), (S.RUNNING, S.PAUSED), (S.PAUSED, S.RUNNING),
     (S.RUNNING, S.FAILED), (S.PAUSED, S.STOPPED)],
)  # fmt: skip
def test_allowed_moves_pass(old, new) -> None:
    check_transition("s1", old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [(S.STOPPED, S.RUNNING), (S.FAILED, S.RUNNING), (S.FAILED, S.PAUSED), (S.RUNNING, S.RUNNING)],
)
def test_final_states_and_no_ops_are_refused(old, new) -> None:
    with pytest.raises(StrategyStateError, match=f"from {old.value} to {new.value}"):
        check_transition("s1", old, new)


def test_only_running_and_paused_strategies_evaluate_bars() -> None:
    assert [s for s in S if evaluates(s)] == [S.RUNNING, S.PAUSED]
