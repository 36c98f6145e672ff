"""3. ``/metrics`` render time against prometheus-client, and 4. the collector's RSS with many series."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import Collector, log, median
from workload import START_TS

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
