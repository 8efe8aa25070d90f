"""``bench.live``'s pooling of several paced runs: the bars of every run together, warm-ups
and WAL resets summed, and a final equity that differs between runs of the same bars shown,
not hidden; and its closing verdict against W5's targets. Expected values are written out by
hand from the inputs."""

from __future__ import annotations

from typing import Any

from bench.live import _ms, _pooled, verdict


def _run(
    to_fill: list[float], equity: float = 100.0, done: int = 3, resets: tuple[int, float] = (0, 0.0)
) -> dict[str, Any]:
    return {
        "elapsed": 2.0, "cycle": [0.001] * len(to_fill), "to_fill": to_fill,
        "to_hosts": [x / 2 for x in to_fill], "equity": equity, "state": "DONE",
        "warm_ups": {"done": done, "late": 1, "skipped": 0}, "wal_resets": resets,
    }  # fmt: skip


def test_one_run_is_itself() -> None:
    run = _run([0.004])
    assert _pooled([run]) is run


def test_runs_pool_their_bars_and_sum_their_warm_ups() -> None:
    first, second = _run([0.004, 0.006], resets=(2, 7.5)), _run([0.010], done=5, resets=(1, 3.0))
    pooled = _pooled([first, second])
    assert pooled["to_fill"] == [0.004, 0.006, 0.010]
    assert pooled["wal_resets"] == (3, 7.5)  # the journal's WAL resets summed, the longest kept
    assert pooled["to_hosts"] == [0.002, 0.003, 0.005]
    assert pooled["warm_ups"] == {"done": 8, "late": 2, "skipped": 0}
    assert pooled["state"] == "DONE"
    assert pooled["equity"] == 100.0
    # the median of the three pooled bars is the middle one: 6 ms
    assert _ms(pooled["to_fill"], 50) == "6.00"


def test_a_final_equity_that_differs_between_runs_is_shown() -> None:
    pooled = _pooled([_run([0.004], equity=100.0), _run([0.005], equity=101.0)])
    assert pooled["state"] == "DONE/final equity differs between runs"


def test_ms_of_no_bars_is_a_dash() -> None:
    assert _ms([], 99) == "-"
    assert _ms([0.001, 0.003], 50) == "2.00"  # halfway between 1 and 3 ms


def test_the_verdict_line_says_met_or_missed_against_each_target() -> None:
    # 100 bars of 1..100 ms: numpy's linear p99 is 99 + 0.01 * (100 - 99) = 99.01 ms (by hand)
    slow = [k / 1e3 for k in range(1, 101)]
    line = verdict(slow, 4_999.0, 1.07)
    assert "paced p99 99.01 ms (target < 10 ms): missed" in line
    assert "4,999 symbol-bars/s (target >= 5,000): missed" in line
    assert "one process at 1.07 ms/bar" in line
    # 100 bars of 0.01..1.00 ms: p99 0.9901 ms
    fast = [k / 1e5 for k in range(1, 101)]
    line = verdict(fast, 5_000.0, 0.75)
    assert "paced p99 0.99 ms (target < 10 ms): met" in line
    assert "5,000 symbol-bars/s (target >= 5,000): met" in line


def test_the_verdict_without_paced_bars_says_so() -> None:
    assert "no paced bar with a fill: p99 not measured" in verdict([], 6_000.0, 0.8)
