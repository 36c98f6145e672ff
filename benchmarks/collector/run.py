"""The collector's throughput, rollup write speed, /metrics render time and memory, in one run.

    python benchmarks/collector/run.py            # full run (~6 minutes on 2 cores)
    python benchmarks/collector/run.py --quick    # smoke run: smaller sizes, shorter windows

1. End to end: ``nexus-otel collector --rollup FILE`` (and again with ``--spool DIR``)
   as a subprocess on a free loopback port; client processes POST pre-encoded
   OTLP/HTTP protobuf log requests of 512 model-call events each (encoded by
   ``nexus_otel.otlp_wire``, the SDK exporter's encoder) for ``--duration``
   seconds. Acknowledged events/s; after a graceful stop the rollup must hold
   exactly the acknowledged events (raw rows and ``agg_minute`` request sums).
2. Rollup commit rows/s: ``RollupWriter.write`` of ``--events`` events in
   batches of ``--batch`` against plain ``sqlite3`` ``executemany`` of the same
   rows into a bare table (same columns, WAL, ``synchronous=FULL``, one commit
   per batch), batch by batch interleaved so both see the same machine noise.
3. ``/metrics`` render: 1k/10k/100k series ingested into the collector's
   ``SeriesStore`` through its OTLP metrics ingest, rendered against
   prometheus-client's ``generate_latest`` of a registry holding the same
   series (same names, help, labels, buckets and values; checked sample by
   sample at 1k and 10k).
4. RSS: VmRSS of a collector process (with a rollup) idle, then after
   ingesting 10k and 100k series over OTLP/HTTP; with ``GET /metrics`` timing.

Progress goes to stderr, a Markdown table to stdout, every figure to
``benchmarks/results/collector.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path[:0] = [str(REPO), str(HERE)]

from workload import START_TS, model_call_events  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "collector.json"
EVENTS_PER_REQUEST = 512
TARGETS = {
    "e2e_events_per_s": 50_000,
    "rollup_vs_executemany_max_slowdown": 2.0,
    "metrics_render_min_speedup": 3.0,
    "rss_mb_at_100k_max": 300,
}


def log(message: str) -> None:
    sys.stderr.write(f"[collector-bench] {message}\n")
    sys.stderr.flush()


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# --- the collector process ----------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Collector:
    """``python -m nexus_otel collector`` on a free loopback port; stopped by its own pid."""

    def __init__(self, workdir: Path, *args: str, timeout_s: float = 30.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"collector-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "OTEL_"))}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        command = [sys.executable, "-m", "nexus_otel", "collector", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--log-level", "warning", *args]
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env
            )
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"collector exited with {self.process.returncode}:\n{self.log()}")
            if self._status("/readyz") == 200:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"collector not ready after {timeout_s:.0f}s:\n{self.log()}")
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _status(self, path: str) -> int | None:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=2) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (OSError, http.client.HTTPException):
            return None

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def children(self) -> list[int]:
        """Pids of the collector's child processes (its rollup committer)."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(x) for x in path.read_text().split()] if path.exists() else []

    def committer_rss_mb(self) -> float:
        total = 0.0
        for pid in self.children():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        return total

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds (user + system) so far of the collector and of its committer process(es)."""
        return {"collector": _cpu_s(self.pid), "committer": sum(_cpu_s(pid) for pid in self.children())}

    def get(self, path: str) -> tuple[float, bytes]:
        started = time.perf_counter()
        with urllib.request.urlopen(f"{self.url}{path}", timeout=300) as resp:
            body = resp.read()
        return time.perf_counter() - started, body

    def post(self, path: str, body: bytes) -> bytes:
        request = urllib.request.Request(
            f"{self.url}{path}", data=body, headers={"Content-Type": "application/x-protobuf"}
        )
        with urllib.request.urlopen(request, timeout=300) as resp:
            return resp.read()

    def stop(self, timeout_s: float = 120.0) -> int:
        """SIGTERM (graceful: commits what is spooled), SIGKILL if it does not end in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- 1. end to end --------------------------------------------------------------------------
_MARKER = "B00000000"  # request ids are f"{_MARKER}-{template}-{i}"; the batch number replaces the zeros


