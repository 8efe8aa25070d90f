"""Where a paced W5 bar's CPU goes, process by process, from the kernel's scheduler trace.

``python -m bench.sched_trace [--seed 5] [--bars 400] [--slowest 10] [--show RANK ...]``

One paced W5 run (``bench.live``: a daily bar every 25 ms, warm-ups on) under ``perf record
-e sched:sched_switch -a``. Every bar with a fill has a window, from its emission (the feed's
clock) to its first fill's journal commit (the broker's); the trace says which process held
each CPU for how long inside it. Prints the run's p50/p99, the CPU by process group of the
bars around the median, and each of the slowest bars' CPU by group and idle CPU time: whether
a slow bar did more work, waited with a CPU idle, or met a process outside the run
(docs/live.md, "Cold bars"). Needs Linux's ``perf`` and the right to trace the whole machine
(root, or ``kernel.perf_event_paranoid`` at -1). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Segment", "Trace", "group", "main", "parse_switches"]

#: Fragments of the run's actors' process names (the kernel keeps 15 characters of a name:
#: ``ray::StrategyHost`` is ``ray::StrategyHo``).
GROUPS = ("StrategyHo", "Risk", "Broker", "DataFeed", "JournalRea")


@dataclass(frozen=True, slots=True)
class Segment:
    """One stretch of a CPU held by one task (``pid`` 0: the CPU idle), in ns."""

    cpu: int
    start: int
    end: int
    comm: str
    pid: int


def parse_switches(lines: Iterable[str]) -> list[Segment]:
    """Segments from ``perf script -F cpu,time,trace --ns`` lines of ``sched_switch`` events:
    a task holds its CPU from the switch that picked it to the next switch on that CPU.
    Lines that are not switch events are skipped; the result is sorted by start."""
    out: list[Segment] = []
    running: dict[int, tuple[int, str, int]] = {}
    for line in lines:
        head, sep, rest = line.partition("]")
        if not sep or "==>" not in rest:
            continue
        try:
            cpu = int(head.strip().lstrip("["))
            stamp, trace = rest.strip().split(": ", 1)
            seconds, _, fraction = stamp.rstrip(":").partition(".")
            t = int(seconds) * 1_000_000_000 + int(fraction.ljust(9, "0")[:9])
            after = trace.split("==>", 1)[1]
            comm = after.split("next_comm=", 1)[1].split(" next_pid=", 1)[0]
            pid = int(after.split("next_pid=", 1)[1].split()[0])
        except (ValueError, IndexError):
            continue
        if cpu in running:
            begun, held_by, held_pid = running[cpu]
            out.append(Segment(cpu, begun, t, held_by, held_pid))
        running[cpu] = (t, comm, pid)
    out.sort(key=lambda s: s.start)
    return out


def group(comm: str) -> str:
    """The run's actor a task belongs to by its name, else the name itself."""
    return next((g for g in GROUPS if g in comm), comm)


class Trace:
    """Scheduler segments by CPU, to ask what held the CPUs inside a window."""

    def __init__(self, segments: Iterable[Segment], owners: dict[int, str] | None = None) -> None:
        self._owners = owners or {}  # thread id -> its process's name (threads have their own)
        self._cpus: dict[int, tuple[np.ndarray, list[Segment]]] = {}
        by_cpu: dict[int, list[Segment]] = {}
        for s in segments:
            by_cpu.setdefault(s.cpu, []).append(s)
        for cpu, held in by_cpu.items():
            held.sort(key=lambda s: s.start)
            self._cpus[cpu] = (np.array([s.start for s in held]), held)

    def held(self, start: int, end: int) -> list[tuple[Segment, str]]:
        """Every segment overlapping ``[start, end)`` with its process's name, by start."""
        out = []
        for starts, held in self._cpus.values():
            i = max(0, int(np.searchsorted(starts, start, side="right")) - 1)
            while i < len(held) and held[i].start < end:
                if held[i].end > start:
                    out.append((held[i], self._owners.get(held[i].pid, held[i].comm)))
                i += 1
        return sorted(out, key=lambda sn: sn[0].start)

    def busy(self, start: int, end: int) -> Counter:
        """CPU time (ns) by group (``group`` of the thread's process name when known)
        inside ``[start, end)``, every CPU together; idle time is counted under ``"idle"``."""
        used: Counter = Counter()
        for s, name in self.held(start, end):
            overlap = min(s.end, end) - max(s.start, start)
            used["idle" if s.pid == 0 else group(name)] += overlap
        return used


def _ms(counter: Counter, scale: float = 1.0, top: int = 8) -> str:
    return ", ".join(f"{k} {v / scale / 1e6:.2f}" for k, v in counter.most_common(top))


