"""End to end: official OTel SDK senders → collector process → real Prometheus → PromQL totals.

Two separate sender processes use the official ``opentelemetry-exporter-otlp-proto-http``
exporters, one with cumulative and gzip, one with delta temporality. Prometheus
(the OS package) scrapes the collector every second; the PromQL results must
equal exactly what was sent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import CollectorProcess, PrometheusServer, start_collector, start_prometheus

pytestmark = pytest.mark.integration

SENDER = textwrap.dedent(
    """
    import sys
    from opentelemetry._logs import LogRecord
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    from nexus_otel import semconv
    from nexus_otel.events import ModelCallEvent

    url, service, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
    resource = Resource.create({"service.name": service, "service.instance.id": f"{service}-1"})
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{url}/v1/metrics"), export_interval_millis=200)
    meters = MeterProvider(metric_readers=[reader], resource=resource)
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{url}/v1/logs")))
    meter = meters.get_meter(semconv.INSTRUMENTATION_SCOPE)
    logger = logs.get_logger(semconv.INSTRUMENTATION_SCOPE)
    duration = meter.create_histogram(semconv.OPERATION_DURATION.name, unit="s",
                                      explicit_bucket_boundaries_advisory=semconv.DURATION_BUCKETS)
    tokens = meter.create_histogram(semconv.TOKEN_USAGE.name, unit="{token}",
                                    explicit_bucket_boundaries_advisory=semconv.TOKEN_BUCKETS)
    cost = meter.create_counter(semconv.COST.name, unit="{USD}")
    for i in range(calls):
        attrs = {semconv.REQUEST_MODEL: "gpt-4o", semconv.PROVIDER: "openai", semconv.TEAM: "search"}
        duration.record(0.25 * (i % 4 + 1), attrs)
        tokens.record(100 + i, {**attrs, semconv.TOKEN_TYPE: "input"})
        tokens.record(10, {**attrs, semconv.TOKEN_TYPE: "output"})
        cost.add(0.125, {**attrs, semconv.COST_TYPE: "input"})
        event = ModelCallEvent(timestamp=1_700_000_000 + i, request_id=f"{service}-{i}", model="gpt-4o",
                               provider="openai", input_tokens=100 + i, output_tokens=10, team="search")
        logger.emit(LogRecord(event_name=event.name, attributes=event.to_attributes()))
    assert meters.force_flush(10_000) and logs.force_flush(10_000)
    meters.shutdown()
    logs.shutdown()
    """
)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[CollectorProcess, PrometheusServer, Path]]:
    tmp = tmp_path_factory.mktemp("e2e")
    collector = start_collector(tmp)
    prometheus = start_prometheus(tmp, [collector.url])
    try:
        yield collector, prometheus, tmp
    finally:
        prometheus.stop()
        assert collector.stop() == 0, collector.log()


def send(tmp: Path, url: str, service: str, calls: int, **env: str) -> None:
    script = tmp / "sender.py"
    script.write_text(SENDER)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "NEXUS_"))}
    child_env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    child_env.update(env)
    done = subprocess.run(
        [sys.executable, str(script), url, service, str(calls)],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def total(prometheus: PrometheusServer, promql: str, expected: float) -> float:
    result = prometheus.wait_for(
        promql, lambda r: len(r) == 1 and float(r[0]["value"][1]) == expected, timeout=30
    )
    return float(result[0]["value"][1])


def test_prometheus_sees_exact_totals_from_cumulative_and_delta_senders(stack) -> None:
    collector, prometheus, tmp = stack
    calls = 40
    send(tmp, collector.url, "cumulative-app", calls, OTEL_EXPORTER_OTLP_COMPRESSION="gzip")
    send(tmp, collector.url, "delta-app", calls, OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="delta")

    input_tokens = sum(100 + i for i in range(calls))
    duration_sum = sum(0.25 * (i % 4 + 1) for i in range(calls))
    for job in ("cumulative-app", "delta-app"):
        sel = f'job="{job}",instance="{job}-1"'
        assert total(prometheus, f"sum(nexus_cost_usd_total{{{sel}}})", 0.125 * calls) == 5.0
        total(prometheus, f"sum(gen_ai_client_operation_duration_seconds_count{{{sel}}})", calls)
        total(prometheus, f"sum(gen_ai_client_operation_duration_seconds_sum{{{sel}}})", duration_sum)
        total(
            prometheus, f'sum(gen_ai_client_operation_duration_seconds_bucket{{{sel},le="0.32"}})', calls / 4
        )
        total(
            prometheus, f'sum(gen_ai_client_token_usage_sum{{{sel},gen_ai_token_type="input"}})', input_tokens
        )
        total(
            prometheus, f'sum(gen_ai_client_token_usage_sum{{{sel},gen_ai_token_type="output"}})', 10 * calls
        )
        total(prometheus, f"count(target_info{{{sel}}})", 1)
    prometheus.wait_for('sum(nexus_collector_batches_received_total{signal="logs"}) > 0')
    assert prometheus.targets_up()
