"""Garbage collection between a live actor's calls, not inside them.

CPython collects whenever 700 container objects more have been made than freed since its
last collection, wherever that count happens to be crossed: in a live actor, inside a bar's
call. In 400 paced W5 bars on the reference machine (a 2-vCPU VM) that was 15-17
collections inside the feed's, risk's, the broker's and the hosts' calls, two of them of
generation 1 at about 2.5 ms. A full collection has every object of the process to scan,
about 210,000 in a live actor after start-up (Ray, numpy, polars, pydantic, its state):
74-96 ms, a bar ten times over its budget, whenever it comes due.

So a live actor, once started, freezes what it holds (``gc.freeze``: no collection scans
those objects again, so a full one costs what was made since), moves CPython's trigger out
of the way (``SAFETY_THRESHOLD``, for a call that makes that much by itself), and has the
collection that came due run between bars: the wire right after answering a call that
ends the actor's part of a bar (``actors.wire``, ``ActorShell.COLLECT_AFTER``), the feed
after each bar. Which generations it collects is CPython's own choice (``collect_due``).
"""

from __future__ import annotations

import gc
import threading

__all__ = ["SAFETY_THRESHOLD", "YOUNG_THRESHOLD", "collect_due", "settle"]

#: CPython's default first threshold: new objects that make a collection due.
YOUNG_THRESHOLD = 700
#: The automatic trigger while ``settle`` is in force: only a call that makes this many
#: objects by itself meets a collection inside it.
SAFETY_THRESHOLD = 100_000
_LOCK = threading.Lock()  # two wire threads of one actor: one lowers, the same one restores


class _Trigger:
    """An object whose allocation goes through CPython's collection trigger (a list or a
    dict would come from a free list, which does not)."""

    __slots__ = ("_",)


def settle() -> None:
    """Freeze the objects this process holds now and leave the collections to
    ``collect_due``; once the actor has started (a second call freezes what was made
    since)."""
    with _LOCK:
        gc.freeze()
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(SAFETY_THRESHOLD, older, oldest)


def collect_due() -> bool:
    """Run here the collection CPython would have run by now, if one is due (more than
    ``YOUNG_THRESHOLD`` new objects): its own trigger, lowered for one allocation, so the
    generations collected are its choice (its rules for the older ones included). Returns
    whether one was due."""
    with _LOCK:
        if gc.get_count()[0] <= YOUNG_THRESHOLD or not gc.isenabled():
            return False
        threshold = gc.get_threshold()
        gc.set_threshold(YOUNG_THRESHOLD, *threshold[1:])
        try:
            _Trigger()
        finally:
            gc.set_threshold(*threshold)
        if gc.get_count()[0] > YOUNG_THRESHOLD:  # a Python that defers its collections
            gc.collect(0)  # (3.12+ may, past the restore): the young one, at least
        return True
