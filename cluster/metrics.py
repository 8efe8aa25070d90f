"""One Prometheus exposition from many processes: the live actors and the API's own recorder.

Every live actor records into its own registry (``actors.metrics.MetricsRecorder``) and hands
it out as a snapshot. ``MergedCollector`` asks its sources for snapshots at scrape time and
merges them into one set of metric families: counters and histograms are summed series by
series (several processes may count the same thing, e.g. journal appends), a gauge series set
by several processes keeps the most recently set value. A source that does not answer in time
is left out of that scrape and reported as ``raytrader_metrics_source_up{source} 0``, so a
dead actor never breaks ``/metrics``.

The control API serves the collector on ``GET /metrics``; ``start_exporter`` serves it on a
port of its own (for a Prometheus that scrapes the Ray head or a sidecar).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from actors.metrics import SNAPSHOT_METHOD, MetricsRecorder, MetricsSnapshot
from core.metric_names import METRICS_SOURCE_UP, MetricKind
from optimization.runtime import NAMESPACE

__all__ = [
    "LIVE_ACTORS",
    "NAMESPACE",
    "STRATEGY_PREFIX",
    "Exporter",
    "MergedCollector",
    "SnapshotSource",
    "actor_source",
    "merge_snapshots",
    "recorder_source",
    "render",
    "start_exporter",
]

log = logging.getLogger(__name__)

LIVE_ACTORS = ("feed", "risk", "broker", "journal")  # plus one "strategy:<id>" per strategy
STRATEGY_PREFIX = "strategy:"

# A source answers with snapshots by source name; None marks a source that did not answer.
SnapshotSource = Callable[[], Mapping[str, MetricsSnapshot | None]]

_Key = tuple[str, tuple[tuple[str, str], ...]]


def recorder_source(*recorders: MetricsRecorder) -> SnapshotSource:
    """A source over recorders of this process (the API's own request metrics)."""

    def fetch() -> dict[str, MetricsSnapshot | None]:
        return {r.source: r.snapshot() for r in recorders}

    return fetch


def actor_source(
    names: Iterable[str] | None = None, *, namespace: str = NAMESPACE, timeout_s: float = 2.0
) -> SnapshotSource:
    """A source over named Ray actors that expose ``SNAPSHOT_METHOD``.

    Args:
        names: Actor names to ask; None finds them at every scrape: the fixed live actors and
            every ``strategy:<id>`` registered in ``namespace``.
        namespace: The Ray namespace of the live actors.
        timeout_s: How long one scrape waits for all actors together; late ones count as down.
    """
    fixed = None if names is None else tuple(names)

    def fetch() -> dict[str, MetricsSnapshot | None]:
        import ray

        wanted = fixed if fixed is not None else _discover(ray, namespace)
        refs: dict[str, Any] = {}
        out: dict[str, MetricsSnapshot | None] = {}
        for name in wanted:
            try:
                actor = ray.get_actor(name, namespace=namespace)
                refs[name] = getattr(actor, SNAPSHOT_METHOD).remote()
            except Exception as err:  # not registered (yet), or dead for good
                log.debug("metrics source %s unavailable: %s", name, err)
                out[name] = None
        if refs:
            ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
            done = set(ready)
            for name, ref in refs.items():
                out[name] = _get(ray, name, ref) if ref in done else None
        return out

    return fetch


def _discover(ray: Any, namespace: str) -> list[str]:
    found = ray.util.list_named_actors(all_namespaces=True)
    names = sorted(a["name"] for a in found if a.get("namespace") == namespace)
    return [n for n in names if n in LIVE_ACTORS or n.startswith(STRATEGY_PREFIX)]


def _get(ray: Any, name: str, ref: Any) -> MetricsSnapshot | None:
    try:
        return ray.get(ref, timeout=0)
    except Exception as err:  # the actor died or raised: down for this scrape
        log.warning("metrics source %s failed: %s", name, err)
        return None


class _Family:
    __slots__ = ("help", "kind", "name", "samples")

    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name = name
        self.kind = kind
        self.help = help_text
        self.samples: dict[_Key, list[Any]] = {}  # key -> [value, updated]


def merge_snapshots(snapshots: Iterable[MetricsSnapshot]) -> list[Metric]:
    """Merge snapshots into metric families ready for exposition.

    Counter and histogram series with the same name and labels are summed; for a gauge series
    the value with the latest ``updated`` stamp wins (ties: the later snapshot). A family whose
    type differs between snapshots keeps the first type seen and the others are dropped, with
    a warning.
    """
    merged: dict[str, _Family] = {}
    for snap in snapshots:
        for fam in snap["families"]:
            have = merged.setdefault(fam["name"], _Family(fam["name"], fam["kind"], fam["help"]))
            if have.kind != fam["kind"]:
                log.warning("metric %s is a %s in %s but a %s elsewhere; dropped there",
                            fam["name"], fam["kind"], snap["source"], have.kind)  # fmt: skip
                continue
            gauge = fam["kind"] == MetricKind.GAUGE
            for s in fam["samples"]:
                key = (s["name"], tuple(sorted(s["labels"].items())))
                cur = have.samples.get(key)
                if cur is None:
                    have.samples[key] = [s["value"], s["updated"]]
                elif not gauge:
                    cur[0] += s["value"]
                elif (s["updated"] or float("-inf")) >= (cur[1] or float("-inf")):
                    cur[:] = [s["value"], s["updated"]]
    return [_to_metric(f) for f in merged.values()]


def _to_metric(fam: _Family) -> Metric:
    base = fam.name.removesuffix("_total") if fam.kind == MetricKind.COUNTER else fam.name
    metric = Metric(base, fam.help, fam.kind)
    for (name, labels), (value, _) in fam.samples.items():
        metric.add_sample(name, dict(labels), value)
    return metric


class MergedCollector(Collector):
    """A prometheus_client collector that merges its sources' snapshots at every scrape.

    Args:
        sources: Snapshot sources (``actor_source``, ``recorder_source``, or any callable
            returning snapshots by source name).
    """

    def __init__(self, sources: Sequence[SnapshotSource]) -> None:
        self.sources = tuple(sources)

    def describe(self) -> list[Metric]:
        """Nothing up front: registering must not call the actors."""
        return []

    def collect(self) -> Iterable[Metric]:
        """Fetch every source, merge, and add one ``metrics_source_up`` series per source."""
        snapshots: list[MetricsSnapshot] = []
        up: dict[str, float] = {}
        for source in self.sources:
            try:
                answers = source()
            except Exception:  # a broken source is one missing source, not a failed scrape
                log.warning("metrics source %r failed", source, exc_info=True)
                continue
            for name, snap in answers.items():
                up[name] = 0.0 if snap is None else 1.0
                if snap is not None:
                    snapshots.append(snap)
        yield from merge_snapshots(snapshots)
        metric = Metric(METRICS_SOURCE_UP.name, METRICS_SOURCE_UP.help, "gauge")
        for name, value in sorted(up.items()):
            metric.add_sample(METRICS_SOURCE_UP.name, {"source": name}, value)
        yield metric


def render(sources: Sequence[SnapshotSource]) -> bytes:
    """The Prometheus text exposition of the merged sources (blocking: run it off the loop)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MergedCollector(sources))
    return generate_latest(registry)


class Exporter(NamedTuple):
    """A running standalone exporter; ``server.shutdown()`` stops it."""

    server: Any
    thread: Any
    registry: CollectorRegistry
    port: int


def start_exporter(
    port: int, sources: Sequence[SnapshotSource], *, addr: str = "127.0.0.1"
) -> Exporter:
    """Serve the merged metrics on ``http://addr:port/metrics`` from a daemon thread.

    Uses a registry of its own (never the process-global default one, whose process and
    platform collectors would mix in series raytrader does not define).

    Args:
        port: TCP port; 0 picks a free one (see ``Exporter.port``).
        sources: What to merge (see ``MergedCollector``).
        addr: Bind address; loopback by default, ``0.0.0.0`` in a pod Prometheus scrapes.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MergedCollector(sources))
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return Exporter(server, thread, registry, server.server_address[1])
