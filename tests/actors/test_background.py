"""Ray's helper processes at nice 19: the process walk, real child processes, the Ray session."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from actors.background import HELPER_NICE, _parents, descendants, yield_helpers

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc")


def _nices(pid: int) -> set[int]:
    """The nice value of every thread of ``pid`` (field 19 of /proc/<pid>/task/<tid>/stat)."""
    out = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        out.add(int(fields[16]))
    return out


def test_descendants_walks_the_tree_below_the_root_only() -> None:
    # by hand: 1 -> 2 -> {3, 4}, 4 -> 5; 6 is 1's other child; 7 hangs below 9 (not ours)
    table = {2: 1, 3: 2, 4: 2, 5: 4, 6: 1, 7: 9}
    assert descendants(2, table) == [3, 4, 5]
    assert sorted(descendants(1, table)) == [2, 3, 4, 5, 6]
    assert descendants(5, table) == []


@pytest.mark.timeout(60)
def test_every_thread_of_a_marked_child_yields_and_the_others_keep_theirs() -> None:
    # Real processes: a child whose command line carries the marker and starts a second
    # thread, and a sibling without it.
    code = "import threading, time; threading.Thread(target=time.sleep, args=(60,)).start(); " \
           "time.sleep(60)"  # fmt: skip
    marked = subprocess.Popen([sys.executable, "-c", code, "rt-test-helper-marker"])
    plain = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 30
        while len(list(Path(f"/proc/{marked.pid}/task").iterdir())) < 2:
            assert time.monotonic() < deadline, "the child's second thread never started"
            time.sleep(0.05)
        found = yield_helpers(markers=("rt-test-helper-marker",))
        assert found == [marked.pid]
        assert _nices(marked.pid) == {HELPER_NICE}
        assert _nices(plain.pid) == {os.getpriority(os.PRIO_PROCESS, 0)}
    finally:
        for child in (marked, plain):
            child.kill()
            child.wait()


@pytest.mark.timeout(60)
def test_the_ray_sessions_monitors_yield_and_the_gcs_and_raylet_do_not(ray_session) -> None:
    found = yield_helpers()
    commands = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in found}
    assert any(b"ray::DashboardAgent" in c for c in commands.values())
    assert any(b"log_monitor.py" in c for c in commands.values())
    for pid in found:
        assert _nices(pid) == {HELPER_NICE}
    ours = descendants(os.getpid(), _parents())
    control = [pid for pid in ours
               if any(name in Path(f"/proc/{pid}/cmdline").read_bytes()
                      for name in (b"gcs_server", b"raylet/raylet"))]  # fmt: skip
    assert len(control) == 2
    for pid in control:
        assert HELPER_NICE not in _nices(pid)
