"""Events over OTLP/HTTP as log records, with the official OTLP log exporter.

Used by :func:`nexus_otel.configure` when it is given an OTLP endpoint; needs
the ``[sdk]`` extra.
"""

from __future__ import annotations

import inspect
import os
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
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

__all__ = ["OtlpEventExporter", "log_exporter"]

_SCOPE = InstrumentationScope(INSTRUMENTATION_SCOPE, __version__)


def log_exporter(endpoint: str, headers: Mapping[str, str] | None = None) -> OTLPLogExporter:
    """The official OTLP/HTTP log exporter for ``endpoint``, sending through urllib3 when that
    changes nothing but the cost.

    Its default transport, a ``requests`` session, spends ~3.4M instructions per request on
    work for proxies, ``.netrc`` and CA-bundle variables (~70k per event at the default batch of
    50); the exporter's own urllib3 transport sends the same request in ~1.0M. It is used
    only when it behaves the same: no proxy for the endpoint's host (no ``*_proxy`` variable,
    or ``no_proxy`` names the host), no ``.netrc``, no session
    credential provider, and the installed exporter supports choosing a transport (it
    verifies TLS with the same CA bundle and client certificate); otherwise the exporter
    keeps its default.
    """
    transport = _urllib3_transport(urllib.parse.urlsplit(endpoint).hostname or "")
    if transport is not None:
        return OTLPLogExporter(endpoint=endpoint, headers=headers, _transport=transport)  # type: ignore[call-arg]
    return OTLPLogExporter(endpoint=endpoint, headers=headers)


def _urllib3_transport(host: str) -> Any | None:
    env = os.environ
    if (
        (urllib.request.getproxies() and not urllib.request.proxy_bypass(host))
        or env.get("NETRC")
        or (Path.home() / ".netrc").exists()
        or env.get("OTEL_PYTHON_EXPORTER_OTLP_HTTP_LOGS_CREDENTIAL_PROVIDER")
        or env.get("OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER")
        or "_transport" not in inspect.signature(OTLPLogExporter.__init__).parameters
    ):
        return None
    try:
        from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport
    except ImportError:
        return None

    # The TLS settings the default transport would take from the same variables (a requests
    # session lets the CA-bundle variables win over the exporter's certificate setting).
    def setting(name: str) -> str | None:
        return env.get(f"OTEL_EXPORTER_OTLP_LOGS_{name}") or env.get(f"OTEL_EXPORTER_OTLP_{name}")

    bundle = env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE")
    verify, key, cert = (
        bundle or setting("CERTIFICATE") or True,
        setting("CLIENT_KEY"),
        setting("CLIENT_CERTIFICATE"),
    )
    return Urllib3HTTPTransport(verify=verify, cert=(cert, key) if cert and key else cert)


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
