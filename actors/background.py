"""Ray's helper processes yield the CPU to the bar path when raytrader starts Ray itself.

A local ``ray.init`` starts, beside the GCS and the raylet, a dashboard agent, a runtime-env
agent, a log monitor and an autoscaler monitor. Every few seconds they wake and spend some
milliseconds of CPU (the dashboard agent most: it samples every worker process). On a small
machine that lands inside a bar now and then and is the longest delay a bar meets (docs/live.md,
"Cold bars"). At nice 19 they run in the idle time between bars instead; the GCS and the
raylet, which restart actors and answer their calls, keep their priority. A cluster that
raytrader joins (``RAY_ADDRESS``) is left alone: its processes are not ours.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["HELPER_MARKERS", "HELPER_NICE", "descendants", "yield_helpers"]

log = logging.getLogger("raytrader.background")

#: Command-line fragments of the Ray helpers that yield (the GCS and raylet are not among them).
HELPER_MARKERS = (
    "ray::DashboardAgent",
    "ray::RuntimeEnvAgent",
    "ray/dashboard/dashboard.py",
    "ray/_private/log_monitor.py",
    "ray/autoscaler/_private/monitor.py",
)
#: The lowest CPU priority, for work that must not delay a bar (also the journal actor's
#: checkpoint thread).
HELPER_NICE = 19
_PROC = Path("/proc")


def descendants(root: int, parents: Mapping[int, int]) -> list[int]:
    """Every process below ``root`` in a pid -> parent pid table, nearest first."""
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    out, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _parents() -> dict[int, int]:
    table = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            try:  # the field after the parenthesized command name is the state, then ppid
                stat = (entry / "stat").read_text()
                table[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue  # gone in between
    return table


def _cmdline(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace"
        )
    except OSError:
        return ""


def yield_helpers(
    root: int | None = None, markers: Iterable[str] = HELPER_MARKERS, nice: int = HELPER_NICE
) -> list[int]:
    """Set every thread of the processes below ``root`` (default: this one) whose command
    line holds one of ``markers`` to ``nice``; returns their pids. Linux only (elsewhere, and
    for a process that is gone or not ours, nothing happens)."""
    if not _PROC.is_dir():
        return []
    wanted = tuple(markers)
    found = []
    for pid in descendants(os.getpid() if root is None else root, _parents()):
        if not any(m in _cmdline(pid) for m in wanted):
            continue
        try:
            tids = [int(t.name) for t in (_PROC / str(pid) / "task").iterdir()]
        except OSError:
            continue
        for tid in tids:  # Linux keeps a nice value per thread
            try:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            except OSError:
                continue
        found.append(pid)
    log.debug("Ray helpers at nice %d: %s", nice, found)
    return found
