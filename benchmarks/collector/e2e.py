"""1. End to end: OTLP log requests from sender processes into a real collector, and its request path in process."""

from __future__ import annotations

import dataclasses
import http.client
import multiprocessing as mp
import shutil
import sqlite3
import struct
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import EVENTS_PER_REQUEST, Collector, log, median
from workload import START_TS, model_call_events

_MARKER = "B00000000"  # request ids are f"{_MARKER}-{template}-{i}"; the batch number replaces the zeros
_NANOS = struct.Struct("<Q")  # time_unix_nano = 1 and observed_time_unix_nano = 11, each after its tag
_SECONDS = struct.Struct("<d")  # the event's timestamp attribute


@dataclasses.dataclass(frozen=True)
class RequestTemplate:
    """One encoded OTLP log request of ``EVENTS_PER_REQUEST`` events, and where its times are.

    :meth:`request` makes request number ``n`` from it: new request ids and the times of
    events ``n * 512 ... n * 512 + 511`` of a stream advancing at 200 events/s. Replaying
    the template's own times would send the same 32k timestamps again and again, which no
    live service does, and every time-ordered index of the rollup would take each of them
    in the middle instead of at its end (3.6x the bytes written per row, measured).
    """

    body: bytes
    time_offsets: tuple[tuple[int, int, int], ...]  # per record: its two fixed64 times, its timestamp double

    def request(self, n: int) -> bytes:
        body = bytearray(self.body.replace(_MARKER.encode(), b"B%08d" % n))
        pack_nanos, pack_seconds = _NANOS.pack_into, _SECONDS.pack_into
        for ts, (time_at, observed_at, seconds_at) in zip(request_times(n), self.time_offsets, strict=True):
            nanos = int(ts * 1e9)
            pack_nanos(body, time_at, nanos)
            pack_nanos(body, observed_at, nanos)
            pack_seconds(body, seconds_at, ts)
        return bytes(body)


def request_times(n: int) -> list[float]:
    """The event times of request number ``n``: a stream advancing at 200 events/s."""
    first = START_TS + n * EVENTS_PER_REQUEST / 200.0
    return [first + i / 200.0 for i in range(EVENTS_PER_REQUEST)]


def log_request_templates(count: int) -> list[RequestTemplate]:
    """``count`` OTLP log requests of 512 events each, consecutive in time, from the product's encoder."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    from nexus_otel.otlp_wire import encode_logs_request
    from nexus_otel.semconv import INSTRUMENTATION_SCOPE
    from nexus_otel.version import __version__

    resource = Resource(
        attributes=[
            KeyValue(key="service.name", value=AnyValue(string_value="bench-app")),
            KeyValue(key="service.instance.id", value=AnyValue(string_value="bench-app-1")),
        ]
    ).SerializeToString()
    scope = InstrumentationScope(name=INSTRUMENTATION_SCOPE, version=__version__).SerializeToString()
    templates = []
    for t in range(count):
        start = START_TS + t * EVENTS_PER_REQUEST / 200.0
        events = [
            dataclasses.replace(e, request_id=f"{_MARKER}-{t:03d}-{i:03d}")
            for i, e in enumerate(model_call_events(EVENTS_PER_REQUEST, seed=t + 1, start_ts=start))
        ]
        body = encode_logs_request(events, resource=resource, scope=scope)
        assert body.count(_MARKER.encode()) == EVENTS_PER_REQUEST
        offsets, at = [], 0
        for e in events:  # the records are in event order; each one's fields after the last one's
            nanos = _NANOS.pack(int(e.timestamp * 1e9))
            found = [body.index(pattern, at) + 1 for pattern in (b"\x09" + nanos, b"\x59" + nanos)]
            found.append(body.index(_SECONDS.pack(e.timestamp), at))
            offsets.append(tuple(found))
            at = max(found)
        templates.append(RequestTemplate(body, tuple(offsets)))
    for n, template in enumerate(templates, start=len(templates)):
        _check_request(template, n)
    return templates


def _check_request(template: RequestTemplate, n: int) -> None:
    """Request ``n`` decodes to the request ids and advancing times it should carry."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    records = (
        ExportLogsServiceRequest.FromString(template.request(n)).resource_logs[0].scope_logs[0].log_records
    )
    for ts, record in zip(request_times(n), records, strict=True):
        attributes = {kv.key: kv.value for kv in record.attributes}
        assert record.time_unix_nano == record.observed_time_unix_nano == int(ts * 1e9)
        assert attributes["nexus.timestamp"].double_value == ts, attributes["nexus.timestamp"]
        assert attributes["nexus.request.id"].string_value.startswith(f"B{n:08d}-")


