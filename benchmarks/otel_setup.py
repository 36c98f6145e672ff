"""A user's own OpenTelemetry SDK set-up, exporting to nowhere.

What an app that runs its own SDK has: a MeterProvider with a reader (the
in-memory reader stands for a Prometheus scrape: cumulative, collected on
demand), and batch span/log processors. Their exporters send OTLP/HTTP to
``otlp_sink.py`` on loopback when an endpoint is given (the same path
nexus-otel's ``configure()`` takes for events), else discard; either way they
count what they were handed, which proves the instrumentation produced it.
Works with the SDK releases in every benchmark virtualenv.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SdkSetup", "install_sdk", "silence_exporter_env"]


def silence_exporter_env(environ: dict[str, str]) -> dict[str, str]:
    """Environment for a benchmark child: no auto-configured exporters, no phone-home."""
    env = dict(environ)
    env.update(
        {
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_SDK_DISABLED": "false",
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false",
            "OPENLIT_DISABLE_TELEMETRY": "true",
            "OPENLIT_COLLECT_GPU_STATS": "false",
            "OPENAI_API_KEY": "sk-benchmark",
            # Batch processors export only when the harness flushes them (after each batch of
            # calls, timed as background export), never in the middle of the timed calls.
            "OTEL_BSP_SCHEDULE_DELAY": "600000",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2048",
            "OTEL_BLRP_SCHEDULE_DELAY": "600000",
            "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "2048",
            # Anything that still tries the network fails at once instead of waiting.
            "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "localhost,127.0.0.1",
        }
    )
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OPENLIT_URL", "OPENLIT_API_KEY"):
        env.pop(var, None)
    return env


@dataclass
class SdkSetup:
    meter_provider: Any
    tracer_provider: Any
    logger_provider: Any
    metric_reader: Any
    exported: dict[str, int] = field(default_factory=lambda: {"spans": 0, "log_records": 0})

    def flush(self) -> None:
        """Export what the batch span and log processors hold."""
        self.tracer_provider.force_flush()
        self.logger_provider.force_flush()

    def flush_counts(self) -> dict[str, int]:
        """Flush, then return how much each exporter received."""
        self.flush()
        return dict(self.exported)

    def metric_points(self) -> int:
        """Number of data points the reader collects now (0 means nothing was recorded)."""
        data = self.metric_reader.get_metrics_data()
        if data is None:
            return 0
        return sum(
            len(metric.data.data_points)
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
        )


def install_sdk(*, set_global: bool = True, otlp_endpoint: str | None = None) -> SdkSetup:
    """Build (and by default install globally) the three SDK providers."""
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    try:
        from opentelemetry.sdk._logs.export import LogRecordExporter as _LogExporter
        from opentelemetry.sdk._logs.export import LogRecordExportResult as _LogResult
    except ImportError:  # SDK releases before the rename
        from opentelemetry.sdk._logs.export import LogExporter as _LogExporter
        from opentelemetry.sdk._logs.export import LogExportResult as _LogResult

    exported = {"spans": 0, "log_records": 0}

    span_otlp = log_otlp = None
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_otlp = OTLPSpanExporter(endpoint=otlp_endpoint.rstrip("/") + "/v1/traces")
        log_otlp = OTLPLogExporter(endpoint=otlp_endpoint.rstrip("/") + "/v1/logs")

    class CountingSpans(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            exported["spans"] += len(spans)
            return span_otlp.export(spans) if span_otlp else SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            if span_otlp:
                span_otlp.shutdown()

    class CountingLogs(_LogExporter):
        def export(self, batch: Sequence[Any]) -> Any:
            exported["log_records"] += len(batch)
            return log_otlp.export(batch) if log_otlp else _LogResult.SUCCESS

        def shutdown(self) -> None:
            if log_otlp:
                log_otlp.shutdown()

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            return True

    resource = Resource.create({"service.name": "benchmark"})
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], resource=resource)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(CountingSpans()))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(CountingLogs()))
    if set_global:
        metrics.set_meter_provider(meter_provider)
        trace.set_tracer_provider(tracer_provider)
        _logs.set_logger_provider(logger_provider)
    setup = SdkSetup(meter_provider, tracer_provider, logger_provider, reader)
    setup.exported = exported
    return setup
