"""Events over OTLP/HTTP as log records, with the official OTLP log exporter.

Used by :func:`nexus_otel.configure` when it is given an OTLP endpoint; needs
the ``[sdk]`` extra.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from .api_events import to_log_record
from .events import Event
from .semconv import INSTRUMENTATION_SCOPE
from .version import __version__

__all__ = ["OtlpEventExporter"]

_SCOPE = InstrumentationScope(INSTRUMENTATION_SCOPE, __version__)


class OtlpEventExporter:
    """Sends each batch of events as one OTLP ``ExportLogsServiceRequest``."""

    def __init__(self, exporter: OTLPLogExporter, resource: Resource) -> None:
        self._exporter = exporter
        self._resource = resource

    def export(self, batch: Sequence[Event]) -> None:
        records = [ReadableLogRecord(to_log_record(e), self._resource, _SCOPE) for e in batch]
        result = self._exporter.export(records)
        if getattr(result, "name", "SUCCESS") != "SUCCESS":
            raise RuntimeError(f"OTLP log export failed: {result}")

    def shutdown(self) -> None:
        self._exporter.shutdown()
