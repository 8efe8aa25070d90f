"""``strategy:<id>`` actors: a thin shell around ``strategies.runner.StrategyRunner``.

Per bar the feed calls ``on_bar(bar, fills, fill_count)``: the host applies its sub-account's
fills, evaluates the strategy on its whole history (docs/live.md step 4) inside a guard (an
exception makes this strategy FAILED, traceback journaled, and never touches the others), and
answers the bar's intents. The feed hands every host's intents of the bar to the risk actor in
one call (docs/live.md explains why one call and not one per host); a host never reaches the
broker, and has no way to.

``__init__`` is start-up and crash recovery at once: the lifecycle state from the journal,
the ledger from the journaled fills, the bar history from the feed (docs/live.md "Restarts").
``fill_count`` (the broker's count of this sub-account's fills) lets the host notice a fill
it never received (an answer lost with a dying actor) and take it from the journal.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections import Counter
from typing import Any

import ray

from actors.common import (
    FEED,
    ActorShell,
    Handles,
    exclusive,
    host_name,
    open_journal,
    pack,
    unpack,
    warm_up,
)
from actors.retry import call_sync
from core.events import (
    BarSlice,
    EventKind,
    OrderFilled,
    OrderIntent,
    StrategyState,
    StrategyStateChanged,
)
from core.lifecycle import check_transition, evaluates
from core.paper import BarOrderError
from core.run_config import RunConfig, StrategyConfig
from strategies.registry import get_strategy
from strategies.runner import StrategyRunner

__all__ = ["StrategyHost"]

log = logging.getLogger("raytrader.host")


class StrategyHost(ActorShell):
    """One strategy instance (see the module docstring).

    Args:
        strategy: this instance's config (id, strategy, params, symbols, sim, max_history).
        config: the run's config (runtime policy, journal settings).
        journal_path: the journal file.
    """

    WIRE_METHODS = frozenset({"on_bar", "warm"})
    COLLECT_AFTER = frozenset({"on_bar"})

    def __init__(
        self,
        strategy: StrategyConfig,
        config: RunConfig,
        journal_path: str,
        *,
        fingerprint: str = "",
    ) -> None:
        self._mutex = threading.RLock()  # the wire's thread and Ray's take turns
        self._fingerprint = fingerprint
        self._cfg = strategy
        self._actor = Handles()
        self._sid = strategy.id
        self._name = host_name(strategy.id)
        self._runtime = config.runtime
        self._journal = open_journal(journal_path, config.journal.synchronous)
        self._init_telemetry(self._name, self._journal)
        self._counts: Counter[str] = Counter()
        self._error: str | None = None
        self._traceback: str | None = None
        warm_up([strategy])
        self._rebuild()

    # ------------------------------------------------------------------ restart
    def _new_runner(self) -> StrategyRunner:
        cfg = self._cfg
        strategy = get_strategy(cfg.strategy)(**cfg.params)
        return StrategyRunner(strategy, self._sid, cfg.symbols, cfg.sim,
                              max_history=cfg.max_history)  # fmt: skip

    def _rebuild(self) -> None:
        """State from the journal, then ledger and history through the last finished bar."""
        self._runner = self._new_runner()
        last = self._journal.last(EventKind.STRATEGY_STATE_CHANGED, strategy=self._sid)
        if last is None:
            self._state = StrategyState.STARTING
            self._set_state(StrategyState.RUNNING, by="system")
        else:
            event: StrategyStateChanged = last.event  # type: ignore[assignment]
            self._state = event.new
            self._error, self._traceback = event.error, event.traceback
        done = self._journal.max_bar(EventKind.BAR_DONE)
        if done is not None:
            self._catch_up(done)

    def _catch_up(self, through: int) -> None:
        """Rebuild the runner through bar ``through`` from the feed's history and the fills."""
        runner = self._new_runner()
        fills = [f for f in self._journal.fills(strategy=self._sid) if f.bar_index <= through]
        if evaluates(self._state):
            history = call_sync(self._actor(FEED).history, list(self._cfg.symbols), through,
                                name=FEED, restart_wait_s=self._runtime.restart_wait_s,
                                probe=self._actor(FEED).pid)  # fmt: skip
            try:
                runner.rebuild(history, fills)
            except Exception as exc:  # the strategy's own code failed on its history
                runner.apply_fills(fills)
                self._runner = runner
                self._fail(exc)
                return
        else:
            runner.apply_fills(fills)
        self._runner = runner

    # ------------------------------------------------------------------ lifecycle
    def _set_state(self, new: StrategyState, *, by: str, exc: BaseException | None = None) -> None:
        check_transition(self._sid, self._state, new)
        error = None if exc is None else f"{type(exc).__name__}: {exc}"
        tb = None if exc is None else "".join(traceback.format_exception(exc))
        event = StrategyStateChanged(
            strategy_id=self._sid, old=self._state, new=new, by=by, error=error, traceback=tb
        )
        self._telemetry.append([event])
        self._state, self._error, self._traceback = new, error, tb

    def _fail(self, exc: BaseException) -> None:
        log.error("strategy %s failed: %s", self._sid, exc)
        self._set_state(StrategyState.FAILED, by="system", exc=exc)

    @exclusive
    def pause(self, by: str = "operator") -> dict[str, Any]:
        """Keep following the bars, send no intents (journaled)."""
        return self._command(StrategyState.PAUSED, by)

    @exclusive
    def resume(self, by: str = "operator") -> dict[str, Any]:
        """Send intents again after a pause (journaled)."""
        return self._command(StrategyState.RUNNING, by)

    @exclusive
    def stop(self, by: str = "operator") -> dict[str, Any]:
        """Stop for good: no more evaluation or intents; positions stay (journaled)."""
        return self._command(StrategyState.STOPPED, by)

    def _command(self, new: StrategyState, by: str) -> dict[str, Any]:
        old = self._state
        self._set_state(new, by=by)
        return {"id": self._sid, "old": old.value, "state": new.value, "by": by}

    # ------------------------------------------------------------------ the bar
    @ray.method(max_task_retries=0)  # a resend is ours, with the same ids
    @exclusive
    def on_bar(
        self,
        bar: BarSlice | bytes,
        fills: list[OrderFilled] | bytes = (),  # type: ignore[assignment]
        fill_count: int | None = None,
        reevaluate: bool = False,
    ) -> dict[str, Any]:
        """Docs/live.md step 4 for this strategy; idempotent for the last bar handled.

        Applies ``fills`` (this bar's, and the previous bar's close fills), evaluates the
        strategy and answers the bar's intents (packed) for the feed to deliver to risk in
        the bar's one ``risk.close_bar`` call. A PAUSED strategy answers none; ``bar`` and
        ``fills`` may come packed (``actors.common.pack``). ``reevaluate`` (the last bar
        again, after an early evaluation the bar's open turned out to touch) sizes the
        bar's orders again on the fills now applied (``StrategyRunner.reevaluate``).
        """
        bar, fills = unpack(bar), list(unpack(fills))
        runner = self._runner
        last = runner.last_bar_index
        if evaluates(self._state) and bar.index > (-1 if last is None else last) + 1:
            self._catch_up(bar.index - 1)  # bars missed (a late start): history from the feed
            runner = self._runner
        self._apply_in_order(runner, fills, fill_count, bar.index)
        if not evaluates(self._state):
            return self._answer([])
        again = reevaluate and runner.last_bar_index == bar.index
        replaced = len(runner.last_intents) if again else 0
        try:
            intents = runner.reevaluate(bar, fills) if again else runner.on_bar(bar, fills)
        except BarOrderError:
            raise
        except Exception as exc:  # strategy code, guarded: this strategy only
            self._fail(exc)
            return self._answer([])
        self._counts["intents"] += len(intents) - replaced
        if again:
            self._counts["reevaluated"] += 1
        if self._state is StrategyState.PAUSED:
            self._counts["discarded_paused"] += len(intents)
            return self._answer([])
        return self._answer(intents)

    @exclusive
    def warm(self, bar: BarSlice | bytes) -> None:
        """Run the bar path on ``bar`` (the last bar, may be packed) changing nothing
        (``StrategyRunner.warm``), the packing of an answer's intents included: a paced feed
        calls it just before the next bar is due (``runtime.warm_before_ms``). An error is
        only logged: the bar itself meets it."""
        try:
            bar = unpack(bar)
            if evaluates(self._state) and (sample := self._runner.warm(bar)) is not None:
                pack([sample])
        except Exception as exc:  # strategy code: the bar itself will fail it
            log.debug("%s: warm-up failed: %s", self._name, exc)

    def _answer(self, intents: list[OrderIntent]) -> dict[str, Any]:
        return {"state": self._state.value, "intents": pack(intents) if intents else ()}

    @exclusive
    def sync_fills(self) -> int:
        """Take every journaled fill of this strategy not applied yet (after the last bar:
        its close fills); returns the ledger's fill count."""
        self._reconcile(None)
        return self._runner.ledger.n_fills

    def _apply_in_order(
        self, runner: StrategyRunner, fills: list[OrderFilled], fill_count: int | None, t: int
    ) -> None:
        """Apply the bar's fills, taking any fill this host never received (a kill's flatten,
        an answer lost with a dying actor) from the journal first when it belongs before them
        (bars before t) and after them otherwise: the broker's order, so the same floats."""
        if fill_count is not None:
            new = sum(not runner.ledger.applied(f.fill_id) for f in fills)
            if runner.ledger.n_fills + new < fill_count:
                self._reconcile(t - 1)
        runner.apply_fills(fills)
        if fill_count is not None and runner.ledger.n_fills < fill_count:
            self._reconcile(t)

    def _reconcile(self, bar_index: int | None) -> None:
        """Apply journaled fills (through ``bar_index``) this host never received."""
        last = bar_index if bar_index is not None else float("inf")
        missing = [f for f in self._journal.fills(strategy=self._sid) if f.bar_index <= last
                   and not self._runner.ledger.applied(f.fill_id)]  # fmt: skip
        if missing:
            log.warning("%s: %d fills taken from the journal", self._name, len(missing))
            self._runner.apply_fills(missing)
            self._counts["fills_reconciled"] += len(missing)

    # ------------------------------------------------------------------ queries
    @exclusive
    def status(self) -> dict[str, Any]:
        """State (with the error and traceback of a failure), counts and the ledger."""
        cfg = self._cfg
        return {
            "id": self._sid, "strategy": cfg.strategy, "params": self._runner.strategy.params,
            "symbols": list(cfg.symbols), "state": self._state.value, "error": self._error,
            "traceback": self._traceback, "last_bar": self._runner.last_bar_index,
            "counts": dict(self._counts), "sim": cfg.sim.model_dump(mode="json"),
            "max_history": cfg.max_history,
            "ledger": self._runner.ledger.snapshot(),
        }  # fmt: skip

    @exclusive
    def snapshot(self) -> dict[str, Any]:
        """The runner's snapshot: carried targets, history length, ledger."""
        return self._runner.snapshot()

    @exclusive
    def trades(self) -> list[dict[str, Any]]:
        """Trades as this host's ledger sees them (backtest JSON form)."""
        return self._runner.ledger.trades()

    @exclusive
    def fill_count(self) -> int:
        """Fills this host's ledger has applied."""
        return self._runner.ledger.n_fills