def _sender_process(
    url: str,
    templates: list[RequestTemplate],
    *,
    first: int,
    stride: int,
    threads: int,
    start_at: float,
    stop_at: float,
    out: Any,
) -> None:
    """``threads`` keep-alive connections, each POSTing body numbers first, first+stride, ..."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

    host, port = url.split("//")[1].split(":")
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def run(slot: int) -> None:
        acked = requests = errors = 0
        latencies: list[float] = []
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        number = first + slot
        step = stride
        last_ack = start_at
        while time.monotonic() < start_at:
            time.sleep(0.001)
        while time.monotonic() < stop_at:
            n = number + 1  # batch numbers start at 1, so no id collides with the zero marker
            body = templates[n % len(templates)].request(n)
            sent = time.monotonic()
            try:
                conn.request("POST", "/v1/logs", body, {"Content-Type": "application/x-protobuf"})
                resp = conn.getresponse()
                payload = resp.read()
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=120)
                number += step
                continue
            requests += 1
            if resp.status == 200 and not ExportLogsServiceResponse.FromString(payload).HasField(
                "partial_success"
            ):
                acked += EVENTS_PER_REQUEST
                last_ack = time.monotonic()
                latencies.append(last_ack - sent)
            else:
                errors += 1
            number += step
        conn.close()
        with lock:
            results.append(
                {
                    "acked": acked,
                    "requests": requests,
                    "errors": errors,
                    "last_ack": last_ack,
                    "lat": latencies,
                }
            )

    workers = [threading.Thread(target=run, args=(slot,)) for slot in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put(results)


def decode_ceiling(templates: list[RequestTemplate], *, repeats: int) -> dict[str, Any]:
    """In-process, one thread: what the collector's request path costs per event before the rollup.

    The path of a protobuf request: parse (which refuses a malformed body), ``decode_logs``
    with the body (model calls read from the bytes into rows), the rows of any other events,
    and the marshal'd frame the committer process receives.
    """
    import marshal

    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from exporters.otlp import decode_logs, parse_message
    from exporters.rollup.rows import prepare_rows

    events = len(templates) * EVENTS_PER_REQUEST
    raw = [t.body for t in templates]
    try:  # this tree's receiver reads model calls from the body's bytes
        decode_logs(parse_message(raw[0], "protobuf", ExportLogsServiceRequest), body=raw[0])
        bodies: list[bytes | None] = list(raw)
    except TypeError:  # an older tree (side-by-side runs): objects only
        bodies = [None] * len(raw)
    parse, decode, prepare, frame = [], [], [], []
    for _ in range(repeats):
        t0 = time.process_time()
        requests = [parse_message(b, "protobuf", ExportLogsServiceRequest) for b in raw]
        t1 = time.process_time()
        decoded = [
            decode_logs(r, body=b) if b is not None else decode_logs(r)
            for r, b in zip(requests, bodies, strict=True)
        ]
        t2 = time.process_time()
        prepared = []
        for d in decoded:
            rows = prepare_rows(d.events)
            if getattr(d, "call_rows", None):
                rows.add_calls(d.call_rows)
            prepared.append(rows)
        t3 = time.process_time()
        for rows in prepared:
            marshal.dumps(rows.by_table, 4)
        t4 = time.process_time()
        parse.append(t1 - t0)
        decode.append(t2 - t1)
        prepare.append(t3 - t2)
        frame.append(t4 - t3)
    per_event = {
        "protobuf_parse_us_per_event": round(1e6 * median(parse) / events, 2),
        "decode_logs_us_per_event": round(1e6 * median(decode) / events, 2),
        "prepare_rows_us_per_event": round(1e6 * median(prepare) / events, 2),
        "marshal_us_per_event": round(1e6 * median(frame) / events, 2),
    }
    total = median(parse) + median(decode) + median(prepare) + median(frame)
    per_event["single_core_ceiling_events_per_s"] = round(events / total)
    log(f"request path in process (CPU time): {per_event}")
    return per_event


def end_to_end(
    workdir: Path,
    templates: list[RequestTemplate],
    *,
    spool: bool,
    duration_s: float,
    processes: int,
    threads: int,
) -> dict[str, Any]:
    mode = "spool" if spool else "direct"
    run_dir = Path(tempfile.mkdtemp(prefix=f"e2e-{mode}-", dir=workdir))
    rollup = run_dir / "rollup.db"
    args = ["--rollup", str(rollup)]
    if spool:
        args += ["--spool", str(run_dir / "spool")]
    collector = Collector(run_dir, *args)
    log(
        f"end to end ({mode}): collector pid {collector.pid} on {collector.url}; "
        f"{processes}x{threads} senders for {duration_s:.0f}s"
    )
    try:
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        start_at = time.monotonic() + 1.0
        stop_at = start_at + duration_s
        senders = [
            ctx.Process(
                target=_sender_process,
                args=(collector.url, templates),
                kwargs={
                    "first": p * threads,
                    "stride": processes * threads,
                    "threads": threads,
                    "start_at": start_at,
                    "stop_at": stop_at,
                    "out": queue,
                },
            )
            for p in range(processes)
        ]
        for s in senders:
            s.start()
        cpu_before = collector.cpu_s()
        parts = [r for _ in senders for r in queue.get(timeout=duration_s + 300)]
        cpu_after, cpu_window = collector.cpu_s(), time.monotonic() - start_at
        for s in senders:
            s.join(timeout=30)
        elapsed = max(r["last_ack"] for r in parts) - start_at
        rss_mb = collector.rss_mb()
        committer_rss_mb = collector.committer_rss_mb()
        _, metrics_body = collector.get("/metrics")
    finally:
        stopped_at = time.monotonic()
        code = collector.stop()
        stop_s = time.monotonic() - stopped_at
    acked = sum(r["acked"] for r in parts)
    latencies = sorted(x for r in parts for x in r["lat"])
    with sqlite3.connect(rollup) as db:
        raw = db.execute("SELECT COUNT(*) FROM model_calls").fetchone()[0]
        agg = db.execute("SELECT COALESCE(SUM(requests), 0) FROM agg_minute").fetchone()[0]
        day = db.execute("SELECT COALESCE(SUM(requests), 0) FROM agg_day").fetchone()[0]
    commit_hist = _commit_histogram(metrics_body.decode())
    result = {
        "mode": mode,
        "senders": processes * threads,
        "duration_s": round(elapsed, 2),
        "requests": sum(r["requests"] for r in parts),
        "errors": sum(r["errors"] for r in parts),
        "acked_events": acked,
        "events_per_s": round(acked / elapsed),
        # with --spool, acknowledged is not yet committed: the graceful stop waits for the
        # committer to drain the spool, so this counts the backlog left at the end too
        "committed_events_per_s": round(acked / (elapsed + stop_s)),
        "request_latency_p50_ms": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
        "request_latency_p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 1)
        if latencies
        else None,
        "committed_rows": raw,
        "agg_minute_requests": agg,
        "agg_day_requests": day,
        "rows_match": raw == acked == agg == day,
        "collector_rss_mb": round(rss_mb, 1),
        "committer_rss_mb": round(committer_rss_mb, 1),
        # cores used during the traffic window (the machine is shared: what each process got)
        "collector_cores": round((cpu_after["collector"] - cpu_before["collector"]) / cpu_window, 2),
        "committer_cores": round((cpu_after["committer"] - cpu_before["committer"]) / cpu_window, 2),
        # CPU each process spent per acknowledged event during the window: what bounds the
        # rate on a machine whose cores are shared
        "collector_cpu_us_per_event": round(
            1e6 * (cpu_after["collector"] - cpu_before["collector"]) / acked, 1
        )
        if acked
        else None,
        "committer_cpu_us_per_event": round(
            1e6 * (cpu_after["committer"] - cpu_before["committer"]) / acked, 1
        )
        if acked
        else None,
        "graceful_stop_s": round(stop_s, 2),
        "exit_code": code,
        **commit_hist,
    }
    log(
        f"end to end ({mode}): {result['events_per_s']:,} events/s, {acked:,} acknowledged, "
        f"cores {result['collector_cores']} + committer {result['committer_cores']}, "
        f"{raw:,} committed, match={result['rows_match']}"
    )
    shutil.rmtree(run_dir, ignore_errors=True)
    return result


def _commit_histogram(text: str) -> dict[str, Any]:
    """Mean rollup commit time and commits, from the collector's own self-metrics."""
    total = count = None
    for line in text.splitlines():
        if line.startswith("nexus_collector_rollup_commit_seconds_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith("nexus_collector_rollup_commit_seconds_count"):
            count = float(line.rsplit(" ", 1)[1])
    if not count:
        return {}
    return {"rollup_writes": int(count), "rollup_write_mean_ms": round(1000 * total / count, 1)}
