"""OTLP metrics → the Prometheus series store, rejecting bad data points one by one."""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2

from exporters.prometheus.derive import CostDeriver, normalise_genai_attributes
from exporters.prometheus.store import Family, IncompatiblePoint, Scope, Sender, SeriesStore
from nexus_otel import semconv

from .values import label_attributes

__all__ = ["MetricsIngest", "MetricsResult"]

_CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
_DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
_NO_RECORDED_VALUE = metrics_pb2.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
_MAX_MESSAGES = 5


@dataclass(slots=True)
class MetricsResult:
    accepted: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def reject(self, count: int, message: str) -> None:
        self.rejected += count
        if len(self.errors) < _MAX_MESSAGES and message not in self.errors:
            self.errors.append(message)

    @property
    def error_message(self) -> str:
        return "; ".join(self.errors)


class MetricsIngest:
    """Feeds ``ExportMetricsServiceRequest`` messages into a :class:`SeriesStore`."""

    def __init__(self, store: SeriesStore, *, cost: CostDeriver | None = None) -> None:
        self.store = store
        self.cost = cost

    def ingest(self, request: ExportMetricsServiceRequest) -> MetricsResult:
        result = MetricsResult()
        with self.store.locked():
            for resource_metrics in request.resource_metrics:
                sender = self.store.sender(label_attributes(resource_metrics.resource.attributes))
                if self.cost is not None:
                    names = {m.name for sm in resource_metrics.scope_metrics for m in sm.metrics}
                    self.cost.note_metric_names(sender, names)
                for scope_metrics in resource_metrics.scope_metrics:
                    scope = Scope(scope_metrics.scope.name, scope_metrics.scope.version)
                    for metric in scope_metrics.metrics:
                        self._metric(sender, scope, metric, result)
        return result

    def _metric(
        self, sender: Sender, scope: Scope, metric: metrics_pb2.Metric, result: MetricsResult
    ) -> None:
        data = metric.WhichOneof("data")
        if data is None:
            return
        points = getattr(metric, data).data_points
        if data in ("exponential_histogram", "summary"):
            result.reject(len(points), f"{metric.name}: {data} data points are not supported")
            return
        if data == "sum":
            kind = "counter" if metric.sum.is_monotonic else "gauge"
            temporality = metric.sum.aggregation_temporality
        elif data == "gauge":
            kind, temporality = "gauge", _CUMULATIVE
        else:
            kind, temporality = "histogram", metric.histogram.aggregation_temporality
        if temporality not in (_CUMULATIVE, _DELTA):
            result.reject(len(points), f"{metric.name}: aggregation temporality is unspecified")
            return
        if not metric.name:
            result.reject(len(points), "metric without a name")
            return
        try:
            family = self.store.family(
                name=metric.name, unit=metric.unit, kind=kind, description=metric.description
            )
        except IncompatiblePoint as exc:
            result.reject(len(points), str(exc))
            return
        cumulative = temporality == _CUMULATIVE
        derive = (
            self.cost is not None
            and metric.name == semconv.TOKEN_USAGE.name
            and self.cost.applies(sender, scope)
        )
        for point in points:
            if point.flags & _NO_RECORDED_VALUE:
                continue
            attrs = normalise_genai_attributes(label_attributes(point.attributes))
            try:
                if kind == "histogram":
                    tokens, calls = self._histogram(
                        sender, scope, family, attrs, point=point, cumulative=cumulative
                    )
                    if derive:
                        self.cost.on_token_usage(self.store, sender, scope, attrs, tokens=tokens, calls=calls)
                else:
                    value = (
                        point.as_double if point.WhichOneof("value") == "as_double" else float(point.as_int)
                    )
                    self.store.add_number(
                        sender,
                        scope,
                        family,
                        attrs,
                        value=value,
                        start_ns=point.start_time_unix_nano,
                        cumulative=cumulative,
                    )
            except IncompatiblePoint as exc:
                result.reject(1, str(exc))
            else:
                result.accepted += 1

    def _histogram(
        self,
        sender: Sender,
        scope: Scope,
        family: Family,
        attrs: dict[str, str],
        *,
        point: metrics_pb2.HistogramDataPoint,
        cumulative: bool,
    ) -> tuple[float, int]:
        return self.store.add_histogram(
            sender,
            scope,
            family,
            attrs,
            bounds=tuple(point.explicit_bounds),
            counts=list(point.bucket_counts) or [point.count],
            total=point.sum,
            count=point.count,
            start_ns=point.start_time_unix_nano,
            cumulative=cumulative,
        )
