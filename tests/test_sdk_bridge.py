"""The aggregate reaches OTLP exporters with the temporality they ask for."""

from __future__ import annotations

import io
import json

from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ConsoleMetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from nexus_otel import semconv as sc
from nexus_otel.aggregate import AggregatingMetrics
from nexus_otel.sdk_bridge import AggregateProducer, ProducingMetricExporter

KEY = ((sc.REQUEST_MODEL, "m"),)


def _points(out: io.StringIO, name: str) -> list[dict]:
    points = []
    for line in out.getvalue().splitlines():
        doc = json.loads(line)
        for rm in doc["resource_metrics"]:
            for sm in rm["scope_metrics"]:
                for m in sm["metrics"]:
                    if m["name"] == name:
                        points.extend(m["data"]["data_points"])
    return points


def _run(temporality: AggregationTemporality) -> tuple[list[dict], list[dict]]:
    metrics = AggregatingMetrics()
    out = io.StringIO()
    exporter = ConsoleMetricExporter(
        out=out,
        preferred_temporality={Counter: temporality, Histogram: temporality},
        formatter=lambda data: data.to_json(indent=None) + "\n",
    )
    producer = AggregateProducer(metrics, Resource.create({}))
    reader = PeriodicExportingMetricReader(
        ProducingMetricExporter(exporter, producer), export_interval_millis=3_600_000
    )
    provider = MeterProvider(metric_readers=[reader])
    # As configure() does: one always-observed SDK instrument, so every collection reaches the bridge.
    provider.get_meter("t").create_observable_gauge("queued", callbacks=[lambda _o: [Observation(0)]])
    for value in (1.0, 2.0):
        with metrics.lock:
            metrics.add(sc.COST, KEY, value)
            metrics.record(sc.OPERATION_DURATION, KEY, value)
        provider.force_flush()
    provider.shutdown()
    return _points(out, sc.COST.name), _points(out, sc.OPERATION_DURATION.name)


def test_cumulative_exporters_get_running_totals():
    sums, hists = _run(AggregationTemporality.CUMULATIVE)
    assert [p["value"] for p in sums][:2] == [1.0, 3.0]
    assert [p["count"] for p in hists][:2] == [1, 2]


def test_delta_exporters_get_differences_since_their_last_export():
    sums, hists = _run(AggregationTemporality.DELTA)
    assert [p["value"] for p in sums][:2] == [1.0, 2.0]
    assert [(p["count"], p["sum"]) for p in hists][:2] == [(1, 1.0), (1, 2.0)]
