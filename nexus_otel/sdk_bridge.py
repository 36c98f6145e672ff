"""Hand nexus-otel's pre-aggregated metrics to the OpenTelemetry SDK's readers.

Used only by :func:`nexus_otel.configure`, which owns the SDK. At each
collection the current :class:`~nexus_otel.aggregate.Snapshot` becomes
standard SDK sum and histogram points in the ``nexus_otel`` scope, appended to
what the SDK collected itself, so the Prometheus exporter and the OTLP
exporter render them exactly like points from SDK instruments. (The OpenTelemetry
specification calls this a MetricProducer; the Python SDK does not offer one
yet.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import Counter, Histogram
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from .aggregate import AggregatingMetrics, HistogramState, Key, Snapshot
from .semconv import INSTRUMENTATION_SCOPE
from .version import __version__

__all__ = ["AggregateProducer", "NexusPrometheusReader", "ProducingMetricExporter"]

_SCOPE = InstrumentationScope(INSTRUMENTATION_SCOPE, __version__)


class AggregateProducer:
    """Turns an :class:`AggregatingMetrics` into SDK metric points.

    Each consumer (reader or exporter) asks with its own ``consumer`` token;
    delta consumers get the difference since their previous collection.
    """

    def __init__(self, metrics: AggregatingMetrics, resource: Resource) -> None:
        self.metrics = metrics
        self.resource = resource
        self._last: dict[int, Snapshot] = {}

    def produce(self, *, delta: bool = False, consumer: object = None) -> list[Metric]:
        snap = self.metrics.snapshot()
        prev = self._last.get(id(consumer)) if delta else None
        if delta:
            self._last[id(consumer)] = snap
        temporality = AggregationTemporality.DELTA if delta else AggregationTemporality.CUMULATIVE
        start = prev.time_unix_nano if prev else snap.start_time_unix_nano
        now = snap.time_unix_nano
        out: list[Metric] = []
        for name, series in snap.counters.items():
            spec = self.metrics.specs[name]
            before = prev.counters.get(name, {}) if prev else {}
            points = [
                NumberDataPoint(dict(key), start, now, value - before.get(key, 0.0))
                for key, value in series.items()
            ]
            out.append(Metric(name, spec.description, spec.unit, Sum(points, temporality, True)))
        for name, series in snap.histograms.items():
            spec = self.metrics.specs[name]
            bounds = self.metrics.bounds(name)
            before_h = prev.histograms.get(name, {}) if prev else {}
            points = [
                _histogram_point(
                    key, state=state, before=before_h.get(key), bounds=bounds, start=start, now=now
                )
                for key, state in series.items()
            ]
            out.append(Metric(name, spec.description, spec.unit, HistogramData(points, temporality)))
        return out

    def merge(self, data: MetricsData | None, *, delta: bool = False, consumer: object = None) -> MetricsData:
        ours = self.produce(delta=delta, consumer=consumer)
        if data is None or not data.resource_metrics:
            return MetricsData([ResourceMetrics(self.resource, [ScopeMetrics(_SCOPE, ours, "")], "")])
        first, *rest = data.resource_metrics
        scopes = list(first.scope_metrics)
        if ours:
            scopes.append(ScopeMetrics(_SCOPE, ours, ""))
        return MetricsData([ResourceMetrics(first.resource, scopes, first.schema_url), *rest])


def _histogram_point(
    key: Key,
    *,
    state: HistogramState,
    before: HistogramState | None,
    bounds: Sequence[float],
    start: int,
    now: int,
) -> HistogramDataPoint:
    counts = state.counts
    count, total = state.count, state.sum
    if before is not None:
        counts = [a - b for a, b in zip(counts, before.counts, strict=True)]
        count -= before.count
        total -= before.sum
    return HistogramDataPoint(
        attributes=dict(key),
        start_time_unix_nano=start,
        time_unix_nano=now,
        count=count,
        sum=total,
        bucket_counts=list(counts),
        explicit_bounds=list(bounds),
        min=state.min,
        max=state.max,
    )


class NexusPrometheusReader(PrometheusMetricReader):
    """The SDK's Prometheus reader plus nexus-otel's aggregated series."""

    def __init__(self, producer: AggregateProducer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._producer = producer

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        super()._receive_metrics(self._producer.merge(metrics_data), timeout_millis=timeout_millis, **kwargs)


class ProducingMetricExporter(MetricExporter):
    """Wraps an exporter (e.g. OTLP) so each export also carries nexus-otel's series.

    The SDK skips an export when its own instruments have nothing to report, so
    the MeterProvider needs at least one always-observed instrument (configure()
    registers the ``nexus.events.queued`` gauge).
    """

    def __init__(self, inner: MetricExporter, producer: AggregateProducer) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner = inner
        self._producer = producer
        preferred = inner._preferred_temporality or {}
        self._delta = {preferred.get(Counter), preferred.get(Histogram)} == {AggregationTemporality.DELTA}

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        merged = self._producer.merge(metrics_data, delta=self._delta, consumer=self)
        return self._inner.export(merged, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)
