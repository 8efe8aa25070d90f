"""``bench.sched_trace``'s reading of the kernel's scheduler trace: which task held each CPU
when, and for how long inside a bar's window. The perf lines are written by hand in
``perf script -F cpu,time,trace --ns``'s format; the expected times are worked out by hand
from them (in the comments)."""

from __future__ import annotations

from bench.sched_trace import Segment, Trace, group, parse_switches

_LINES = [
    "[000] 100.000000000: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> "
    "next_comm=ray::Risk next_pid=10 next_prio=135",
    "[001] 100.000100000: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> "
    "next_comm=ray::StrategyHo next_pid=11 next_prio=135",
    "not a switch event",
    "[000] 100.000500000: prev_comm=ray::Risk prev_pid=10 prev_prio=135 prev_state=S ==> "
    "next_comm=swapper/0 next_pid=0 next_prio=120",
    "[001] 100.000900000: prev_comm=ray::StrategyHo prev_pid=11 prev_prio=135 prev_state=S ==> "
    "next_comm=kdamond.0 next_pid=83 next_prio=120",
    "[000] 100.001000000: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> "
    "next_comm=ray::Broker.end next_pid=12 next_prio=135",
    "[001] 100.001200000: prev_comm=kdamond.0 prev_pid=83 prev_prio=120 prev_state=S ==> "
    "next_comm=swapper/1 next_pid=0 next_prio=120",
]
_T0 = 100 * 1_000_000_000


def test_a_task_holds_its_cpu_until_the_next_switch_there() -> None:
    # cpu 0: Risk 0-500 us, idle 500-1000 us (the Broker's stretch has no end yet: left out);
    # cpu 1: the host 100-900 us, kdamond 900-1200 us.
    assert parse_switches(_LINES) == [
        Segment(0, _T0, _T0 + 500_000, "ray::Risk", 10),
        Segment(1, _T0 + 100_000, _T0 + 900_000, "ray::StrategyHo", 11),
        Segment(0, _T0 + 500_000, _T0 + 1_000_000, "swapper/0", 0),
        Segment(1, _T0 + 900_000, _T0 + 1_200_000, "kdamond.0", 83),
    ]


def test_microsecond_stamps_read_as_nanoseconds() -> None:
    line = _LINES[0].replace("100.000000000", "100.000250")  # perf without --ns
    second = _LINES[3].replace("100.000500000", "100.000750")
    (segment,) = parse_switches([line, second])
    assert (segment.start, segment.end) == (_T0 + 250_000, _T0 + 750_000)


def test_cpu_time_inside_a_window_by_group() -> None:
    # Window 200-1100 us: Risk 200-500 (300 us), idle 500-1000 (500), the host 200-900
    # (700), kdamond 900-1100 (200); 1,700 us in all = 2 CPUs x 900 us minus the Broker's
    # 1000-1100 on cpu 0, which has no end in the trace.
    used = Trace(parse_switches(_LINES)).busy(_T0 + 200_000, _T0 + 1_100_000)
    assert used == {"Risk": 300_000, "idle": 500_000, "StrategyHo": 700_000, "kdamond.0": 200_000}


def test_a_window_inside_one_long_stretch() -> None:
    # 600-700 us lies inside cpu 0's idle stretch and the host's on cpu 1: 100 us each.
    used = Trace(parse_switches(_LINES)).busy(_T0 + 600_000, _T0 + 700_000)
    assert used == {"idle": 100_000, "StrategyHo": 100_000}


def test_threads_count_for_their_actor() -> None:
    assert group("ray::Broker.end") == "Broker"  # the broker's wire thread
    assert group("ray::DataFeed.r") == "DataFeed"
    assert group("kdamond.0") == "kdamond.0"


def test_a_thread_counts_for_the_process_it_belongs_to() -> None:
    # Thread 11 (named ray::StrategyHo above) renamed, as Ray's own threads are, and
    # kdamond's pid unknown: the host's 700 us go to its process, kdamond keeps its name.
    lines = [line.replace("next_comm=ray::StrategyHo", "next_comm=client.poll0") for line in _LINES]
    trace = Trace(parse_switches(lines), owners={11: "ray::StrategyHo", 10: "ray::Risk"})
    used = trace.busy(_T0 + 200_000, _T0 + 1_100_000)
    assert used == {"Risk": 300_000, "idle": 500_000, "StrategyHo": 700_000, "kdamond.0": 200_000}


def test_who_held_the_cpus_through_a_window() -> None:
    # 600-950 us: cpu 0 idle (500-1000), the host on cpu 1 (100-900), then kdamond (900-1200);
    # the Risk stretch (0-500) ends before the window and is not listed.
    trace = Trace(parse_switches(_LINES), owners={11: "ray::StrategyHo"})
    held = [(s.cpu, s.start - _T0, name) for s, name in trace.held(_T0 + 600_000, _T0 + 950_000)]
    assert held == [(1, 100_000, "ray::StrategyHo"), (0, 500_000, "swapper/0"),
                    (1, 900_000, "kdamond.0")]  # fmt: skip
