"""What every actor process imports when it starts, or restarts after a crash.

Ray re-runs a restarted actor's ``__init__`` in a fresh worker process, so everything its
module and its start-up warm-up import is paid again while the actor is down (docs/live.md,
"Restarts"). Measured on the reference machine, on top of what an actor needs anyway: pandas
0.35 s and 66 MiB (used in one place: ISO-8601 timestamps with offsets in
``core.data.loaders``), polars 0.2 s and 23 MiB (frames: only the feed loads files). So no
actor imports pandas, and only the feed imports polars; the lazy paths themselves are checked
here in fresh processes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> str:
    """``code`` in a fresh interpreter at the repo root; its output, or its error shown."""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, f"the probe failed:\n{out.stderr}"
    return out.stdout.strip()


@pytest.mark.parametrize(
    ("module", "polars"),
    [("actors.host", False), ("actors.risk", False), ("actors.broker", False),
     ("actors.journal", False), ("actors.feed", True)],
)  # fmt: skip
def test_an_actor_imports_only_what_it_uses(module: str, polars: bool) -> None:
    """The module and the start-up warm-up every trading actor runs (``warm_up``)."""
    probe = (
        f"import sys; import {module}; from actors.common import warm_up; "
        "from core.run_config import parse_run_config; "
        "cfg = parse_run_config({'strategies': [{'id': 'a', 'strategy': 'sma_crossover', "
        "'params': {'fast': 5, 'slow': 20}, 'symbols': ['SYN000']}], "
        "'feed': {'data': {'synthetic_symbols': 1, 'synthetic_bars': 50}}}); "
        "warm_up(cfg.strategies); print('pandas' in sys.modules, 'polars' in sys.modules)"
    )
    assert _run(probe) == f"False {polars}"


def test_core_data_names_resolve_from_their_modules() -> None:
    """``core.data``'s names are imported on first use; each is its module's own object."""
    probe = (
        "import importlib, core.data as d; "
        "print(all(getattr(d, n) is getattr(importlib.import_module("
        "'core.data.' + d._HOME[n]), n) for n in d.__all__), sorted(d._HOME) == d.__all__)"
    )
    assert _run(probe) == "True True"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        import core.data

        _ = core.data.nope  # type: ignore[attr-defined]


def test_the_lazy_frame_paths_work_in_a_fresh_process(tmp_path: Path) -> None:
    """An offset timestamp is read as UTC through the lazy pandas import; the long form's
    timestamp dtype and ``to_long`` come through the lazy polars import."""
    csv = tmp_path / "AAA.csv"
    csv.write_text("timestamp,symbol,open,high,low,close,volume\n"
                   "2020-01-02T10:00:00+02:00,AAA,1,1,1,1,1\n")  # fmt: skip
    probe = (
        "from core.data.loaders import load_bars; "
        f"df, _ = load_bars({str(csv)!r}); "
        "from core.panel import TIMESTAMP_DTYPE, to_long, to_wide; "
        "back = to_long(to_wide(df)); "
        "print(df.get_column('timestamp')[0].isoformat(), "
        "df.schema['timestamp'] == back.schema['timestamp'] == TIMESTAMP_DTYPE, "
        "back.get_column('close').to_list())"
    )
    assert _run(probe) == "2020-01-02T08:00:00+00:00 True [1.0]"  # 10:00 at +02:00, by hand