def _thread_owners() -> dict[int, str]:
    """Every thread's id -> its process's name, now (Linux ``/proc``)."""
    owners = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            name = (proc / "comm").read_text().strip()
            owners.update({int(task.name): name for task in (proc / "task").iterdir()})
        except OSError:
            continue  # gone in between
    return owners


def _traced_run(
    seed: int, bars: int, data: Path
) -> tuple[dict[int, int], dict[int, int], dict[int, str]]:
    """One paced W5 run under ``perf``; emission and first-fill times (monotonic ns), and
    which process each thread belonged to."""
    import ray

    from actors.runtime import connect, start
    from bench.live import w5_config

    connect()
    config = w5_config(bars, speed=86_400 / 0.025, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        topo = start(config, str(Path(tmp) / "journal.sqlite"))
        try:
            time.sleep(2)  # the actors' start-up is not the run's
            perf = subprocess.Popen(
                ["perf", "record", "-q", "-e", "sched:sched_switch", "-a", "-k", "monotonic",
                 "-o", str(data)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1)
            topo.run()
            emit = ray.get(topo.feed.timings.remote())["emit"]
            fills = ray.get(topo.broker.timings.remote())
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=60)
            owners = _thread_owners()
        finally:
            topo.stop()
    offset = time.time_ns() - time.monotonic_ns()  # the actors stamp wall time
    emitted = {t: ns - offset for t, ns in emit.items()}
    return emitted, {t: ns - offset for t, ns in fills.items()}, owners


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sched_trace", description=__doc__)
    parser.add_argument("--seed", type=int, default=5, help="synthetic data seed (W5's: 5)")
    parser.add_argument("--bars", type=int, default=400, help="paced bars to run")
    parser.add_argument("--slowest", type=int, default=10, help="slowest bars to list")
    parser.add_argument(
        "--show", type=int, nargs="*", default=[], metavar="RANK",
        help="print who held each CPU through these bars (0: the slowest; -1: the median)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if shutil.which("perf") is None:
        sys.exit("bench.sched_trace: needs Linux's perf on PATH (e.g. apt install linux-perf)")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "sched.data"
        emit, fills, owners = _traced_run(args.seed, args.bars, data)
        script = subprocess.run(
            ["perf", "script", "-i", str(data), "-F", "cpu,time,trace", "--ns"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    segments = parse_switches(script.stdout.splitlines())
    if not segments:
        sys.exit(
            f"bench.sched_trace: no scheduler events recorded ({script.stderr.strip()[:200]});"
            " tracing the machine needs root or kernel.perf_event_paranoid = -1"
        )
    trace = Trace(segments, owners)
    bars = sorted(((fills[t] - emit[t], t) for t in fills if t in emit), reverse=True)
    latency = np.array([b[0] for b in bars]) / 1e6
    print(
        f"W5 paced, seed {args.seed}: {len(bars)} bars with fills, bar-to-fill p50 "
        f"{np.percentile(latency, 50):.2f} ms, p99 {np.percentile(latency, 99):.2f} ms"
    )
    windows = {t: trace.busy(emit[t], fills[t]) for _, t in bars}
    middle = bars[max(0, len(bars) // 2 - 20) : len(bars) // 2 + 20]
    total: Counter = Counter()
    for _, t in middle:
        total += windows[t]
    print(
        f"the {len(middle)} bars around the median, ms of CPU a bar: "
        f"{_ms(total, scale=len(middle))}"
    )
    outside = [
        max((v for k, v in w.items() if k not in (*GROUPS, "idle")), default=0)
        for w in windows.values()
    ]
    print(
        f"bars where one process other than the actors held a CPU for over 1 ms of the window: "
        f"{sum(v > 1_000_000 for v in outside)} of {len(bars)}"
    )
    print("the slowest bars (ms): latency; CPU by group, idle CPU time of both CPUs")
    for lat, t in bars[: args.slowest]:
        print(f"  bar {t}: {lat / 1e6:.2f}; {_ms(windows[t])}")
    for rank in args.show:
        if rank >= len(bars):
            print(f"--show {rank}: the run has {len(bars)} bars with fills")
            continue
        lat, t = bars[len(bars) // 2 if rank < 0 else rank]
        print(f"bar {t} ({lat / 1e6:.2f} ms), us after its emission: cpu, from, to, process")
        for s, name in trace.held(emit[t], fills[t]):
            if s.pid != 0:  # idle is what is not listed
                print(f"  {s.cpu} {(s.start - emit[t]) / 1e3:8.0f} {(s.end - emit[t]) / 1e3:8.0f}"
                      f"  {name}")  # fmt: skip


if __name__ == "__main__":
    main()
