"""A strategy host's logic without Ray: bar history, carried targets, its ledger, order intents.

``StrategyRunner.on_bar(bar, fills)`` is docs/live.md step 4: apply the bar's fills (idempotent
by fill id), append the bar, evaluate ``strategy.checked_weights`` on the history and take the
last row, carry the targets (NaN = no new opinion), and size an order exactly like the backtest
kernel's step 3 for every symbol whose carried target changed. ``replay_in_process`` drives
runners and a ``PaperEngine`` bar by bar in one process: the live path minus the actors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from core.accounting_nb import ST_POS
from core.errors import ConfigError, RaytraderError, StrategyError
from core.events import (
    BAR_FIELDS,
    BarSlice,
    FillReason,
    OrderFilled,
    OrderIntent,
    make_client_order_id,
)
from core.fills_nb import target_shares_nb
from core.ledger import Ledger, LedgerError
from core.panel import WidePanel
from core.paper import BarOrderError, PaperEngine, bar_slice
from core.paper_account import Prices, SymbolSelector
from core.sim import SimConfig
from core.types import RebalanceMode
from strategies.base import Strategy

__all__ = ["BarHistory", "StrategyRunner", "replay_in_process"]

_STOPS = (FillReason.STOP_LOSS, FillReason.TAKE_PROFIT)


def _last_defined(rows: np.ndarray, default: np.ndarray | None = None) -> np.ndarray:
    """Each column's last value that is not NaN (``default``'s, or NaN, where none is)."""
    defined = rows == rows
    last = rows.shape[0] - 1 - np.argmax(defined[::-1], axis=0)
    out = rows[last, np.arange(rows.shape[1])]
    fallback = np.full(rows.shape[1], np.nan) if default is None else default
    return np.where(defined.any(axis=0), out, fallback)


class BarHistory:
    """Growing wide arrays of bars (amortized appends), optionally capped to the last
    ``max_len`` bars; ``panel()`` is a zero-copy ``WidePanel`` view of the bars held."""

    def __init__(self, symbols: tuple[str, ...], max_len: int | None = None, capacity: int = 256):
        self.symbols = symbols
        self.max_len = max_len
        cap = max(capacity, 2 * max_len if max_len else 1)
        self._ts = np.empty(cap, dtype="datetime64[us]")
        self._data = np.empty((len(BAR_FIELDS), cap, len(symbols)))  # field, bar, symbol
        self._start = 0
        self._stop = 0
        self._start_before = 0  # where the view started before the last append

    def __len__(self) -> int:
        return self._stop - self._start

    def append(self, ts: np.datetime64, px: Prices) -> None:
        """Add one bar (fields in symbol order)."""
        if self._stop == len(self._ts):
            self._make_room()
        self._start_before = self._start
        i = self._stop
        self._ts[i] = ts
        if px.block is not None:  # the fields in BAR_FIELDS order: one store
            self._data[:, i] = px.block
        else:
            for k, f in enumerate(BAR_FIELDS):
                self._data[k, i] = getattr(px, f)
        self._stop += 1
        if self.max_len is not None and len(self) > self.max_len:
            self._start = self._stop - self.max_len

    def extend(self, panel: WidePanel) -> None:
        """Add every bar of ``panel`` (its symbols in this history's order), as many
        ``append``s would."""
        n = panel.n_bars
        if n == 0:
            return
        while self._stop + n > len(self._ts):  # to the front when capped, then doubled
            self._make_room()
        i = self._stop
        self._ts[i : i + n] = panel.timestamps.astype("datetime64[us]")
        for k, f in enumerate(BAR_FIELDS):
            self._data[k, i : i + n] = getattr(panel, f)
        self._stop += n
        self._start_before = self._start  # where the view started before the last bar came
        if self.max_len is not None and len(self) > self.max_len:
            self._start = self._stop - self.max_len
            self._start_before = max(self._start_before, self._stop - 1 - self.max_len)

    def drop_last(self) -> None:
        """Undo the last append (a bar whose evaluation failed is not kept)."""
        self._stop -= 1
        self._start = self._start_before

    def _make_room(self) -> None:
        """Move the held bars to the front when capped, else double the capacity."""
        n = len(self)
        if self._start > 0:
            self._ts[:n] = self._ts[self._start : self._stop]
            self._data[:, :n] = self._data[:, self._start : self._stop]
        else:
            self._ts = np.concatenate([self._ts, np.empty_like(self._ts)])
            self._data = np.concatenate([self._data, np.empty_like(self._data)], axis=1)
        self._start, self._stop = 0, n

    def panel(self) -> WidePanel:
        """The bars held, oldest first, as a view (valid until the next append)."""
        rows = slice(self._start, self._stop)
        return WidePanel(
            self._ts[rows], self.symbols, *self._data[:, rows]
        )  # fmt: skip


class StrategyRunner:
    """One strategy instance's host logic: history, carried targets, ledger, order intents.

    The ledger is the host's own positions view, fed by the same fills (in the same order)
    as the broker's sub-account, so the equity it sizes on is the backtest's equity_t.
    ``max_history`` keeps only the last bars (explicit opt-in: recursive indicators drift).
    """

    def __init__(
        self,
        strategy: Strategy,
        strategy_id: str,
        symbols: Sequence[str],
        config: SimConfig,
        *,
        max_history: int | None = None,
    ) -> None:
        self.strategy = strategy
        self.strategy_id = strategy_id
        self.symbols = tuple(symbols)
        self.config = config
        if max_history is not None and max_history < strategy.lookback:
            raise ConfigError(
                f"max_history={max_history} is shorter than the lookback "
                f"{strategy.lookback} of {strategy!r}"
            )
        self.max_history = max_history
        self._every_bar = config.rebalance is RebalanceMode.EVERY_BAR
        self._min_trade_frac = config.min_trade_pct / 100.0
        self._selector = SymbolSelector(self.symbols)
        self._reset()

    def _reset(self) -> None:
        """Fresh state: a new ledger, targets 0, an empty history, no bar handled."""
        self.ledger = Ledger(self.symbols, self.config.cash)
        self.targets = np.zeros(len(self.symbols))  # carried targets, initially 0
        self.history = BarHistory(self.symbols, self.max_history)
        self._last_index: int | None = None
        self._last_intents: list[OrderIntent] = []
        # the last bar's decision inputs: targets before it, weights, closes, stopped symbols
        self._decided: tuple[np.ndarray, np.ndarray, np.ndarray, set[str]] | None = None

    @property
    def last_bar_index(self) -> int | None:
        """Index of the last bar handled (None before the first)."""
        return self._last_index

    @property
    def last_intents(self) -> list[OrderIntent]:
        """The intents of the last bar handled."""
        return list(self._last_intents)

    # ----------------------------------------------------------------- the bar
    def apply_fills(self, fills: Iterable[OrderFilled]) -> None:
        """Apply this strategy's fills to its ledger; a fill seen before is ignored."""
        for fill in fills:
            if fill.strategy_id != self.strategy_id:
                raise LedgerError(
                    f"fill {fill.fill_id} belongs to {fill.strategy_id!r}, "
                    f"not to {self.strategy_id!r}"
                )
            self.ledger.apply(fill)

    def on_bar(self, bar: BarSlice, fills: Sequence[OrderFilled] = ()) -> list[OrderIntent]:
        """Handle one feed bar after the broker's step 2; returns the bar's order intents.

        Calling it again for the last bar handled applies any new fills and returns the same
        intents (same ids); an older bar raises BarOrderError. When the strategy raises
        (StrategyError), the bar is not kept, so the host may retry or fail it.
        """
        if self._last_index is not None and bar.index <= self._last_index:
            if bar.index == self._last_index:
                self.apply_fills(fills)
                return list(self._last_intents)
            raise BarOrderError(f"bar {bar.index} arrives after bar {self._last_index}")
        self.apply_fills(fills)
        px = self._selector.prices(bar)
        self.history.append(np.datetime64(bar.timestamp, "us"), px)
        try:
            row = self._last_row(bar)
        except Exception:
            self.history.drop_last()  # a retry of this bar must not see it twice
            raise
        self.ledger.mark(px.close)
        stopped = {f.symbol for f in fills if f.bar_index == bar.index and f.reason in _STOPS}
        self._decided = (self.targets.copy(), row, px.close, stopped)
        intents = self._decide(row, px.close, stopped, bar)
        self._last_index = bar.index
        self._last_intents = intents
        return list(intents)

    def reevaluate(self, bar: BarSlice, fills: Sequence[OrderFilled] = ()) -> list[OrderIntent]:
        """The last bar handled again, with fills that belong before its decision (the
        bar's open fills, when the host evaluated the bar before the broker opened it):
        the same weights, orders sized again on the new positions (same ids as far as they
        go; these intents replace the first ones, which must not have been sent).
        """
        if self._decided is None or bar.index != self._last_index:
            raise BarOrderError(
                f"reevaluate: bar {bar.index} is not the last bar handled ({self._last_index})"
            )
        self.apply_fills(fills)
        targets, row, close, stopped = self._decided
        self.targets = targets.copy()
        self.ledger.mark(close)
        stopped |= {f.symbol for f in fills if f.bar_index == bar.index and f.reason in _STOPS}
        self._last_intents = self._decide(row, close, stopped, bar)
        return list(self._last_intents)

    def warm(self, bar: BarSlice) -> OrderIntent | None:
        """Run the bar path's code on ``bar`` (the last bar handled) changing no state: its
        prices, the strategy's newest weights on the history held, the equity, and an order
        sized and built like the bar's would be, returned (never sent; None without a price)
        for the host to warm its answer's path with. A paced feed has hosts do it just before
        a bar is due, so the bar finds code and data in cache (docs/live.md, "Cold bars");
        ``target_weights`` is a pure function of the panel, so one more call changes nothing."""
        px = self._selector.prices(bar)
        if len(self.history):
            self.strategy.checked_last_weights(self.history.panel())
        equity = self.ledger.equity()
        close = px.close[0]
        if not close > 0:  # NaN too
            return None
        cfg = self.config
        qty = target_shares_nb(1.0, equity, cfg.size_pct, close, cfg.fractional) or 1.0
        return self._intent(self.symbols[0], qty, bar.index, bar.time, close, 0)

    def _last_row(self, bar: BarSlice) -> np.ndarray:
        """The strategy's weights for the newest bar, evaluated on the history held."""
        try:
            return self.strategy.checked_last_weights(self.history.panel())
        except RaytraderError:
            raise
        except Exception as exc:  # user code: name the strategy and the bar
            raise StrategyError(
                f"{type(exc).__name__}: {exc}", strategy_id=self.strategy_id, bar_ts=bar.time
            ) from exc

    def _decide(
        self, row: np.ndarray, close: np.ndarray, stopped: set[str], bar: BarSlice
    ) -> list[OrderIntent]:
        """The kernel's step 3: carry targets (NaN keeps the old one), then size an order for
        every symbol whose target changed (every one with ``every_bar``) on equity at close."""
        targets = self.targets.tolist()  # scalar Python: a handful of symbols (Ledger.mark)
        changed, valid = [], False
        for j, weight in enumerate(row.tolist()):
            if weight == weight:  # NaN: no new opinion
                if weight != targets[j]:
                    changed.append(j)
                targets[j], valid = weight, True
        if valid:
            self.targets[:] = targets
        candidates = range(len(self.symbols)) if self._every_bar else changed
        if not candidates:
            return []
        equity = self.ledger.equity()
        bar_time = bar.time
        intents: list[OrderIntent] = []
        for j in candidates:
            symbol, target, c = self.symbols[j], self.targets[j], close[j]
            if symbol in stopped or c != c:
                continue
            qty = target_shares_nb(
                target, equity, self.config.size_pct, c, self.config.fractional
            ) - self.ledger.state[j, ST_POS]
            if qty == 0 or (self._every_bar and abs(qty) * c < self._min_trade_frac * equity):
                continue
            intents.append(self._intent(symbol, qty, bar.index, bar_time, c, len(intents)))
        return intents

    def _intent(
        self, symbol: str, qty: float, bar_index: int, bar_ts: datetime, close: float, seq: int
    ) -> OrderIntent:
        """The order intent for ``qty`` of ``symbol`` sized on a bar's ``close``; ``seq``
        numbers the bar's orders (the deterministic client order id)."""
        return OrderIntent(
            client_order_id=make_client_order_id(self.strategy_id, symbol, bar_ts, seq),
            strategy_id=self.strategy_id, symbol=symbol, qty=float(qty), bar_index=bar_index,
            bar_ts=bar_ts, ref_price=float(close),
        )  # fmt: skip

    # ----------------------------------------------------------------- restart
    def rebuild(
        self, history: WidePanel, fills: Sequence[OrderFilled], *, first_index: int = 0
    ) -> None:
        """Restore state after a restart: the bars (row i = bar ``first_index + i``), the
        ledger from the fills in journal order, the carried targets by re-evaluating.

        Uncapped, one evaluation of the whole history gives every bar's row (strategies are
        causal); with ``max_history`` the capped evaluations are replayed bar by bar, since
        each one saw only its own window. ``history`` must start where the host's did. To
        regenerate the intents of bar t (same ids), rebuild through t - 1 and call
        ``on_bar(t, fills)`` again.
        """
        self._reset()
        panel = history if history.symbols == self.symbols else history.select(self.symbols)
        last = first_index + panel.n_bars - 1
        late = [f.fill_id for f in fills if f.bar_index > last]
        if late:
            raise LedgerError(f"fills after the history's last bar {last}: {late[:3]}")
        by_bar: dict[int, list[OrderFilled]] = {}
        for fill in fills:  # fills before the history's first bar go first
            by_bar.setdefault(max(fill.bar_index, first_index), []).append(fill)
        if self.max_history:
            for i in range(panel.n_bars):
                self.apply_fills(by_bar.get(first_index + i, ()))
                bar = bar_slice(panel, i)
                px = self._selector.prices(bar)
                self.history.append(np.datetime64(bar.timestamp, "us"), px)
                self.ledger.mark(px.close)
                row = self.strategy.checked_weights(self.history.panel())[-1]
                valid = row == row
                self.targets[valid] = row[valid]
        else:
            self._rebuild_at_once(panel, by_bar)
        self._last_index = last if panel.n_bars else None

    def _rebuild_at_once(self, panel: WidePanel, by_bar: dict[int, list[OrderFilled]]) -> None:
        """The uncapped rebuild without a Python step per bar (13 us a bar: 1.3 s for 100,000
        bars), to the same state: the history in one copy; the fills bar after bar, then each
        symbol's last close (a fill reads no mark, so the closes between fills change
        nothing: the last one is kept, or the first fill's price where no close was seen);
        each symbol's carried target the last weight the strategy set for it."""
        weights = self.strategy.checked_weights(panel)
        self.history.extend(panel)
        for index in sorted(by_bar):
            self.apply_fills(by_bar[index])
        if panel.n_bars:
            self.ledger.mark(_last_defined(panel.close))
            self.targets[:] = _last_defined(weights, self.targets)

    def snapshot(self) -> dict[str, Any]:
        """Plain-dict status: carried targets, history length, the ledger's snapshot."""
        return {
            "strategy_id": self.strategy_id,
            "strategy": repr(self.strategy),
            "last_bar_index": self._last_index,
            "history_bars": len(self.history),
            "targets": {s: float(t) for s, t in zip(self.symbols, self.targets, strict=True)},
            "ledger": self.ledger.snapshot(),
        }


def replay_in_process(
    panel: WidePanel,
    runners: Sequence[StrategyRunner],
    engine: PaperEngine | None = None,
    *,
    start: int = 0,
    stop: int | None = None,
) -> PaperEngine:
    """Drive runners and a paper engine over bars ``start:stop`` as docs/live.md orders it,
    with every intent approved unchanged: engine.on_bar, then each runner's on_bar with its
    fills, its intents to engine.submit, the close fills back to the runner."""
    if engine is None:
        engine = PaperEngine()
    for runner in runners:
        if runner.strategy_id not in engine.strategies:
            engine.open_account(runner.strategy_id, runner.symbols, runner.config)
    for t in range(start, panel.n_bars if stop is None else stop):
        bar = bar_slice(panel, t)
        report = engine.on_bar(bar)
        for runner in runners:
            intents = runner.on_bar(bar, report.fills_for(runner.strategy_id))
            if intents:
                runner.apply_fills(engine.submit(intents, bar).fills)
    return engine
