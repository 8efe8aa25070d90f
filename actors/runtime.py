"""Start, attach to and stop the live topology; the one place for the actors' Ray options.

Every live actor is named (``journal``, ``feed``, ``broker``, ``risk``, ``strategy:<id>``) in
the ``raytrader`` namespace, restarts forever (``max_restarts=-1``), is never retried by Ray
(``max_task_retries=0``: resends are ours, by the same ids) and reserves no CPU
(``num_cpus=0``: a 2-core machine holds a dozen of them; they mostly wait on each other).
They are created with ``get_if_exists``: starting a run whose actors already exist with the
same config and journal attaches to them; different ones are refused, never mixed. All of
them run on the node of the driver that creates them (``actor_options``): the journal is a
file on that machine.

Creation order matters for restarts: the feed first (it loads the data that restarting hosts
and the broker rebuild from), then the broker, risk and hosts; ``start`` waits until all have
rebuilt from the journal.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.common import (
    BROKER,
    FEED,
    JOURNAL,
    LIVE_NAMES,
    NAMESPACE,
    RISK,
    all_strategies,
    host_name,
)
from actors.retry import ActorDownError, actor_errors, wait_back
from actors.wire import DeathWatch
from core.cluster_join import join
from core.errors import RaytraderError
from core.journal import Journal
from core.journal_lock import RunLock, wait_for_writers
from core.run_config import (
    ABSENT,
    RunConfig,
    RunConfigError,
    StrategyConfig,
    identity_changes,
)

__all__ = [
    "RuntimeConflictError",
    "Topology",
    "actor_options",
    "attach",
    "connect",
    "fingerprint",
    "kill_live_actors",
    "live_actor_names",
    "start",
]

log = logging.getLogger("raytrader.runtime")


class RuntimeConflictError(RaytraderError):
    """Live actors of another run (other config or journal) already hold the names."""


def actor_options(name: str) -> dict[str, Any]:
    """The Ray options of a live actor (see the module docstring). The feed and risk are
    threaded actors that answer queries and commands while a bar is in flight (the feed's
    replay thread waits on it; risk's runs on its wire thread); hosts and the broker take one
    call at a time; the journal reader is an asyncio actor.

    The actor is pinned to the caller's node, and only there (restarts too): every live actor
    opens the journal, a local SQLite file in WAL mode, which works between the processes of
    one machine only. Unpinned, Ray places an actor that reserves no CPU on a random node of
    the cluster. The callers are the driver that starts a run and the feed it started."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    options: dict[str, Any] = {
        "name": name, "namespace": NAMESPACE, "get_if_exists": True, "max_restarts": -1,
        "max_task_retries": 0, "num_cpus": 0,
    }  # fmt: skip
    if name in (FEED, RISK):
        options["max_concurrency"] = 8
    node = ray.get_runtime_context().get_node_id()
    options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=False)
    return options


