"""The OTLP/HTTP receiver of a real collector process: formats, compression, auth, limits, bad input.

Bodies are built from the official ``opentelemetry-proto`` messages (and
``google.protobuf.json_format`` for OTLP/JSON); every refused request must leave
the collector's exposition exactly as it was.
"""

from __future__ import annotations

import gzip
import http.client
import json
import urllib.parse
from collections.abc import Iterator

import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from nexus_otel import semconv
from nexus_otel.events import ModelCallEvent
from tests.scrape import Scrape, scrape
from tests.servers import CollectorProcess, start_collector

TOKEN = "s3cret-token"
MAX_BODY = 64 * 1024
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    process = start_collector(
        tmp_path_factory.mktemp("receiver"),
        "--auth-token-env",
        "INGEST_TOKEN",
        "--max-body-bytes",
        str(MAX_BODY),
        env={"INGEST_TOKEN": TOKEN},
    )
    yield process
    assert process.stop() == 0, process.log()


def post(
    url: str,
    body: bytes,
    *,
    content_type: str = "application/x-protobuf",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("POST", parts.path, body=body, headers={"Content-Type": content_type, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def cost_request(
    amount: float, *, service: str = "receiver-test", model: str = "gpt-4o"
) -> ExportMetricsServiceRequest:
    point = metrics_pb2.NumberDataPoint(
        as_double=amount,
        start_time_unix_nano=1,
        time_unix_nano=2,
        attributes=[KeyValue(key=semconv.REQUEST_MODEL, value=AnyValue(string_value=model))],
    )
    metric = metrics_pb2.Metric(
        name=semconv.COST.name,
        unit=semconv.COST.unit,
        sum=metrics_pb2.Sum(
            data_points=[point],
            is_monotonic=True,
            aggregation_temporality=metrics_pb2.AGGREGATION_TEMPORALITY_DELTA,
        ),
    )
    return ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                resource=Resource(
                    attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))]
                ),
                scope_metrics=[
                    metrics_pb2.ScopeMetrics(scope=InstrumentationScope(name="t"), metrics=[metric])
                ],
            )
        ]
    )


def cost_of(collector: CollectorProcess, service: str) -> float:
    return scrape(f"{collector.url}/metrics").value("nexus_cost_usd_total", {"job": service}, default=0.0)


def test_protobuf_json_and_gzip_bodies_are_accepted(collector: CollectorProcess) -> None:
    service = "formats"
    status, headers, body = post(
        f"{collector.url}/v1/metrics", cost_request(1.5, service=service).SerializeToString(), headers=AUTH
    )
    assert status == 200
    assert headers["content-type"] == "application/x-protobuf"
    assert not ExportMetricsServiceResponse.FromString(body).HasField("partial_success")

    as_json = json_format.MessageToJson(cost_request(2.25, service=service)).encode()
    status, headers, body = post(
        f"{collector.url}/v1/metrics", as_json, content_type="application/json", headers=AUTH
    )
    assert status == 200
    assert headers["content-type"] == "application/json"
    json_format.Parse(body, ExportMetricsServiceResponse())

    zipped = gzip.compress(cost_request(4.0, service=service).SerializeToString())
    status, _, _ = post(f"{collector.url}/v1/metrics", zipped, headers={**AUTH, "Content-Encoding": "gzip"})
    assert status == 200
    assert cost_of(collector, service) == 7.75


def test_bad_points_are_rejected_individually_with_partial_success(collector: CollectorProcess) -> None:
    request = cost_request(3.0, service="partial")
    metric = request.resource_metrics[0].scope_metrics[0].metrics.add(name="summary.metric")
    metric.summary.data_points.add(count=1, sum=1.0)
    bad_delta = (
        request.resource_metrics[0]
        .scope_metrics[0]
        .metrics.add(name=semconv.COST.name, unit=semconv.COST.unit)
    )
    bad_delta.sum.is_monotonic = True
    bad_delta.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    bad_delta.sum.data_points.add(as_double=-1.0)
    status, _, body = post(f"{collector.url}/v1/metrics", request.SerializeToString(), headers=AUTH)
    assert status == 200
    partial = ExportMetricsServiceResponse.FromString(body).partial_success
    assert partial.rejected_data_points == 2
    assert "summary" in partial.error_message
    assert "negative" in partial.error_message
    assert cost_of(collector, "partial") == 3.0
    assert (
        scrape(f"{collector.url}/metrics").value(
            "nexus_collector_rejected_total", {"signal": "metrics", "reason": "invalid_data_point"}
        )
        >= 2
    )


def _gzip_bomb() -> bytes:
    return gzip.compress(b"\0" * (MAX_BODY * 64), compresslevel=9)


_VALID = cost_request(1000.0, service="bad-input").SerializeToString()
_WRONG_TYPES = json.dumps(
    {
        "resourceMetrics": [
            {
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": semconv.COST.name,
                                "sum": {
                                    "isMonotonic": True,
                                    "aggregationTemporality": 1,
                                    "dataPoints": [{"asDouble": "lots"}],
                                },
                            }
                        ]
                    }
                ]
            }
        ]
    }
).encode()

