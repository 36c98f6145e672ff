"""nexus-otel's metrics through the OpenTelemetry *API*, for apps that run their own SDK.

Histograms are synchronous instruments (the API has no way to hand over a
pre-aggregated histogram). Counters are aggregated in-process and reported
through observable counters at collection time, which is cheaper than a
synchronous ``add`` per number and gives the same cumulative totals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation

from .aggregate import AggregatingMetrics, Key
from .semconv import METRICS, MetricSpec

__all__ = ["ApiMetrics"]


class ApiMetrics(AggregatingMetrics):
    """Counters aggregated here; histograms recorded on the meter's instruments."""

    holds_histograms = False

    def __init__(self, meter: Meter, specs: Iterable[MetricSpec] = METRICS) -> None:
        specs = tuple(specs)
        super().__init__(specs)
        self._instruments: dict[str, Histogram] = {}
        for spec in specs:
            if spec.kind == "histogram":
                self._instruments[spec.name] = meter.create_histogram(
                    spec.name,
                    unit=spec.unit,
                    description=spec.description,
                    explicit_bucket_boundaries_advisory=list(spec.buckets or ()),
                )
            elif spec.kind == "counter":
                meter.create_observable_counter(
                    spec.name,
                    callbacks=[self._observer(spec.name)],
                    unit=spec.unit,
                    description=spec.description,
                )

    def record(self, spec: MetricSpec, key: Key, value: float) -> None:
        self._instruments[spec.name].record(value, dict(key))

    def histogram(self, spec: MetricSpec, key: Key) -> Callable[[float], None]:
        record, attributes = self._instruments[spec.name].record, dict(key)

        def observe(value: float) -> None:
            record(value, attributes)

        return observe

    def _observer(self, name: str):
        def observe(options: CallbackOptions) -> list[Observation]:
            return [Observation(value, dict(key)) for key, value in self.counter_items(name)]

        return observe
