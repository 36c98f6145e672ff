"""The collector process with a rollup, a spool and budgets: what its users rely on.

Events travel the real way: the nexus_otel decorators in this process, the
official OTLP exporter, the collector's /v1/logs, its durable spool, the rollup.
"""

from __future__ import annotations

import gzip
import http.client
import os
import signal
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

import nexus_otel
from nexus_otel.clock import SimulatedClock
from tests.scrape import scrape
from tests.servers import CollectorProcess, start_collector, wait_until

pytestmark = pytest.mark.integration

TABLES = ("model_calls", "feature_uses", "feedback", "revenue", "sessions", "agg_minute", "user_day")


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    (tmp_path / "budgets.yaml").write_text("budgets:\n  - team: search\n    monthly_usd: 100\n")
    process = start_collector(
        tmp_path,
        "--rollup", str(tmp_path / "rollup.db"),
        "--spool", str(tmp_path / "spool"),
        "--budgets", str(tmp_path / "budgets.yaml"),
        ready_path="/readyz",
    )  # fmt: skip
    yield process
    process.stop()


def counts(db_path: Path) -> dict[str, int]:
    db = sqlite3.connect(db_path)
    try:
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        db.close()


def send_calls(url: str, calls: list[tuple[float, str]]) -> None:
    """One model call per (time, user) through the decorators, exported over OTLP."""
    nexus_otel.configure(otlp_endpoint=url, service_name="rollup-test", event_flush_interval_s=0.05)
    try:
        with SimulatedClock(start=min(t for t, _ in calls)) as sim:
            for t, user in sorted(calls):
                sim.advance_to(t)
                with nexus_otel.track_model_call(
                    model="gpt-4o", provider="openai", user_id=user, team="search"
                ) as call:
                    call.record_usage(input_tokens=1000, output_tokens=100)
    finally:
        nexus_otel.shutdown()


def test_active_users_gauge_counts_distinct_users_per_trailing_window(collector, tmp_path):
    now = time.time()
    send_calls(
        collector.url,
        [(now - 3600, "ann"), (now - 1800, "ann"), (now - 3 * 86400, "bob"), (now - 20 * 86400, "cid"),
         (now - 40 * 86400, "dee")],
    )  # fmt: skip
    wait_until(
        lambda: counts(tmp_path / "rollup.db")["model_calls"] == 5, timeout_s=20, what="5 calls committed"
    )
    metrics = scrape(f"{collector.url}/metrics")
    assert [metrics.value("nexus_active_users", {"window": w}) for w in ("1d", "7d", "30d")] == [1, 2, 3]
    # spend of the search team this month comes from the same committed events
    assert metrics.value("nexus_spend_month_to_date_usd", {"nexus_team": "search"}) > 0


def test_sigterm_commits_every_acknowledged_event_from_the_spool(collector, tmp_path):
    now = time.time()
    send_calls(collector.url, [(now - i, f"user-{i % 7}") for i in range(300)])  # acknowledged on return
    assert collector.stop() == 0, collector.log()
    assert counts(tmp_path / "rollup.db")["model_calls"] == 300
    assert not any((tmp_path / "spool").glob("*")), "the spool is emptied on a clean stop"


TOKEN = "rollup-token"
MAX_BODY = 64 * 1024


def _logs_body() -> bytes:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.logs.v1 import logs_pb2

    from nexus_otel.events import ModelCallEvent

    attrs = ModelCallEvent(
        timestamp=time.time(), request_id="bad-1", model="gpt-4o", provider="openai"
    ).to_attributes()
    kv = [KeyValue(key=k, value=AnyValue(string_value=v) if isinstance(v, str) else
                   AnyValue(int_value=v) if isinstance(v, int) and not isinstance(v, bool) else
                   AnyValue(bool_value=v) if isinstance(v, bool) else AnyValue(double_value=v))
          for k, v in attrs.items()]  # fmt: skip
    record = logs_pb2.LogRecord(event_name="nexus.model_call", attributes=kv)
    request = ExportLogsServiceRequest(
        resource_logs=[logs_pb2.ResourceLogs(scope_logs=[logs_pb2.ScopeLogs(log_records=[record])])]
    )
    return request.SerializeToString()


_AUTH = {"Authorization": f"Bearer {TOKEN}"}
_BAD_LOGS = [
    pytest.param(lambda b: b[:-5], "application/x-protobuf", _AUTH, 400, id="truncated-protobuf"),
    pytest.param(lambda b: b, "text/plain", _AUTH, 415, id="wrong-content-type"),
    pytest.param(
        lambda b: gzip.compress(b"\0" * MAX_BODY * 64, 9),
        "application/x-protobuf",
        {**_AUTH, "Content-Encoding": "gzip"},
        413,
        id="gzip-bomb",
    ),
    pytest.param(
        lambda b: b * (MAX_BODY // len(b) + 2), "application/x-protobuf", _AUTH, 413, id="oversized"
    ),
    pytest.param(
        lambda b: b, "application/x-protobuf", {"Authorization": "Bearer wrong"}, 401, id="bad-token"
    ),
    pytest.param(lambda b: b, "application/x-protobuf", {}, 401, id="missing-token"),
    pytest.param(
        lambda b: b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": {"x": 1}}]}]}]}',
        "application/json",
        _AUTH,
        400,
        id="json-wrong-types",
    ),
]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CollectorProcess, Path]]:
    tmp = tmp_path_factory.mktemp("guarded")
    process = start_collector(
        tmp,
        "--rollup", str(tmp / "rollup.db"),
        "--auth-token-env", "INGEST_TOKEN",
        "--max-body-bytes", str(MAX_BODY),
        env={"INGEST_TOKEN": TOKEN},
    )  # fmt: skip
    status, _ = _post(process.url, _logs_body(), "application/x-protobuf", _AUTH)
    assert status == 200
    yield process, tmp / "rollup.db"
    process.stop()


def _post(url: str, body: bytes, content_type: str, headers: dict[str, str]) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("POST", "/v1/logs", body=body, headers={"Content-Type": content_type, **headers})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize(("make_body", "content_type", "headers", "expected"), _BAD_LOGS)
def test_bad_log_requests_get_their_4xx_and_change_no_stored_row(
    guarded, make_body, content_type, headers, expected
):
    collector, db_path = guarded
    before = counts(db_path)
    assert before["model_calls"] == 1
    status, body = _post(collector.url, make_body(_logs_body()), content_type, headers)
    assert status == expected, body
    assert counts(db_path) == before


def test_sighup_reloads_budgets_in_the_running_collector(collector, tmp_path):
    path = tmp_path / "budgets.yaml"
    assert scrape(f"{collector.url}/metrics").value("nexus_budget_usd", {"nexus_team": "search"}) == 100
    stat = path.stat()
    path.write_text("budgets:\n  - team: search\n    monthly_usd: 250\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: only SIGHUP can tell
    os.kill(collector.pid, signal.SIGHUP)
    wait_until(
        lambda: scrape(f"{collector.url}/metrics").value("nexus_budget_usd", {"nexus_team": "search"}) == 250,
        timeout_s=10,
        what="the budget to reload on SIGHUP",
    )
