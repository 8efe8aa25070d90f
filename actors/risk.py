"""The ``risk`` actor: a thin shell around ``core.risk.RiskEngine``, the only way to the broker.

It is the only caller of the broker. Per bar the feed calls ``close_bar`` once with the
intents every host answered: the gate (every verdict journaled before anything is forwarded),
then one ``broker.step`` that submits the approved orders and processes the next bar's open,
then that bar's marks, breakers and stale-data clocks (``open_bar`` opens a bar on its own
after a pause or a kill).
``kill`` / ``resume`` / ``set_limits`` are the operator's commands; a kill is journaled, its
cancellations and flatten orders are done at the broker, all before it answers. Everything
the engine knows is rebuilt from the journal in ``__init__`` (no restart resets a halt, a
day-start equity, a peak or a decided verdict), and the positions and open orders of
``RiskBook`` from the broker's journaled events.

The actor is threaded: the bar path runs on the wire's connection thread (``actors.wire``),
its calls to the broker on the same thread, and Ray's calls (``kill``, ``state``, ...) on
Ray's threads. One lock (``_mutex``) makes "decide, journal, forward" one step that a kill
cannot split, so an order approved before a kill is at the broker (and canceled by it) before
the kill returns, and every intent decided after the kill is decided under it. (It was an
asyncio actor; a paced bar wakes risk cold, and its event loop cost about 150 us more per
call than a thread blocked on its socket: docs/live.md, "Cold bars".)
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import ray
from pydantic import BaseModel

from actors.broker import BROKER_KINDS, is_not_approved
from actors.common import (
    BROKER,
    FEED,
    ActorShell,
    Handles,
    all_strategies,
    open_journal,
    pack,
    unpack,
    warm_up,
)
from actors.retry import call_sync
from actors.wire import WirePeer
from core import metric_names as mn
from core.events import (
    BarSlice,
    Decision,
    EventKind,
    FillReason,
    KillMode,
    KillSwitchEngaged,
    OrderIntent,
    RiskReason,
    RiskVerdict,
    Scope,
    StrategyState,
    StrategyStateChanged,
)
from core.paper import BarReport
from core.risk import RiskEngine, RiskLimits
from core.risk.book import RiskBook
from core.run_config import RunConfig, StrategyConfig

__all__ = ["Risk"]

SOURCE = "risk"
GAUGE_EVERY_S = 1.0  # account gauges at most this often between bars (a scrape: always)
GAUGE_LATE_S = 5.0  # ... and at once after a bar's marks when no bar left time for them
log = logging.getLogger("raytrader.risk")


def _intents(value: Any) -> list[OrderIntent]:
    """``close_bar``'s intents: packed (``actors.common.pack``), a list of intents, or a list
    of packed lists (each host's answer, as the feed passes them on), in that order."""
    value = unpack(value)
    out: list[OrderIntent] = []
    for item in value:
        if isinstance(item, bytes):
            out += unpack(item)
        else:
            out.append(item)
    return out


def _after(answer: dict[str, Any]) -> dict[str, Any]:
    """The broker's state after an ``on_bar`` or ``step`` answer: fill counts, quiet accounts."""
    return {"fill_counts": answer["fill_counts"], "quiet": answer["quiet"]}


class Risk(ActorShell):
    """Trading states, limits, breakers and the order gate (see the module docstring).

    Args:
        config: the run's config (strategies for the book, risk limits, runtime policy).
        journal_path: the journal file.
    """

    #: The feed reaches risk's per-bar calls on the wire (``actors.wire``).
    WIRE_METHODS = frozenset({"open_bar", "close_bar", "warm"})
    COLLECT_AFTER = frozenset({"close_bar"})

    def __init__(self, config: RunConfig, journal_path: str, *, fingerprint: str = "") -> None:
        self._fingerprint = fingerprint
        self._config = config
        self._actor = Handles()
        self._wait_s = config.runtime.restart_wait_s
        self._timeout_s = config.runtime.call_timeout_s
        self._broker_wire: WirePeer | None = None
        self._journal = open_journal(journal_path, config.journal.synchronous)
        self._mutex = threading.RLock()
        self._kills = threading.Lock()  # guards the count below, never held with _mutex
        self._kills_waiting = 0
        self._init_telemetry(SOURCE, self._journal)
        self._gauges_at = 0.0
        warm_up(config.strategies, max_bars=64)
        self._rebuild(fetch_prices=True)

    # ------------------------------------------------------------------ restart
    def _rebuild(self, *, fetch_prices: bool = False) -> None:
        """Start-up and crash recovery: engine and book from the journal, prices and the
        stale-data clocks from the feed (after a journal error: from the engine and book
        being replaced)."""
        old_engine = getattr(self, "_engine", None)
        self._engine = RiskEngine.from_journal(
            self._journal, self._config.risk,
            snapshot_every=self._config.runtime.marks_snapshot_bars,
        )  # fmt: skip
        if old_engine is not None:
            self._engine.resume_clocks(old_engine.freshness())
        book = RiskBook()
        for strategy in all_strategies(self._config, self._journal):
            book.open_account(strategy.id, strategy.symbols, strategy.sim.cash)
        # Trades closed after the last marks journaled are counted by the next bar's marks:
        # this process must count them, since the one that held them in memory is gone.
        marks_seq = self._last_marks_seq()
        uncounted = book.replay(
            ((e.seq, e.event) for e in self._journal.read(BROKER_KINDS)
             if not is_not_approved(e.event)),
            marks_seq,
        )  # fmt: skip
        old = getattr(self, "_book", None)
        if old is not None:  # a rebuild after a journal error keeps the prices it had
            book.mark(old.prices)
        last = self._journal.last(EventKind.BAR_PROCESSED)
        self._last_bar: tuple[int, datetime] | None = None
        if last is not None:
            self._last_bar = (last.event.bar_index, last.event.bar_ts)  # type: ignore[attr-defined]
            if fetch_prices:
                fresh = call_sync(self._actor(FEED).freshness, self._last_bar[0], name=FEED,
                                  restart_wait_s=self._wait_s,
                                  probe=self._actor(FEED).pid)  # fmt: skip
                book.mark({s: price for s, (_, price) in fresh.items() if price is not None})
                self._engine.resume_clocks(fresh)
        self._book = book
        self._pending_closed: list[tuple[str, float]] = uncounted  # for the next marks
        self._after: dict[str, Any] | None = None  # the broker's last reported fill counts/quiet
        self._marked: int | None = None  # the last bar marked by this process
        self._unmarked: tuple[Any, Any] | None = None  # an open not marked yet (bar, answer)
        self._unjournaled: list[BaseModel] = []  # marks applied, for the gate's transaction
        self._strategy_states: dict[str, StrategyState] = {}
        self._states_seq = 0
        self._unfinished = self._unfinished_kill(marks_seq)
        rec = self._telemetry.recorder
        rec.set(mn.TRADING_STATE, 0, scope="global")
        for scope, status in self._engine.states.restricted().items():
            rec.set(mn.TRADING_STATE, mn.TRADING_STATE_VALUE[status.state], scope=str(scope))

    def _last_marks_seq(self) -> int:
        """The seq of the last row of a bar's marks (its ``risk_marks``, a breaker trip or a
        marks snapshot; 0 for none). Every broker event journaled before it was counted in
        some bar's marks, none after it: a bar's marks follow its ``bar_processed`` before any
        other broker call, since every step that reaches the broker takes the lock that marks
        first."""
        kinds = (EventKind.RISK_MARKS, EventKind.RISK_MARK, EventKind.BREAKER_TRIPPED,
                 EventKind.RISK_MARKS_SNAPSHOT)  # fmt: skip
        rows = [self._journal.last(kind) for kind in kinds]
        return max((row.seq for row in rows if row is not None), default=0)

    def _unfinished_kill(self, seq: int) -> tuple[int, KillSwitchEngaged] | None:
        """The last kill switch journaled after ``seq`` (the last row of marks) with its seq,
        if it is still in force: a process may have died between journaling it and finishing
        its cancellations and flatten at the broker. Only the last: a kill runs under the
        lock, so any kill, bar or command journaled after one began after it had finished.
        """
        last = self._journal.last(EventKind.KILL_SWITCH_ENGAGED)
        if last is None or last.seq <= seq:
            return None
        kill: KillSwitchEngaged = last.event  # type: ignore[assignment]
        in_force = self._engine.states.kill_switches().get(kill.scope) == kill
        return (last.seq, kill) if in_force else None

    def _append(self, events: Sequence[BaseModel]) -> list[Any]:
        """Journal engine events before answering; on failure rebuild the engine and raise."""
        if not events:
            return []
        try:
            return self._telemetry.append(events)
        except BaseException:
            self._rebuild()
            raise

    # ------------------------------------------------------------------ per bar
    @contextlib.contextmanager
    def _locked(self, *, gate: bool = False) -> Iterator[None]:
        """The lock of every bar step, command and query; marks a bar opened just before
        first, so nothing is decided (or reported) before the marks of the bar it belongs to.
        The marks are journaled before the block runs, except for the gate (``gate``), whose
        own transaction takes them (``_journal_marks``)."""
        with self._mutex:
            if self._unfinished is not None:  # before anything reaches the broker (a restart)
                self._finish_kill(*self._unfinished)
            if self._unmarked is not None:
                bar, answer = self._unmarked
                self._unmarked = None
                answer = unpack(answer)
                self._after = _after(answer)
                self._marks(unpack(bar), answer["report"])
            if not gate:
                self._journal_marks()
            yield

    def _journal_marks(self) -> None:
        """Journal the marks applied since the last commit (``_marks`` leaves them for the
        gate, which commits them with its verdicts: one commit on the bar's path, not two).
        Under the lock; before every broker call, so a bar's marks still follow its
        ``bar_processed`` before any other broker event (``_last_marks_seq``)."""
        if self._unjournaled:
            rows, self._unjournaled = self._unjournaled, []
            self._append(rows)

    def _finish_kill(self, seq: int, kill: KillSwitchEngaged) -> None:
        """Carry out again, idempotently, a kill a process journaled and may not have
        finished (``_unfinished_kill``): its cancellations (never of its own flatten orders)
        and its flatten orders, the same ids (the kill's seq is their nonce), so nothing is
        done twice. Under the lock, before any other step of a restarted process."""
        done = self._carry_out(kill.scope, kill.flatten, nonce=seq)
        self._unfinished = None
        log.warning("kill of %s (seq %d) finished after a restart: %s", kill.scope, seq, done)

    def _defer_marks(self, bar: BarSlice | bytes, answer: dict[str, Any] | bytes) -> None:
        """Mark a bar the broker just opened after the answer has gone (the feed wants only
        the report: its hosts evaluate while risk marks): the wire thread does it once the
        answer is out (``after_reply``), and any locked step before that does it first.
        ``bar`` and the broker's ``answer`` (``on_bar``'s or ``step``'s) may still be packed:
        risk unpacks them then, not before it answers."""
        self._unmarked = (bar, answer)

    def after_reply(self) -> None:
        """Once the wire's answer has gone (``actors.wire``): the marks ``_defer_marks`` left,
        the account gauges when due, then the held metrics. The gauges (a view of every
        sub-account, some forty series) wait for an answer that leaves no bar open: after
        an open, the hosts are evaluating and the gate comes next, and it journals the marks
        (after any other answer, they are journaled here: a gate without intents)."""
        marked = self._unmarked is not None
        try:
            with self._locked(gate=marked):
                since = time.monotonic() - self._gauges_at
                if since >= (GAUGE_LATE_S if marked else GAUGE_EVERY_S):
                    self._refresh_gauges()
        except Exception:  # the journal failed: rebuilt; close_bar marks the bar again
            log.exception("after an answer: the marks of an opened bar or the gauges failed")
        super().after_reply()

    def _ensure_marked(self, bar: BarSlice) -> None:
        """Bar t's marks before its intents are decided: after a restart or a failed mark
        this process has not marked it (the broker's ``on_bar`` is idempotent)."""
        if self._marked != bar.index:
            out = self._broker("on_bar", bar)
            self._marks(bar, out["report"])

    def _marks(self, bar: BarSlice, report: BarReport) -> list[BaseModel]:
        """Docs/live.md step 3: marks, equity, loss streaks, stale clocks and
        breaker trips for a bar the broker just processed (journaled; idempotent per bar)."""
        closed = self._pending_closed + self._book.apply_all(report.events)
        prices = dict(zip(bar.symbols, bar.close.tolist(), strict=True))
        self._book.mark(prices)
        done = self._engine.last_bar
        if done is not None and bar.index <= done:
            # marked and journaled before a restart: the trades waiting belong to later bars
            self._pending_closed = closed
            events: list[BaseModel] = []
        else:
            events = self._engine.on_bar(
                bar.index, bar.time, report.equity, prices=prices, closed_trades=closed
            )
            self._unjournaled += events  # journaled by the gate, or before any other step
            self._pending_closed = []
        self._last_bar = (bar.index, bar.time)
        self._marked = bar.index
        return events

    def _refresh_gauges(self) -> None:
        """Equity, day-start equity, drawdown from the peak and gross exposure, for the
        account (``global``) and each strategy's sub-account, from the book and the marks."""
        self._gauges_at = time.monotonic()
        rec, marks, view = self._telemetry.recorder, self._engine.marks, self._book.view()
        gross = {
            sid: math.fsum(abs(q) * (view.price(sym) or 0.0) for sym, q in pos.items())
            for sid, pos in view.positions.items()
        }  # fmt: skip
        scoped = [(Scope.parse("global"), view.total_equity, math.fsum(gross.values()))]
        scoped += [(Scope.parse(f"strategy:{sid}"), view.equity.get(sid, 0.0), gross.get(sid, 0.0))
                   for sid in view.strategies()]  # fmt: skip
        for scope, equity, exposure in scoped:
            label = str(scope)
            rec.set(mn.EQUITY, equity, scope=label)
            rec.set(mn.GROSS_EXPOSURE, exposure, scope=label)
            peak = marks.peak.get(scope)
            if peak is not None and peak > 0:
                rec.set(mn.DRAWDOWN, max(0.0, 1.0 - equity / peak), scope=label)
            start = marks.day_start.get(scope)
            if start is not None:
                rec.set(mn.DAY_START_EQUITY, start[1], scope=label)

    def _broker(self, method: str, *args: Any, packed: bool = False, retry: bool = True) -> Any:
        """A broker call on the wire (``actors.wire``), on the calling thread, resent while
        the broker restarts (every broker call is idempotent; ``retry`` False: not waited
        for); its answer unpacked, or as the broker packed it. Under the lock, the marks
        journaled first."""
        self._journal_marks()
        if self._broker_wire is None:
            self._broker_wire = WirePeer(BROKER, self._actor(BROKER), restart_wait_s=self._wait_s,
                                         timeout_s=self._timeout_s)  # fmt: skip
        answer = self._broker_wire.call(method, *args, retry=retry)
        return answer if packed else unpack(answer)

    def warm(self, bar: bytes) -> None:
        """Before a paced bar: the book's view, and the broker's ``warm`` on the last bar;
        changes nothing. Best effort: a broker that is down is not waited for (the lock is
        held, and the bar's own call will wait)."""
        with self._mutex:
            try:
                unpack(bar)
                self._book.view()
                self._broker("warm", bar, retry=False)
            except Exception as exc:  # a warm-up never fails anything
                log.debug("risk: warm-up skipped: %s: %s", type(exc).__name__, exc)

    @ray.method(max_task_retries=0)
    def open_bar(self, bar: BarSlice | bytes) -> bytes:
        """Open bar t: ``broker.on_bar`` (docs/live.md step 2), then its marks. Used for a
        replay's first bar and after a pause, a paced gap or a kill; otherwise ``close_bar``
        of the previous bar opens it. Returns the broker's answer as it packed it,
        ``{"report", "fill_counts", "quiet"}``: risk reads it after answering, to mark the bar.
        """
        with self._locked():
            answer = self._broker("on_bar", bar, packed=True)
            self._defer_marks(bar, answer)
        return answer

    @ray.method(max_task_retries=0)
    def close_bar(
        self,
        bar: BarSlice | bytes,
        intents: list[OrderIntent] | list[bytes] | bytes = (),  # type: ignore[assignment]
        next_bar: BarSlice | bytes | None = None,
    ) -> bytes:
        """Close bar t and open bar t+1 in one broker call (docs/live.md steps 4-5 and 2);
        ``intents`` as ``_intents`` takes them.

        The gate for every host's intents of bar t (decide, journal, then forward); then
        ``broker.step`` submits the approved orders and, given ``next_bar``, processes its open;
        then the next bar's marks. A kill waiting for the lock keeps the next bar out of this
        step, so it is in force before that bar's open. Idempotent: a decided id gets its
        journaled verdict and is forwarded again (the broker creates nothing twice). Returns,
        packed, ``{"verdicts", "fills" (of bar t's orders), "report" and "fill_counts" (bar
        t+1, or None), "state", "after"}``: ``after`` is the broker's state once this step is
        done, ``{"fill_counts", "quiet"}`` (``Broker.on_bar``), or None when risk does not know
        it (after a restart, a kill or an order outside the bar cycle); the feed lets the quiet
        sub-accounts' hosts evaluate the next bar while it opens.
        """
        bar, intents = unpack(bar), _intents(intents)
        with self._locked(gate=True):
            self._ensure_marked(bar)
            self._cancel_restricted()
            verdicts, orders = self._decide(intents, bar.time) if intents else ([], [])
            if self._kills_waiting:
                next_bar = None
            out: dict[str, Any] = {"events": [], "fills": [], "report": None, "fill_counts": None}
            if orders or next_bar is not None:
                out = self._broker("step", pack(orders), next_bar)
                self._after = _after(out)
            self._pending_closed += self._book.apply_all([*out["events"], *out["fills"]])
            if out["report"] is not None:
                self._defer_marks(next_bar, out)
        return pack({
            "verdicts": verdicts, "fills": out["fills"], "report": out["report"],
            "fill_counts": out["fill_counts"], "state": self._global_state(),
            "after": self._after,
        })  # fmt: skip

    def _cancel_restricted(self) -> None:
        """Cancel the open orders that add exposure in a scope not ACTIVE (under the lock,
        before a bar's orders go). A kill cancels them itself; a breaker trips in the marks,
        and what a volume cap or a fill probability left of an order would otherwise go on
        filling after the halt. Idempotent, so it also covers a trip journaled by a process
        that died before this: every gate looks again."""
        if not self._book.has_open_orders():
            return
        restricted = self._engine.states.restricted()
        if not restricted:
            return
        view, engine = self._book.view(), self._engine
        ids = sorted({i for scope in restricted
                      for i in engine.orders_to_cancel(scope, view, flatten=False)})  # fmt: skip
        if ids:
            self._after = None  # the broker's quiet accounts changed
            self._book.apply_all(self._broker("cancel", ids, None, False, "restricted"))

    # ------------------------------------------------------------------ the gate
    @ray.method(max_task_retries=0)
    def submit(self, intents: list[OrderIntent] | bytes) -> bytes:
        """Decide, journal and forward intents outside the bar cycle (the per-bar path is
        ``close_bar``); idempotent by ``client_order_id`` like it. Returns, packed,
        ``{"verdicts": [...], "fills": [...]}``.
        """
        intents = list(unpack(intents))
        if not intents:
            return pack({"verdicts": [], "fills": []})
        with self._locked():
            now = max(i.bar_ts for i in intents)
            verdicts, fills = self._decide_and_forward(intents, now)
        return pack({"verdicts": verdicts, "fills": fills})

    def _decide_and_forward(
        self, intents: list[OrderIntent], now: datetime
    ) -> tuple[list[RiskVerdict], list[Any]]:
        """``_decide``, then ``broker.submit`` of the approved orders (under the lock)."""
        verdicts, orders = self._decide(intents, now)
        if not orders:
            return verdicts, []
        self._after = None  # the feed's next early evaluation must not count on the last one
        out = self._broker("submit", pack(orders))
        self._pending_closed += self._book.apply_all([*out["events"], *out["fills"]])
        return verdicts, out["fills"]

    def _decide(
        self, intents: list[OrderIntent], now: datetime
    ) -> tuple[list[RiskVerdict], list[OrderIntent]]:
        """Check intents and journal the new verdicts; returns them and the orders to forward
        (approved quantities). Under the lock.

        An intent of a strategy whose host is no longer RUNNING (paused, stopped or failed
        after answering it) is rejected with ``strategy_not_running``; flatten orders pass.
        """
        try:
            with self._journal.transaction():  # states read and verdicts journaled as one
                return self._decide_in_transaction(intents, now)
        except BaseException:
            self._rebuild()  # the engine may hold verdicts the rollback took back
            raise

    def _decide_in_transaction(
        self, intents: list[OrderIntent], now: datetime
    ) -> tuple[list[RiskVerdict], list[OrderIntent]]:
        known = {i.client_order_id for i in intents if self._engine.verdict_for(i.client_order_id)}
        idle = self._not_running({i.strategy_id for i in intents})
        refused = {
            i.client_order_id: self._refuse(i, idle[i.strategy_id], now) for i in intents
            if i.strategy_id in idle and i.client_order_id not in known
            and i.reason is not FillReason.FLATTEN
        }  # fmt: skip
        checked = iter(self._engine.check(
            [i for i in intents if i.client_order_id not in refused], self._book.view(), now
        ))  # fmt: skip
        verdicts = [refused.get(i.client_order_id) or next(checked) for i in intents]
        new = [v for v in verdicts if v.client_order_id not in known]
        marks, self._unjournaled = self._unjournaled, []  # the bar's marks first, one commit
        rows = [*marks, *new]
        appended = self._telemetry.append(rows)[len(marks):] if rows else []
        taken = {v.client_order_id for v, a in zip(new, appended, strict=True) if a.duplicate}
        if taken:  # the feed journaled these as dropped first: the engine must forget them
            log.warning("intents dropped before a decision: %s", sorted(taken))
            self._rebuild()
        orders = [  # intents are frozen: an unchanged one goes as it is (a copy costs ~10 us)
            i if v.approved_qty == i.qty else i.model_copy(update={"qty": v.approved_qty})
            for i, v in zip(intents, verdicts, strict=True)
            if v.decision is not Decision.REJECTED and v.client_order_id not in taken
        ]
        return [v for v in verdicts if v.client_order_id not in taken], orders

    def _not_running(self, strategy_ids: set[str]) -> dict[str, StrategyState]:
        """The journaled lifecycle state of those strategies that are not RUNNING (read
        incrementally: one query, no payload parsed, per call when nothing changed)."""
        if self._journal.max_seq(EventKind.STRATEGY_STATE_CHANGED) > self._states_seq:
            for entry in self._journal.read([EventKind.STRATEGY_STATE_CHANGED],
                                            since_seq=self._states_seq):  # fmt: skip
                event: StrategyStateChanged = entry.event  # type: ignore[assignment]
                self._strategy_states[event.strategy_id] = event.new
                self._states_seq = entry.seq
        return {
            sid: state for sid in strategy_ids
            if (state := self._strategy_states.get(sid, StrategyState.RUNNING))
            is not StrategyState.RUNNING
        }  # fmt: skip

    def _refuse(self, intent: OrderIntent, state: StrategyState, now: datetime) -> RiskVerdict:
        verdict = RiskVerdict(
            client_order_id=intent.client_order_id, strategy_id=intent.strategy_id,
            symbol=intent.symbol, decision=Decision.REJECTED, requested_qty=intent.qty,
            approved_qty=0.0, reasons=(RiskReason.STRATEGY_NOT_RUNNING,),
            detail=f"strategy {intent.strategy_id} is {state.value}", bar_index=intent.bar_index,
            decided_at=now,
        )  # fmt: skip
        self._engine.apply(verdict)
        return verdict

    # ------------------------------------------------------------------ operator commands
    @ray.method(max_task_retries=0)
    def open_account(self, strategy: dict[str, Any]) -> dict[str, Any]:
        """Open a launched strategy's account: the broker's sub-account first, then risk's
        view of it (``feed.launch_strategy`` calls it after journaling the launch; risk
        stays the broker's only caller). Idempotent."""
        config = StrategyConfig.model_validate(strategy)
        with self._locked():
            self._after = None
            self._broker("open_account", config.model_dump(mode="json"))
            self._book.open_account(config.id, config.symbols, config.sim.cash)
        return {"strategy": config.id, "cash": config.sim.cash}

    @ray.method(max_task_retries=0)
    def kill(
        self, scope: str, mode: str = "halt", flatten: bool = False, by: str = "operator"
    ) -> dict[str, Any]:
        """Halt (or reduce) a scope, cancel its orders at the broker and, with ``flatten``,
        close its positions; journaled and done before the answer (docs/live.md)."""
        target = Scope.parse(scope)
        with self._kills:
            self._kills_waiting += 1  # the bar step holding the lock now leaves the next bar out
        try:
            return self._kill(target, KillMode(mode), flatten, by)
        finally:
            with self._kills:
                self._kills_waiting -= 1

    def _kill(self, target: Scope, mode: KillMode, flatten: bool, by: str) -> dict[str, Any]:
        with self._locked():
            events = self._engine.kill(target, mode, flatten=flatten, by=by)
            appended = self._append(events)
            done = self._carry_out(target, flatten, nonce=appended[-1].seq)
        return {
            "scope": str(target), "mode": mode.value, "flatten": flatten, "by": by,
            "state": self._engine.states.state(target).value, **done,
        }  # fmt: skip

    def _carry_out(self, target: Scope, flatten: bool, *, nonce: int) -> dict[str, list[str]]:
        """A journaled kill's work at the broker (under the lock): cancel the scope's open
        orders (all with ``flatten``, else those adding exposure), then, with ``flatten``,
        decide and forward a closing order for each position at the last bar's prices, its
        id made of ``nonce`` (the kill's seq). Idempotent: the kill's own flatten orders are
        never canceled, and a flatten order decided before gets its journaled verdict and
        goes again under the same id (the broker creates nothing twice). Should a bar have
        opened since (other ids), the earlier flatten orders are canceled like any other
        order and what is left of each position is closed once."""
        closing, unpriced = [], []
        if flatten and self._last_bar is not None:
            t, ts = self._last_bar
            orders = self._engine.flatten_orders(
                target, self._book.view(), bar_index=t, bar_ts=ts, nonce=nonce
            )
            closing, unpriced = list(orders.close), [f"{s}:{y}" for s, y in orders.unpriced]
        own = {o.client_order_id for o in closing}
        ids = [i for i in self._engine.orders_to_cancel(target, self._book.view(), flatten=flatten)
               if i not in own]  # fmt: skip
        canceled: list[Any] = []
        if ids:
            self._after = None
            canceled = self._broker("cancel", ids, None, False, "kill_switch")
            self._book.apply_all(canceled)
        flat_ids = []
        if closing:
            verdicts, _ = self._decide_and_forward(closing, self._last_bar[1])  # type: ignore[index]
            flat_ids = [v.client_order_id for v in verdicts if v.approved_qty]
        return {"canceled_orders": [c.client_order_id for c in canceled],
                "flatten_orders": flat_ids, "unpriced": unpriced}  # fmt: skip

    @ray.method(max_task_retries=0)
    def resume(self, scope: str, by: str = "operator") -> dict[str, Any]:
        """Set one scope ACTIVE again (journaled)."""
        target = Scope.parse(scope)
        with self._locked():
            self._append(self._engine.resume(target, by=by))
        return {"scope": str(target), "state": self._engine.states.state(target).value, "by": by}

    @ray.method(max_task_retries=0)
    def set_limits(self, limits: dict[str, Any], by: str = "operator") -> dict[str, Any]:
        """Replace the limits in full (validated; journaled as ``limits_changed``)."""
        with self._locked():
            self._append([self._engine.set_limits(RiskLimits.model_validate(limits), by=by)])
        return self._engine.limits.to_dict()

    # ------------------------------------------------------------------ queries
    def _global_state(self) -> str:
        return self._engine.states.state(Scope.parse("global")).value

    def limits(self) -> dict[str, Any]:
        """The limits in force (with per-strategy overrides)."""
        with self._locked():
            return self._engine.limits.to_dict()

    def state(self) -> dict[str, Any]:
        """Trading states: the global one, every restricted scope, engaged kill switches."""
        with self._locked():
            return self._state()

    def _state(self) -> dict[str, Any]:
        states = self._engine.states
        kills = states.kill_switches()
        scopes = []
        for scope, status in sorted(states.restricted().items(), key=lambda i: str(i[0])):
            kill = kills.get(scope)
            scopes.append({
                "scope": str(scope), "state": status.state.value,
                "reason": status.reason.value if status.reason else None, "by": status.by,
                "until_bar": status.until_bar, "kill_mode": kill.mode.value if kill else None,
                "flatten": kill.flatten if kill else None,
            })  # fmt: skip
        return {
            "global_state": self._global_state(), "scopes": scopes,
            "last_bar": None if self._last_bar is None else self._last_bar[0],
            "marks": self._engine.marks.snapshot(),
        }  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        """Everything a rebuild must restore (a rebuilt engine's snapshot equals this)."""
        with self._locked():
            return self._engine.snapshot()

    def book(self) -> dict[str, Any]:
        """Risk's view of the accounts: positions, equity, prices, open orders."""
        with self._locked():
            view = self._book.view()
        return {
            "positions": view.positions, "equity": view.equity, "prices": view.prices,
            "open_orders": {s: [o.client_order_id for o in v] for s, v in view.open_orders.items()},
        }  # fmt: skip
