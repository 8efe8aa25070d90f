"""Metric recording for the live actors: one recorder per process, two outlets.

Each actor owns a ``MetricsRecorder`` and records by metric definition (``core.metric_names``)
and labels. Every value goes to a per-process ``prometheus_client.CollectorRegistry`` (what the
control API and the standalone exporter merge into one ``/metrics``, see ``cluster.metrics``)
and, when the process runs inside Ray, to ``ray.util.metrics`` under the same name and tag keys
so the same figures show in the Ray dashboard (Ray prefixes them with ``ray_``).

An actor exposes the registry through a method named ``SNAPSHOT_METHOD`` that returns
``recorder.snapshot()``: plain lists and dicts, cheap to ship through the object store.

Labels are checked against the definition on every call (exact label names; enum labels only
take their enum's values), so a typo fails the first test that records it instead of creating
a new, unbounded series in production.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypedDict

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.metric_names import METRICS, MetricKind, MetricSpec, get_spec

__all__ = [
    "SNAPSHOT_METHOD",
    "FamilySnapshot",
    "MetricsRecorder",
    "MetricsSnapshot",
    "SampleSnapshot",
]

SNAPSHOT_METHOD = "metrics_snapshot"

log = logging.getLogger(__name__)
_SERIES_CACHED = 10_000  # series whose label check is remembered (bounded: labels are bounded)


class SampleSnapshot(TypedDict):
    """One sample: its exported name, labels, value, and (gauges) when it was last set."""

    name: str
    labels: dict[str, str]
    value: float
    updated: float | None  # Unix time of the last set (gauges only), for merging


class FamilySnapshot(TypedDict):
    """One metric of one process."""

    name: str  # the exported name (counters end in _total)
    kind: str  # MetricKind value
    help: str
    samples: list[SampleSnapshot]


class MetricsSnapshot(TypedDict):
    """Every metric of one process (``source`` names it: an actor name or ``api``)."""

    source: str
    families: list[FamilySnapshot]


_LabelKey = tuple[str, tuple[tuple[str, str], ...]]


class MetricsRecorder:
    """Records raytrader metrics in-process and, inside Ray, in ``ray.util.metrics`` too.

    Args:
        source: Who records (the actor's name, e.g. ``risk`` or ``strategy:sma-1``); it names
            the snapshot and the exporter's ``raytrader_metrics_source_up`` series.
        metrics: The definitions this recorder may record (default: all of them).
        mirror_to_ray: Also record in ``ray.util.metrics`` when Ray is initialized in this
            process; the Ray metrics are created lazily, on first use.
        clock: Wall clock for the gauges' ``updated`` stamps (Unix seconds).
    """

    def __init__(
        self,
        source: str,
        *,
        metrics: Iterable[MetricSpec] = METRICS,
        mirror_to_ray: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.registry = CollectorRegistry(auto_describe=True)
        self._specs = {m.name: m for m in metrics}
        self._prom: dict[str, Any] = {m.name: self._make_prom(m) for m in self._specs.values()}
        self._updated: dict[_LabelKey, float] = {}
        self._clock = clock
        self._mirror = mirror_to_ray
        self._ray: dict[str, Any] = {}
        self._series_cache: dict[tuple[object, ...], tuple[MetricSpec, dict[str, str], Any]] = {}
        self._lock = threading.Lock()
        self._held = threading.local()  # .queue: this thread's recordings until flush()

    # ------------------------------------------------------------------ holding
    def hold(self) -> None:
        """Queue this thread's recordings until ``flush``: a wire call's metrics are recorded
        once its answer has gone, off the bar's path (cold, one recording costs ~0.1 ms)."""
        if getattr(self._held, "queue", None) is None:
            self._held.queue = []

    def flush(self) -> None:
        """Record what this thread queued since ``hold``, in order, and stop queueing. A
        recording that fails is logged: the answer it belonged to has gone already."""
        queue = getattr(self._held, "queue", None)
        self._held.queue = None
        for what, work, args, kwargs in queue or ():
            try:
                work(*args, **kwargs)
            except Exception:
                log.exception("%s: a held recording of %s failed", self.source, what)

    def defer(self, what: str, work: Callable[..., None], *args: Any) -> None:
        """Run ``work(*args)``, which records, now; or, while this thread holds its
        recordings (``hold``), at ``flush`` in its turn: deriving a recording's labels
        costs as much as recording it, so that work leaves the bar's path too."""
        queue = getattr(self._held, "queue", None)
        if queue is None:
            work(*args)
        else:
            queue.append((what, work, args, {}))

    def _queued(self, record: Callable[..., None], metric: Any, value: float,
                labels: dict[str, object]) -> bool:  # fmt: skip
        queue = getattr(self._held, "queue", None)
        if queue is None:
            return False
        queue.append((metric, record, (metric, value), labels))
        return True

    # ------------------------------------------------------------------ recording
    def inc(self, metric: MetricSpec | str, amount: float = 1.0, **labels: object) -> None:
        """Add ``amount`` (>= 0) to a counter."""
        if self._queued(self.inc, metric, amount, labels):
            return
        spec, values, child = self._series(metric, MetricKind.COUNTER, labels)
        if amount < 0:
            raise ValueError(f"{spec.name}: a counter only goes up, got {amount}")
        child.inc(amount)
        if amount > 0:
            self._to_ray(spec, "inc", amount, values)

    def set(self, metric: MetricSpec | str, value: float, **labels: object) -> None:
        """Set a gauge."""
        if self._queued(self.set, metric, value, labels):
            return
        spec, values, child = self._series(metric, MetricKind.GAUGE, labels)
        child.set(value)
        self._updated[(spec.name, tuple(sorted(values.items())))] = self._clock()
        self._to_ray(spec, "set", value, values)

    def observe(self, metric: MetricSpec | str, value: float, **labels: object) -> None:
        """Add one observation to a histogram."""
        if self._queued(self.observe, metric, value, labels):
            return
        spec, values, child = self._series(metric, MetricKind.HISTOGRAM, labels)
        child.observe(value)
        self._to_ray(spec, "observe", value, values)

    @contextmanager
    def timer(self, metric: MetricSpec | str, **labels: object) -> Iterator[None]:
        """Observe the seconds the ``with`` block takes in a histogram (even if it raises)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe(metric, time.perf_counter() - start, **labels)

    # ------------------------------------------------------------------ reading
    def value(self, metric: MetricSpec | str, **labels: object) -> float | None:
        """The current value of a counter or gauge series (a histogram's count), or None."""
        spec = self._spec(metric)
        values = spec.check_labels(labels)
        name = f"{spec.name}_count" if spec.kind is MetricKind.HISTOGRAM else spec.name
        return self.registry.get_sample_value(name, values)

    def snapshot(self) -> MetricsSnapshot:
        """Every series of this process as plain data (what an actor's snapshot method returns).

        Counters' ``_created`` samples are left out: they are per-process start times that mean
        nothing once several processes are merged.
        """
        families: list[FamilySnapshot] = []
        for family in self.registry.collect():
            spec = self._by_base(family.name)
            samples: list[SampleSnapshot] = []
            for s in family.samples:
                if s.name.endswith("_created"):
                    continue
                updated = None
                if spec.kind is MetricKind.GAUGE:
                    updated = self._updated.get((spec.name, tuple(sorted(s.labels.items()))))
                samples.append(
                    {"name": s.name, "labels": dict(s.labels), "value": float(s.value),
                     "updated": updated}
                )  # fmt: skip
            families.append(
                {"name": spec.name, "kind": spec.kind.value, "help": spec.help, "samples": samples}
            )
        return {"source": self.source, "families": families}

    @property
    def mirrors_to_ray(self) -> bool:
        """Whether values also go to ``ray.util.metrics`` (Ray is initialized here)."""
        return self._mirror and _ray_module() is not None

    # ------------------------------------------------------------------ internals
    def _spec(self, metric: MetricSpec | str) -> MetricSpec:
        spec = get_spec(metric)
        if spec.name not in self._specs:
            raise KeyError(f"recorder {self.source!r} does not record {spec.name}")
        return spec

    def _by_base(self, base: str) -> MetricSpec:
        return self._specs.get(base) or self._specs[f"{base}_total"]

    def _resolve(
        self, metric: MetricSpec | str, kind: MetricKind, labels: dict[str, object]
    ) -> tuple[MetricSpec, dict[str, str]]:
        spec = self._spec(metric)
        if spec.kind is not kind:
            raise TypeError(f"{spec.name} is a {spec.kind.value}, not a {kind.value}")
        return spec, spec.check_labels(labels)

    def _series(
        self, metric: MetricSpec | str, kind: MetricKind, labels: dict[str, object]
    ) -> tuple[MetricSpec, dict[str, str], Any]:
        """The checked spec, label values and prometheus child of one series, remembered per
        (metric, kind, labels) so the bar path checks a series' labels once, not per event."""
        name = metric if isinstance(metric, str) else metric.name
        try:
            key = (name, kind, tuple(labels.items()))
            hit = self._series_cache.get(key)
        except TypeError:  # an unhashable label value: checked (and refused) below
            key, hit = None, None
        if hit is None:
            spec, values = self._resolve(metric, kind, labels)
            hit = (spec, values, self._child(spec, values))
            if key is not None and len(self._series_cache) < _SERIES_CACHED:
                self._series_cache[key] = hit
        return hit

    def _child(self, spec: MetricSpec, values: dict[str, str]) -> Any:
        prom = self._prom[spec.name]
        return prom.labels(**values) if spec.labels else prom

    def _make_prom(self, spec: MetricSpec) -> Any:
        common: dict[str, Any] = {"labelnames": spec.labels, "registry": self.registry}
        if spec.kind is MetricKind.COUNTER:
            return Counter(spec.name, spec.help, **common)
        if spec.kind is MetricKind.GAUGE:
            return Gauge(spec.name, spec.help, **common)
        return Histogram(spec.name, spec.help, buckets=spec.buckets, **common)

    def _to_ray(self, spec: MetricSpec, method: str, value: float, tags: dict[str, str]) -> None:
        if not self._mirror:
            return
        ray = _ray_module()
        if ray is None:
            return
        try:
            metric = self._ray.get(spec.name) or self._make_ray(ray, spec)
            getattr(metric, method)(value, tags=tags or None)
        except Exception:  # the dashboard copy must never break an order path
            log.warning("ray.util.metrics failed for %s; no longer mirroring", spec.name,
                        exc_info=True)  # fmt: skip
            self._mirror = False

    def _make_ray(self, ray: Any, spec: MetricSpec) -> Any:
        from ray.util import metrics as rm

        with self._lock:
            if spec.name in self._ray:
                return self._ray[spec.name]
            tags = spec.labels or None
            if spec.kind is MetricKind.COUNTER:  # Ray adds the _total suffix itself
                made = rm.Counter(spec.base_name, spec.help, tag_keys=tags)
            elif spec.kind is MetricKind.GAUGE:
                made = rm.Gauge(spec.name, spec.help, tag_keys=tags)
            else:
                made = rm.Histogram(spec.name, spec.help, list(spec.buckets), tag_keys=tags)
            self._ray[spec.name] = made
            return made


def _ray_module() -> Any:
    """Ray, if this process has imported and initialized it (never imports it)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return ray
