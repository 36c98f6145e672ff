"""The receiver's fast log-record decode gives exactly the reference reading, event or error, record by record."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import random
from collections.abc import Iterator

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from exporters.otlp import call_rows, decode_logs
from exporters.otlp.logs import decode_record
from exporters.rollup.rows import prepare_rows
from nexus_otel.events import (
    FIELD_KEYS,
    FeatureUseEvent,
    FeedbackEvent,
    ModelCallEvent,
    RevenueEvent,
    SessionEvent,
)
from nexus_otel.otlp_wire import encode_logs_request

EVENTS = [
    ModelCallEvent(
        timestamp=1_767_225_600.25,
        request_id="r-1",
        user_id="u-é",
        session_id="s",
        team="t",
        project="p",
        feature="f",
        model="gpt-4o",
        response_model="gpt-4o-2024",
        provider="openai",
        server_address="api.openai.com",
        input_tokens=300,
        output_tokens=12,
        cache_read_tokens=100,
        cache_write_tokens=3,
        reasoning_tokens=4,
        cost_usd=0.0123,
        baseline_cost_usd=0.05,
        priced=False,
        latency_s=1.5,
        ttft_s=0.2,
        streamed=True,
        outcome="error",
        error_type="RateLimitError",
        routed=True,
        routed_from="gpt-4.1",
        router_confidence=0.75,
    ),
    ModelCallEvent(timestamp=1_767_225_601.0, model="m", provider="p"),
    FeatureUseEvent(timestamp=1_767_225_602.0, user_id="u", feature="search", count=3),
    FeedbackEvent(timestamp=1_767_225_603.0, request_id="r-1", score=0.5, model="m", comment_length=7),
    RevenueEvent(timestamp=1_767_225_604.0, user_id="u", amount_usd=12.5, plan="pro"),
    SessionEvent(timestamp=1_767_225_605.0, session_id="s", state="ended", duration_s=30.0),
]


def _records(events: list) -> list[LogRecord]:
    body = encode_logs_request(events, resource=b"", scope=b"")
    request = ExportLogsServiceRequest.FromString(body)
    return list(request.resource_logs[0].scope_logs[0].log_records)


def _reference(record: LogRecord) -> object:
    try:
        return decode_record(record)
    except ValueError as exc:
        return ("rejected", str(exc))


@contextlib.contextmanager
def _reader(path: str) -> Iterator[None]:
    """``python``: the bytes read by ``call_rows``' Python reader even where the C one is built."""
    saved = call_rows._accelerated
    if path == "python":
        call_rows._accelerated = None
    try:
        yield
    finally:
        call_rows._accelerated = saved


def _decode(request: ExportLogsServiceRequest, body: bytes | None, path: str):
    with _reader(path):
        return decode_logs(request, body=None if path == "objects" else body)


def _decoded(record: LogRecord, path: str) -> object:
    """``path``: ``objects`` (the standard message), or the receiver's protobuf path, model calls
    read from the body's bytes by the ``c`` or the ``python`` reader."""
    request = ExportLogsServiceRequest()
    request.resource_logs.add().scope_logs.add().log_records.append(record)
    out = _decode(request, request.SerializeToString(), path)
    if out.rejected:
        assert len(out) == 0
        return ("rejected", out.errors[0])
    (event,) = out.all_events()
    return event


_PATHS = ["objects", "python", "c"]
both_paths = pytest.mark.parametrize("from_bytes", _PATHS)
byte_readers = pytest.mark.parametrize("reader", ["python", "c"])


def test_the_c_reader_is_built_and_in_use() -> None:
    # setup.py builds it wherever a C compiler is (CI installs from scratch): fail loudly if it is not
    assert call_rows.accelerated()


@both_paths
def test_the_encoders_records_decode_to_the_recorded_events(from_bytes: str) -> None:
    records = _records(EVENTS)
    assert [_decoded(r, from_bytes) for r in records] == EVENTS


@byte_readers
def test_model_calls_are_read_from_the_bytes_into_the_rows_prepare_rows_makes(reader: str) -> None:
    calls = [EVENTS[0], dataclasses.replace(EVENTS[1], request_id="r-2")] * 2
    body = encode_logs_request([*calls, EVENTS[1], EVENTS[2]], resource=b"", scope=b"")
    out = _decode(ExportLogsServiceRequest.FromString(body), body, reader)
    # no request id (keyed by a digest in prepare_rows) and the feature use: read the reference way
    assert out.events == [EVENTS[1], EVENTS[2]]
    assert out.call_rows == prepare_rows(calls).by_table["model_calls"]


