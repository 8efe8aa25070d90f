"""Garbage collection between calls (``actors.heap``): CPython's schedule kept, run by the
wire after the calls that end a bar, and a settled actor's start-up heap frozen."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

import pytest

from actors.heap import SAFETY_THRESHOLD, YOUNG_THRESHOLD, collect_due, settle
from actors.wire import WirePeer
from tests.kit.wire import Echo


@pytest.fixture
def settled() -> Iterator[None]:
    """This process as a settled actor for the test: its heap frozen, then collected (so
    CPython counts nothing as long-lived), CPython's trigger at ``SAFETY_THRESHOLD``; the
    collector as it was afterwards."""
    threshold = gc.get_threshold()
    gc.collect()
    settle()
    gc.collect()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def _litter(n: int) -> list[list[object]]:
    """``n`` new tracked objects, kept alive by the caller."""
    return [[] for _ in range(n)]


def _cycles(n: int) -> None:
    """``n`` unreachable self-referencing lists: garbage only a collection frees."""
    for _ in range(n):
        cycle: list[object] = []
        cycle.append(cycle)


def _collections() -> list[int]:
    return [s["collections"] for s in gc.get_stats()]


def _generation_collected(before: list[int]) -> int | None:
    changed = [g for g, (a, b) in enumerate(zip(_collections(), before, strict=True)) if a != b]
    assert len(changed) <= 1
    return changed[0] if changed else None


def test_settle_freezes_what_the_process_holds_and_moves_the_trigger_away(settled) -> None:
    assert gc.get_freeze_count() > 1000  # pytest and this suite's modules
    assert gc.get_threshold()[0] == SAFETY_THRESHOLD
    before = _collections()
    kept = _litter(5 * YOUNG_THRESHOLD)  # CPython alone would have collected five times
    assert _collections() == before
    assert gc.get_count()[0] >= len(kept)


def test_nothing_is_collected_until_more_than_the_young_threshold_is_new(settled) -> None:
    before = _collections()
    kept = _litter(YOUNG_THRESHOLD // 2)
    assert collect_due() is False
    assert _collections() == before
    kept += _litter(YOUNG_THRESHOLD)
    assert collect_due() is True
    assert _generation_collected(before) == 0
    assert gc.get_count()[0] < YOUNG_THRESHOLD // 10  # counted again from nothing
    assert gc.get_threshold()[0] == SAFETY_THRESHOLD  # the trigger is away again


def test_the_generations_collected_are_cpythons_choice(settled) -> None:
    # By hand from CPython's rule (Modules/gcmodule.c, gc_collect_generations): the oldest
    # generation whose count (collections of the one below since its own last) exceeds its
    # threshold (10) is collected; the oldest only when what was promoted to it since the
    # last full collection exceeds a quarter of what it held then (here nothing: frozen).
    # So eleven young collections, the twelfth of generation 1; the 133rd is a full one.
    expected = ([0] * 11 + [1]) * 11 + [2]
    kept, got = [], []
    for _ in expected:
        kept.append(_litter(YOUNG_THRESHOLD + 50))  # survivors: promoted by each collection
        before = _collections()
        collect_due()
        got.append(_generation_collected(before))
    assert got == expected


def test_a_full_collection_waits_for_cpythons_guard(settled) -> None:
    # Half a million long-lived objects and only garbage since: the 133rd collection would
    # be a full one by the counts alone, but nothing was promoted, so CPython's guard makes
    # it a young one, and the schedule starts over.
    held = _litter(500_000)
    gc.collect()  # held: the long-lived total
    got = []
    for _ in range(133):
        _cycles(YOUNG_THRESHOLD + 200)  # lists: 80 may come from a free list, uncounted
        before = _collections()
        collect_due()
        got.append(_generation_collected(before))
    assert got == ([0] * 11 + [1]) * 11 + [0]
    assert len(held) == 500_000


@pytest.fixture
def echo(ray_session):
    """A fresh ``Echo`` actor (its own process), killed after the test."""
    handle = ray_session.remote(Echo).options(num_cpus=0).remote()
    yield handle
    ray_session.kill(handle, no_restart=True)


@pytest.mark.timeout(60)
def test_an_actor_collects_after_the_calls_that_end_a_bar_not_inside_others(
    ray_session, echo
) -> None:
    ray = ray_session
    peer = WirePeer("echo", echo, restart_wait_s=30.0, timeout_s=30.0)
    peer.call("echo", 1)  # connected: the actor asked for its endpoint, so it has settled
    heap = ray.get(echo.heap.remote())
    assert heap["frozen"] > 10_000  # Ray, the actor's modules: never scanned again
    assert heap["threshold"][0] == SAFETY_THRESHOLD

    # A Ray call (not a bar's end) leaves its garbage: nothing is collected inside it
    # or after it, as CPython's own trigger is now far away.
    ray.get(echo.litter.remote(5 * YOUNG_THRESHOLD))
    littered = ray.get(echo.heap.remote())
    assert littered["count"][0] >= 5 * YOUNG_THRESHOLD
    assert [g["collections"] for g in littered["stats"]] == [
        g["collections"] for g in heap["stats"]
    ]

    # ``litter`` on the wire is in Echo.COLLECT_AFTER: once answered, one collection runs
    # (of generation 0 or 1, as CPython's counts make it) and frees both calls' cycles.
    def total(heap: dict, key: str) -> int:
        return sum(generation[key] for generation in heap["stats"])

    peer.call("litter", 5 * YOUNG_THRESHOLD)
    deadline = time.monotonic() + 20.0  # the collection runs once the answer has gone
    after = ray.get(echo.heap.remote())
    while total(after, "collections") == total(littered, "collections"):
        assert time.monotonic() < deadline, "no collection after the wire's answer"
        time.sleep(0.05)
        after = ray.get(echo.heap.remote())
    assert total(after, "collections") - total(littered, "collections") == 1
    assert total(after, "collected") - total(littered, "collected") >= 2 * 5 * YOUNG_THRESHOLD
