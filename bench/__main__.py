"""``python -m bench [W1 W2 ...] [--repeat N] [--rounds R] [--no-vectorbt]``: figures beside
references.

Every implementation runs in its own child process (fair peak memory), is warmed up once and
timed ``--repeat`` times. The implementations of a workload take turns, ``--rounds`` times
(A B C A B C ...), so a machine whose speed drifts (shared, noisy) slows them alike; the ratio
to the reference is the median of the per-round ratios. The table shows the pooled median with
the min-max range, throughput, that ratio, peak memory and the final equity, so a fast wrong
answer cannot hide.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from importlib.util import find_spec

import numpy as np
from rich.console import Console
from rich.table import Table

from bench.research import REFERENCE
from bench.workloads import UNIT_NAMES, UNITS, WORKLOADS


def _run(workload: str, impl: str, repeat: int) -> dict | str:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run_one", workload, impl, str(repeat)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _pool(rounds: list[dict]) -> dict:
    """One result per implementation: every round's times together, the first round's values
    (equities are identical across rounds), the largest peak memory; an error if any failed."""
    pooled: dict = {}
    for impl, first in rounds[0].items():
        runs = [r[impl] for r in rounds]
        bad = next((r for r in runs if isinstance(r, str)), None)
        if bad is not None or isinstance(first, str):
            pooled[impl] = bad if bad is not None else first
            continue
        pooled[impl] = {
            **first,
            "times": [t for r in runs for t in r["times"]],
            "peak_mb": max(r["peak_mb"] for r in runs),
        }
    return pooled


def _paired_ratios(rounds: list[dict], reference: str) -> dict[str, float]:
    """Per implementation, the median over rounds of (its median time / the reference's)."""
    out: dict[str, list[float]] = {}
    for r in rounds:
        ref = r.get(reference)
        if not isinstance(ref, dict):
            continue
        for impl, res in r.items():
            if isinstance(res, dict):
                ratio = float(np.median(res["times"]) / np.median(ref["times"]))
                out.setdefault(impl, []).append(ratio)
    return {impl: float(np.median(v)) for impl, v in out.items()}


def _median(results: dict, impl: str) -> float | None:
    res = results.get(impl)
    return float(np.median(res["times"])) if isinstance(res, dict) else None


def _derived(console: Console, workload: str, results: dict) -> None:
    """Figures that compare rows: scaling efficiency (W2-sweep), speed-ups (W3, W4)."""
    med = {impl: _median(results, impl) for impl in results}
    if workload == "W2-sweep" and all(med.values()):
        t1, t2 = med["sweep, 1 worker"], med["sweep, 2 workers"]
        console.print(f"scaling efficiency t1 / (2 t2) = {t1 / (2 * t2):.0%}")
    if workload == "W4":
        for name, par in med.items():
            for impl, t in med.items():
                if name.startswith("raytrader") and par and t and not impl.startswith("raytrader"):
                    console.print(f"{name} is {t / par:.2f}x faster than {impl}")
        console.print("naive Tune: its trials are timed and the time scaled to 500 trials; "
                      "Ray rows' peak RSS is the driver's only")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("workloads", nargs="*", default=list(WORKLOADS))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3, help="turns of A B C ... per workload")
    parser.add_argument("--no-vectorbt", action="store_true")
    args = parser.parse_args()
    console = Console(width=150)
    have_vbt = find_spec("vectorbt") is not None and not args.no_vectorbt
    threads = os.environ.get("NUMBA_NUM_THREADS", str(os.cpu_count()))
    console.print(f"cpus {os.cpu_count()}, numba threads {threads}, repeat {args.repeat}")
    for workload in args.workloads:
        table = Table(title=f"{workload}: {UNITS[workload]:,} {UNIT_NAMES[workload].split('/')[0]}")
        reference = REFERENCE.get(workload, "hand numba loop")
        for col in ("implementation", "median", "min-max", UNIT_NAMES[workload], "vs reference",
                    "peak RSS (input)", "final equity (first / sum)"):  # fmt: skip
            table.add_column(col, justify="left" if col == "implementation" else "right")
        impls = [i for i in WORKLOADS[workload] if i != "vectorbt" or have_vbt]
        if len(impls) < len(WORKLOADS[workload]):
            table.add_row("vectorbt", "skipped: pip install -e '.[bench]'")
        rounds = [{impl: _run(workload, impl, args.repeat) for impl in impls}
                  for _ in range(max(1, args.rounds))]  # fmt: skip
        results = _pool(rounds)
        ratios = _paired_ratios(rounds, reference)
        for impl, res in results.items():
            if isinstance(res, str):
                table.add_row(impl, f"error: {res}")
                continue
            t = np.array(res["times"])
            med = float(np.median(t))
            ratio = f"{ratios[impl]:.2f}x" if impl in ratios else "-"
            table.add_row(
                impl, f"{med * 1e3:,.1f} ms", f"{t.min() * 1e3:,.1f}-{t.max() * 1e3:,.1f}",
                f"{UNITS[workload] / med:,.0f}", ratio,
                f"{res['peak_mb']:,.0f} MB ({res['baseline_mb']:,.0f})",
                f"{res['first']:,.2f} / {res['sum']:,.6g}",
            )  # fmt: skip
        console.print(table)
        console.print(f"vs reference: median over {max(1, args.rounds)} rounds of time / time of "
                      f"'{reference}' in the same round")
        _derived(console, workload, results)


if __name__ == "__main__":
    main()
