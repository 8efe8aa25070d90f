"""The kernel's two code paths agree exactly, and its tests also pass as plain Python.

A one-column portfolio takes the register-resident fast path; a portfolio of several columns
takes the general path. Adding a column that never trades must change nothing, bit for bit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.sim import SimConfig, simulate_batch
from tests.core.test_sim_vs_reference import config_strategy, random_panel, random_weights

REPO = Path(__file__).resolve().parents[2]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n_bars=st.integers(5, 150), cfg=config_strategy)
def test_single_column_fast_path_equals_the_general_path(seed, n_bars, cfg):
    rng = np.random.default_rng(seed)
    panel = random_panel(rng, n_bars, 1)
    w = random_weights(rng, (n_bars, 1), 0.2)
    config = SimConfig(**cfg)
    fast = simulate_batch(panel, w, config, record_equity=True, record_trades=True,
                          record_detail=True)  # fmt: skip
    idle = np.full((n_bars, 1), np.nan)  # a second column that never trades
    general = simulate_batch(
        panel, np.hstack([w, idle]), config, price_col=np.array([0, 0]),
        group_len=np.array([2]), record_equity=True, record_trades=True, record_detail=True,
    )  # fmt: skip
    np.testing.assert_array_equal(fast.equity, general.equity)
    np.testing.assert_array_equal(fast.cash, general.cash)
    np.testing.assert_array_equal(fast.summary, general.summary)
    n = int(fast.n_trades[0])
    assert n == int(general.n_trades[0])
    assert fast.trades[:n].tobytes() == general.trades[:n].tobytes()
    m = int(fast.n_rejected[0])
    assert fast.rejected[:m].tobytes() == general.rejected[:m].tobytes()


def test_a_sweep_of_many_portfolios_equals_each_run_alone():
    rng = np.random.default_rng(11)
    panel = random_panel(rng, 300, 3)
    w = random_weights(rng, (300, 12), 0.1)  # 12 one-column portfolios over 3 price series
    cfg = SimConfig(fill="close", stop_loss_pct=3, commission_bps=10, size_pct=0.9)
    price_col = np.arange(12) % 3
    batch = simulate_batch(panel, w, cfg, price_col=price_col, group_len=np.ones(12, int))
    for k in range(12):
        alone = simulate_batch(panel.select([panel.symbols[price_col[k]]]), w[:, k : k + 1], cfg)
        np.testing.assert_array_equal(batch.summary[k], alone.summary[0])


def test_kernel_tests_pass_with_jit_disabled():
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/core/test_sim_semantics.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout
