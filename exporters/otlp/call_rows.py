"""Model-call log records read from the request bytes straight into rollup rows.

Reading a record through the upb objects of ``opentelemetry-proto`` builds a
Python object for every key, value, oneof name and field access: ~1 µs per
attribute, ~20 µs per 17-attribute model call, most of a collector core. Here
protobuf parses the body a second time with a lean schema of our own: the
same field numbers down to ``LogRecord``, but ``attributes`` as ``repeated
bytes``, so each attribute arrives as the bytes of its ``KeyValue``, cut in C.
An attribute whose exact bytes were seen before is one dict lookup (labels,
user and session ids, flags and token counts repeat call after call); the rest
(request ids, times, costs, latencies) are parsed from their few bytes. Each
``nexus.model_call`` record becomes the ``model_calls`` row
:func:`~exporters.rollup.rows.prepare_rows` would make of its event.

Only the layout a protobuf encoder writes is read: a ``KeyValue`` is its key
then its value, an ``AnyValue`` one field of the kind the event field expects
(the rule of ``logs._fast``). A record with anything else (another event, a
value needing coercion or refusal, no request id, an empty model, provider,
operation or outcome) is returned by position, and ``logs.decode_logs`` reads
it the reference way from the standard message, so both ways give the same
event or the same error (``tests/test_collector_decode.py``).
"""

from __future__ import annotations

import dataclasses
import struct
from itertools import compress, count, repeat
from operator import is_, itemgetter
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from nexus_otel.events import FIELD_KEYS, ModelCallEvent

__all__ = ["CallRows", "Position", "accelerated", "read_call_rows", "read_call_rows_python"]

#: (resource_logs, scope_logs, log_records) indexes of a record left to the reference reading
Position = tuple[int, int, int]

_unpack_double = struct.Struct("<d").unpack_from
_EVENT_NAME = ModelCallEvent.name.encode()
_STR, _INT, _FLOAT, _BOOL = range(4)
_INT64_SIGN = 1 << 63
_TWO64 = 1 << 64
# Distinct attribute byte strings remembered (~150 bytes each, so at most ~5 MB); cleared when full.
_CACHE_MAX = 32_768


def _lean_request_class() -> Any:
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="nexus_otel_lean_logs.proto", package="nexus_otel.lean", syntax="proto3"
    )
    layout = {
        "Record": [
            ("time_unix_nano", 1, field.TYPE_FIXED64, None),
            ("attributes", 6, field.TYPE_BYTES, "repeated"),
            ("observed_time_unix_nano", 11, field.TYPE_FIXED64, None),
            ("event_name", 12, field.TYPE_BYTES, None),  # bytes: compared, never decoded
        ],
        "Scope": [("log_records", 2, field.TYPE_MESSAGE, ".nexus_otel.lean.Record")],
        "Resource": [("scope_logs", 2, field.TYPE_MESSAGE, ".nexus_otel.lean.Scope")],
        "Request": [("resource_logs", 1, field.TYPE_MESSAGE, ".nexus_otel.lean.Resource")],
    }
    for message, fields in layout.items():
        m = proto.message_type.add(name=message)
        for name, number, kind, extra in fields:
            repeated = extra is not None
            f = m.field.add(
                name=name,
                number=number,
                type=kind,
                label=field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL,
            )
            if kind == field.TYPE_MESSAGE:
                f.type_name = extra
    pool = descriptor_pool.DescriptorPool()  # private: nothing else sees these messages
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("nexus_otel.lean.Request"))


_LeanRequest = _lean_request_class()


def wire_kind(f: dataclasses.Field[Any]) -> int:
    """How an event field travels (``_STR``/``_INT``/``_FLOAT``/``_BOOL``): the same split as
    ``nexus_otel.events`` makes from a field's annotation."""
    ann = str(f.type)
    if "bool" in ann:
        return _BOOL
    if ann.startswith("int"):
        return _INT
    if "float" in ann:
        return _FLOAT
    return _STR


