"""`raytrader backtest` end to end: real files against the independent plain-Python engine.

The reference side uses only tests/reference (plain-Python CSV reading, signals and simulator),
so every number on the right-hand side of these comparisons is computed independently of
core/ and strategies/.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cluster.cli import main
from tests.reference.ref_signals import rsi_reversion_weights, sma_crossover_weights
from tests.reference.ref_sim import ref_backtest

DATA = Path(__file__).resolve().parents[2] / "data"
FILES = sorted(DATA.glob("*.csv"))


def read_plain(path: Path) -> tuple[list[str], list[list[float]], ...]:
    """Dates and single-column OHLC lists from a CSV, with the csv module only."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols = [[[float(r[k])] for r in rows] for k in ("open", "high", "low", "close")]
    return [r["timestamp"] for r in rows], *cols


def cli_json(*args: str) -> dict:
    result = CliRunner().invoke(main, ["backtest", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def assert_same(ours: dict, dates: list[str], ref) -> None:
    assert math.isclose(ours["final_equity"], ref.final_equity, rel_tol=1e-9)
    assert math.isclose(ours["total_commission"], ref.total_commission, rel_tol=1e-9)
    assert len(ours["trades"]) == len(ref.trades)
    for a, b in zip(ours["trades"], ref.trades, strict=True):
        assert a["entry_time"][:10] == dates[b.entry_t]
        assert (a["exit_time"] or "")[:10] == ("" if b.exit_t is None else dates[b.exit_t])
        assert (a["qty"], a["side"], a["exit_reason"]) == (b.qty, b.side, b.exit_reason)
        assert math.isclose(a["entry_price"], b.entry_price, rel_tol=1e-12)
        assert math.isclose(a["pnl"], b.pnl, rel_tol=1e-9, abs_tol=1e-6)
    assert [(r["time"][:10], r["qty"], r["reason"]) for r in ours["rejected_orders"]] == [
        (dates[r.t], r.qty, r.reason) for r in ref.rejected
    ]


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_sma_crossover_with_stop_matches_the_reference_on_real_data(path, fill):
    ours = cli_json("--data", str(path), "--strategy", "sma_crossover", "-p", "fast=10",
                    "-p", "slow=30", "--size-pct", "0.95", "--commission-bps", "10",
                    "--stop-loss-pct", "5", "--fill", fill)  # fmt: skip
    dates, o, h, lo, c = read_plain(path)
    w = [[x] for x in sma_crossover_weights([r[0] for r in c], 10, 30)]
    ref = ref_backtest([path.stem], o, h, lo, c, w, size_pct=0.95, commission_bps=10,
                       stop_loss_pct=5, fill=fill)  # fmt: skip
    assert ours["trades"], "a 20-year SMA crossover run must trade"
    assert_same(ours, dates, ref)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_rsi_reversion_matches_the_reference_on_real_data(path):
    ours = cli_json("--data", str(path), "--strategy", "rsi_reversion", "-p", "period=14",
                    "-p", "lower=30", "-p", "upper=70", "--size-pct", "0.95",
                    "--commission-bps", "5", "--slippage-bps", "5",
                    "--take-profit-pct", "15")  # fmt: skip
    dates, o, h, lo, c = read_plain(path)
    w = [[x] for x in rsi_reversion_weights([r[0] for r in c], 14, 30, 70)]
    ref = ref_backtest([path.stem], o, h, lo, c, w, size_pct=0.95, commission_bps=5,
                       slippage_bps=5, take_profit_pct=15)  # fmt: skip
    assert ours["trades"]
    assert_same(ours, dates, ref)


def test_json_output_has_the_documented_fields():
    out = cli_json("--data", str(DATA / "ORCL.csv"), "--strategy", "sma_crossover",
                   "--equity-curve")  # fmt: skip
    for key in ("final_equity", "total_commission", "max_drawdown", "trades",
                "rejected_orders", "stats", "equity_curve", "strategy", "params"):  # fmt: skip
        assert key in out
    assert set(out["trades"][0]) >= {"symbol", "entry_time", "entry_price", "exit_time",
                                     "exit_price", "qty", "pnl", "exit_reason"}  # fmt: skip
    assert set(out["stats"]) >= {"sharpe", "sortino", "calmar", "cagr", "win_rate",
                                 "profit_factor", "expectancy", "exposure", "var_95",
                                 "cvar_95"}  # fmt: skip
    assert len(out["equity_curve"]) == 5036  # rows of ORCL.csv
    assert out["params"] == {"fast": 10, "slow": 30}
    assert out["equity_curve"][-1]["equity"] == out["final_equity"]


def test_portfolio_of_three_files_shares_cash():
    files = [a for p in ("ORCL", "NVDA", "YHOO") for a in ("--data", str(DATA / f"{p}.csv"))]
    out = cli_json(*files,
                   "--strategy", "momentum", "-p", "lookback=60", "-p", "top_k=1",
                   "-p", "rebalance_every=21", "--size-pct", "0.95")  # fmt: skip
    assert {t["symbol"] for t in out["trades"]} == {"ORCL", "NVDA", "YHOO"}
    assert sum(t["pnl"] for t in out["trades"]) == pytest.approx(out["final_equity"] - 100_000)


def test_synthetic_data_without_a_file():
    out = cli_json("--strategy", "breakout", "--synthetic-symbols", "2", "--seed", "3")
    assert out["symbols"] == ["SYN000", "SYN001"] and out["bars"] == 2520


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "nope"], "unknown strategy"),
        (["--strategy", "sma_crossover", "-p", "fast=abc"], "sma_crossover.fast='abc'"),
        (["--strategy", "sma_crossover", "-p", "fast=40", "-p", "slow=30"], "40"),
        (["--strategy", "sma_crossover", "-p", "speed=3"], "unknown parameter"),
        (["--strategy", "sma_crossover", "-p", "fast"], "not KEY=VALUE"),
        (["--strategy", "sma_crossover", "--commission-bps", "-1"], "--commission-bps"),
        (["--strategy", "sma_crossover", "--stop-loss-pct", "0"], "--stop-loss-pct"),
        (["--strategy", "sma_crossover", "--data", "missing.csv"], "missing.csv"),
        (["--strategy", "pairs", "--synthetic-symbols", "3"], "exactly 2 symbols"),
    ],
)
def test_bad_input_is_a_clear_error_with_exit_code_2(args, message):
    result = CliRunner().invoke(main, ["backtest", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_bar_in_a_file_names_file_row_symbol_and_rule(tmp_path):
    lines = (DATA / "ORCL.csv").read_text().splitlines()
    date = lines[10].split(",")[0]  # data row 10 (line 11)
    lines[10] = f"{date},2.1,2.0,2.05,2.08,1000"  # high 2.0 below open 2.1 and close 2.08
    bad = tmp_path / "ORCL.csv"
    bad.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(main, ["backtest", "--data", str(bad), "--strategy", "breakout"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "ORCL.csv" in text and "row 10" in text and "ORCL" in text
    assert "high_below_open_close" in text
    dropped = CliRunner().invoke(
        main, ["backtest", "--data", str(bad), "--strategy", "breakout", "--bad-bars", "drop",
               "--json"],
    )  # fmt: skip
    assert dropped.exit_code == 0 and json.loads(dropped.output)["bars"] == 5035


def test_strategies_lists_the_five_builtins_with_their_parameters():
    result = CliRunner().invoke(main, ["strategies", "--json"])
    specs = json.loads(result.output)
    assert {"sma_crossover", "rsi_reversion", "breakout", "momentum", "pairs"} <= set(specs)
    assert set(specs["pairs"]["params"]) == {"window", "entry_z", "exit_z"}
    table = CliRunner().invoke(main, ["strategies"], terminal_width=200)
    assert "rsi_reversion" in table.output and "upper" in table.output


def test_the_installed_console_script_runs_the_readme_example():
    exe = Path(sys.executable).parent / "raytrader"
    proc = subprocess.run(
        [str(exe), "backtest", "--data", str(DATA / "ORCL.csv"), "--strategy", "sma_crossover",
         "-p", "fast=10", "-p", "slow=30", "--size-pct", "0.95", "--commission-bps", "10",
         "--stop-loss-pct", "5", "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["trades"]
