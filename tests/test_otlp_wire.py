"""Events sent over OTLP decode, with the official protobuf messages, to exactly what was recorded."""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

import nexus_otel
from nexus_otel.events import FeedbackEvent, ModelCallEvent, RevenueEvent, SessionEvent, from_attributes
from nexus_otel.otlp_wire import encode_logs_request
from nexus_otel.record import CallRecord
from nexus_otel.usage import Usage


def _python(value: AnyValue):
    return getattr(value, value.WhichOneof("value"))


EVENTS = [
    ModelCallEvent(
        timestamp=1_767_225_600.123456,
        request_id="r-1",
        user_id="user-é",  # non-ASCII survives
        team="t",
        model="gpt-4o",
        provider="openai",
        input_tokens=300_000,
        output_tokens=12,
        cache_read_tokens=299_000,
        cost_usd=0.0123456789,
        latency_s=1.5,
        routed=True,
        router_confidence=0.5,
        outcome="error",
        error_type="RateLimitError",
    ),
    FeedbackEvent(timestamp=1_767_225_601.0, request_id="r-1", score=0.75, comment_length=0),
    RevenueEvent(timestamp=1_767_225_602.0, user_id="u", amount_usd=-20.0, plan="pro"),
    SessionEvent(timestamp=1_767_225_603.0, session_id="s", state="ended", duration_s=61.0),
]


def test_wire_encoding_decodes_to_the_same_events():
    resource = Resource(attributes=[]).SerializeToString()
    scope = InstrumentationScope(name="nexus_otel", version="1").SerializeToString()
    request = ExportLogsServiceRequest.FromString(encode_logs_request(EVENTS, resource=resource, scope=scope))
    (rl,) = request.resource_logs
    (sl,) = rl.scope_logs
    assert (sl.scope.name, sl.scope.version) == ("nexus_otel", "1")
    assert len(sl.log_records) == len(EVENTS)
    for record, event in zip(sl.log_records, EVENTS, strict=True):
        attrs = {kv.key: _python(kv.value) for kv in record.attributes}
        assert record.event_name == event.name
        assert record.time_unix_nano == int(event.timestamp * 1e9)
        assert attrs == event.to_attributes()
        assert from_attributes(record.event_name, attrs) == event