BAD_REQUESTS = [
    pytest.param(_VALID[:-7], "application/x-protobuf", AUTH, 400, id="truncated-protobuf"),
    pytest.param(_VALID, "text/plain", AUTH, 415, id="wrong-content-type"),
    pytest.param(
        _VALID, "application/x-protobuf", {**AUTH, "Content-Encoding": "br"}, 415, id="unknown-encoding"
    ),
    pytest.param(
        _gzip_bomb(), "application/x-protobuf", {**AUTH, "Content-Encoding": "gzip"}, 413, id="gzip-bomb"
    ),
    pytest.param(
        _VALID[: len(_VALID) // 2],
        "application/x-protobuf",
        {**AUTH, "Content-Encoding": "gzip"},
        400,
        id="not-gzip",
    ),
    pytest.param(_VALID + b"\0" * MAX_BODY, "application/x-protobuf", AUTH, 413, id="oversized-body"),
    pytest.param(_VALID, "application/x-protobuf", {"Authorization": "Bearer wrong"}, 401, id="bad-token"),
    pytest.param(_VALID, "application/x-protobuf", {}, 401, id="missing-token"),
    pytest.param(_WRONG_TYPES, "application/json", AUTH, 400, id="json-wrong-types"),
    pytest.param(b'{"resourceMetrics": "nope"}', "application/json", AUTH, 400, id="json-wrong-shape"),
    pytest.param(b"{not json", "application/json", AUTH, 400, id="json-malformed"),
]


@pytest.mark.parametrize(("body", "content_type", "headers", "expected"), BAD_REQUESTS)
def test_bad_input_gets_its_4xx_and_changes_nothing(
    collector: CollectorProcess, body: bytes, content_type: str, headers: dict[str, str], expected: int
) -> None:
    before = _stored(collector)
    status, response_headers, response = post(
        f"{collector.url}/v1/metrics", body, content_type=content_type, headers=headers
    )
    assert status == expected, response
    if response_headers.get("content-type") == "application/x-protobuf":
        assert status_pb2.Status.FromString(response).message
    if expected == 401:
        assert response_headers["www-authenticate"].startswith("Bearer")
    assert _stored(collector) == before


def _stored(collector: CollectorProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition except the collector's own counters."""
    samples = Scrape(scrape(f"{collector.url}/metrics").text).samples
    return {k: v for k, v in samples.items() if not k[0].startswith("nexus_collector_")}


def test_health_and_wrong_methods(collector: CollectorProcess) -> None:
    parts = urllib.parse.urlsplit(collector.url)
    for method, path, expected in (
        ("GET", "/healthz", 200),
        ("GET", "/readyz", 200),
        ("GET", "/v1/metrics", 405),
        ("POST", "/metrics", 405),
        ("GET", "/nope", 404),
    ):
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        conn.request(method, path)
        assert conn.getresponse().status == expected, (method, path)
        conn.close()


def test_openmetrics_is_negotiated(collector: CollectorProcess) -> None:
    parts = urllib.parse.urlsplit(collector.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    conn.request(
        "GET", "/metrics", headers={"Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"}
    )
    resp = conn.getresponse()
    text = resp.read().decode()
    conn.close()
    assert resp.getheader("Content-Type").startswith("application/openmetrics-text")
    assert text.endswith("# EOF\n")


def test_log_records_are_judged_one_by_one(collector: CollectorProcess) -> None:
    """Spec-shaped OTLP/JSON (hex trace ids); without --rollup valid events are refused, not lost silently."""
    good = ModelCallEvent(
        timestamp=1_700_000_000.0, request_id="r-1", model="gpt-4o", provider="openai"
    ).to_attributes()
    records = [
        {
            "eventName": semconv.EVENT_MODEL_CALL,
            "attributes": _kv(good),
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "eee19b7ec3c1b174",
        },
        {"eventName": "nexus.unknown_thing", "attributes": _kv({"nexus.timestamp": 1.0})},
        {
            "eventName": semconv.EVENT_MODEL_CALL,
            "attributes": _kv({**good, "gen_ai.usage.input_tokens": "many"}),
        },
    ]
    document = {"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}
    status, _, body = post(
        f"{collector.url}/v1/logs",
        json.dumps(document).encode(),
        content_type="application/json",
        headers=AUTH,
    )
    assert status == 200, body
    partial = json_format.Parse(body, ExportLogsServiceResponse()).partial_success
    assert partial.rejected_log_records == 3
    assert "unknown event name 'nexus.unknown_thing'" in partial.error_message
    assert "'gen_ai.usage.input_tokens' has a value of the wrong type" in partial.error_message
    assert "no rollup configured" in partial.error_message


def _kv(attrs: dict) -> list[dict]:
    def value(v: object) -> dict:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        if isinstance(v, float):
            return {"doubleValue": v}
        return {"stringValue": str(v)}

    return [{"key": k, "value": value(v)} for k, v in attrs.items()]
