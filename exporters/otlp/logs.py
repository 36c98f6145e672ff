"""OTLP log records → nexus-otel events, rejecting bad records one by one."""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from nexus_otel.events import FIELD_KEYS, Event, from_attributes

from .values import attributes

__all__ = ["DecodedLogs", "decode_logs"]

_TIMESTAMP_KEY = FIELD_KEYS["timestamp"]
_MAX_MESSAGES = 5


@dataclass(slots=True)
class DecodedLogs:
    events: list[Event] = field(default_factory=list)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def reject(self, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < _MAX_MESSAGES and message not in self.errors:
            self.errors.append(message)

    @property
    def error_message(self) -> str:
        more = self.rejected - len(self.errors)
        tail = f" (and {more} more)" if more > 0 and self.errors else ""
        return "; ".join(self.errors) + tail


def decode_logs(request: ExportLogsServiceRequest) -> DecodedLogs:
    """Events from every log record; a record with an unknown event name or bad attribute is rejected.

    The event name is the record's ``event_name`` (OTLP 1.5+) or its ``event.name``
    attribute. A record without ``nexus.timestamp`` takes its OTLP time.
    """
    out = DecodedLogs()
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                attrs = attributes(record.attributes)
                name = record.event_name or attrs.get("event.name")
                if not isinstance(name, str) or not name:
                    out.reject("log record without an event name")
                    continue
                if _TIMESTAMP_KEY not in attrs:
                    nanos = record.time_unix_nano or record.observed_time_unix_nano
                    if nanos:
                        attrs[_TIMESTAMP_KEY] = nanos / 1e9
                try:
                    out.events.append(from_attributes(name, attrs))
                except (ValueError, TypeError) as exc:
                    out.reject(str(exc))
    return out
