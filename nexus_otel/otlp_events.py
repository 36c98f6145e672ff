"""Events over OTLP/HTTP as log records, with the official OTLP log exporter.

Used by :func:`nexus_otel.configure` when it is given an OTLP endpoint; needs
the ``[sdk]`` extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from .api_events import to_log_record
from .events import Event
from .otlp_wire import encode_logs_request
from .semconv import INSTRUMENTATION_SCOPE
from .sink import materialize
from .version import __version__

__all__ = ["OtlpEventExporter"]

_SCOPE = InstrumentationScope(INSTRUMENTATION_SCOPE, __version__)


class OtlpEventExporter:
    """Sends each batch of events as one OTLP ``ExportLogsServiceRequest``.

    The request is encoded by :mod:`nexus_otel.otlp_wire` and sent through the
    official exporter's HTTP client (endpoint, headers, compression, retries,
    timeouts from the standard ``OTEL_EXPORTER_OTLP_*`` settings). Should a
    future exporter release not expose that client, batches go through the
    exporter's public ``export()`` with SDK log records instead.
    """

    def __init__(self, exporter: OTLPLogExporter, resource: Resource) -> None:
        from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
        from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceProto

        self._exporter = exporter
        self._resource = resource
        self._send = getattr(getattr(exporter, "_client", None), "export", None)
        self._resource_bytes = ResourceProto(
            attributes=[
                KeyValue(key=k, value=AnyValue(string_value=str(v)))
                for k, v in sorted(resource.attributes.items())
            ]
        ).SerializeToString()
        self._scope_bytes = InstrumentationScope(
            name=_SCOPE.name, version=_SCOPE.version or ""
        ).SerializeToString()

    def export(self, batch: Sequence[Event]) -> None:
        self.export_queued(batch)

    def export_queued(self, batch: Sequence[Event | tuple[Any, ...]]) -> None:
        """Events and model-call value tuples as queued: the tuples are encoded as they are."""
        if self._send is not None:
            body = encode_logs_request(batch, resource=self._resource_bytes, scope=self._scope_bytes)
            result = self._send(body)
            if not getattr(result, "success", False):
                raise RuntimeError(f"OTLP log export failed: {getattr(result, 'error', result)}")
            return
        records = [ReadableLogRecord(to_log_record(materialize(e)), self._resource, _SCOPE) for e in batch]
        result = self._exporter.export(records)
        if getattr(result, "name", "SUCCESS") != "SUCCESS":
            raise RuntimeError(f"OTLP log export failed: {result}")

    def shutdown(self) -> None:
        self._exporter.shutdown()
