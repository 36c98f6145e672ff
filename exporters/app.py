"""The collector's WSGI application: OTLP/HTTP in, Prometheus exposition and health out.

Routes: ``POST /v1/metrics``, ``POST /v1/logs`` (OTLP/HTTP, protobuf or JSON,
optionally gzip), ``GET /metrics`` (Prometheus text or OpenMetrics),
``GET /healthz`` (process up) and ``GET /readyz`` (rollup writable, budgets
loaded). A request is refused with its 4xx before anything is stored; event
batches are acknowledged only once the rollup writer has committed them.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_service
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_service

from nexus_otel.events import Event

from .otlp import (
    DecodedLogs,
    MetricsIngest,
    OtlpHttpError,
    decode_logs,
    encode_message,
    parse_message,
    read_body,
    request_format,
    status_body,
)
from .otlp.body import JSON, PROTOBUF, BodyFormat
from .prometheus import (
    CONTENT_TYPE_OPENMETRICS,
    CONTENT_TYPE_TEXT,
    CollectorMetrics,
    SeriesStore,
    wants_openmetrics,
)
from .rollup.rows import prepare_rows

__all__ = ["CollectorApp", "EventSink", "ReadinessCheck"]

log = logging.getLogger(__name__)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
#: Returns None when ready, else why not.
ReadinessCheck = Callable[[], "str | None"]

_REASONS = {400: "malformed", 401: "unauthorized", 413: "too_large", 415: "unsupported_media_type"}
_STATUS_TEXT = {
    200: "200 OK",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    413: "413 Payload Too Large",
    415: "415 Unsupported Media Type",
    503: "503 Service Unavailable",
}
# google.rpc.Code for the Status body of an error response
_RPC_CODES = {400: 3, 401: 16, 413: 8, 415: 3, 503: 14}
_EXPIRE_EVERY_S = 1.0


class EventSink(Protocol):
    """The rollup writer: ``write`` returns only once the batch is durable.

    A sink that also has ``write_rows`` (every writer of ``exporters.rollup``) gets the
    rows of ``rollup.rows.prepare_rows`` instead, with the model calls the receiver read
    straight into rows.
    """

    def write(self, events: Sequence[Event]) -> object: ...


@dataclass(slots=True)
class _Response:
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


class CollectorApp:
    """A WSGI callable; build one with :func:`exporters.server.build_collector`."""

    def __init__(
        self,
        *,
        store: SeriesStore,
        ingest: MetricsIngest,
        metrics: CollectorMetrics,
        event_sink: EventSink | None,
        max_body_bytes: int,
        auth_token: str | None = None,
        readiness: Sequence[ReadinessCheck] = (),
    ) -> None:
        self.store = store
        self.ingest = ingest
        self.metrics = metrics
        self.event_sink = event_sink
        self.max_body_bytes = max_body_bytes
        self._auth = f"Bearer {auth_token}".encode() if auth_token else None
        self.readiness = list(readiness)
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._next_expiry = 0.0
        metrics.series.set_function(lambda: store.series_count)
        metrics.queue_depth.set_function(lambda: self._waiting)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path in ("/v1/metrics", "/v1/logs"):
            response = self._otlp(environ, signal=path[4:]) if method == "POST" else _text(405, "use POST")
        elif path in ("/metrics", "/healthz", "/readyz"):
            if method not in ("GET", "HEAD"):
                response = _text(405, "use GET")
            elif path == "/metrics":
                response = self._exposition(environ.get("HTTP_ACCEPT"))
            elif path == "/healthz":
                response = _text(200, "ok")
            else:
                response = self._ready()
        else:
            response = _text(404, f"no route {path}")
        headers = [("Content-Type", response.content_type), ("Content-Length", str(len(response.body)))]
        headers.extend(response.headers)
        start_response(_STATUS_TEXT.get(response.status, str(response.status)), headers)
        return [b""] if method == "HEAD" else [response.body]

    # --- OTLP ---------------------------------------------------------------------
    def _otlp(self, environ: dict[str, Any], *, signal: str) -> _Response:
        fmt: BodyFormat = "protobuf"
        try:
            self._authorize(environ.get("HTTP_AUTHORIZATION"))
            fmt = request_format(environ.get("CONTENT_TYPE"))
            body = read_body(
                environ["wsgi.input"],
                content_length=environ.get("CONTENT_LENGTH"),
                content_encoding=environ.get("HTTP_CONTENT_ENCODING"),
                max_bytes=self.max_body_bytes,
            )
            if signal == "metrics":
                return self._metrics(
                    parse_message(body, fmt, metrics_service.ExportMetricsServiceRequest), fmt
                )
            request = parse_message(body, fmt, logs_service.ExportLogsServiceRequest)
            return self._logs(request, fmt, body if fmt == "protobuf" else None)
        except OtlpHttpError as exc:
            self.metrics.rejected.labels(signal, _REASONS.get(exc.status, str(exc.status))).inc()
            headers = (("WWW-Authenticate", 'Bearer realm="otlp"'),) if exc.status == 401 else ()
            return _status(exc.status, exc.message, fmt, headers)

    def _authorize(self, header: str | None) -> None:
        if self._auth is None:
            return
        if not hmac.compare_digest((header or "").encode(), self._auth):
            raise OtlpHttpError(401, "missing or invalid bearer token")

    def _metrics(self, request: metrics_service.ExportMetricsServiceRequest, fmt: BodyFormat) -> _Response:
        self._maybe_expire()
        result = self.ingest.ingest(request)
        self.metrics.batches_received.labels("metrics").inc()
        response = metrics_service.ExportMetricsServiceResponse()
        if result.rejected:
            self.metrics.rejected.labels("metrics", "invalid_data_point").inc(result.rejected)
            response.partial_success.rejected_data_points = result.rejected
            response.partial_success.error_message = result.error_message
        return _message(response, fmt)

    def _logs(
        self, request: logs_service.ExportLogsServiceRequest, fmt: BodyFormat, body: bytes | None
    ) -> _Response:
        decoded = decode_logs(request, body=body)
        response = logs_service.ExportLogsServiceResponse()
        rejected, message = decoded.rejected, decoded.error_message
        if len(decoded):
            if self.event_sink is None:
                rejected += len(decoded)
                message = "; ".join(m for m in (message, "no rollup configured: events are not stored") if m)
                self.metrics.rejected.labels("logs", "no_rollup").inc(len(decoded))
            else:
                try:
                    self._commit(decoded)
                except Exception as exc:
                    log.exception("rollup write failed; the sender will retry")
                    self.metrics.rejected.labels("logs", "rollup_unavailable").inc()
                    return _status(503, f"rollup unavailable: {exc}", fmt, (("Retry-After", "5"),))
        if decoded.rejected:
            self.metrics.rejected.labels("logs", "invalid_log_record").inc(decoded.rejected)
        self.metrics.batches_received.labels("logs").inc()
        if rejected:
            response.partial_success.rejected_log_records = rejected
            response.partial_success.error_message = message
        return _message(response, fmt)

    def _commit(self, decoded: DecodedLogs) -> None:
        sink = self.event_sink
        assert sink is not None
        with self._waiting_lock:
            self._waiting += 1
        started = time.perf_counter()
        try:
            write_rows = getattr(sink, "write_rows", None)
            if write_rows is not None:  # model calls go on as the rows they were read into
                rows = prepare_rows(decoded.events)
                rows.add_calls(decoded.call_rows)
                write_rows(rows)
            else:
                sink.write(decoded.all_events())
        finally:
            with self._waiting_lock:
                self._waiting -= 1
        self.metrics.rollup_commit_seconds.observe(time.perf_counter() - started)
        self.metrics.events_received.inc(len(decoded))

    # --- Prometheus and health -------------------------------------------------------
    def _maybe_expire(self) -> None:
        now = time.monotonic()
        if now >= self._next_expiry:
            self._next_expiry = now + _EXPIRE_EVERY_S
            self.store.expire()

    def _exposition(self, accept: str | None) -> _Response:
        self._maybe_expire()
        openmetrics = wants_openmetrics(accept)
        text = self.store.render(openmetrics=openmetrics) + self.metrics.render(openmetrics=openmetrics)
        return _Response(200, text.encode(), CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_TEXT)

    def _ready(self) -> _Response:
        problems = [p for p in (check() for check in self.readiness) if p]
        if problems:
            return _text(503, "not ready: " + "; ".join(problems))
        return _text(200, "ready")


def _text(status: int, text: str) -> _Response:
    return _Response(status, f"{text}\n".encode(), "text/plain; charset=utf-8")


def _message(message: Any, fmt: BodyFormat) -> _Response:
    return _Response(200, encode_message(message, fmt), PROTOBUF if fmt == "protobuf" else JSON)


def _status(
    status: int, message: str, fmt: BodyFormat, headers: tuple[tuple[str, str], ...] = ()
) -> _Response:
    body = status_body(_RPC_CODES.get(status, 2), message, fmt)
    return _Response(status, body, PROTOBUF if fmt == "protobuf" else JSON, headers)