_FIELDS = dataclasses.fields(ModelCallEvent)
_NAMES = [f.name for f in _FIELDS]
_WIDTH = len(_FIELDS)
#: encoded attribute key -> (column, kind)
_PLAN: dict[bytes, tuple[int, int]] = {
    FIELD_KEYS[f.name].encode(): (i, wire_kind(f)) for i, f in enumerate(_FIELDS)
}
_TS, _REQUEST_ID = 0, _NAMES.index("request_id")
_LABEL_NAMES = ("model", "provider", "operation", "outcome")
_LABELS = itemgetter(*(_NAMES.index(n) for n in _LABEL_NAMES))
_MISSING = object()
_DEFAULTS = tuple(_MISSING if f.default is dataclasses.MISSING else f.default for f in _FIELDS)
_COLUMNS = range(_WIDTH)
_IGNORED = (_WIDTH, None)  # event.name and keys of newer senders: ignored, as the reference does


def _double_prefix(key: bytes) -> bytes:
    """What precedes the 8 value bytes of a double attribute with ``key`` (always the same)."""
    any_value_length = 9  # tag + 8 bytes
    return b"\x0a" + bytes((len(key),)) + key + b"\x12" + bytes((any_value_length,)) + b"\x21"


#: the KeyValue bytes before a double value -> column, for the float fields (times, costs)
_DOUBLES = {_double_prefix(k): slot[0] for k, slot in _PLAN.items() if slot[1] == _FLOAT and len(k) < 0x80}


#: a request id's KeyValue up to its value's length byte; then 0x0a, the id's length and the id
_RID_PREFIX = b"\x0a" + bytes((len(FIELD_KEYS["request_id"]),)) + FIELD_KEYS["request_id"].encode() + b"\x12"
_RID_AT = len(_RID_PREFIX)


def _short_request_id(kv: bytes) -> str | None:
    """The id of a request id attribute of fewer than 126 bytes (all of ours), else None."""
    size = len(kv) - _RID_AT
    if kv[_RID_AT] == size - 1 < 0x80 and kv[_RID_AT + 1] == 0x0A and kv[_RID_AT + 2] == size - 3:
        return kv[_RID_AT + 3 :].decode()
    return None


class _Skip(Exception):
    """The record needs the reference reading."""


@dataclasses.dataclass(slots=True)
class CallRows:
    """``rows``: model-call rows in ``prepare_rows``' column order; ``others``: records for the reference."""

    rows: list[tuple[Any, ...]]
    others: list[Position]


_CACHE: dict[bytes, tuple[int, Any]] = {}


def read_call_rows(body: bytes) -> CallRows | None:
    """Rows of the body's model-call records; None if the lean schema cannot parse it.

    ``body`` is a serialized ``ExportLogsServiceRequest`` that protobuf parsed without error.
    The C reader takes it when built; a body it does not follow is read in Python.
    """
    if _accelerated is not None:
        read = _accelerated.read(body)
        if read is not None:
            return CallRows(*read)
    return read_call_rows_python(body)