def log_request_templates(count: int) -> list[bytes]:
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
    bodies = []
    for t in range(count):
        start = START_TS + t * EVENTS_PER_REQUEST / 200.0
        events = [
            dataclasses.replace(e, request_id=f"{_MARKER}-{t:03d}-{i:03d}")
            for i, e in enumerate(model_call_events(EVENTS_PER_REQUEST, seed=t + 1, start_ts=start))
        ]
        body = encode_logs_request(events, resource=resource, scope=scope)
        assert body.count(_MARKER.encode()) == EVENTS_PER_REQUEST
        bodies.append(body)
    return bodies


def _sender_process(
    url: str,
    templates: list[bytes],
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
    marker = _MARKER.encode()
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
            body = templates[n % len(templates)].replace(marker, b"B%08d" % n)
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


def decode_ceiling(templates: list[bytes], *, repeats: int) -> dict[str, Any]:
    """In-process, one thread: what the collector's request path costs per event before the rollup."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from exporters.otlp import decode_logs, parse_message
    from exporters.rollup.rows import prepare_rows

    events = len(templates) * EVENTS_PER_REQUEST
    parse, decode, prepare = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        requests = [parse_message(b, "protobuf", ExportLogsServiceRequest) for b in templates]
        t1 = time.perf_counter()
        decoded = [decode_logs(r) for r in requests]
        t2 = time.perf_counter()
        for d in decoded:
            prepare_rows(d.events)
        t3 = time.perf_counter()
        parse.append(t1 - t0)
        decode.append(t2 - t1)
        prepare.append(t3 - t2)
    per_event = {
        "protobuf_parse_us_per_event": round(1e6 * median(parse) / events, 2),
        "decode_logs_us_per_event": round(1e6 * median(decode) / events, 2),
        "prepare_rows_us_per_event": round(1e6 * median(prepare) / events, 2),
    }
    per_event["single_core_ceiling_events_per_s"] = round(
        events / (median(parse) + median(decode) + median(prepare))
    )
    log(f"request path in process: {per_event}")
    return per_event


def end_to_end(
    workdir: Path,
    templates: list[bytes],
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


# --- 2. rollup commit rows/s -------------------------------------------------------------------
def rollup_vs_executemany(workdir: Path, *, events: int, batch: int, repeats: int) -> dict[str, Any]:
    from exporters.rollup import RollupWriter
    from exporters.rollup.rows import insert_sql, prepare_rows

    insert = insert_sql("model_calls")
    columns = insert.split("(", 1)[1].split(")", 1)[0]
    bare_insert = insert.replace("INSERT OR IGNORE INTO model_calls", "INSERT INTO bare")
    runs = []
    for r in range(repeats):
        run_dir = Path(tempfile.mkdtemp(prefix="rollup-", dir=workdir))
        writer = RollupWriter(run_dir / "rollup.db", retention_days=None)
        base = sqlite3.connect(run_dir / "bare.db", isolation_level=None)
        base.execute("PRAGMA journal_mode=WAL")
        base.execute("PRAGMA synchronous=FULL")
        base.execute(f"CREATE TABLE bare (id INTEGER PRIMARY KEY, {columns})")
        # the floor for any writer that keeps the schema: the raw insert alone into a migrated
        # rollup's model_calls (its unique request_id, ts, (user_id, ts) ... indexes), no aggregates
        floor_writer = RollupWriter(run_dir / "floor.db", retention_days=None)
        floor_writer.close()
        floor = sqlite3.connect(run_dir / "floor.db", isolation_level=None)
        floor.execute("PRAGMA synchronous=FULL")
        writer_s = base_s = floor_s = 0.0
        generator = model_call_events(events, seed=100 + r)
        for start in range(0, events, batch):
            chunk = [next(generator) for _ in range(min(batch, events - start))]
            rows = prepare_rows(chunk).by_table["model_calls"]  # the baseline gets them ready-made
            t0 = time.perf_counter()
            result = writer.write(chunk)
            t1 = time.perf_counter()
            base.execute("BEGIN")
            base.executemany(bare_insert, rows)
            base.execute("COMMIT")
            t2 = time.perf_counter()
            floor.execute("BEGIN IMMEDIATE")
            floor.executemany(insert, rows)
            floor.execute("COMMIT")
            t3 = time.perf_counter()
            assert result.inserted == len(chunk), result
            writer_s += t1 - t0
            base_s += t2 - t1
            floor_s += t3 - t2
        writer.close()
        base.close()
        floor.close()
        with sqlite3.connect(run_dir / "rollup.db") as db:
            stored = db.execute(
                "SELECT COUNT(*), (SELECT SUM(requests) FROM agg_hour) FROM model_calls"
            ).fetchone()
        assert stored == (events, events), stored
        runs.append(
            {
                "writer_rows_per_s": events / writer_s,
                "executemany_rows_per_s": events / base_s,
                "indexed_insert_rows_per_s": events / floor_s,
            }
        )
        log(
            f"rollup run {r + 1}/{repeats}: RollupWriter {events / writer_s:,.0f} rows/s, "
            f"executemany {events / base_s:,.0f} rows/s, raw insert into indexed model_calls "
            f"{events / floor_s:,.0f} rows/s"
        )
        shutil.rmtree(run_dir, ignore_errors=True)
    writer_rate = median([x["writer_rows_per_s"] for x in runs])
    base_rate = median([x["executemany_rows_per_s"] for x in runs])
    floor_rate = median([x["indexed_insert_rows_per_s"] for x in runs])
    return {
        "events": events,
        "batch": batch,
        "repeats": repeats,
        "writer_rows_per_s": round(writer_rate),
        "executemany_rows_per_s": round(base_rate),
        "slowdown_vs_executemany": round(base_rate / writer_rate, 2),
        "indexed_insert_rows_per_s": round(floor_rate),
        "indexed_insert_slowdown_vs_executemany": round(base_rate / floor_rate, 2),
        "runs": [{k: round(v) for k, v in x.items()} for x in runs],
    }


# --- 3. /metrics render --------------------------------------------------------------------------
_MODELS = ("gpt-4o", "gpt-4o-mini", "o4-mini", "claude-sonnet-4", "claude-haiku-3.5", "gemini-2.0-flash")
_PROVIDERS = ("openai", "openai", "openai", "anthropic", "anthropic", "gcp.gemini")
SERIES_PER_SENDER = 1000  # 500 cost counters + 500 duration histograms


def metrics_request(sender: int, *, round_: int = 1) -> Any:
    """One OTLP metrics request: sender ``pod-NNN`` with 500 counter and 500 histogram series."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
    from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    from nexus_otel import semconv

    def kv(key: str, value: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=value))

    start_ns, now_ns = int(START_TS * 1e9), int((START_TS + 60 * round_) * 1e9)
    bounds = [float(b) for b in semconv.DURATION_BUCKETS]
    cost_points, duration_points = [], []
    for j in range(SERIES_PER_SENDER // 2):
        attrs = [
            kv(semconv.REQUEST_MODEL, _MODELS[j % 6]),
            kv(semconv.PROVIDER, _PROVIDERS[j % 6]),
            kv(semconv.TEAM, f"team-{(j // 6) % 12:02d}"),
            kv(semconv.FEATURE, f"feature-{j // 72:02d}"),
        ]
        cost_points.append(
            m.NumberDataPoint(
                attributes=attrs,
                start_time_unix_nano=start_ns,
                time_unix_nano=now_ns,
                as_double=round_ * (0.125 + j * 0.001 + sender * 1e-6),
            )
        )
        counts = [(j * 7 + i * 3 + sender) % 11 * round_ for i in range(len(bounds) + 1)]
        duration_points.append(
            m.HistogramDataPoint(
                attributes=attrs,
                start_time_unix_nano=start_ns,
                time_unix_nano=now_ns,
                count=sum(counts),
                sum=0.5 * sum(counts) + j * 0.25,
                bucket_counts=counts,
                explicit_bounds=bounds,
            )
        )
    cumulative = m.AGGREGATION_TEMPORALITY_CUMULATIVE
    return ExportMetricsServiceRequest(
        resource_metrics=[
            m.ResourceMetrics(
                resource=Resource(
                    attributes=[
                        kv("service.name", "bench-app"),
                        kv("service.instance.id", f"pod-{sender:03d}"),
                    ]
                ),
                scope_metrics=[
                    m.ScopeMetrics(
                        scope=InstrumentationScope(name="bench"),
                        metrics=[
                            m.Metric(
                                name=semconv.COST.name,
                                unit=semconv.COST.unit,
                                description="Cost of model calls",
                                sum=m.Sum(
                                    data_points=cost_points,
                                    aggregation_temporality=cumulative,
                                    is_monotonic=True,
                                ),
                            ),
                            m.Metric(
                                name=semconv.OPERATION_DURATION.name,
                                unit="s",
                                description="Duration of model calls",
                                histogram=m.Histogram(
                                    data_points=duration_points, aggregation_temporality=cumulative
                                ),
                            ),
                        ],
                    )
                ],
            )
        ]
    )


_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _unescape(value: str) -> str:
    return value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


def build_store(series: int) -> Any:
    from exporters.otlp import MetricsIngest
    from exporters.prometheus import SeriesStore
    from nexus_otel.cardinality import LabelGuard

    store = SeriesStore(series_ttl_s=0, label_guard=LabelGuard(max_values=200))
    ingest = MetricsIngest(store)
    for sender in range(series // SERIES_PER_SENDER):
        result = ingest.ingest(metrics_request(sender))
        assert not result.rejected, result.error_message
    assert store.series_count == series, store.series_count
    return store


def equivalent_registry(store: Any) -> Any:
    """A prometheus-client registry with the store's series as ordinary labelled instruments."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    registry = CollectorRegistry(auto_describe=False)
    targets = Gauge("target_info", "Target metadata", ["job", "instance"], registry=registry)
    for sender in store.senders.values():
        targets.labels(sender.job, sender.instance).set(1)
    for family in store.families.values():
        if not family.series:
            continue
        first = next(iter(family.series.values()))
        names = [k for k, _ in _LABEL.findall(first.labels)]
        if family.kind == "counter":
            metric = Counter(family.name.sample.removesuffix("_total"), family.help, names, registry=registry)
        elif family.kind == "histogram":
            metric = Histogram(
                family.name.family, family.help, names, buckets=family.bounds, registry=registry
            )
        else:
            metric = Gauge(family.name.sample, family.help, names, registry=registry)
        for s in family.series.values():
            child = metric.labels(*(_unescape(v) for _, v in _LABEL.findall(s.labels)))
            if family.kind == "histogram":
                for bucket, count in zip(child._buckets, s.counts, strict=True):
                    bucket.set(count)
                child._sum.set(s.sum)
            elif family.kind == "counter":
                child._value.set(s.value)
            else:
                child.set(s.value)
    return registry


def _samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def render_benchmark(sizes: Sequence[int], *, repeats: int, check_up_to: int) -> list[dict[str, Any]]:
    import gc

    import prometheus_client
    from prometheus_client import generate_latest

    prometheus_client.disable_created_metrics()  # no *_created lines: the same series on both sides
    out = []
    for size in sizes:
        store = build_store(size)
        registry = equivalent_registry(store)
        ours_text = store.render(openmetrics=False)
        theirs_text = generate_latest(registry).decode()
        lines = ours_text.count("\n")
        same = None
        if size <= check_up_to:
            same = _samples(ours_text) == _samples(theirs_text)
            assert same, f"{size} series: the two expositions differ"
        ours, theirs = [], []
        gc.collect()
        for _ in range(repeats):  # interleaved, so both see the same machine noise
            t0 = time.perf_counter()
            store.render(openmetrics=False)
            t1 = time.perf_counter()
            generate_latest(registry)
            t2 = time.perf_counter()
            ours.append(t1 - t0)
            theirs.append(t2 - t1)
        om = []
        for _ in range(max(1, repeats // 2)):
            t0 = time.perf_counter()
            store.render(openmetrics=True)
            om.append(time.perf_counter() - t0)
        row = {
            "series": size,
            "lines": lines,
            "theirs_lines": theirs_text.count("\n"),
            "bytes": len(ours_text),
            "same_samples": same,
            "ours_ms": round(1000 * median(ours), 2),
            "ours_openmetrics_ms": round(1000 * median(om), 2),
            "prometheus_client_ms": round(1000 * median(theirs), 2),
            "ours_us_per_line": round(1e6 * median(ours) / lines, 3),
            "prometheus_client_us_per_line": round(1e6 * median(theirs) / lines, 3),
            "speedup": round(median(theirs) / median(ours), 1),
            "repeats": repeats,
        }
        log(
            f"render {size:,} series ({lines:,} lines): ours {row['ours_ms']} ms, "
            f"generate_latest {row['prometheus_client_ms']} ms, {row['speedup']}x"
        )
        out.append(row)
        del store, registry
    return out


# --- 4. collector RSS -------------------------------------------------------------------------
def rss_benchmark(workdir: Path, sizes: Sequence[int], *, repeats: int) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix="rss-", dir=workdir))
    collector = Collector(run_dir, "--rollup", str(run_dir / "rollup.db"), "--series-ttl", "0")
    rows = []
    try:
        idle = collector.rss_mb()
        log(f"rss: collector pid {collector.pid} idle at {idle:.1f} MB")
        loaded = 0
        for size in sizes:
            for sender in range(loaded // SERIES_PER_SENDER, size // SERIES_PER_SENDER):
                collector.post("/v1/metrics", metrics_request(sender).SerializeToString())
            loaded = size
            # a second round of every sender: cumulative points turn into increments (steady state)
            for sender in range(size // SERIES_PER_SENDER):
                collector.post("/v1/metrics", metrics_request(sender, round_=2).SerializeToString())
            scrapes = [collector.get("/metrics") for _ in range(repeats)]
            body = scrapes[-1][1].decode()
            found = body.count("\ngen_ai_client_operation_duration_seconds_count{") + body.count(
                "\nnexus_cost_usd_total{"
            )
            rss = collector.rss_mb()
            rows.append(
                {
                    "committer_rss_mb": round(collector.committer_rss_mb(), 1),
                    "series": size,
                    "series_in_exposition": found,
                    "rss_mb": round(rss, 1),
                    "scrape_ms": round(1000 * median([s[0] for s in scrapes]), 1),
                    "scrape_bytes": len(body),
                }
            )
            log(
                f"rss at {size:,} series: {rss:.1f} MB (scrape {rows[-1]['scrape_ms']} ms, {found:,} series seen)"
            )
    finally:
        collector.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    return {"idle_rss_mb": round(idle, 1), "loaded": rows}


# --- report ----------------------------------------------------------------------------------
def _yes(ok: bool) -> str:
    return "met" if ok else "NOT met"


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| measurement | nexus-otel collector | baseline | ratio | target |",
        "| --- | --- | --- | --- | --- |",
    ]
    summary = results["summary"]
    for e in results.get("end_to_end", []):
        target = TARGETS["e2e_events_per_s"]
        lines.append(
            f"| end to end, OTLP logs ({EVENTS_PER_REQUEST}/request, {e['senders']} senders) → committed rollup "
            f"(`{e['mode']}`) | {e['events_per_s']:,} events/s; p50 {e['request_latency_p50_ms']} ms/request; "
            f"rows match: {e['rows_match']}; cores used: collector {e['collector_cores']}, committer "
            f"{e['committer_cores']} | — | — | ≥ {target:,}/s: {_yes(e['events_per_s'] >= target)} |"
        )
    path = results.get("request_path")
    if path:
        lines.append(
            f"| … request path in process, one thread: protobuf parse + `decode_logs` + `prepare_rows` "
            f"({path['protobuf_parse_us_per_event']} + {path['decode_logs_us_per_event']} + "
            f"{path['prepare_rows_us_per_event']} µs/event) | ceiling {path['single_core_ceiling_events_per_s']:,} "
            f"events/s before any SQLite work | — | — | — |"
        )
    r = results.get("rollup")
    if r:
        limit = TARGETS["rollup_vs_executemany_max_slowdown"]
        lines.append(
            f"| rollup commit, {r['events']:,} events in batches of {r['batch']:,} (`RollupWriter.write`) | "
            f"{r['writer_rows_per_s']:,} rows/s | {r['executemany_rows_per_s']:,} rows/s (`sqlite3` executemany) | "
            f"{r['slowdown_vs_executemany']}x slower | ≤ {limit}x: {_yes(r['slowdown_vs_executemany'] <= limit)} |"
        )
        lines.append(
            f"| … its raw `INSERT OR IGNORE` alone into the indexed `model_calls` (no aggregates; the floor) | "
            f"{r['indexed_insert_rows_per_s']:,} rows/s | {r['executemany_rows_per_s']:,} rows/s | "
            f"{r['indexed_insert_slowdown_vs_executemany']}x slower | — |"
        )
    for m in results.get("render", []):
        need = TARGETS["metrics_render_min_speedup"]
        lines.append(
            f"| `/metrics` render, {m['series']:,} series ({m['lines']:,} lines) | {m['ours_ms']} ms | "
            f"{m['prometheus_client_ms']} ms (`generate_latest`) | {m['speedup']}x faster | "
            f"≥ {need}x: {_yes(m['speedup'] >= need)} |"
        )
    rss = results.get("rss")
    if rss:
        for row in rss["loaded"]:
            limit = TARGETS["rss_mb_at_100k_max"]
            target = f"< {limit} MB: {_yes(row['rss_mb'] < limit)}" if row["series"] >= 100_000 else "—"
            lines.append(
                f"| collector RSS at {row['series']:,} series (idle {rss['idle_rss_mb']} MB) | {row['rss_mb']} MB "
                f"(+ committer process {row['committer_rss_mb']} MB); `GET /metrics` {row['scrape_ms']} ms | — | — | "
                f"{target} |"
            )
    lines.append("")
    lines.append("Targets: " + ", ".join(f"{k}: {_yes(v)}" for k, v in summary.items()))
    return "\n".join(lines)


def summarise(results: dict[str, Any]) -> dict[str, bool]:
    out: dict[str, bool] = {}
    direct = [e for e in results.get("end_to_end", []) if e["mode"] == "direct"]
    if direct:
        out["e2e >= 50k events/s (direct)"] = direct[0]["events_per_s"] >= TARGETS["e2e_events_per_s"]
    spool = [e for e in results.get("end_to_end", []) if e["mode"] == "spool"]
    if spool:
        out["e2e >= 50k events/s (spool)"] = spool[0]["events_per_s"] >= TARGETS["e2e_events_per_s"]
    if results.get("rollup"):
        out["rollup within 2x of executemany"] = (
            results["rollup"]["slowdown_vs_executemany"] <= TARGETS["rollup_vs_executemany_max_slowdown"]
        )
    if results.get("render"):
        out["/metrics >= 3x generate_latest"] = all(
            m["speedup"] >= TARGETS["metrics_render_min_speedup"] for m in results["render"]
        )
    if results.get("rss"):
        big = [r for r in results["rss"]["loaded"] if r["series"] >= 100_000]
        if big:
            out["RSS < 300 MB at 100k series"] = big[0]["rss_mb"] < TARGETS["rss_mb_at_100k_max"]
    return out


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    import prometheus_client  # noqa: F401

    load = os.getloadavg()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in load],
        "sqlite": sqlite3.sqlite_version,
        "nexus_otel": version("nexus-otel"),
        "prometheus_client": version("prometheus-client"),
        "waitress": version("waitress"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, short windows")
    parser.add_argument(
        "--only",
        action="append",
        choices=("e2e", "rollup", "render", "rss"),
        help="run only these parts (repeatable)",
    )
    parser.add_argument("--duration", type=float, help="seconds of end-to-end traffic per mode [20]")
    parser.add_argument("--processes", type=int, default=2, help="sender processes [2]")
    parser.add_argument("--threads", type=int, default=4, help="connections per sender process [4]")
    parser.add_argument("--events", type=int, help="events for the rollup comparison [1,000,000]")
    parser.add_argument("--batch", type=int, default=20_000, help="events per write in the rollup comparison")
    parser.add_argument("--repeats", type=int, help="repeats (medians reported) [3; render 5]")
    parser.add_argument("--workdir", type=Path, help="where rollups and spools go [a temp dir]")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    parts = set(args.only or ("e2e", "rollup", "render", "rss"))
    quick = args.quick
    duration = args.duration or (5.0 if quick else 20.0)
    events = args.events or (100_000 if quick else 1_000_000)
    repeats = args.repeats or (1 if quick else 3)
    sizes = (1_000, 10_000) if quick else (1_000, 10_000, 100_000)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="nexus-collector-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {
        "command": " ".join(
            ["python", "benchmarks/collector/run.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "quick": quick,
        "machine": machine(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "targets": TARGETS,
    }
    try:
        if "e2e" in parts:
            log("encoding 64 OTLP log requests of 512 events with nexus_otel.otlp_wire ...")
            templates = log_request_templates(64)
            results["request_path"] = decode_ceiling(templates, repeats=repeats)
            results["end_to_end"] = [
                end_to_end(
                    workdir,
                    templates,
                    spool=spool,
                    duration_s=duration,
                    processes=args.processes,
                    threads=args.threads,
                )
                for spool in (False, True)
            ]
        if "rollup" in parts:
            log(f"rollup: {events:,} events, batches of {args.batch:,}, {repeats} run(s)")
            results["rollup"] = rollup_vs_executemany(
                workdir, events=events, batch=args.batch, repeats=repeats
            )
        if "render" in parts:
            results["render"] = render_benchmark(
                sizes, repeats=args.repeats or (1 if quick else 5), check_up_to=10_000
            )
        if "rss" in parts:
            results["rss"] = rss_benchmark(workdir, sizes[1:], repeats=repeats)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    results["summary"] = summarise(results)
    table = markdown(results)
    results["table"] = table
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(table)
    log(f"wrote {args.output} ({results['elapsed_s']}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
