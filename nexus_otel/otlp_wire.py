"""Encode nexus-otel events as an OTLP ``ExportLogsServiceRequest``, straight to protobuf bytes.

Building one protobuf message object per attribute costs about 2 µs in Python
(~45 µs for a model-call event); writing the wire format directly, with each
attribute key's bytes prepared once, costs a fraction of that. Resource and
scope are encoded once with the official ``opentelemetry-proto`` messages.
``tests/test_otlp_wire.py`` decodes the output with ``opentelemetry-proto`` and
compares it field by field.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any

from .events import Event, ModelCallEvent, _fields_of

__all__ = ["encode_logs_request"]

_double = struct.Struct("<d").pack
_fixed64 = struct.Struct("<Q").pack


_ONE_BYTE = [bytes((n,)) for n in range(0x80)]


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _ONE_BYTE[n]
    if n < 0x4000:  # a record's length, a token count
        return (n & 0x7F | 0x80 | (n >> 7) << 8).to_bytes(2, "little")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(tag << 3 | 2) + _varint(len(payload)) + payload


_KEY_CACHE: dict[str, bytes] = {}


def _key(name: str) -> bytes:
    encoded = _KEY_CACHE.get(name)
    if encoded is None:
        encoded = _KEY_CACHE[name] = _field(1, name.encode())
    return encoded


def _any_value(value: Any) -> bytes:
    t = type(value)
    if t is str:
        raw = value.encode()
        return b"\x0a" + _varint(len(raw)) + raw  # string_value = 1
    if t is bool:
        return b"\x10\x01" if value else b"\x10\x00"  # bool_value = 2
    if t is int:
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)  # int_value = 3 (int64, two's complement)
    return b"\x21" + _double(float(value))  # double_value = 4


def _attribute(key: bytes, any_value: bytes) -> bytes:
    """One ``attributes`` entry (field 6): KeyValue{key, value = AnyValue}."""
    kv = key + b"\x12" + _varint(len(any_value)) + any_value  # value = 2
    return b"\x32" + _varint(len(kv)) + kv


def _log_record(event: Event, attributes: Mapping[str, Any]) -> bytes:
    ts = int(event.timestamp * 1e9)
    parts = [b"\x09" + _fixed64(ts)]  # time_unix_nano = 1 (fixed64)
    for name, value in attributes.items():
        if value is None:
            continue
        parts.append(_attribute(_key(name), _any_value(value)))  # attributes = 6
    parts.append(b"\x59" + _fixed64(ts))  # observed_time_unix_nano = 11 (fixed64)
    parts.append(_field(12, event.name.encode()))  # event_name = 12
    return b"".join(parts)


def _call_layout() -> tuple[tuple[str, bytes, Any], ...]:
    """(name, encoded key, default) of every ModelCallEvent field, in the tuple's order."""
    fields = tuple((name, _key(key), default) for name, key, default in _fields_of(ModelCallEvent))
    # _call_record relies on this layout (the order of call_event_values) and on every
    # key being short enough for an integer attribute's length to fit in one byte.
    if [f[0] for f in fields] != list(_CALL_LAYOUT) or max(len(f[1]) for f in fields) > 100:
        raise RuntimeError(
            "ModelCallEvent's fields changed: update otlp_wire._CALL_LAYOUT"
        )  # pragma: no cover
    return fields


_CALL_LAYOUT = (
    "timestamp", "user_id", "session_id", "team", "project", "feature", "request_id",
    "model", "response_model", "provider", "operation", "server_address",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
    "cost_usd", "baseline_cost_usd", "priced", "latency_s", "ttft_s",
    "streamed", "outcome", "error_type", "routed", "routed_from", "router_confidence",
)  # fmt: skip
_CALL_FIELDS = _call_layout()


def _one(i: int, value: Any) -> bytes:
    """Field ``i``'s attribute as ``_log_record(event, event.to_attributes())`` writes it, or b""."""
    _name, key, default = _CALL_FIELDS[i]
    if value is None or (value == default and i):
        return b""
    return _attribute(key, _any_value(value))


def _double_prefix(i: int) -> bytes:
    # A double attribute always has the same length: only its 8 value bytes differ.
    return _attribute(_CALL_FIELDS[i][1], b"\x21" + _double(0.0))[:-8]


def _int_prefix(i: int, width: int) -> bytes:
    """Field ``i``'s integer attribute up to its varint of ``width`` bytes."""
    key = _CALL_FIELDS[i][1]
    return b"\x32" + _ONE_BYTE[len(key) + 3 + width] + key + b"\x12" + _ONE_BYTE[1 + width] + b"\x18"


_CACHED = 1024  # encoded values (or combinations of values) kept per cache; cleared when full

# The fields that label a call (who, what, how) repeat call after call: together with the
# record's event name they are encoded once per distinct combination, as one piece.
_LABEL_FIELDS = (3, 4, 5, 7, 8, 9, 10, 11, 19, 22, 23, 24, 25, 26)
_LABELS: dict[tuple[Any, ...], bytes] = {}
_EVENT_NAME = _attribute(_key("event.name"), _any_value(ModelCallEvent.name)) + _field(
    12, ModelCallEvent.name.encode()
)  # the event.name attribute and event_name = 12
_USERS: dict[Any, bytes] = {}
_SESSIONS: dict[Any, bytes] = {}
# time_unix_nano = 1 and observed_time_unix_nano = 11 (both fixed64), then the timestamp and
# latency attributes: every call has them, so one pack writes all four.
_TIMESTAMP, _LATENCY = _double_prefix(0), _double_prefix(20)
_TIMES = struct.Struct(f"<BQBQ{len(_TIMESTAMP)}sd{len(_LATENCY)}sd").pack
_DOUBLES = tuple(_double_prefix(i) for i in (17, 18, 21, 27))  # cost, baseline cost, ttft, confidence
# An ASCII request id (ours are 32 hex digits) shorter than 64 characters: everything but
# its bytes is fixed for a given length.
_REQUEST_ID = [
    _attribute(_CALL_FIELDS[6][1], b"\x0a" + _ONE_BYTE[n] + b"?" * n)[: -n or None] for n in range(64)
]
_TOKENS = tuple((_int_prefix(i, 1), _int_prefix(i, 2), _int_prefix(i, 3)) for i in range(12, 17))