# values of every wire kind for every attribute: the fast path must agree with the reference on each
_VALUES = [
    AnyValue(string_value="x"),
    AnyValue(string_value=""),
    AnyValue(string_value="12"),
    AnyValue(string_value="true"),
    AnyValue(int_value=5),
    AnyValue(int_value=-1),
    AnyValue(int_value=0),
    AnyValue(double_value=2.5),
    AnyValue(bool_value=True),
    AnyValue(bytes_value=b"\x01\xff"),
    AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1)])),
    AnyValue(),
]


def _variants() -> list[LogRecord]:
    out = []
    for template in _records(EVENTS):
        keys = [kv.key for kv in template.attributes] + [FIELD_KEYS["count"], "some.newer.key"]
        for key, value in itertools.product(dict.fromkeys(keys), _VALUES):
            record = LogRecord()
            record.CopyFrom(template)
            replaced = False
            for kv in record.attributes:
                if kv.key == key:
                    kv.value.CopyFrom(value)
                    replaced = True
            if not replaced:
                record.attributes.append(KeyValue(key=key, value=value))
            out.append(record)
    return out


@both_paths
@pytest.mark.parametrize("record", _variants(), ids=lambda r: "")
def test_every_value_kind_of_every_attribute_decodes_like_the_reference(
    record: LogRecord, from_bytes: str
) -> None:
    assert _decoded(record, from_bytes) == _reference(record)


def _edited(template: LogRecord, edit) -> LogRecord:
    record = LogRecord()
    record.CopyFrom(template)
    edit(record)
    return record


def _drop(key: str):
    def edit(record: LogRecord) -> None:
        kept = [kv for kv in record.attributes if kv.key != key]
        del record.attributes[:]
        record.attributes.extend(kept)

    return edit


def _duplicate_last(record: LogRecord) -> None:
    kv = record.attributes[-1]
    record.attributes.append(KeyValue(key=kv.key, value=AnyValue(string_value="later")))


@pytest.mark.parametrize(
    "edit",
    [
        lambda r: r.ClearField("event_name"),  # the name from the event.name attribute
        lambda r: setattr(r, "event_name", "nexus.unknown_thing"),
        _drop(FIELD_KEYS["timestamp"]),  # the OTLP time instead
        lambda r: (_drop(FIELD_KEYS["timestamp"])(r), setattr(r, "time_unix_nano", 0)),
        lambda r: (_drop(FIELD_KEYS["timestamp"])(r), r.ClearField("event_name")),
        lambda r: (
            _drop(FIELD_KEYS["timestamp"])(r),
            setattr(r, "time_unix_nano", 0),
            setattr(r, "observed_time_unix_nano", 1_767_225_700_500_000_000),
        ),
        lambda r: (r.ClearField("event_name"), _drop("event.name")(r)),
        _duplicate_last,
    ],
)
@pytest.mark.parametrize("template", _records(EVENTS), ids=lambda r: r.event_name)
@both_paths
def test_names_times_and_duplicate_keys_decode_like_the_reference(
    template: LogRecord, edit, from_bytes: str
) -> None:
    record = _edited(template, edit)
    assert _decoded(record, from_bytes) == _reference(record)


@both_paths
def test_a_bad_record_is_rejected_alone(from_bytes: str) -> None:
    good, bad = _records([EVENTS[1], EVENTS[1]])
    bad.attributes.append(KeyValue(key=FIELD_KEYS["input_tokens"], value=AnyValue(string_value="many")))
    request = ExportLogsServiceRequest()
    request.resource_logs.add().scope_logs.add().log_records.extend([good, bad, good])
    out = _decode(request, request.SerializeToString(), from_bytes)
    assert out.all_events() == [EVENTS[1], EVENTS[1]]
    assert out.rejected == 1
    assert "'gen_ai.usage.input_tokens' has a value of the wrong type" in out.error_message


def _attribute(kv: bytes) -> bytes:
    return b"\x32" + bytes((len(kv),)) + kv  # LogRecord.attributes = 6


