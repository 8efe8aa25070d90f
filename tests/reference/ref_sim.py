"""Independent plain-Python reference backtester.

Written from ``docs/semantics.md`` (the contract) only, without looking at the product's
simulation kernel, so that comparing the two on real data is a meaningful check. The loop uses
plain Python floats, lists and ``math`` -- no numpy, no numba -- and follows the spec's order of
operations literally:

    for each bar t:
      1. open  (fill=next_open only): 1.1 gap stops, 1.2 pending orders (sells, then buys)
      2. intrabar stops (stop-loss before take-profit)
      3. close: mark E, compute orders from carried targets; fill now (fill=close) or queue them
      4. mark and record equity

Every point where the spec admits more than one reading is marked ``# SPEC-AMBIGUITY:``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Spec: affordability checks allow a relative slack of 1e-9 x E_fill for float rounding.
FLOAT_SLACK = 1e-9

NAN = float("nan")

STOP_LOSS = "stop_loss"
TAKE_PROFIT = "take_profit"
SIGNAL = "signal"


@dataclass
class RefTrade:
    """One trade record: a closed (part of a) position, or a position still open at the end."""

    symbol: str
    side: str  # "long" | "short"
    qty: float  # positive quantity closed (or held, for open trades)
    entry_t: int  # bar index the position was opened
    entry_price: float  # average entry fill price (incl. slippage)
    exit_t: int | None  # None for a trade still open at the end
    exit_price: float | None
    pnl: float
    exit_reason: str | None  # "signal" | "stop_loss" | "take_profit" | None (open)


@dataclass
class RefRejected:
    """An order rejected at the bar where it would have filled."""

    t: int  # bar index at which the order would have filled
    symbol: str
    qty: float  # signed order quantity
    reason: str  # "insufficient_cash" | "insufficient_margin" | "no_price"


@dataclass
class RefResult:
    """Everything the reference backtest produces."""

    equity: list[float]  # equity at each bar's close (len T)
    cash: list[float]  # cash at each bar's close
    positions: list[list[float]]  # shares per bar per symbol after the bar
    trades: list[RefTrade]  # closed trades in closing order, then open trades in symbol order
    rejected: list[RefRejected]
    total_commission: float
    final_equity: float


def _isnan(x: float) -> bool:
    """True for NaN (works for any float, including None-free inputs)."""
    return x != x


class _Portfolio:
    """Mutable state of one portfolio: cash, positions, open-trade bookkeeping and records."""

    def __init__(
        self,
        symbols: list[str],
        cash: float,
        commission_bps: float,
        commission_fixed: float,
        slippage_bps: float,
        leverage: float,
    ) -> None:
        """Start flat with ``cash``."""
        n = len(symbols)
        self.symbols = symbols
        self.cash = cash
        self.commission_bps = commission_bps
        self.commission_fixed = commission_fixed
        self.slippage_bps = slippage_bps
        self.leverage = leverage
        self.shares: list[float] = [0.0] * n
        self.avg_entry: list[float] = [0.0] * n  # average entry fill price of the shares held
        self.entry_t: list[int] = [-1] * n  # bar the open trade was opened
        self.entry_comm: list[float] = [0.0] * n  # entry commission not yet allocated
        self.last_close: list[float] = [NAN] * n
        self.trades: list[RefTrade] = []
        self.rejected: list[RefRejected] = []
        self.total_commission = 0.0

    # ----- prices ---------------------------------------------------------------------------

    def mark_price(self, s: int, price: float) -> float:
        """Price to mark symbol ``s`` at: ``price``, or its last close when ``price`` is NaN."""
        if not _isnan(price):
            return price
        if not _isnan(self.last_close[s]):
            return self.last_close[s]
        # SPEC-AMBIGUITY: a position can exist with no close ever seen (filled at the open of a
        # bar whose close is NaN, on the symbol's first bar). The spec has no "last close" then;
        # we mark such a position at its average entry price.
        return self.avg_entry[s]

    def equity(self, prices: list[float]) -> float:
        """``cash + sum(shares * price)``, NaN prices replaced by the last close (flat: skipped)."""
        held = 0.0
        for s, q in enumerate(self.shares):
            if q != 0.0:
                held += q * self.mark_price(s, prices[s])
        return self.cash + held

    def slipped(self, price: float, qty: float) -> float:
        """Market fill price: moved against the trader (up for buys, down for sells)."""
        if qty > 0:
            return price * (1 + self.slippage_bps / 1e4)
        return price * (1 - self.slippage_bps / 1e4)

    def commission(self, qty: float, price: float) -> float:
        """``|qty| * fill_price * commission_bps / 1e4 + commission_fixed``."""
        return abs(qty) * price * self.commission_bps / 1e4 + self.commission_fixed

    # ----- fills ----------------------------------------------------------------------------

    def _record(
        self, s: int, side: float, qty: float, exit_t: int, exit_price: float, pnl: float,
        reason: str,
    ) -> None:
        """Append a closed trade record for ``qty`` shares of the open trade on ``s``."""
        self.trades.append(
            RefTrade(
                symbol=self.symbols[s],
                side="long" if side > 0 else "short",
                qty=qty,
                entry_t=self.entry_t[s],
                entry_price=self.avg_entry[s],
                exit_t=exit_t,
                exit_price=exit_price,
                pnl=pnl,
                exit_reason=reason,
            )
        )

    def fill(self, s: int, qty: float, price: float, t: int, reason: str) -> None:
        """Execute ``qty`` (signed) of symbol ``s`` at ``price`` on bar ``t``; book the trades."""
        comm = self.commission(qty, price)
        self.total_commission += comm
        if qty > 0:
            self.cash += -(qty * price) - comm
        else:
            self.cash += (-qty) * price - comm

        old = self.shares[s]
        new = old + qty
        if old == 0.0:
            # A trade opens.
            self.avg_entry[s] = price
            self.entry_t[s] = t
            self.entry_comm[s] = comm
        elif (old > 0) == (qty > 0):
            # Adding to the position moves its average entry price.
            self.avg_entry[s] = (self.avg_entry[s] * abs(old) + price * abs(qty)) / abs(new)
            self.entry_comm[s] += comm
        else:
            # A reduction (possibly through zero): closes part or all of the trade.
            side = 1.0 if old > 0 else -1.0
            closed = min(abs(qty), abs(old))
            crosses = abs(qty) > abs(old)
            if crosses:
                # SPEC-AMBIGUITY: the commission of a fill that crosses zero is split between the
                # closed trade (exit commission) and the new trade (entry commission) pro rata by
                # quantity, fixed part included.
                exit_comm = comm * closed / abs(qty)
                open_comm = comm - exit_comm
            else:
                exit_comm = comm
                open_comm = 0.0
            if closed == abs(old):
                entry_share = self.entry_comm[s]
            else:
                entry_share = self.entry_comm[s] * closed / abs(old)
            pnl = side * (price - self.avg_entry[s]) * closed - entry_share - exit_comm
            self._record(s, side, closed, t, price, pnl, reason)
            self.entry_comm[s] -= entry_share
            if crosses:
                self.avg_entry[s] = price
                self.entry_t[s] = t
                self.entry_comm[s] = open_comm
            elif new == 0.0:
                self.avg_entry[s] = 0.0
                self.entry_t[s] = -1
                self.entry_comm[s] = 0.0
        self.shares[s] = new

    def submit(self, s: int, qty: float, ref_price: float, moment: list[float], t: int) -> None:
        """A market order at ``ref_price`` (before slippage): check the rejection rules, fill.

        ``moment`` holds the prices of the moment (opens or closes) used for ``E_fill``.
        """
        price = self.slipped(ref_price, qty)
        old = self.shares[s]
        new = old + qty
        # Spec (tightened after review): a buy increases exposure when it leaves the position
        # long and longer than before (new > max(old, 0)); a sell when it leaves it short and
        # shorter (new < min(old, 0)). So long 30 -> short 10 opens new short exposure and is
        # checked, and is rejected whole, not split into a close and an open.
        increasing = new > max(old, 0.0) if qty > 0 else new < min(old, 0.0)
        if increasing:
            # SPEC-AMBIGUITY: E_fill is recomputed for each order from the state just before it
            # (after earlier fills of the same bar), symbols marked at the moment's price (the
            # filled symbol at its unslipped open/close, not at its fill price).
            e_fill = self.equity(moment)
            if qty > 0:
                cash_after = self.cash - qty * price - self.commission(qty, price)
                # SPEC-AMBIGUITY: when both rules fail, the cash reason is reported.
                if cash_after < -(self.leverage - 1) * e_fill - FLOAT_SLACK * abs(e_fill):
                    self.rejected.append(
                        RefRejected(t, self.symbols[s], qty, "insufficient_cash"))
                    return
            gross = 0.0
            for i, q in enumerate(self.shares):
                if i == s:
                    gross += abs(new) * price
                elif q != 0.0:
                    gross += abs(q) * self.mark_price(i, moment[i])
            if gross > self.leverage * e_fill + FLOAT_SLACK * abs(e_fill):
                self.rejected.append(RefRejected(t, self.symbols[s], qty, "insufficient_margin"))
                return
        self.fill(s, qty, price, t, SIGNAL)

    # ----- stops ----------------------------------------------------------------------------

    def levels(
        self, s: int, stop_loss_pct: float | None, take_profit_pct: float | None
    ) -> tuple[float | None, float | None]:
        """(stop-loss level, take-profit level) of the position on ``s``; None when off."""
        entry = self.avg_entry[s]
        long = self.shares[s] > 0
        sl: float | None = None
        tp: float | None = None
        if stop_loss_pct is not None:
            sl = entry * (1 - stop_loss_pct / 100) if long else entry * (1 + stop_loss_pct / 100)
        if take_profit_pct is not None:
            tp = (entry * (1 + take_profit_pct / 100) if long
                  else entry * (1 - take_profit_pct / 100))
        return sl, tp

    def stop_exit(self, s: int, reason: str, level_price: float, t: int) -> None:
        """Close the whole position on ``s`` at ``level_price`` (stop-loss: with slippage)."""
        qty = -self.shares[s]
        price = self.slipped(level_price, qty) if reason == STOP_LOSS else level_price
        self.fill(s, qty, price, t, reason)

    def gap_stop(
        self, s: int, open_px: float, sl: float | None, tp: float | None
    ) -> tuple[str, float] | None:
        """Stop triggered by the open being at or beyond a level: (reason, open) or None."""
        if _isnan(open_px):
            return None
        long = self.shares[s] > 0
        if sl is not None and (open_px <= sl if long else open_px >= sl):
            return STOP_LOSS, open_px
        if tp is not None and (open_px >= tp if long else open_px <= tp):
            return TAKE_PROFIT, open_px
        return None

    def intrabar_stop(
        self, s: int, high: float, low: float, sl: float | None, tp: float | None
    ) -> tuple[str, float] | None:
        """Stop reached by the bar's low/high, stop-loss first: (reason, level) or None."""
        # SPEC-AMBIGUITY: a NaN low/high (no bar) reaches nothing, and a NaN open triggers no
        # gap stop (see gap_stop): a symbol without a bar is never stopped on that bar.
        long = self.shares[s] > 0
        if sl is not None:
            touched = (not _isnan(low) and low <= sl) if long else (not _isnan(high) and high >= sl)
            if touched:
                return STOP_LOSS, sl
        if tp is not None:
            touched = (not _isnan(high) and high >= tp) if long else (not _isnan(low) and low <= tp)
            if touched:
                return TAKE_PROFIT, tp
        return None