def connect() -> None:
    """Connect once: the cluster at ``RAY_ADDRESS`` if set, else Ray in this process (whose
    helper processes then run at nice 19: ``actors.background``)."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = os.environ.get("RAY_ADDRESS")
    if address:
        join(address, ray.init, namespace=NAMESPACE, logging_level="warning", log_to_driver=False)
    else:
        ray.init(namespace=NAMESPACE, include_dashboard=False, logging_level="warning",
                 log_to_driver=False, configure_logging=False)  # fmt: skip
        from actors.background import yield_helpers

        yield_helpers()  # Ray's monitors run between bars, not inside them


def fingerprint(config: RunConfig, journal_path: str) -> str:
    """What makes two runs the same run: the config and the journal file."""
    text = config.model_dump_json() + "|" + str(Path(journal_path).resolve())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def live_actor_names() -> list[str]:
    """Names of live-runtime actors that exist now in the namespace."""
    import ray

    found = ray.util.list_named_actors(all_namespaces=True)
    return sorted(
        a["name"] for a in found
        if a.get("namespace") == NAMESPACE
        and (a["name"] in LIVE_NAMES or a["name"].startswith("strategy:"))
    )  # fmt: skip


def kill_live_actors(wait_s: float = 30.0) -> list[str]:
    """Kill every live-runtime actor for good (no restart) and wait until their names are
    free (a new run may reuse them at once); returns the names killed."""
    import ray

    names = live_actor_names()
    for name in names:
        with contextlib.suppress(ValueError):  # gone in between
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
    deadline = time.monotonic() + wait_s
    while live_actor_names() and time.monotonic() < deadline:
        time.sleep(0.05)
    return names


@dataclass
class Topology:
    """Handles of one run's actors, with the calls a driver makes on them."""

    config: RunConfig
    journal_path: str
    handles: dict[str, Any] = field(default_factory=dict)
    lock: RunLock | None = None  # held when this driver created the actors (``start``)

    @property
    def feed(self) -> Any:
        """The ``feed`` actor."""
        return self.handles[FEED]

    @property
    def broker(self) -> Any:
        """The ``broker`` actor."""
        return self.handles[BROKER]

    @property
    def risk(self) -> Any:
        """The ``risk`` actor."""
        return self.handles[RISK]

    @property
    def journal(self) -> Any:
        """The ``journal`` actor."""
        return self.handles[JOURNAL]

    def host(self, strategy_id: str) -> Any:
        """A strategy's host actor."""
        return self.handles[host_name(strategy_id)]

    def run(
        self, on_tick: Callable[[Topology], None] | None = None, tick_s: float = 0.25
    ) -> dict[str, Any]:
        """Replay to the end; ``on_tick`` is called every ``tick_s`` while it runs.

        A feed that dies is restarted by Ray and asked to ``run`` again as soon as it is up
        (``wait_back``; it resumes after the last ``bar_done``). Its death is seen within a
        tick on an idle wire connection to its process (``DeathWatch``), else when the
        ``run`` call fails. ``restart_wait_s`` bounds each outage: from a death until a
        ``run`` sent after it has gone a tick without failing (so a feed that dies again and
        again at once is given up on, and one that dies twice an hour apart is not).
        """
        import ray

        wait_s = self.config.runtime.restart_wait_s
        watch = DeathWatch(FEED, self.feed, restart_wait_s=wait_s)
        down_since: float | None = None
        try:
            watch.watch()
            ref = self.feed.run.remote()
            while True:
                done, _ = ray.wait([ref], timeout=tick_s)
                if on_tick is not None:
                    on_tick(self)
                if done:
                    try:
                        return ray.get(ref)
                    except actor_errors() as exc:
                        cause: BaseException | None = exc
                elif watch.died():  # its run died with it: Ray says so about 1.5 s later
                    cause = None
                else:
                    down_since = None  # running (again)
                    continue
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since > wait_s:
                    raise ActorDownError(FEED, time.monotonic() - down_since, cause)
                wait_back(self.feed.pid, restart_wait_s=wait_s, name=FEED, started=down_since)
                watch.watch()
                ref = self.feed.run.remote()
        finally:
            watch.close()

    def stop(self) -> None:
        """Kill every actor of this run for good, strategies launched while it ran too
        (their hosts are detached: they outlive the feed that created them); the journal
        actor last, once it has truncated the WAL (``JournalReader.close_wal``)."""
        import ray

        try:
            for name, handle in self.handles.items():
                if name != JOURNAL:
                    ray.kill(handle, no_restart=True)
            _kill_launched(fingerprint(self.config, self.journal_path), skip=set(self.handles))
            journal = self.handles.get(JOURNAL)
            if journal is not None:  # no writer left: the WAL into the file, then truncated
                with contextlib.suppress(Exception):  # the WAL stays; the next open reads it
                    ray.get(journal.close_wal.remote(), timeout=10)
                ray.kill(journal, no_restart=True)
        finally:
            if self.lock is not None:
                self.lock.release()  # the journal is free for another run


def _kill_launched(fp: str | None, skip: set[str]) -> list[str]:
    """Kill the live hosts of strategies launched into the run ``fp`` names (any run's, for
    None), but those in ``skip``; their names. They are detached: they outlive their feed,
    and on a cluster the driver that started the run."""
    import ray

    killed = []
    for name in live_actor_names():
        if not name.startswith("strategy:") or name in skip:
            continue
        with contextlib.suppress(Exception):  # gone in between, or not answering
            handle = ray.get_actor(name, namespace=NAMESPACE)
            if fp is None or ray.get(handle.fingerprint.remote(), timeout=10) == fp:
                ray.kill(handle, no_restart=True)
                killed.append(name)
    return killed


def _create(cls: type, name: str, fp: str, *args: Any) -> Any:
    """A live actor on this driver's node: the node whose file system holds the journal."""
    import ray

    return ray.remote(cls).options(**actor_options(name)).remote(*args, fingerprint=fp)


def _check(handles: dict[str, Any], fp: str) -> None:
    import ray

    names = list(handles)
    found = ray.get([handles[n].fingerprint.remote() for n in names])
    other = [n for n, f in zip(names, found, strict=True) if f != fp]
    if other:
        raise RuntimeConflictError(
            f"live actors {', '.join(other)} belong to another run (other config or journal); "
            "stop them first (ray.kill, or end the driver that started them)"
        )


def attach(config: RunConfig, journal_path: str) -> Topology:
    """The handles of a run whose actors exist already (another driver started them).

    Raises:
        ValueError: an actor of the run is missing.
        RuntimeConflictError: the actors belong to another run.
    """
    import ray

    connect()
    path = str(Path(journal_path).resolve())
    names = [JOURNAL, FEED, BROKER, RISK, *(host_name(s.id) for s in config.strategies)]
    topo = Topology(config, path, {n: ray.get_actor(n, namespace=NAMESPACE) for n in names})
    _check(topo.handles, fingerprint(config, path))
    return topo


