"""The ``feed`` actor: replays bars through the per-bar protocol, with back-pressure.

A thin shell around ``core.replay.ReplaySource``. For bar t (already open: the broker
processed its open and risk its marks) it calls every host's ``on_bar`` together, then
``risk.close_bar`` once with all the hosts' intents and bar t+1 (validated, its quarantines
journaled), which risk's one ``broker.step`` closes bar t with and opens bar t+1 with; then
it journals ``bar_done(t)``; only then do the hosts see bar t+1. The feed never calls the
broker. A call to an actor that died is sent again once it is back (every step is
idempotent), for at most ``restart_wait_s``; past that the replay stops as FAILED rather than
trade around a missing actor. While risk is down the bar's intents are held or dropped
(``runtime.on_risk_down``), never sent anywhere else.

``__init__`` resumes from the journal: the next bar is the one after the last ``bar_done``.
The replay loop runs in a thread started by ``run()``, which waits for it (the driver re-sends
``run`` if the feed restarts), so a restarted feed does not trade on by itself. The feed is a
threaded actor: ``status``, ``pause`` and ``history`` are answered from other threads while a
bar is in flight, and its calls wait in ``ray.wait`` rather than on asyncio futures, which
costs it about a quarter less CPU per call here.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from actors.common import (
    JOURNAL,
    RISK,
    ActorShell,
    Handles,
    all_strategies,
    host_name,
    open_journal,
    pack,
    unpack,
)
from actors.heap import collect_due, settle
from actors.journal import CHECKPOINT_EVERY_S, CHECKPOINT_GAP_S
from actors.retry import ActorDownError, call_all_sync, call_sync
from actors.wire import Wires, call_all
from core import metric_names as mn
from core.errors import ConfigError
from core.events import (
    BarDone,
    Decision,
    DropReason,
    EventKind,
    IntentDropped,
    OrderFilled,
    OrderIntent,
    RiskVerdict,
    StrategyLaunched,
)
from core.panel import WidePanel
from core.paper import ResumeMarks
from core.replay import load_source
from core.run_config import RunConfig, StrategyConfig

__all__ = ["WARM_MARGIN_S", "WARM_WINDOW", "DataFeed", "FeedState", "warm_lead"]

SOURCE = "feed"
log = logging.getLogger("raytrader.feed")
_TIMINGS_KEPT = 200_000
#: Warm-ups whose durations set the next one's lead (``warm_lead``).
WARM_WINDOW = 50
#: Room left between a warm-up's expected end and the bar (seconds).
WARM_MARGIN_S = 0.001


def warm_lead(base_s: float, spacing_s: float, recent_s: Sequence[float]) -> float | None:
    """How long before a paced bar its warm-up starts, or None for no warm-up.

    ``base_s`` (``runtime.warm_before_ms``) is the least lead, and warming needs bars at
    least twice that far apart. A warm-up that ends after the bar is due delays the bar it
    was meant to speed up, so the lead grows to the 90th percentile of the ``recent_s``
    warm-ups' durations plus ``WARM_MARGIN_S`` (a slow machine's warm-ups take longer than
    the base lead), though never past half the spacing: warmer than that is no warmer.
    """
    if base_s <= 0 or spacing_s < 2 * base_s:
        return None
    if not recent_s:
        return base_s
    p90 = _ranked(sorted(recent_s), 0.9)
    return min(max(base_s, p90 + WARM_MARGIN_S), spacing_s / 2)


def _ranked(ranked: Sequence[float], q: float) -> float:
    """The element at fraction ``q`` of a sorted sequence (nearest rank, rounded down)."""
    return ranked[int((len(ranked) - 1) * q)]


class FeedState(StrEnum):
    """Where the replay is."""

    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    DONE = "done"
    FAILED = "failed"


class DataFeed(ActorShell):
    """The bar source and the driver of the per-bar protocol (see the module docstring).

    Args:
        config: the run's config (data, speed, strategies, runtime policy).
        journal_path: the journal file.
    """

    def __init__(self, config: RunConfig, journal_path: str, *, fingerprint: str = "") -> None:
        self._fingerprint = fingerprint
        self._config = config
        self._runtime = config.runtime
        self._actor = Handles()
        self._wire = Wires(self._actor, restart_wait_s=config.runtime.restart_wait_s,
                           timeout_s=config.runtime.call_timeout_s)  # fmt: skip
        self._journal_path = journal_path
        self._journal = open_journal(journal_path, config.journal.synchronous)
        self._telemetry = self._init_telemetry(SOURCE, self._journal)
        self._source = load_source(config.feed.data)
        done = self._journal.max_bar(EventKind.BAR_DONE)
        self._next = 0 if done is None else done + 1
        if done is not None:
            self._source.validate_through(done)
        self._resumed_at = self._next
        self._state = FeedState.DONE if self._next >= self._source.n_bars else FeedState.IDLE
        self._hosts = [s.id for s in all_strategies(config, self._journal)]
        self._launch_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._control = threading.Lock()  # replay state changes
        self._source_lock = threading.Lock()  # emission vs history for restarting actors
        self._unpaused = threading.Event()
        self._unpaused.set()
        self._stopping = False
        self._error: str | None = None
        self._started: float | None = None
        self._emit_ns: dict[int, int] = {}
        self._done_ns: dict[int, int] = {}
        self._carry: dict[str, list[OrderFilled]] = {}  # close fills for the next bar's hosts
        self._opened: tuple[int, Any, bytes, Any, dict[str, int]] | None = None  # bar t, open
        self._after: tuple[int, dict[str, Any]] | None = None  # risk's "after" for bar t's open
        self._dropped = 0
        self._due_ns: int | None = None  # a bar a warm-up delayed: when it was due (wall ns)
        self._last_wire: bytes | None = None  # the last bar emitted, packed: what hosts warm on
        self._warm_ups = {"done": 0, "late": 0, "skipped": 0}  # late: ended after the due time
        self._warm_s: deque[float] = deque(maxlen=WARM_WINDOW)  # recent warm-ups' durations
        self._lead_s: float | None = None  # the last warm-up's lead
        self._hosts_ns: dict[int, int] = {}
        self._early = {"evaluated": 0, "reevaluated": 0}  # runtime.early_hosts, counted
        self._checkpoint_asked = -math.inf  # when the journal actor was last asked (monotonic)

    # ------------------------------------------------------------------ control
    def run(self) -> dict[str, Any]:
        """Replay until the end, a stop or a failure; returns the final status.

        Starts the replay thread when it is not running, else waits for it. A restarted feed
        resumes after the last ``bar_done``; a caller that saw the feed die calls ``run`` again.
        """
        thread = self._ensure_loop()
        if thread is not None:
            thread.join()
        return self.status()

    def start(self) -> dict[str, Any]:
        """Start the replay in the background and return at once."""
        self._ensure_loop()
        return self.status()

    def _ensure_loop(self) -> threading.Thread | None:
        with self._control:
            if self._thread is None and self._state in (FeedState.IDLE, FeedState.PAUSED):
                self._thread = threading.Thread(target=self._loop, name="replay", daemon=True)
                self._thread.start()
            return self._thread

    def pause(self) -> dict[str, Any]:
        """Hold the replay after the bar in flight."""
        with self._control:
            if self._state in (FeedState.RUNNING, FeedState.IDLE):
                self._unpaused.clear()
                self._state = FeedState.PAUSED
        return self.status()

    def resume(self) -> dict[str, Any]:
        """Continue a paused replay."""
        with self._control:
            if self._state is FeedState.PAUSED:
                self._state = FeedState.RUNNING if self._thread is not None else FeedState.IDLE
                self._unpaused.set()
        return self.status()

    def stop(self) -> dict[str, Any]:
        """End the replay after the bar in flight (a later ``run`` does not restart it)."""
        with self._control:
            self._stopping = True
            self._unpaused.set()
            thread = self._thread
            if thread is None and self._state not in (FeedState.DONE, FeedState.FAILED):
                self._state = FeedState.STOPPED
        if thread is not None:
            thread.join()
        return self.status()

    # ------------------------------------------------------------------ the replay
    def _loop(self) -> None:
        n = self._source.n_bars
        speed = self._config.feed.speed
        settle()  # started: what it holds now is never scanned again
        self._started = time.monotonic()
        last_emit = None
        try:
            while self._next < n and not self._stopping:
                if not self._unpaused.is_set():
                    self._state = FeedState.PAUSED
                    self._unpaused.wait()
                    last_emit = None
                    continue
                self._state = FeedState.RUNNING
                t = self._next
                delay = self._source.delay(t, speed)
                if delay and last_emit is not None:
                    self._wait_until(last_emit + delay, delay)
                last_emit = time.monotonic()
                self._bar(t, chain=speed == "max")
                self._next = t + 1
                if t + 1 < n:
                    self._checkpoint_between_bars(last_emit + self._source.delay(t + 1, speed))
                collect_due()  # between bars, not inside the next (actors.heap)
            self._sync_hosts()
            self._state = FeedState.DONE if self._next >= n else FeedState.STOPPED
        except Exception as exc:
            self._error = f"bar {self._next}: {type(exc).__name__}: {exc}"
            self._state = FeedState.FAILED
            log.error("replay failed at %s", self._error)

    def _checkpoint_between_bars(self, due: float) -> None:
        """Ask the journal actor for its WAL checkpoint now, when the next bar is due at
        least ``CHECKPOINT_GAP_S`` from now (``due``, monotonic) and the last ask is half
        a checkpoint period old: its fsyncs then land between bars, not in one (the
        journal actor checkpoints by itself when nobody asks: ``actors.journal``). One
        Ray call, not waited for, at most two a second; a failed ask is only logged."""
        now = time.monotonic()
        if due - now < CHECKPOINT_GAP_S or now - self._checkpoint_asked < CHECKPOINT_EVERY_S / 2:
            return
        self._checkpoint_asked = now
        try:
            self._actor(JOURNAL).checkpoint_between_bars.remote()
        except Exception as exc:  # no journal actor (a partial topology): periodic only
            log.debug("no checkpoint between bars: %s: %s", type(exc).__name__, exc)

    def _wait_until(self, due: float, spacing: float) -> None:
        """Sleep until a paced bar is due (``time.monotonic``). Before that, every host, risk
        and the broker run their bar path on the last bar (``_warm``): a paced bar otherwise
        finds every process cold (docs/live.md, "Cold bars"). The warm-up starts
        ``warm_lead`` before the bar: ``runtime.warm_before_ms``, or longer when recent
        warm-ups took longer. One that still ends after ``due`` delays the bar, so that
        bar's latency counts from ``due``, not from its emission."""
        lead = warm_lead(self._runtime.warm_before_ms / 1e3, spacing, self._warm_s)
        if lead is not None and self._last_wire is not None:
            start = due - lead - time.monotonic()
            if start <= 0:  # the last bar took the time: warming now would delay this one
                self._warm_ups["skipped"] += 1
            else:
                time.sleep(start)
                began = time.monotonic()
                warmed = self._warm(self._last_wire)
                ended = time.monotonic()
                if warmed:  # a failed one's time (an actor down) says nothing of the next
                    self._warm_s.append(ended - began)
                self._lead_s = lead
                self._warm_ups["done"] += 1
                if ended > due:
                    self._warm_ups["late"] += 1
                    self._due_ns = time.time_ns() - round((time.monotonic() - due) * 1e9)
        time.sleep(max(0.0, due - time.monotonic()))

    def _warm(self, wire: bytes) -> bool:
        """``warm`` on risk (which passes it to the broker) and every host with the last bar,
        which changes nothing; False when it failed. Best effort: an actor that is down is
        not waited for (the bar's own calls wait for it)."""
        calls = [(self._wire(RISK), "warm", (wire,))]  # risk warms the broker on its way
        calls += [(self._wire(host_name(sid)), "warm", (wire,)) for sid in self._hosts]
        try:
            call_all(calls, retry=False)
        except Exception as exc:  # a warm-up never fails the replay
            log.debug("warm-up skipped: %s: %s", type(exc).__name__, exc)
            return False
        return True

    def _emit(self, t: int) -> tuple[Any, bytes]:
        """Bar t validated (docs/live.md step 1), its quarantines journaled; (bar, wire)."""
        with self._source_lock:
            emitted = self._source.emit(t)
        if emitted.quarantined:
            self._telemetry.append(emitted.quarantined, dedup_keys=emitted.keys)
        if len(self._emit_ns) < _TIMINGS_KEPT:
            now, due = time.time_ns(), self._due_ns
            self._emit_ns[t] = now if due is None else min(now, due)
        self._due_ns = None
        return emitted.bar, pack(emitted.bar)  # serialized once for every receiver

    def _bar(self, t: int, *, chain: bool) -> None:
        """Docs/live.md steps 1-6 for bar t. Bar t is open already when the previous bar's
        ``risk.close_bar`` carried it; ``chain`` lets this bar's close carry bar t+1."""
        answers: dict[str, Any] = {}
        redo: set[str] = set()
        handed = time.perf_counter()
        if self._opened is None or self._opened[0] != t:
            answers, redo = self._open(t)
        _, bar, wire, report, counts = self._opened  # type: ignore[misc]
        calls, called = [], []
        for sid in self._hosts:
            if sid in answers:
                continue
            again = sid in redo  # its carried fills went with the early call
            fills = ([] if again else self._carry.pop(sid, [])) + report.fills_for(sid)
            calls.append(self._host_call(sid, wire, fills, counts.get(sid), again))
            called.append(sid)
        answers.update(zip(called, call_all(calls), strict=True))
        if len(self._hosts_ns) < _TIMINGS_KEPT:
            self._hosts_ns[t] = time.time_ns()
        intents = [  # the hosts' order, however they were called; passed on still packed
            answers[sid]["intents"] for sid in self._hosts
            if sid in answers and answers[sid]["intents"]
        ]  # fmt: skip
        more = chain and t + 1 < self._source.n_bars and self._unpaused.is_set()
        nxt = self._emit(t + 1) if more and not self._stopping else None
        out = self._close(t, wire, intents, None if nxt is None else nxt[1])
        self._latency(out["verdicts"], time.perf_counter() - handed)
        for fill in out["fills"]:  # close fills: the hosts apply them with the next bar
            self._carry.setdefault(fill.strategy_id, []).append(fill)
        after = out.get("after")
        self._after = None if after is None else (t + 1, after)
        self._telemetry.append([BarDone(bar_index=t, bar_ts=bar.time)])
        self._telemetry.recorder.set(mn.LAST_BAR_TIMESTAMP, time.time())
        if len(self._done_ns) < _TIMINGS_KEPT:
            self._done_ns[t] = time.time_ns()
        self._opened = None
        self._last_wire = wire
        if nxt is not None and out["report"] is not None:
            self._opened = (t + 1, nxt[0], nxt[1], out["report"], out["fill_counts"])

    def _open(self, t: int) -> tuple[dict[str, Any], set[str]]:
        """Open bar t with ``risk.open_bar``; the hosts the open cannot touch (risk's
        ``after`` of the last close: ``runtime.early_hosts``) evaluate it meanwhile.
        Returns their answers, less those the open's report shows touched (fills, a stop,
        another fill count), and the touched ones, which ``_bar`` has evaluate again."""
        bar, wire = self._emit(t)
        early: dict[str, int] = {}
        if self._runtime.early_hosts and self._after is not None and self._after[0] == t:
            quiet, counts = set(self._after[1]["quiet"]), self._after[1]["fill_counts"]
            early = {sid: counts[sid] for sid in self._hosts if sid in quiet and sid in counts}
        calls: list[tuple[Any, str, tuple[Any, ...]]] = [(self._wire(RISK), "open_bar", (wire,))]
        for sid, count in early.items():
            calls.append(self._host_call(sid, wire, self._carry.pop(sid, []), count))
        opened, *first = call_all(calls)
        out = unpack(opened)
        report, counts = out["report"], out["fill_counts"]
        self._opened = (t, bar, wire, report, counts)
        redo = {
            sid for sid, count in early.items()
            if report.fills_for(sid) or sid in report.stopped or counts.get(sid) != count
        }  # fmt: skip
        self._early["evaluated"] += len(early)
        self._early["reevaluated"] += len(redo)
        if redo:
            log.info("bar %d: the open touched early-evaluated %s", t, sorted(redo))
        return {sid: a for sid, a in zip(early, first, strict=True) if sid not in redo}, redo

    def _host_call(
        self, sid: str, wire: bytes, fills: list[OrderFilled], count: int | None,
        reevaluate: bool = False,
    ) -> tuple[Any, str, tuple[Any, ...]]:
        """One ``host.on_bar`` call for ``call_all``: the bar, its fills (packed), the count."""
        args = (wire, pack(fills) if fills else (), count, reevaluate)
        return self._wire(host_name(sid)), "on_bar", args

    def _close(
        self, t: int, wire: bytes, packed: list[bytes], next_wire: bytes | None
    ) -> dict[str, Any]:
        """Risk's one call of the bar: the gate for every host's intents (each host's answer
        as it packed it: the feed does not unpickle what it only passes on), then the next
        bar's open (docs/live.md steps 4-5, 2). While risk is down, the bar's intents are
        held and sent again, the same ids, once it is back (``buffer``, at most
        ``risk_buffer_limit``), or dropped with an ``intent_dropped`` event (``drop``); the
        rest always waits for risk."""
        risk = self._wire(RISK)
        if packed:
            try:
                return unpack(risk.call("close_bar", wire, packed, next_wire, retry=False))
            except ActorDownError as exc:
                intents: list[OrderIntent] = [i for blob in packed for i in unpack(blob)]
                limit = self._runtime.risk_buffer_limit
                if self._runtime.on_risk_down == "drop":
                    self._drop(intents, DropReason.RISK_DOWN, str(exc))
                    intents = []
                elif len(intents) > limit:
                    self._drop(intents[limit:], DropReason.BUFFER_FULL, str(exc))
                    intents = intents[:limit]
                log.warning("bar %d: risk down, holding %d intents", t, len(intents))
                packed = [pack(intents)] if intents else []
        return unpack(risk.call("close_bar", wire, packed, next_wire))

    def _drop(self, intents: list[OrderIntent], why: DropReason, detail: str) -> None:
        """Journal ``intent_dropped`` for intents risk never decided.

        A drop takes the intent's ``decision:<id>`` journal key, so a drop and a risk decision
        exclude each other: an id risk decided before it died is not dropped, and risk never
        decides an id already dropped.
        """
        events = [IntentDropped(intent=i, why=why, detail=detail) for i in intents]
        keys = [f"decision:{i.client_order_id}" for i in intents]
        appended = self._telemetry.append(events, dedup_keys=keys)
        dropped = sum(not a.duplicate for a in appended)
        self._dropped += dropped
        log.warning("%d intents dropped (%s)", dropped, why.value)

    def _latency(self, verdicts: list[RiskVerdict], seconds: float) -> None:
        """``bar_to_order_seconds`` for each strategy with an order at the broker this bar:
        from the hosts getting the bar to risk's answer (orders accepted, fills of ``close``)."""
        for sid in sorted({v.strategy_id for v in verdicts if v.decision is not Decision.REJECTED}):
            self._telemetry.recorder.observe(mn.BAR_TO_ORDER_SECONDS, seconds, strategy=sid)

    # ------------------------------------------------------------------ launching
    def launch_strategy(self, config: dict[str, Any], by: str = "operator") -> dict[str, Any]:
        """Add a strategy to the running system; it trades from the next bar.

        Journals ``strategy_launched`` first (so every actor that restarts knows it), has
        risk open its accounts (risk opens the broker's), creates its host (which catches
        up on the bars so far from this feed), and only then adds it to the bar fan-out.
        Idempotent: a resend of the same config finishes what a failed call left; another
        config under a running id is refused.

        Raises:
            ConfigError: the config is invalid, names symbols the feed does not have, or
                its id belongs to a strategy with another config.
        """
        import ray

        from actors.host import StrategyHost
        from actors.runtime import actor_options

        strategy = StrategyConfig.model_validate(config)
        plain = strategy.model_dump(mode="json")
        unknown = sorted(set(strategy.symbols) - set(self._source.symbols))
        if unknown:
            raise ConfigError(f"strategy {strategy.id!r}: symbols not in the feed's data: "
                              f"{', '.join(unknown)}")  # fmt: skip
        with self._launch_lock:
            known = {s.id: s for s in all_strategies(self._config, self._journal)}
            if strategy.id in known and known[strategy.id] != strategy:
                raise ConfigError(f"strategy {strategy.id!r} exists already with another config")
            self._telemetry.append([StrategyLaunched(strategy_id=strategy.id, config=plain,
                                                     by=by)])  # fmt: skip
            wait = self._runtime.restart_wait_s
            call_sync(self._actor(RISK).open_account, plain, name=RISK, restart_wait_s=wait,
                      timeout_s=self._runtime.call_timeout_s,
                      probe=self._actor(RISK).pid)  # fmt: skip
            name = host_name(strategy.id)
            options = {**actor_options(name), "lifetime": "detached"}  # outlives this feed
            host = (
                ray.remote(StrategyHost)
                .options(**options)
                .remote(strategy, self._config, self._journal_path, fingerprint=self._fingerprint)
            )
            ray.get(host.ready.remote(), timeout=max(wait, 60.0))
            if strategy.id not in self._hosts:
                self._hosts = [*self._hosts, strategy.id]  # one assignment: the loop reads it
            status = ray.get(host.status.remote(), timeout=self._runtime.call_timeout_s)
        log.info("strategy %s launched by %s", strategy.id, by)
        return {"id": strategy.id, "state": status["state"], "next_bar": self._next, "by": by}

    def _sync_hosts(self) -> None:
        """After the last bar: every host takes the fills it has not seen (the last bar's
        close fills) from the journal."""
        names = [host_name(sid) for sid in self._hosts]
        calls = [(self._actor(name).sync_fills, (), name) for name in names]
        probes = [self._actor(name).pid for name in names]
        call_all_sync(calls, restart_wait_s=self._runtime.restart_wait_s, probes=probes)
        self._carry.clear()

    # ------------------------------------------------------------------ queries
    def status(self) -> dict[str, Any]:
        """Replay progress: state, next bar, bars, rate, quarantined bars by rule, error,
        warm-ups (counts; recent durations and lead, ``warm_up_ms``)."""
        n = self._source.n_bars
        elapsed = None if self._started is None else time.monotonic() - self._started
        done = self._next - self._resumed_at
        ts = self._source.panel.timestamps
        return {
            "state": self._state.value, "next_bar": self._next, "bars": n,
            "resumed_at": self._resumed_at, "elapsed_s": elapsed,
            "bars_per_s": done / elapsed if elapsed else None,
            "symbols": len(self._source.symbols), "speed": self._config.feed.speed,
            "quarantined": self._source.quarantine_counts, "error": self._error,
            "intents_dropped": self._dropped, "early_hosts": dict(self._early),
            "warm_ups": dict(self._warm_ups), "warm_up_ms": self._warm_up_ms(),
            "current_ts": str(ts[min(self._next, n) - 1])[:19] if self._next else None,
        }  # fmt: skip

    def _warm_up_ms(self) -> dict[str, float] | None:
        """The recent warm-ups' durations (p50, p90, max) and the last lead, in ms."""
        if not self._warm_s:
            return None
        ranked = sorted(self._warm_s)
        return {"p50": _ranked(ranked, 0.5) * 1e3, "p90": _ranked(ranked, 0.9) * 1e3,
                "max": ranked[-1] * 1e3, "lead": (self._lead_s or 0.0) * 1e3}  # fmt: skip

    def symbols(self) -> list[str]:
        """Every symbol of the feed's data."""
        return list(self._source.symbols)

    def history(self, symbols: list[str] | None, through: int) -> WidePanel:
        """Bars 0..``through`` as emitted (quarantined bars NaN): a restarting host's or
        broker's history."""
        with self._source_lock:
            return self._source.history(symbols, through)

    def resume_marks(self, through: int, bars: list[int]) -> ResumeMarks:
        """Bar ``through``, each symbol's last close and the times of ``bars``
        (``ReplaySource.resume_marks``): a restarting broker's view of the bars."""
        with self._source_lock:
            return self._source.resume_marks(through, bars)

    def freshness(self, through: int) -> dict[str, tuple[datetime, float | None]]:
        """Each symbol's last valid bar at or before bar ``through``, its time and close
        (``ReplaySource.freshness``): a restarting risk actor's clocks and prices."""
        with self._source_lock:
            return self._source.freshness(through)

    def timestamps(self) -> list[str]:
        """Every bar's timestamp (ISO, UTC)."""
        return [str(t) for t in self._source.panel.timestamps]

    def timings(self) -> dict[str, dict[int, int]]:
        """Wall ns per bar: ``emit`` (the bar emitted, or due when a warm-up delayed it),
        ``hosts`` (every host answered) and ``done`` (bar_done committed)."""
        return {"emit": dict(self._emit_ns), "hosts": dict(self._hosts_ns),
                "done": dict(self._done_ns)}  # fmt: skip
