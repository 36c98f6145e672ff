"""A compact in-memory store of Prometheus series fed from OTLP data points.

Every output series belongs to one sender (``job``/``instance``) and keeps its
label text pre-escaped, so rendering ``/metrics`` is string joining. Inputs
are *source streams* (sender, scope, raw attributes); several sources may land
in one output series once the label cap folds values into ``other``, so
cumulative inputs are turned into increments per source and added to the
output series — which also makes a sender's restart (a new start time) a
plain continuation instead of a drop.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from nexus_otel import semconv
from nexus_otel.cardinality import LabelGuard

from .naming import Kind, PrometheusName, label_name, prometheus_metric_name

__all__ = ["Family", "IncompatiblePoint", "Scope", "Sender", "Series", "SeriesStore", "escape_label_value"]

_SEMCONV_BUCKETS = {
    prometheus_metric_name(spec.name, spec.unit, spec.kind).family: tuple(float(b) for b in spec.buckets)
    for spec in semconv.METRICS
    if spec.buckets
}
# promtool flags a family without help text; senders often send no description
_SEMCONV_HELP = {spec.name: spec.description for spec in semconv.METRICS}
_JOB_KEYS = ("service.name", "service.namespace", "service.instance.id")


class IncompatiblePoint(ValueError):
    """A data point that cannot be merged (type conflict, negative counter delta ...)."""


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass(frozen=True, slots=True)
class Scope:
    name: str = ""
    version: str = ""


class Series:
    """One output series. Histograms keep per-bucket (not cumulative) counts."""

    __slots__ = ("count", "counts", "labels", "sender", "sum", "value")

    def __init__(self, labels: str, sender: tuple[str, str], buckets: int) -> None:
        self.labels = labels
        self.sender = sender
        self.value = 0.0
        self.counts: list[int] | None = [0] * buckets if buckets else None
        self.sum = 0.0
        self.count = 0


class _Source:
    __slots__ = ("count", "counts", "series", "start_ns", "sum", "value")

    def __init__(self, series: Series) -> None:
        self.series = series
        self.start_ns = -1
        self.value = 0.0
        self.counts: list[int] | None = None
        self.sum = 0.0
        self.count = 0


@dataclass(slots=True)
class Family:
    name: PrometheusName
    kind: Kind
    help: str
    bounds: tuple[float, ...] = ()
    series: dict[str, Series] = field(default_factory=dict)
    # source bounds -> index of the family bucket each source bucket falls into
    rebucket: dict[tuple[float, ...], list[int]] = field(default_factory=dict)

    def bucket_map(self, source_bounds: tuple[float, ...]) -> list[int]:
        """Each source bucket ``(lo, hi]`` goes to the family bucket holding ``hi``.

        A cumulative family bucket then never counts an observation above its bound:
        with differing boundaries (another instrumentation's defaults) the result
        undercounts inside a bucket rather than inventing observations.
        """
        mapping = self.rebucket.get(source_bounds)
        if mapping is None:
            mapping = [bisect.bisect_left(self.bounds, hi) for hi in source_bounds]
            mapping.append(len(self.bounds))  # +Inf
            self.rebucket[source_bounds] = mapping
        return mapping


@dataclass(slots=True)
class Sender:
    """A process that sends metrics, identified as the compatibility spec says."""

    job: str
    instance: str
    target_labels: str
    last_seen: float
    sources: dict[tuple[Any, ...], _Source] = field(default_factory=dict)
    series: list[tuple[Family, str]] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.job, self.instance)


class SeriesStore:
    """Thread-safe: ingestion runs inside :meth:`locked`; rendering takes the same lock."""

    def __init__(
        self,
        *,
        series_ttl_s: float,
        label_guard: LabelGuard,
        on_drop: Callable[[str, int], None] | None = None,
        on_sender_expired: Callable[[tuple[str, str]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.series_ttl_s = series_ttl_s
        self._guard = label_guard
        self._on_drop = on_drop or (lambda reason, n: None)
        self._on_sender_expired = on_sender_expired or (lambda key: None)
        self._clock = clock
        self._lock = threading.Lock()
        self.families: dict[str, Family] = {}
        self.senders: dict[tuple[str, str], Sender] = {}
        self._series_count = 0

    @property
    def series_count(self) -> int:
        return self._series_count

    @contextmanager
    def locked(self) -> Iterator[SeriesStore]:
        with self._lock:
            yield self

    # --- identity -------------------------------------------------------------
    def sender(self, resource: Mapping[str, str]) -> Sender:
        """The sender for resource attributes; refreshes its last-seen time and ``target_info``."""
        name = resource.get("service.name", "")
        namespace = resource.get("service.namespace", "")
        job = f"{namespace}/{name}" if namespace and name else name or namespace
        instance = resource.get("service.instance.id", "")
        key = (job, instance)
        sender = self.senders.get(key)
        now = self._clock()
        if sender is None:
            extra = {k: v for k, v in resource.items() if k not in _JOB_KEYS}
            sender = self.senders[key] = Sender(
                job, instance, _label_text({"job": job, "instance": instance}, extra), now
            )
        sender.last_seen = now
        return sender

    def family(self, *, name: str, unit: str, kind: Kind, description: str) -> Family:
        prom = prometheus_metric_name(name, unit, kind)
        family = self.families.get(prom.sample)
        if family is None:
            clash = self.families.get(prom.family) or self.families.get(f"{prom.family}_total")
            if clash is not None and clash.kind != kind:
                raise IncompatiblePoint(
                    f"metric {name!r} is a {kind} but {clash.name.sample} is a {clash.kind}"
                )
            description = description or _SEMCONV_HELP.get(name) or f"{name} ({unit or 'no unit'})"
            family = Family(prom, kind, description, bounds=_SEMCONV_BUCKETS.get(prom.family, ()))
            self.families[prom.sample] = family
        elif family.kind != kind:
            raise IncompatiblePoint(f"metric {name!r} is a {kind} but {prom.sample} is a {family.kind}")
        return family

    def _source(self, sender: Sender, scope: Scope, family: Family, attrs: Mapping[str, str]) -> _Source:
        key = (family.name.sample, scope, tuple(sorted(attrs.items())))
        source = sender.sources.get(key)
        if source is None:
            folded = {
                k: (self._guard.fold(k, v) if k in semconv.ATTRIBUTION_LABELS else v)
                for k, v in attrs.items()
            }
            fixed = {"job": sender.job, "instance": sender.instance}
            if scope.name:
                fixed["otel_scope_name"] = scope.name
            if scope.version:
                fixed["otel_scope_version"] = scope.version
            labels = _label_text(fixed, folded)
            series = family.series.get(labels)
            if series is None:
                series = family.series[labels] = Series(
                    labels, sender.key, len(family.bounds) + 1 if family.kind == "histogram" else 0
                )
                sender.series.append((family, labels))
                self._series_count += 1
            source = sender.sources[key] = _Source(series)
        return source

    # --- data points ------------------------------------------------------------
    def add_number(
        self,
        sender: Sender,
        scope: Scope,
        family: Family,
        attrs: Mapping[str, str],
        *,
        value: float,
        start_ns: int,
        cumulative: bool,
    ) -> float:
        """Merge one sum or gauge point; returns the increment added (0 for gauges)."""
        if math.isnan(value):  # NaN: a stale marker has no place in an accumulated series
            raise IncompatiblePoint(f"{family.name.sample}: NaN value")
        source = self._source(sender, scope, family, attrs)
        series = source.series
        if family.kind == "gauge":
            if cumulative:
                series.value = value
                return 0.0
            series.value += value  # delta non-monotonic sum (an UpDownCounter)
            return value
        if not cumulative:
            if value < 0:
                raise IncompatiblePoint(f"{family.name.sample}: negative delta {value} for a counter")
            increment = value
        elif source.start_ns == start_ns and value >= source.value:
            increment = value - source.value
        else:  # first sight, or the sender restarted its counter (new start time / lower value)
            increment = value if value >= 0 else 0.0
        source.start_ns = start_ns
        source.value = value
        series.value += increment
        return increment

    def add_histogram(
        self,
        sender: Sender,
        scope: Scope,
        family: Family,
        attrs: Mapping[str, str],
        *,
        bounds: tuple[float, ...],
        counts: list[int],
        total: float,
        count: int,
        start_ns: int,
        cumulative: bool,
    ) -> tuple[float, int]:
        """Merge one histogram point; returns the (sum, count) increment added."""
        if len(counts) != len(bounds) + 1:
            raise IncompatiblePoint(
                f"{family.name.sample}: {len(counts)} bucket counts for {len(bounds)} bounds"
            )
        if sum(counts) != count:
            raise IncompatiblePoint(f"{family.name.sample}: bucket counts do not add up to count {count}")
        if not family.bounds and not family.series:
            family.bounds = bounds
        source = self._source(sender, scope, family, attrs)
        if cumulative:
            previous = source.counts
            restarted = previous is None or source.start_ns != start_ns or count < source.count
            if restarted:
                inc_counts, inc_sum, inc_count = counts, total, count
            else:
                inc_counts = [a - b for a, b in zip(counts, previous, strict=False)]
                if min(inc_counts) < 0:
                    inc_counts, inc_sum, inc_count = counts, total, count
                else:
                    inc_sum, inc_count = total - source.sum, count - source.count
            source.start_ns, source.counts, source.sum, source.count = start_ns, list(counts), total, count
        else:
            inc_counts, inc_sum, inc_count = counts, total, count
        series = source.series
        target = series.counts
        if bounds == family.bounds:
            for i, c in enumerate(inc_counts):
                target[i] += c
        else:
            for i, c in zip(family.bucket_map(bounds), inc_counts, strict=False):
                target[i] += c
        series.sum += inc_sum
        series.count += inc_count
        return inc_sum, inc_count

    # --- lifecycle -------------------------------------------------------------
    def expire(self) -> int:
        """Drop every series of senders silent longer than the TTL; returns how many."""
        if self.series_ttl_s <= 0:
            return 0
        cutoff = self._clock() - self.series_ttl_s
        dropped = 0
        with self._lock:
            for key in [k for k, s in self.senders.items() if s.last_seen < cutoff]:
                sender = self.senders.pop(key)
                for family, labels in sender.series:
                    if family.series.pop(labels, None) is not None:
                        dropped += 1
                self._series_count -= len(sender.series)
                self._on_sender_expired(key)
        if dropped:
            self._on_drop("ttl", dropped)
        return dropped

    def render(self, *, openmetrics: bool) -> str:
        """The exposition text of every family (without the OpenMetrics ``# EOF``)."""
        from .exposition import render_families

        with self._lock:
            return render_families(self.families.values(), self._target_infos(), openmetrics=openmetrics)

    def _target_infos(self) -> Iterable[str]:
        return (s.target_labels for s in self.senders.values())


def _label_text(fixed: Mapping[str, str], attrs: Mapping[str, str]) -> str:
    """``k="v",…`` with OTel keys sanitised; keys colliding after sanitising join values with ``;``."""
    merged: dict[str, list[tuple[str, str]]] = {}
    for key, value in attrs.items():
        if value != "":
            merged.setdefault(label_name(key), []).append((key, value))
    out = [f'{k}="{escape_label_value(v)}"' for k, v in fixed.items() if v != ""]
    for name in sorted(merged):
        if name in fixed:
            continue
        values = ";".join(v for _, v in sorted(merged[name]))
        out.append(f'{name}="{escape_label_value(values)}"')
    return ",".join(out)
