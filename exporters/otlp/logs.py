"""OTLP log records → nexus-otel events, rejecting bad records one by one.

The reference meaning of a record is ``from_attributes(name, attributes(...))``
(every attribute turned into a Python value, then coerced field by field).
That walk costs ~2 µs per attribute over the upb protobuf objects, most of a
collector's CPU per event, so :func:`decode_logs` takes a fast path for the
records senders actually produce: the event name in ``event_name``, and every
known attribute already of its field's wire type (string, int, double, bool).
Such a record is read with one dict lookup per attribute key, no value of an
unknown key is touched, and the event is built from the values as they are.
Anything else (no ``event_name``, an unknown event, a value needing coercion or
refusal) goes through the reference path, so both paths give the same event or
the same error (``tests/test_collector_decode.py`` checks them against each other).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from nexus_otel.events import EVENT_TYPES, FIELD_KEYS, Event, ModelCallEvent, from_attributes

from .call_rows import _FLOAT, _INT, _STR, read_call_rows, wire_kind
from .values import attributes

__all__ = ["DecodedLogs", "decode_logs", "decode_record"]

_TIMESTAMP_KEY = FIELD_KEYS["timestamp"]
_MAX_MESSAGES = 5

# What the fast path accepts per field type; every other value kind takes the reference path.


#: event name -> (class, {attribute key: (field name, wire kind)})
_PLANS: dict[str, tuple[type[Event], dict[str, tuple[str, int]]]] = {
    name: (cls, {FIELD_KEYS[f.name]: (f.name, wire_kind(f)) for f in dataclasses.fields(cls)})
    for name, cls in EVENT_TYPES.items()
}


@dataclass(slots=True)
class DecodedLogs:
    """``call_rows``: model calls read from the body's bytes, already ``model_calls`` rows
    (``call_rows.read_call_rows``); ``events``: every other record read."""

    events: list[Event] = field(default_factory=list)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    call_rows: list[tuple[Any, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.events) + len(self.call_rows)

    def all_events(self) -> list[Event]:
        """Every record read, as events (the rows turned back into the events they came from)."""
        return self.events + [ModelCallEvent(*row) for row in self.call_rows]

    def reject(self, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < _MAX_MESSAGES and message not in self.errors:
            self.errors.append(message)

    @property
    def error_message(self) -> str:
        more = self.rejected - len(self.errors)
        tail = f" (and {more} more)" if more > 0 and self.errors else ""
        return "; ".join(self.errors) + tail


def decode_logs(request: ExportLogsServiceRequest, *, body: bytes | None = None) -> DecodedLogs:
    """Events from every log record; a record with an unknown event name or bad attribute is rejected.

    The event name is the record's ``event_name`` (OTLP 1.5+) or its ``event.name``
    attribute. A record without ``nexus.timestamp`` takes its OTLP time. ``body``, the
    protobuf bytes ``request`` was parsed from, lets model calls be read from the bytes
    into ``call_rows`` (see ``call_rows.py``); the other records are read from ``request``.
    """
    out = DecodedLogs()
    lean = read_call_rows(body) if body is not None else None
    if lean is None:
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    _decode_into(out, record)
        return out
    out.call_rows = lean.rows
    for r, s, k in lean.others:
        _decode_into(out, request.resource_logs[r].scope_logs[s].log_records[k])
    return out


def _decode_into(out: DecodedLogs, record: LogRecord) -> None:
    event = _fast(record)
    if event is None:
        try:
            event = decode_record(record)
        except (ValueError, TypeError) as exc:
            out.reject(str(exc))
            return
    out.events.append(event)


def decode_record(record: LogRecord) -> Event:
    """The reference reading of one record; ``ValueError`` says why it cannot be stored."""
    attrs = attributes(record.attributes)
    name = record.event_name or attrs.get("event.name")
    if not isinstance(name, str) or not name:
        raise ValueError("log record without an event name")
    if _TIMESTAMP_KEY not in attrs:
        nanos = record.time_unix_nano or record.observed_time_unix_nano
        if nanos:
            attrs[_TIMESTAMP_KEY] = nanos / 1e9
    return from_attributes(name, attrs)


def _fast(record: LogRecord) -> Event | None:
    """The event, or None when the record needs the reference path (see the module docstring)."""
    plan = _PLANS.get(record.event_name)
    if plan is None:
        return None
    cls, keys = plan
    kwargs: dict[str, Any] = {}
    for kv in record.attributes:
        slot = keys.get(kv.key)
        if slot is None:  # event.name and keys of newer senders: ignored, as the reference does
            continue
        value = kv.value
        kind = value.WhichOneof("value")
        name, wire = slot
        if wire == _STR:
            if kind != "string_value":
                return None
            kwargs[name] = value.string_value
        elif wire == _FLOAT:
            if kind == "double_value":
                kwargs[name] = value.double_value
            elif kind == "int_value":
                kwargs[name] = float(value.int_value)
            else:
                return None
        elif wire == _INT:
            if kind != "int_value":
                return None
            number = value.int_value
            if number < 0:
                return None
            kwargs[name] = number
        elif kind == "bool_value":
            kwargs[name] = value.bool_value
        else:
            return None
    if "timestamp" not in kwargs:
        nanos = record.time_unix_nano or record.observed_time_unix_nano
        if not nanos:
            return None
        kwargs["timestamp"] = nanos / 1e9
    return cls(**kwargs)
