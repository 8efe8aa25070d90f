"""What every actor process imports when it starts, or restarts after a crash.

Ray re-runs a restarted actor's ``__init__`` in a fresh worker process, so everything its
module imports is paid again while the actor is down (docs/live.md, "Restarts"). pandas is
used in one place only (ISO-8601 timestamps with offsets in ``core.data.loaders``) and costs
about 0.35 s and 66 MiB a process to import on the reference machine, so the actors' modules
must not import it; the offset path itself is tested in ``tests/core/test_loaders.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACTOR_MODULES = ("actors.host", "actors.risk", "actors.broker", "actors.feed", "actors.journal")


def test_actor_modules_do_not_import_pandas() -> None:
    probe = f"import sys; import {', '.join(ACTOR_MODULES)}; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    assert out.stdout.strip() == "False", "an actor module imports pandas at start-up"


def test_loading_a_file_with_offsets_imports_pandas_when_it_needs_it(tmp_path: Path) -> None:
    """The lazy import still works in a fresh process: an offset timestamp is read as UTC."""
    csv = tmp_path / "AAA.csv"
    csv.write_text("timestamp,symbol,open,high,low,close,volume\n"
                   "2020-01-02T10:00:00+02:00,AAA,1,1,1,1,1\n")  # fmt: skip
    probe = (
        "import sys; from core.data.loaders import load_bars; "
        f"df, _ = load_bars({str(csv)!r}); "
        "print(df.get_column('timestamp')[0].isoformat())"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    assert out.stdout.strip() == "2020-01-02T08:00:00+00:00"  # 10:00 at +02:00, by hand
