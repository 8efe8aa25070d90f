"""One strategy's (sub-)account, fill by fill: the backtest kernel's accounting, incrementally.

A ``Ledger`` holds the kernel's per-column state rows (``accounting_nb.new_state``) and applies
every fill through ``accounting_nb.apply_fill_nb``, the function the backtest kernel calls, so a
live account and a backtest hold the same floats. Marking follows the kernel too: a symbol with
a NaN price is marked at its last close, or at its average entry price before any close.
Fills are idempotent by ``fill_id``: a broker or host that replays its fills after a restart
applies each one once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from core.accounting_nb import (
    ST_AVG,
    ST_ENTRY_T,
    ST_LAST_CLOSE,
    ST_POS,
    SUM_GROSS_LOSS,
    SUM_GROSS_PROFIT,
    SUM_N_CLOSED,
    SUM_N_FILLS,
    SUM_TOTAL_COMM,
    SUMMARY_FIELDS,
    TRADE_DTYPE,
    apply_fill_nb,
    new_state,
)
from core.errors import RaytraderError
from core.events import FillReason, OrderFilled
from core.sim import closed_trade_dicts, open_trade_dicts, rejection_dict
from core.sim_nb import _equity_nb  # the kernel's own marking: the same sum in the same order
from core.types import ExitReason

__all__ = ["FILL_REASON_CODES", "AppliedFill", "Ledger", "LedgerError", "to_datetime64"]

#: The kernel's exit-reason code for each live fill reason.
FILL_REASON_CODES: dict[FillReason, int] = {
    FillReason.SIGNAL: int(ExitReason.SIGNAL),
    FillReason.STOP_LOSS: int(ExitReason.STOP_LOSS),
    FillReason.TAKE_PROFIT: int(ExitReason.TAKE_PROFIT),
    FillReason.FLATTEN: int(ExitReason.FLATTEN),
}


class LedgerError(RaytraderError, ValueError):
    """A fill or query the ledger cannot apply: unknown symbol, non-finite or signless numbers."""


def to_datetime64(ts: datetime | np.datetime64) -> np.datetime64:
    """A bar timestamp as numpy datetime64[us] (naive UTC, like ``WidePanel.timestamps``)."""
    if isinstance(ts, datetime):
        if ts.tzinfo is not None:
            ts = ts.astimezone(UTC).replace(tzinfo=None)
        return np.datetime64(ts, "us")
    return np.datetime64(ts, "us")


class AppliedFill:
    """What one fill did: the cash it moved and, when it closed (part of) a trade, that
    trade's pnl and index; the ``trades`` dict of the backtest JSON is built on first access."""

    __slots__ = ("_ledger", "cash_delta", "closed_pnl", "trade_index")

    def __init__(
        self, cash_delta: float, ledger: Ledger, trade_index: int | None, pnl: float | None
    ) -> None:
        self.cash_delta = cash_delta
        self.trade_index = trade_index
        self.closed_pnl = pnl  # after both sides' commission; None when nothing closed
        self._ledger = ledger

    @property
    def closed_trade(self) -> dict[str, Any] | None:
        """The closed part as a ``trades`` dict, None when the fill closed nothing."""
        if self.trade_index is None:
            return None
        return self._ledger.closed_trade(self.trade_index)