def _check_inputs(
    n: int, arrays: dict[str, list[list[float]]], fill: str, rebalance: str
) -> int:
    """Validate shapes, weights and enums; return T."""
    if fill not in ("next_open", "close"):
        raise ValueError(f"fill must be 'next_open' or 'close', not {fill!r}")
    if rebalance not in ("on_change", "every_bar"):
        raise ValueError(f"rebalance must be 'on_change' or 'every_bar', not {rebalance!r}")
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) != 1:
        raise ValueError(f"arrays differ in length: { {k: len(a) for k, a in arrays.items()} }")
    for name, a in arrays.items():
        for t, row in enumerate(a):
            if len(row) != n:
                raise ValueError(f"{name}[{t}] has {len(row)} columns, expected {n}")
    for t, row in enumerate(arrays["weights"]):
        for s, w in enumerate(row):
            if not _isnan(w) and not (-1.0 <= w <= 1.0):
                raise ValueError(f"weight {w} at t={t}, s={s} is outside [-1, 1]")
    return lengths.pop()


def ref_backtest(
    symbols: list[str],
    open: list[list[float]],
    high: list[list[float]],
    low: list[list[float]],
    close: list[list[float]],
    weights: list[list[float]],
    *,
    cash: float = 100_000.0,
    fill: str = "next_open",
    size_pct: float = 1.0,
    fractional: bool = False,
    commission_bps: float = 0.0,
    commission_fixed: float = 0.0,
    slippage_bps: float = 0.0,
    stop_loss_pct: float | None = None,
    take_profit_pct: float | None = None,
    leverage: float = 1.0,
    rebalance: str = "on_change",
    min_trade_pct: float = 0.0,
) -> RefResult:
    """Backtest one portfolio per ``docs/semantics.md``; arrays are indexed ``[t][s]``.

    NaN prices mean "no bar"; NaN weights mean "no new opinion" (the carried target stands).
    ``stop_loss_pct`` / ``take_profit_pct`` of None switch the stop off.
    """
    n = len(symbols)
    T = _check_inputs(
        n, {"open": open, "high": high, "low": low, "close": close, "weights": weights},
        fill, rebalance,
    )
    # SPEC-AMBIGUITY: a stop percentage of 0 is a real level (at the entry price); only None
    # switches a stop off.
    pf = _Portfolio(symbols, cash, commission_bps, commission_fixed, slippage_bps, leverage)
    carried = [0.0] * n  # c[t-1, s], with c[-1, s] = 0
    pending: list[tuple[int, float]] = []  # (symbol, qty) decided at t-1, filling at t's open
    equity_curve: list[float] = []
    cash_curve: list[float] = []
    positions: list[list[float]] = []
    stops_on = stop_loss_pct is not None or take_profit_pct is not None

    for t in range(T):
        o, h, lo, c = open[t], high[t], low[t], close[t]
        stopped = [False] * n

        # 1. Open (fill=next_open only).
        if fill == "next_open":
            # 1.1 Gap stops, for every position held since before this bar.
            if stops_on:
                for s in range(n):
                    if pf.shares[s] == 0.0:
                        continue
                    sl, tp = pf.levels(s, stop_loss_pct, take_profit_pct)
                    hit = pf.gap_stop(s, o[s], sl, tp)
                    if hit is not None:
                        pf.stop_exit(s, hit[0], hit[1], t)
                        stopped[s] = True
            # 1.2 Pending orders: stopped symbols cancelled; sells first, then buys.
            # SPEC-AMBIGUITY: a cancelled pending order (its symbol was gap-stopped) is silently
            # dropped; it is not reported as a rejection.
            orders = [(s, q) for s, q in pending if not stopped[s]]
            pending = []
            ordered = [x for x in orders if x[1] < 0] + [x for x in orders if x[1] > 0]
            for s, q in ordered:
                if _isnan(o[s]):
                    pf.rejected.append(RefRejected(t, symbols[s], q, "no_price"))
                    continue
                pf.submit(s, q, o[s], o, t)

        # 2. Intrabar stops, for every position still open and not stopped on this bar.
        if stops_on:
            for s in range(n):
                if pf.shares[s] == 0.0 or stopped[s]:
                    continue
                sl, tp = pf.levels(s, stop_loss_pct, take_profit_pct)
                held_before = pf.entry_t[s] < t
                hit = None
                if held_before:
                    # SPEC-AMBIGUITY: for a position held from before this bar, an open at or
                    # beyond a level is resolved first (stop-loss gap, then take-profit gap),
                    # exactly like step 1.1, and only then the intrabar low/high (stop-loss
                    # first). With fill=close a bar that gaps up through the take-profit and
                    # later trades down through the stop-loss thus exits at the open by
                    # take-profit, as it would with fill=next_open. The strictly literal reading
                    # ("stop-loss first" over the whole bar) would report a stop-loss at its level.
                    hit = pf.gap_stop(s, o[s], sl, tp)
                if hit is None:
                    # SPEC-AMBIGUITY: a position entered at this bar's open is checked against the
                    # high/low only and exits at the level even if its own fill (slippage) put the
                    # level on the far side of the open.
                    hit = pf.intrabar_stop(s, h[s], lo[s], sl, tp)
                if hit is not None:
                    pf.stop_exit(s, hit[0], hit[1], t)
                    stopped[s] = True

        # 3. Close: mark E, compute orders.
        for s in range(n):
            if not _isnan(c[s]):
                pf.last_close[s] = c[s]
        E = pf.equity(c)
        orders = []
        for s in range(n):
            w = weights[t][s]
            target = carried[s] if _isnan(w) else w
            changed = target != carried[s]
            # SPEC-AMBIGUITY: the carried target updates even when no order is placed (stopped
            # symbol, NaN close). A target change that arrives on such a bar is therefore lost:
            # on the next bar c[t] == c[t-1] and on_change places nothing.
            carried[s] = target
            if stopped[s] or _isnan(c[s]):
                continue
            if rebalance == "on_change" and not changed:
                continue
            x = target * E * size_pct / c[s]
            if fractional:
                S = x
            elif x >= 0:
                S = float(math.floor(x))
            else:
                S = -float(math.floor(-x))
            qty = S - pf.shares[s]
            if qty == 0.0:
                continue
            if rebalance == "every_bar" and not (abs(qty) * c[s] >= min_trade_pct / 100 * E):
                continue
            orders.append((s, qty))
        if fill == "close":
            ordered = [x for x in orders if x[1] < 0] + [x for x in orders if x[1] > 0]
            for s, q in ordered:
                pf.submit(s, q, c[s], c, t)
        else:
            pending = orders  # dropped if t is the last bar

        # 4. Mark.
        equity_curve.append(pf.equity(c))
        cash_curve.append(pf.cash)
        positions.append(list(pf.shares))

    # End of data: open positions become trades with a null exit, marked at the last close.
    trades = list(pf.trades)
    for s in range(n):
        q = pf.shares[s]
        if q == 0.0:
            continue
        side = 1.0 if q > 0 else -1.0
        mark = pf.mark_price(s, NAN)
        pnl = side * (mark - pf.avg_entry[s]) * abs(q) - pf.entry_comm[s]
        trades.append(
            RefTrade(
                symbol=symbols[s],
                side="long" if q > 0 else "short",
                qty=abs(q),
                entry_t=pf.entry_t[s],
                entry_price=pf.avg_entry[s],
                exit_t=None,
                exit_price=None,
                pnl=pnl,
                exit_reason=None,
            )
        )

    final_equity = equity_curve[-1] if equity_curve else cash
    return RefResult(
        equity=equity_curve,
        cash=cash_curve,
        positions=positions,
        trades=trades,
        rejected=pf.rejected,
        total_commission=pf.total_commission,
        final_equity=final_equity,
    )
