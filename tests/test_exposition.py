"""The collector's Prometheus exposition: names, formats, temporality, TTL, label cap, rebucketing.

Data points come from the official OpenTelemetry SDK, encoded with the official
OTLP protobuf encoder, and go through the collector's own ingest and renderer.
"""

from __future__ import annotations

import subprocess

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from exporters.otlp import MetricsIngest, MetricsResult
from exporters.prometheus import CollectorMetrics, CostDeriver, SeriesStore, prometheus_metric_name
from exporters.prometheus.exposition import render_families
from nexus_otel import semconv
from nexus_otel.cardinality import LabelGuard
from tests.scrape import Scrape

DELTA = {
    Counter: AggregationTemporality.DELTA,
    Histogram: AggregationTemporality.DELTA,
    UpDownCounter: AggregationTemporality.DELTA,
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Collector:
    """The collector's metric path without HTTP: store, ingest, self-metrics."""

    def __init__(
        self, *, ttl: float = 600, max_label_values: int = 200, clock: FakeClock | None = None
    ) -> None:
        self.metrics = CollectorMetrics()
        guard = LabelGuard(
            max_values=max_label_values, on_fold=lambda label: self.metrics.labels_folded.labels(label).inc()
        )
        self.store = SeriesStore(
            series_ttl_s=ttl,
            label_guard=guard,
            on_drop=lambda reason, n: self.metrics.series_dropped.labels(reason).inc(n),
            clock=clock or FakeClock(),
        )
        self.ingest = MetricsIngest(self.store, cost=CostDeriver())

    def send(self, reader: InMemoryMetricReader) -> MetricsResult:
        data = reader.get_metrics_data()  # None when a delta reader has nothing new
        return self.ingest.ingest(encode_metrics(data)) if data else MetricsResult()

    def text(self) -> str:
        return self.store.render(openmetrics=False) + self.metrics.render(openmetrics=False)

    def scrape(self) -> Scrape:
        return Scrape(self.text())


def sdk(service: str = "app", instance: str = "i-1", *, delta: bool = False, **resource: str):
    reader = InMemoryMetricReader(preferred_temporality=DELTA if delta else None)
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"service.name": service, "service.instance.id": instance, **resource}),
    )
    return provider, reader


def instrument(meter, spec: semconv.MetricSpec):
    if spec.kind == "histogram":
        return meter.create_histogram(
            spec.name, unit=spec.unit, explicit_bucket_boundaries_advisory=spec.buckets
        )
    if spec.kind == "counter":
        return meter.create_counter(spec.name, unit=spec.unit)
    return meter.create_up_down_counter(spec.name, unit=spec.unit)


def test_every_contract_metric_keeps_its_prometheus_name() -> None:
    provider, reader = sdk()
    meter = provider.get_meter(semconv.INSTRUMENTATION_SCOPE)
    for spec in semconv.METRICS:
        recorder = instrument(meter, spec)
        (recorder.record if spec.kind == "histogram" else recorder.add)(1, {semconv.TEAM: "search"})
        assert prometheus_metric_name(spec.name, spec.unit, spec.kind).sample == spec.prometheus
    collector = Collector()
    assert collector.send(reader).rejected == 0
    scraped = collector.scrape()
    for spec in semconv.METRICS:
        sample = f"{spec.prometheus}_count" if spec.kind == "histogram" else spec.prometheus
        assert scraped.value(sample, {"job": "app", "instance": "i-1", "nexus_team": "search"}) == 1
        assert scraped.types[spec.prometheus.removesuffix("_total")] == spec.kind


def test_exposition_passes_promtool_and_both_parsers() -> None:
    provider, reader = sdk(**{"deployment.environment": "prod"})
    meter = provider.get_meter(semconv.INSTRUMENTATION_SCOPE, "1.2.3")
    duration = instrument(meter, semconv.OPERATION_DURATION)
    cost = instrument(meter, semconv.COST)
    queued = instrument(meter, semconv.EVENTS_QUEUED)
    tricky = {semconv.FEATURE: 'quote " back\\slash\nnewline', semconv.REQUEST_MODEL: "gpt-4o"}
    duration.record(0.3, tricky)
    duration.record(100.0, tricky)
    cost.add(0.125, tricky)
    queued.add(3)
    collector = Collector()
    collector.send(reader)
    text = collector.text()
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    scraped = Scrape(text)
    labels = {"job": "app", "instance": "i-1", semconv.FEATURE.replace(".", "_"): tricky[semconv.FEATURE]}
    assert scraped.value("gen_ai_client_operation_duration_seconds_count", labels) == 2
    assert scraped.value("gen_ai_client_operation_duration_seconds_bucket", {**labels, "le": "0.32"}) == 1
    assert scraped.value("gen_ai_client_operation_duration_seconds_bucket", {**labels, "le": "+Inf"}) == 2
    assert scraped.value("nexus_cost_usd_total", labels) == 0.125
    assert scraped.value("target_info", {"job": "app", "deployment_environment": "prod"}) == 1

    om = collector.store.render(openmetrics=True) + collector.metrics.render(openmetrics=True)
    assert om.endswith("# EOF\n")
    assert om.count("# EOF") == 1
    families = {f.name: f for f in parse_openmetrics(om)}
    assert families["nexus_cost_usd"].type == "counter"
    assert families["target"].type == "info"
    assert families["gen_ai_client_operation_duration_seconds"].unit == "seconds"