def read_call_rows_python(body: bytes) -> CallRows | None:
    """:func:`read_call_rows` in Python: the reference for the C reader, and its fallback."""
    try:
        request = _LeanRequest.FromString(body)
    except DecodeError:
        return None
    rows: list[tuple[Any, ...]] = []
    others: list[Position] = []
    cache = _CACHE
    get, doubles, unpack_double, labels = cache.get, _DOUBLES.get, _unpack_double, _LABELS
    for r, resource_logs in enumerate(request.resource_logs):
        for s, scope_logs in enumerate(resource_logs.scope_logs):
            for k, record in enumerate(scope_logs.log_records):
                if record.event_name != _EVENT_NAME:
                    others.append((r, s, k))
                    continue
                attributes = list(record.attributes)
                found = list(map(get, attributes))
                try:
                    # the attributes seen for the first time: times, costs, the request id, new ids
                    for i in compress(count(), map(is_, found, repeat(None))):
                        kv = attributes[i]
                        column = doubles(kv[:-8])
                        if column is not None:
                            found[i] = (column, unpack_double(kv, len(kv) - 8)[0])
                        elif kv.startswith(_RID_PREFIX) and (request_id := _short_request_id(kv)):
                            found[i] = (_REQUEST_ID, request_id)
                        else:
                            found[i] = _read(cache, kv)
                except (_Skip, IndexError, UnicodeDecodeError):
                    others.append((r, s, k))
                    continue
                values = dict(found)  # a repeated key: the last one counts, as in the reference
                row = tuple(map(values.get, _COLUMNS, _DEFAULTS))
                if row[_TS] is _MISSING:
                    nanos = record.time_unix_nano or record.observed_time_unix_nano
                    if not nanos:
                        others.append((r, s, k))
                        continue
                    row = (nanos / 1e9, *row[1:])
                # prepare_rows keys a call without request id by a digest, and refuses empty labels
                if not row[_REQUEST_ID] or not all(labels(row)):
                    others.append((r, s, k))
                    continue
                rows.append(row)
    return CallRows(rows, others)


def _load_accelerated() -> Any:
    """The C reader (``_call_rows_c.c``) configured with this module's schema, or None when not built."""
    try:
        from . import _call_rows_c
    except ImportError:
        return None
    _call_rows_c.configure(
        plan=_PLAN,
        defaults=_DEFAULTS,
        timestamp=_TS,
        request_id=_REQUEST_ID,
        labels=tuple(_NAMES.index(n) for n in _LABEL_NAMES),
        event_name=_EVENT_NAME,
    )
    return _call_rows_c


def _read(cache: dict[bytes, tuple[int, Any]], kv: bytes) -> tuple[int, Any]:
    """(column, value) of one KeyValue's bytes, remembered unless unique per call; ``_Skip`` if unreadable."""
    column = _DOUBLES.get(kv[:-8])
    if column is not None:  # times, costs, latencies: almost never repeat
        return column, _unpack_double(kv, len(kv) - 8)[0]
    hit = _parse(kv)
    if hit[0] != _REQUEST_ID:
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[kv] = hit
    return hit


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _parse(kv: bytes) -> tuple[int, Any]:
    end = len(kv)
    if kv[0] != 0x0A:  # key = 1 first
        raise _Skip
    length, pos = _varint(kv, 1)
    slot = _PLAN.get(kv[pos : pos + length])
    pos += length
    if pos >= end or kv[pos] != 0x12:  # then value = 2, once
        raise _Skip
    length, pos = _varint(kv, pos + 1)
    if pos + length != end or length == 0:
        raise _Skip
    if slot is None:
        return _IGNORED
    column, kind = slot
    tag = kv[pos]
    if kind == _STR:
        if tag != 0x0A:  # string_value = 1
            raise _Skip
        size, start = _varint(kv, pos + 1)
        if start + size != end:
            raise _Skip
        return column, kv[start:].decode()
    if kind == _FLOAT:
        if tag == 0x21 and pos + 9 == end:  # double_value = 4
            return column, _unpack_double(kv, pos + 1)[0]
        if tag == 0x18:  # int_value = 3: an integer where a float is expected is taken as one
            number, stop = _varint(kv, pos + 1)
            if stop != end:
                raise _Skip
            return column, float(number - _TWO64 if number >= _INT64_SIGN else number)
        raise _Skip
    if kind == _INT:
        if tag != 0x18:
            raise _Skip
        number, stop = _varint(kv, pos + 1)
        if stop != end or number >= _INT64_SIGN:  # negative: the reference refuses it
            raise _Skip
        return column, number
    if tag != 0x10 or pos + 2 != end or kv[pos + 1] > 1:  # bool_value = 2, as 0 or 1
        raise _Skip
    return column, kv[pos + 1] == 1


_accelerated = _load_accelerated()


def accelerated() -> bool:
    """True when the C reader is built and in use."""
    return _accelerated is not None