def _claim(config: RunConfig, path: str) -> list[StrategyConfig]:
    """Create the journal's schema once and mark it as this run's; a journal another run
    wrote is refused, naming every field that differs (resuming it would mix two runs).
    Returns the run's strategies: the config's, then those launched into it."""
    identity = config.identity()
    with Journal(path, synchronous=config.journal.synchronous) as journal:
        held = journal.claim_run(json.dumps(identity, sort_keys=True))
        strategies = all_strategies(config, journal)
    if held is None:
        return strategies
    changes = identity_changes(json.loads(held), identity)
    if not changes:
        return strategies
    errors = [(field, f"{_short(here)} here, {_short(there)} in the run that wrote the journal")
              for field, there, here in changes]  # fmt: skip
    errors.append(("", (
        f"the journal {path} resumes only the run that wrote it: give this config a new "
        "journal (journal.path or --journal), or put those values back (risk limits change "
        "during a run with `raytrader limits`, journaled)"
    )))  # fmt: skip
    raise RunConfigError(errors)


def _short(value: object, width: int = 60) -> str:
    """A value for a one-line message: ``absent``, or its repr cut to ``width``."""
    text = "absent" if value == ABSENT else repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _waiting_for_writers(path: str, pids: list[int]) -> None:
    log.warning(
        "journal %s: waiting for the actors of an earlier run of it to exit (pids %s; a "
        "driver killed outright leaves them replaying for a few seconds)",
        path, ", ".join(map(str, pids)) or "unknown",
    )  # fmt: skip


def start(config: RunConfig, journal_path: str | None = None) -> Topology:
    """Create (or attach to) the run's actors and wait until every one has rebuilt.

    Args:
        config: the validated run config.
        journal_path: the journal file; default ``config.journal.path``, else a fresh file
            in a new temporary directory.

    Raises:
        RunConfigError: a strategy trades a symbol the feed's data does not have, or the
            journal is another run's.
        RuntimeConflictError: the names are held by another run's actors.
        JournalInUseError: another live run (another driver's actors) holds the journal.
        RaytraderError: an actor's constructor refused its input (the feed's data: a file
            that is missing, a bad bar under ``bad_bars: raise``), raised as itself.
    """
    import ray

    from actors.broker import Broker
    from actors.feed import DataFeed
    from actors.host import StrategyHost
    from actors.journal import JournalReader
    from actors.risk import Risk

    connect()
    path = journal_path or config.journal.path
    if path is None:
        path = str(Path(tempfile.mkdtemp(prefix="raytrader-")) / "journal.sqlite")
    path = str(Path(path).resolve())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # creating the run's actors: this driver owns the journal while they live (an attaching
    # driver shares live actors, which the creator's lock covers)
    lock = RunLock(path) if FEED not in live_actor_names() else None
    try:
        if lock is not None:  # an earlier run's actors may outlive its killed driver
            # no feed is live, so no run is: a launched host still there is an orphan
            orphans = _kill_launched(None, skip=set())
            if orphans:
                what = "the hosts of strategies an earlier run launched, left by its driver"
                log.warning("stopped %s: %s", what, ", ".join(orphans))
            wait_for_writers(path, config.runtime.restart_wait_s, on_wait=functools.partial(
                _waiting_for_writers, path))  # fmt: skip
        strategies = _claim(config, path)
        fp = fingerprint(config, path)
        topo = Topology(config, path, lock=lock)
        topo.handles[JOURNAL] = _create(JournalReader, JOURNAL, fp, path)
        topo.handles[FEED] = _create(DataFeed, FEED, fp, config, path)
        _check(topo.handles, fp)
        unknown = config.unknown_symbols(ray.get(topo.feed.symbols.remote()))
        if unknown:
            topo.stop()
            raise RunConfigError(unknown)
        topo.handles[BROKER] = _create(Broker, BROKER, fp, config, path)
        topo.handles[RISK] = _create(Risk, RISK, fp, config, path)
        for strategy in strategies:  # the config's and those launched into the run
            name = host_name(strategy.id)
            topo.handles[name] = _create(StrategyHost, name, fp, strategy, config, path)
        _check(topo.handles, fp)
        ray.get([h.ready.remote() for h in topo.handles.values()])
    except BaseException as exc:
        if lock is not None:
            lock.release()
        cause = exc.cause if isinstance(exc, ray.exceptions.RayTaskError) else None
        if isinstance(cause, RaytraderError):
            topo.stop()  # an actor's constructor failed on bad input: say what, not where
            raise cause from None
        raise
    return topo