def test_delta_temporality_is_accumulated() -> None:
    provider, reader = sdk(delta=True)
    meter = provider.get_meter("delta-sender")
    tokens = instrument(meter, semconv.TOKEN_USAGE)
    cost = instrument(meter, semconv.COST)
    collector = Collector()
    for amount in (100, 250, 650):
        tokens.record(amount, {semconv.TOKEN_TYPE: "input"})
        cost.add(amount / 1000, {semconv.COST_TYPE: "input"})
        collector.send(reader)
    collector.send(reader)  # an empty delta adds nothing
    scraped = collector.scrape()
    assert scraped.value("gen_ai_client_token_usage_sum") == 1000
    assert scraped.value("gen_ai_client_token_usage_count") == 3
    assert scraped.value("gen_ai_client_token_usage_bucket", {"le": "256.0"}) == 2
    assert scraped.value("nexus_cost_usd_total") == pytest.approx(1.0)


def test_cumulative_restart_continues_the_series() -> None:
    collector = Collector()
    first, first_reader = sdk()
    cost = instrument(first.get_meter("app"), semconv.COST)
    cost.add(5)
    collector.send(first_reader)
    cost.add(2)
    collector.send(first_reader)
    collector.send(first_reader)  # unchanged cumulative value: no increment
    # the process restarts: same identity, new start time, counter from zero
    second, second_reader = sdk()
    instrument(second.get_meter("app"), semconv.COST).add(4)
    collector.send(second_reader)
    assert collector.scrape().value("nexus_cost_usd_total", {"job": "app"}) == 11


def test_silent_sender_series_expire_after_ttl() -> None:
    clock = FakeClock()
    collector = Collector(ttl=60, clock=clock)
    quiet, quiet_reader = sdk("quiet", "q-1")
    busy, busy_reader = sdk("busy", "b-1")
    instrument(quiet.get_meter("x"), semconv.COST).add(1)
    instrument(busy.get_meter("x"), semconv.COST).add(1)
    collector.send(quiet_reader)
    collector.send(busy_reader)
    clock.now += 45
    collector.send(busy_reader)
    clock.now += 30  # quiet: 75 s silent, busy: 30 s
    assert collector.store.expire() == 1
    scraped = collector.scrape()
    assert {s["job"] for s in scraped.series("nexus_cost_usd_total")} == {"busy"}
    assert {s["job"] for s in scraped.series("target_info")} == {"busy"}
    assert scraped.value("nexus_collector_series_dropped_total", {"reason": "ttl"}) == 1
    assert collector.store.series_count == 1


def test_label_cap_folds_new_values_into_other_and_counts_them() -> None:
    collector = Collector(max_label_values=2)
    provider, reader = sdk()
    cost = instrument(provider.get_meter("x"), semconv.COST)
    for model, amount in (("a", 1), ("b", 2), ("c", 4), ("d", 8), ("a", 16)):
        cost.add(amount, {semconv.REQUEST_MODEL: model})
    collector.send(reader)
    scraped = collector.scrape()
    by_model = {s[semconv.REQUEST_MODEL.replace(".", "_")] for s in scraped.series("nexus_cost_usd_total")}
    assert by_model == {"a", "b", "other"}
    assert scraped.value("nexus_cost_usd_total", {"gen_ai_request_model": "other"}) == 12
    assert scraped.value("nexus_cost_usd_total", {"gen_ai_request_model": "a"}) == 17
    assert scraped.value("nexus_collector_labels_folded_total", {"label": semconv.REQUEST_MODEL}) == 2
    # a folded source keeps accumulating into `other` across exports
    cost.add(32, {semconv.REQUEST_MODEL: "c"})
    collector.send(reader)
    assert collector.scrape().value("nexus_cost_usd_total", {"gen_ai_request_model": "other"}) == 44


def test_other_bucket_boundaries_are_mapped_onto_the_contract_buckets() -> None:
    collector = Collector()
    provider, reader = sdk()
    # the SDK's default boundaries, as an instrumentation without advice sends them
    tokens = provider.get_meter("byo").create_histogram(semconv.TOKEN_USAGE.name, unit="{token}")
    for value in (3, 40, 900, 20000):
        tokens.record(value, {semconv.TOKEN_TYPE: "input"})
    collector.send(reader)
    scraped = collector.scrape()
    buckets = {
        le: scraped.value("gen_ai_client_token_usage_bucket", {"le": le})
        for le in ("4.0", "64.0", "1024.0", "65536.0", "+Inf")
    }
    # a source bucket counts from the first contract bound at or above its upper bound:
    # 3 in (0,5] shows from le=16, 20000 in (10000,+Inf) only at +Inf. Never an overcount.
    assert buckets == {"4.0": 0, "64.0": 2, "1024.0": 3, "65536.0": 3, "+Inf": 4}
    assert scraped.value("gen_ai_client_token_usage_count") == 4


def test_conflicting_type_is_rejected_per_point_and_nothing_else_changes() -> None:
    collector = Collector()
    provider, reader = sdk()
    meter = provider.get_meter("x")
    meter.create_counter("shared.name").add(1)
    meter.create_histogram("shared.name").record(1)
    result = collector.send(reader)
    assert result.rejected == 1
    assert "shared.name" in result.error_message
    assert collector.scrape().value("shared_name_total") == 1


def test_render_of_empty_store_is_valid() -> None:
    assert render_families([], [], openmetrics=False) == ""