def _kv_bytes(key: bytes, any_value: bytes, *, reverse: bool = False) -> bytes:
    key_field = b"\x0a" + bytes((len(key),)) + key
    value_field = b"\x12" + bytes((len(any_value),)) + any_value
    return _attribute(value_field + key_field if reverse else key_field + value_field)


_MODEL_KEY = FIELD_KEYS["model"].encode()


@pytest.mark.parametrize(
    "extra",
    [
        _kv_bytes(_MODEL_KEY, b"\x0a\x01x", reverse=True),  # value before key
        _kv_bytes(_MODEL_KEY, b"\x0a\x01x\x18\x05"),  # two AnyValue fields: the last one counts
        _kv_bytes(_MODEL_KEY, b"\x18\x05\x0a\x01y"),
        _attribute(
            b"\x0a\x01a\x0a" + bytes((len(_MODEL_KEY),)) + _MODEL_KEY + b"\x12\x03\x0a\x01x"
        ),  # key twice
        _kv_bytes(_MODEL_KEY, b"\x0a\x01x") + _kv_bytes(_MODEL_KEY, b"\x0a\x01z"),  # the later one counts
    ],
    ids=["value-first", "string-then-int", "int-then-string", "key-twice", "repeated-key"],
)
@byte_readers
def test_unusual_attribute_layouts_decode_like_the_reference(extra: bytes, reader: str) -> None:
    record = _records([EVENTS[0]])[0].SerializeToString() + extra  # appended fields add to the record
    body = _field(1, _field(2, _field(2, record)))  # resource_logs / scope_logs / log_records, as sent
    request = ExportLogsServiceRequest.FromString(body)
    reference = _reference(request.resource_logs[0].scope_logs[0].log_records[0])
    out = _decode(request, body, reader)
    assert (("rejected", out.errors[0]) if out.rejected else out.all_events()[0]) == reference


def _field(number: int, payload: bytes) -> bytes:
    length, out = len(payload), bytearray()
    while length >= 0x80:
        out.append(length & 0x7F | 0x80)
        length >>= 7
    out.append(length)
    return bytes((number << 3 | 2,)) + bytes(out) + payload


def _mutations(body: bytes, rng: random.Random, count: int) -> Iterator[bytes]:
    """Bodies a byte off from ``body``: flipped, dropped, inserted, truncated, spliced."""
    for _ in range(count):
        data = bytearray(body)
        for _ in range(rng.choice((1, 1, 2, 3))):
            at = rng.randrange(len(data))
            kind = rng.randrange(5)
            if kind == 0:
                data[at] ^= 1 << rng.randrange(8)
            elif kind == 1:
                data[at] = rng.choice((0x00, 0x01, 0x7F, 0x80, 0xFF, 0x0A, 0x12, 0x18, 0x21, 0x32))
            elif kind == 2:
                del data[at : at + rng.randrange(1, 4)]
            elif kind == 3:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
            else:
                start = rng.randrange(len(data))
                data[at:at] = data[start : start + rng.randrange(1, 40)]
        yield bytes(data)


def _summary(out) -> tuple:
    return sorted(map(repr, out.all_events())), out.rejected, sorted(out.errors)


def test_the_c_reader_decodes_every_mutated_body_as_the_python_reader_does() -> None:
    """Differential: any body protobuf accepts decodes the same through either reader; any bytes
    at all leave the C reader with an answer (rows or a hand-back to Python), never a crash."""
    calls = [dataclasses.replace(EVENTS[0], request_id=f"r-{i}", latency_s=0.5 + i) for i in range(4)]
    request = ExportLogsServiceRequest()
    for part in (calls[:2] + EVENTS[1:3], EVENTS[3:] + calls[2:]):
        scope_logs = request.resource_logs.add().scope_logs
        scope_logs.add().log_records.extend(_records(part[:2]))
        scope_logs.add().log_records.extend(_records(part[2:]))
    body = request.SerializeToString()
    rng = random.Random(20261204)
    compared = 0
    for mutated in _mutations(body, rng, 12_000):
        read = call_rows._accelerated.read(mutated)
        assert read is None or (isinstance(read[0], list) and isinstance(read[1], list))
        try:
            parsed = ExportLogsServiceRequest.FromString(mutated)
        except Exception:
            continue  # the receiver answers 400 before any reader runs
        compared += 1
        assert _summary(_decode(parsed, mutated, "c")) == _summary(_decode(parsed, mutated, "python"))
    assert compared > 1500