@pytest.fixture
def otlp_receiver():
    """A loopback OTLP/HTTP endpoint that keeps the decoded requests (the remote side of the export)."""
    received: list[ExportLogsServiceRequest] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path == "/v1/logs":
                received.append(ExportLogsServiceRequest.FromString(body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args):
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def test_configure_exports_one_event_per_call_over_otlp(otlp_receiver, tmp_path, monkeypatch):
    url, received = otlp_receiver
    monkeypatch.chdir(tmp_path)
    t = nexus_otel.configure(
        otlp_endpoint=url, service_name="svc", event_flush_interval_s=0.05, export_interval_s=60
    )
    try:
        for i in range(120):
            t.recorder.record_call(
                CallRecord(
                    model="gpt-4o",
                    provider="openai",
                    start_time=1_767_225_600.0 + i,
                    duration_s=0.1,
                    usage=Usage(input_tokens=100, output_tokens=10),
                    request_id=f"r{i}",
                    user_id="u1",
                )
            )
        assert t.flush(10)
    finally:
        nexus_otel.shutdown()
    records = [
        r for req in received for rl in req.resource_logs for sl in rl.scope_logs for r in sl.log_records
    ]
    assert sorted(r.time_unix_nano for r in records) == [int((1_767_225_600.0 + i) * 1e9) for i in range(120)]
    resource = {kv.key: _python(kv.value) for kv in received[0].resource_logs[0].resource.attributes}
    assert resource["service.name"] == "svc"
    first = {kv.key: _python(kv.value) for kv in records[0].attributes}
    assert (first["nexus.user.id"], first["gen_ai.usage.input_tokens"]) == ("u1", 100)
    assert first["nexus.cost.usd"] == pytest.approx(100 * 2.5e-6 + 10 * 10e-6)


def _decoded_records(body: bytes) -> list[tuple]:
    """Each log record of a request as the collector reads it: times, name, attributes by key."""
    request = ExportLogsServiceRequest.FromString(body)
    return [
        (
            r.time_unix_nano,
            r.observed_time_unix_nano,
            r.event_name,
            {kv.key: _python(kv.value) for kv in r.attributes},
            len(r.attributes),  # no attribute written twice
        )
        for rl in request.resource_logs
        for sl in rl.scope_logs
        for r in sl.log_records
    ]


def _shapes(values: tuple) -> list[tuple]:
    """``values`` and variants of every field shape the tuple encoder treats apart,
    including the ones it hands to the general encoder."""
    variants = {
        0: [1_767_225_600, 0.0],  # an int timestamp
        1: [None, "u", "ü" * 70],
        2: [None, "s"],
        6: ["", "r" * 63, "r" * 64, "rä", None],  # request ids: empty, longest inline, too long, non-ASCII
        7: ["", "m"],
        12: [0, 1, 127, 128, 16_383, 16_384, 2**21 - 1, 2**21, 2**40, -5, True],  # varint widths
        13: [0, 200_000],
        14: [0, 3],
        15: [0, 70_000],
        16: [0, 5],
        17: [None, 0.0, 1, 0.25],  # cost: absent, zero, an int, a float
        18: [None, 0.5],
        19: [True, False],
        20: [0.0, 2, 1.5],  # latency: the default, an int, a float
        21: [None, 0.1],
        22: [True, False],
        23: ["success", "error"],
        24: [None, "Timeout"],
        25: [True, False],
        26: [None, "big"],
        27: [None, 0.75, 1],
    }
    out = [values]
    for i, options in variants.items():
        out += [(*values[:i], v, *values[i + 1 :]) for v in options]
    return out


def test_a_queued_model_call_encodes_to_the_record_of_its_event_object():
    """The export thread encodes the queued value tuple itself; the collector must see no difference."""
    from nexus_otel.record import call_event_values
    from nexus_otel.sink import materialize

    full = CallRecord(
        model="gpt-4o",
        provider="openai",
        operation="chat",
        start_time=1_767_225_600.25,
        duration_s=1.25,
        usage=Usage(
            input_tokens=1000,
            output_tokens=300,
            cache_read_tokens=400,
            cache_write_5m_tokens=50,
            cache_write_1h_tokens=25,
            reasoning_tokens=100,
        ),
        response_model="gpt-4o-2024-08-06",
        server_address="api.openai.com",
        request_id="r-1",
        user_id="user-é",
        session_id="s",
        team="t",
        project="p",
        feature="f",
        streamed=True,
        ttft_s=0.25,
        routed=True,
        baseline_model="gpt-4o-big",
        router_confidence=0.75,
    )
    failed = CallRecord(
        model="m", provider="anthropic", start_time=1.0, request_id="r-2", error_type="Timeout"
    )
    cost = (0.1, 0.2, 0.0, 0.3, 0.4, 1.0)
    cases = [
        (full, cost, (0.5, 0.5, 0.5, 0.5, 0.5, 2.5), True),
        (full, cost, None, True),  # routed, baseline unpriced: the actual cost stands in
        (failed, None, None, False),
    ]
    resource = Resource(attributes=[]).SerializeToString()
    scope = InstrumentationScope(name="nexus_otel", version="1").SerializeToString()
    checked = 0
    for rec, c, baseline, priced in cases:
        for values in _shapes(call_event_values(rec, c, baseline, priced)):
            event = materialize(values)
            assert isinstance(event, ModelCallEvent)
            # Twice in one request: the second encoding comes from the label and id caches.
            from_tuple = encode_logs_request([values, values], resource=resource, scope=scope)
            from_event = encode_logs_request([event, event], resource=resource, scope=scope)
            assert _decoded_records(from_tuple) == _decoded_records(from_event), values
            assert len(from_tuple) == len(from_event)
            checked += 1
    assert checked > 150
    event = materialize(call_event_values(full, cost, None, True))
    assert (event.cache_write_tokens, event.cost_usd, event.baseline_cost_usd, event.routed_from) == (
        75,
        1.0,
        1.0,
        "gpt-4o-big",
    )
    event = materialize(call_event_values(failed, None, None, False))
    assert (event.outcome, event.error_type, event.priced, event.cost_usd, event.input_tokens) == (
        "error",
        "Timeout",
        False,
        None,
        0,
    )
    # Mixed batches keep their order.
    mixed = [
        call_event_values(full, cost, None, True),
        EVENTS[1],
        call_event_values(failed, None, None, False),
    ]
    request = ExportLogsServiceRequest.FromString(encode_logs_request(mixed, resource=resource, scope=scope))
    names = [r.event_name for r in request.resource_logs[0].scope_logs[0].log_records]
    assert names == [ModelCallEvent.name, EVENTS[1].name, ModelCallEvent.name]


def _send_one_event(endpoint: str) -> None:
    from opentelemetry.sdk.resources import Resource as SdkResource

    from nexus_otel.otlp_events import OtlpEventExporter, log_exporter

    exporter = OtlpEventExporter(
        log_exporter(endpoint + "/v1/logs"), SdkResource.create({"service.name": "svc"})
    )
    try:
        exporter.export([EVENTS[0]])
    finally:
        exporter.shutdown()


@pytest.fixture
def clean_proxy_env(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_events_reach_the_endpoint_directly_without_proxy_settings(otlp_receiver, clean_proxy_env):
    url, received = otlp_receiver
    _send_one_event(url)
    (request,) = received
    (record,) = request.resource_logs[0].scope_logs[0].log_records
    assert {kv.key: _python(kv.value) for kv in record.attributes} == EVENTS[0].to_attributes()


def test_events_go_through_the_proxy_the_environment_names(clean_proxy_env):
    """With a proxy variable set the exporter keeps the default transport, which honours it:
    the request reaches the proxy, addressed to the collector's absolute URL."""
    seen: list[str] = []

    class Proxy(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            return None

    proxy = HTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        clean_proxy_env.setenv("http_proxy", f"http://127.0.0.1:{proxy.server_address[1]}")
        _send_one_event("http://collector.invalid:4318")
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert seen == ["http://collector.invalid:4318/v1/logs"]


def test_events_skip_the_proxy_for_a_host_no_proxy_names(otlp_receiver, clean_proxy_env):
    url, received = otlp_receiver
    clean_proxy_env.setenv("http_proxy", "http://127.0.0.1:9")  # closed: a request through it fails
    clean_proxy_env.setenv("no_proxy", "localhost,127.0.0.1")
    _send_one_event(url)
    assert len(received) == 1