class Ledger:
    """Cash, positions and trade records of one account over an ordered tuple of symbols.

    ``state`` is the kernel's per-column state array (position, average entry, entry bar,
    unallocated entry commission, last close); read it freely, change it only through the
    ledger's methods.
    """

    def __init__(self, symbols: Sequence[str], cash: float) -> None:
        self.symbols: tuple[str, ...] = tuple(symbols)
        if len(set(self.symbols)) != len(self.symbols):
            raise LedgerError(f"duplicate symbols in {self.symbols}")
        if not (math.isfinite(cash) and cash > 0):
            raise LedgerError(f"starting cash must be a positive finite number, got {cash!r}")
        self.index: dict[str, int] = {s: i for i, s in enumerate(self.symbols)}
        self.initial_cash = float(cash)
        self.cash = float(cash)
        self.state = new_state(len(self.symbols))
        self._summary = np.zeros(len(SUMMARY_FIELDS))
        self._trades = np.zeros(16, dtype=TRADE_DTYPE)
        self._n_trades = np.zeros(1, np.int64)
        self._price_col = np.arange(len(self.symbols), dtype=np.int64)
        self._fill_ids: set[str] = set()
        self._bar_ts: dict[int, np.datetime64] = {}
        self._rejected: list[tuple[str, float, int, str, np.datetime64 | None]] = []

    # ----------------------------------------------------------------- fills
    def column(self, symbol: str) -> int:
        """The state row of ``symbol`` (LedgerError when the account does not trade it)."""
        try:
            return self.index[symbol]
        except KeyError:
            msg = f"the ledger has no symbol {symbol!r}; it trades {self.symbols}"
            raise LedgerError(msg) from None

    def applied(self, fill_id: str) -> bool:
        """Whether a fill with this id was applied already."""
        return fill_id in self._fill_ids

    def apply_fill(
        self,
        symbol: str,
        qty: float,
        price: float,
        commission: float,
        bar_index: int,
        reason: FillReason,
        bar_ts: datetime | np.datetime64,
        *,
        fill_id: str | None = None,
    ) -> AppliedFill | None:
        """Apply one fill exactly as the kernel does; None when ``fill_id`` was applied before.

        Before any close of the symbol is seen, the fill's average entry becomes its mark
        (the kernel's rule), so equity is defined from the first fill on.
        """
        if fill_id is not None and fill_id in self._fill_ids:
            return None
        j = self.column(symbol)
        qty, price, commission = float(qty), float(price), float(commission)
        if not (math.isfinite(qty) and qty != 0):
            raise LedgerError(f"fill qty must be finite and nonzero, got {qty!r}")
        if not (math.isfinite(price) and price > 0 and math.isfinite(commission)):
            raise LedgerError(f"fill price {price!r} / commission {commission!r} not valid")
        k = int(self._n_trades[0])
        if k >= len(self._trades):  # one fill closes at most one record: amortized growth
            self._trades = np.concatenate([self._trades, np.zeros_like(self._trades)])
        delta = apply_fill_nb(
            self.state, j, qty, price, commission, int(bar_index), FILL_REASON_CODES[reason],
            self._summary, self._trades, self._n_trades, 0, 0, len(self._trades),
        )  # fmt: skip
        self.cash += delta
        if math.isnan(self.state[j, ST_LAST_CLOSE]):
            self.state[j, ST_LAST_CLOSE] = self.state[j, ST_AVG]  # no close seen: mark at entry
        self._bar_ts[int(bar_index)] = to_datetime64(bar_ts)
        if fill_id is not None:
            self._fill_ids.add(fill_id)
        if int(self._n_trades[0]) > k:
            return AppliedFill(delta, self, k, float(self._trades[k]["pnl"]))
        return AppliedFill(delta, self, None, None)

    def apply(self, fill: OrderFilled) -> AppliedFill | None:
        """Apply a broker fill event (idempotent by its ``fill_id``)."""
        return self.apply_fill(
            fill.symbol, fill.qty, fill.price, fill.commission, fill.bar_index, fill.reason,
            fill.bar_ts, fill_id=fill.fill_id,
        )  # fmt: skip

    def record_rejection(
        self,
        symbol: str,
        qty: float,
        bar_index: int,
        reason: str,
        bar_ts: datetime | np.datetime64 | None = None,
    ) -> None:
        """Remember a rejected order for ``rejected_orders`` (the backtest JSON's list); the
        time is ``bar_ts``, else the time of a fill on that bar, else unknown (None)."""
        ts = None if bar_ts is None else to_datetime64(bar_ts)
        self._rejected.append((symbol, float(qty), int(bar_index), reason, ts))

    def resolve_times(self, times: Mapping[int, np.datetime64]) -> None:
        """Give rejections recorded without a time (rebuilt from events) their bar's time,
        ``times[bar_index]`` (a bar not in it keeps none)."""
        for k, (symbol, qty, bar_index, reason, ts) in enumerate(self._rejected):
            if ts is None and bar_index in times:
                ts = to_datetime64(times[bar_index])
                self._rejected[k] = (symbol, qty, bar_index, reason, ts)

    # ----------------------------------------------------------------- marks
    def mark(self, closes: np.ndarray) -> None:
        """Take this bar's closes (in symbol order) as the last closes; NaN keeps the old one.

        Scalar stores, not a masked numpy assignment: once a bar per process, after an idle
        gap, numpy's ufunc and masking machinery costs tens of microseconds cold (docs/live.md
        "Cold bars"), a few stores do not."""
        state = self.state
        for j, close in enumerate(np.asarray(closes, dtype=np.float64).tolist()):
            if close == close:
                state[j, ST_LAST_CLOSE] = close

    def set_last_closes(self, closes: Mapping[str, float]) -> None:
        """Restore last closes after a rebuild from fills (symbols not named keep theirs).
        Walks this ledger's symbols, not ``closes``: risk marks a whole feed's bar into
        every strategy's ledger, and each holds a few of its symbols."""
        for symbol, j in self.index.items():
            close = closes.get(symbol)
            if close is not None and math.isfinite(close):
                self.state[j, ST_LAST_CLOSE] = float(close)

    def equity(self, prices: np.ndarray | None = None) -> float:
        """Cash plus positions marked at ``prices`` (symbol order; NaN or None: last close)."""
        marks = self.state[:, ST_LAST_CLOSE] if prices is None else prices
        marks = np.ascontiguousarray(marks, dtype=np.float64)
        n = len(self.symbols)
        return float(_equity_nb(self.state, marks, self._price_col, 0, n, self.cash))

    # ----------------------------------------------------------------- views
    def position(self, symbol: str) -> float:
        """Signed shares held in ``symbol``."""
        return float(self.state[self.column(symbol), ST_POS])

    def positions(self) -> dict[str, float]:
        """Signed shares of every symbol held (flat symbols left out)."""
        rows = zip(self.symbols, self.state[:, ST_POS].tolist(), strict=True)
        return {s: p for s, p in rows if p != 0}

    def avg_prices(self) -> dict[str, float]:
        """Average entry price of every position held."""
        rows = zip(self.symbols, self.state[:, ST_POS], self.state[:, ST_AVG], strict=True)
        return {s: float(a) for s, p, a in rows if p != 0}

    def last_closes(self) -> dict[str, float]:
        """The mark of every symbol that has one (last close, or entry before any close)."""
        rows = zip(self.symbols, self.state[:, ST_LAST_CLOSE], strict=True)
        return {s: float(c) for s, c in rows if c == c}

    @property
    def total_commission(self) -> float:
        """Commission paid over every fill."""
        return float(self._summary[SUM_TOTAL_COMM])

    @property
    def n_fills(self) -> int:
        """Fills applied."""
        return int(self._summary[SUM_N_FILLS])

    @property
    def realized_pnl(self) -> float:
        """Sum of closed trades' pnl (after both sides' commission)."""
        return float(self._summary[SUM_GROSS_PROFIT] - self._summary[SUM_GROSS_LOSS])

    def closed_trade(self, k: int) -> dict[str, Any]:
        """The k-th closed trade (in closing order) as a ``trades`` dict."""
        if not 0 <= k < int(self._n_trades[0]):
            raise LedgerError(f"no closed trade #{k}; {int(self._n_trades[0])} so far")
        return self._closed_dicts(self._trades[k : k + 1])[0]

    def closed_trades(self) -> list[dict[str, Any]]:
        """Closed trades in closing order, as ``raytrader backtest --json`` prints them."""
        return self._closed_dicts(self._trades[: int(self._n_trades[0])])

    def open_positions(self) -> list[dict[str, Any]]:
        """Open positions marked to their last close, as trades with a null exit."""
        state = self.state.copy()
        held = state[:, ST_POS] != 0
        idx, ts = self._timeline(state[held, ST_ENTRY_T].astype(np.int64))
        state[held, ST_ENTRY_T] = np.searchsorted(idx, state[held, ST_ENTRY_T])
        return open_trade_dicts(state, self.symbols, ts)

    def trades(self) -> list[dict[str, Any]]:
        """Closed trades, then open positions: the ``trades`` list of the backtest JSON."""
        return self.closed_trades() + self.open_positions()

    def rejected_orders(self) -> list[dict[str, Any]]:
        """Rejected orders recorded so far, as in the backtest JSON."""
        out = []
        for symbol, qty, bar_index, reason, ts in self._rejected:
            ts = self._bar_ts.get(bar_index) if ts is None else ts
            if ts is None:
                out.append({"symbol": symbol, "time": None, "qty": qty, "reason": reason})
            else:
                out.append(rejection_dict(symbol, ts, qty, reason))
        return out

    def snapshot(self) -> dict[str, Any]:
        """A plain-dict summary, cheap to send between actors (no arrays, no trade lists)."""
        return {
            "symbols": list(self.symbols),
            "initial_cash": self.initial_cash,
            "cash": self.cash,
            "equity": self.equity(),
            "positions": self.positions(),
            "avg_prices": self.avg_prices(),
            "last_closes": self.last_closes(),
            "realized_pnl": self.realized_pnl,
            "total_commission": self.total_commission,
            "n_fills": self.n_fills,
            "n_closed_trades": int(self._summary[SUM_N_CLOSED]),
        }

    # ----------------------------------------------------------------- internals
    def _timeline(self, bar_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sorted distinct bar indices and their timestamps, for remapping record times."""
        idx = np.unique(bar_indices)
        ts = np.array([self._bar_ts[int(i)] for i in idx], dtype="datetime64[us]")
        return idx, ts

    def _closed_dicts(self, recs: np.ndarray) -> list[dict[str, Any]]:
        recs = recs.copy()
        idx, ts = self._timeline(np.concatenate([recs["entry_t"], recs["exit_t"]]))
        recs["entry_t"] = np.searchsorted(idx, recs["entry_t"])
        recs["exit_t"] = np.searchsorted(idx, recs["exit_t"])
        return closed_trade_dicts(recs, self.symbols, ts)
