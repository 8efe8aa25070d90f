"""Child process of the bench: build one implementation, time it, report JSON on stdout.

Run alone, each implementation's peak memory is its own (ru_maxrss of this process), and
``baseline`` is the peak before the timed runs (interpreter, libraries, input data).
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np

from bench.workloads import WORKLOADS


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(workload: str, impl: str, repeat: int) -> None:
    """Warm up once (JIT, caches), then time ``repeat`` runs with perf_counter."""
    run = WORKLOADS[workload][impl]()
    baseline = _peak_mb()
    result = run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    if isinstance(result, dict):  # a run timed on a sample of the work, scaled to all of it
        times = [t * result["time_scale"] for t in times]
        result = result["values"]
    values = np.atleast_1d(np.asarray(result, dtype=np.float64))
    print(json.dumps({
        "times": times, "peak_mb": _peak_mb(), "baseline_mb": baseline,
        "first": float(values[0]), "sum": float(np.nansum(values)), "n": int(values.size),
    }))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