def _labels(key: tuple[Any, ...]) -> bytes:
    encoded = _EVENT_NAME + b"".join(_one(i, v) for i, v in zip(_LABEL_FIELDS, key, strict=True))
    if len(_LABELS) >= _CACHED:
        _LABELS.clear()
    _LABELS[key] = encoded
    return encoded


def _id(cache: dict[Any, bytes], i: int, value: Any) -> bytes:
    encoded = cache[value] = _one(i, value)
    if len(cache) > _CACHED:
        cache.clear()
    return encoded


def _general_record(values: tuple[Any, ...], out: list[bytes]) -> None:
    record = _log_record(event := ModelCallEvent(*values), event.to_attributes())
    out += (b"\x12", _varint(len(record)), record)  # log_records = 2


def _call_record(values: tuple[Any, ...], out: list[bytes]) -> None:
    """Append the pieces of the log record of ``ModelCallEvent(*values)`` to ``out``, without
    building the event, its attribute dict or any intermediate bytes.

    The same fields and values as :func:`_log_record` writes for the event object
    (``tests/test_otlp_wire.py`` decodes both and compares them), in a cheaper order:
    the labels of a call come from one cache lookup, the times and latency from one
    ``struct`` pack, token counts below 2**21 are written inline. Values of any other
    shape (never produced by the recorder) take the general path.
    """
    (
        timestamp, user_id, session_id, team, project, feature, request_id,
        model, response_model, provider, operation, server_address,
        _in, _out, _cache_read, _cache_write, _reasoning,
        cost, baseline, priced, latency, ttft,
        streamed, outcome, error_type, routed, routed_from, confidence,
    ) = values  # fmt: skip
    if not (
        type(timestamp) is float
        and type(latency) is float
        and latency
        and type(request_id) is str
        and 0 < len(request_id) < 64
        and request_id.isascii()
    ):
        _general_record(values, out)
        return
    # In the order of _LABEL_FIELDS.
    label_key = (
        team, project, feature, model, response_model, provider, operation, server_address,
        priced, streamed, outcome, error_type, routed, routed_from,
    )  # fmt: skip
    nanos = int(timestamp * 1e9)
    parts = [
        _TIMES(0x09, nanos, 0x59, nanos, _TIMESTAMP, timestamp, _LATENCY, latency),
        _LABELS.get(label_key) or _labels(label_key),
        _REQUEST_ID[len(request_id)],
        request_id.encode(),
    ]
    if user_id is not None:
        parts.append(_USERS.get(user_id) or _id(_USERS, 1, user_id))
    if session_id is not None:
        parts.append(_SESSIONS.get(session_id) or _id(_SESSIONS, 2, session_id))
    for prefixes, n in zip(_TOKENS, values[12:17], strict=True):
        if type(n) is not int or not 0 <= n < 0x200000:
            _general_record(values, out)
            return
        if n < 0x80:
            if n:
                parts += (prefixes[0], _ONE_BYTE[n])
        elif n < 0x4000:
            parts += (prefixes[1], (n & 0x7F | 0x80 | (n >> 7) << 8).to_bytes(2, "little"))
        else:
            varint = n & 0x7F | 0x80 | (n >> 7 & 0x7F | 0x80) << 8 | (n >> 14) << 16
            parts += (prefixes[2], varint.to_bytes(3, "little"))
    for prefix, value in zip(_DOUBLES, (cost, baseline, ttft, confidence), strict=True):
        if type(value) is float:
            parts += (prefix, _double(value))
        elif value is not None:
            _general_record(values, out)
            return
    record = b"".join(parts)
    out += (b"\x12", _varint(len(record)), record)  # log_records = 2


def encode_logs_request(events: Iterable[Event | tuple[Any, ...]], *, resource: bytes, scope: bytes) -> bytes:
    """One request holding every event; ``resource``/``scope`` are pre-encoded messages.

    An item may also be a model call's value tuple (:func:`nexus_otel.record.call_event_values`),
    encoded to the same log record as the :class:`ModelCallEvent` it stands for.
    """
    pieces: list[bytes] = []
    for e in events:
        if type(e) is tuple:
            _call_record(e, pieces)
        else:
            pieces.append(_field(2, _log_record(e, e.to_attributes())))  # type: ignore[union-attr]
    # The enclosing messages' headers only need the records' total length: the records
    # are copied once, into the request, instead of once per nesting level.
    scope_field = _field(1, scope)  # ScopeLogs.scope = 1
    scope_logs = len(scope_field) + sum(map(len, pieces))
    resource_field = _field(1, resource)  # ResourceLogs.resource = 1
    scope_logs_header = b"\x12" + _varint(scope_logs)  # ResourceLogs.scope_logs = 2
    resource_logs = len(resource_field) + len(scope_logs_header) + scope_logs
    head = b"\x0a" + _varint(resource_logs) + resource_field + scope_logs_header + scope_field
    return b"".join((head, *pieces))  # resource_logs = 1
