"""nexus-otel's cost per call, beside the plain SDK recording the same numbers.

    python benchmarks/bench_ours.py configured   # SDK built by nexus_otel.configure()
    python benchmarks/bench_ours.py api          # the app's own SDK MeterProvider/LoggerProvider

Cases (one process per path, because each installs process-wide telemetry):

* ``model_call_noop`` - an undecorated function returning a ChatCompletion.
* ``track_model_call`` - the same function under ``nexus_otel.track_model_call``
  (metrics + one event per call).
* ``bare_sdk_same_numbers`` - the same function, then one plain synchronous SDK
  instrument call per number nexus-otel recorded for it (same instruments,
  attributes and values, read back from nexus-otel's own output after one call).
* ``mocked_client_bare`` / ``mocked_client_instrumented`` - the official OpenAI
  client over ``httpx.MockTransport``, without and with ``instrument_openai``.

Events go over OTLP/HTTP to ``otlp_sink.py`` (a loopback process standing in
for the collector): ``configured`` sends them with nexus-otel's own exporter
and serves /metrics on a free port; ``api`` emits them as log records on the
SDK from ``otel_setup.py``, whose batch processor exports them. After timing, every number is
checked against the call count: nothing may be lost or approximated.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

from harness import emit, measure
from openai_mock import MODEL, REQUEST, make_chat_completion, make_client
from otel_setup import SdkSetup, install_sdk
from otlp_sink import LoopbackSink

HERE = Path(__file__).resolve().parent

ATTRIBUTION = {"feature": "ticket-summary", "team": "support", "project": "helpdesk"}


@dataclass(frozen=True)
class Series:
    """One number a tracked call records: instrument, attributes, value per call."""

    metric: str
    kind: str  # "histogram" | "counter"
    attributes: dict[str, str]
    value: float


# -- what nexus-otel recorded ------------------------------------------------------
def series_from_snapshot(snapshot: Any) -> list[Series]:
    out = [
        Series(name, "histogram", dict(key), state.sum / state.count)
        for name, series in snapshot.histograms.items()
        for key, state in series.items()
    ]
    out += [
        Series(name, "counter", dict(key), value)
        for name, series in snapshot.counters.items()
        for key, value in series.items()
    ]
    return out


def series_from_reader(setup: SdkSetup, scope: str) -> list[Series]:
    from opentelemetry.sdk.metrics.export import Histogram, Sum

    out: list[Series] = []
    data = setup.metric_reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            if sm.scope.name != scope:
                continue
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    if isinstance(metric.data, Histogram):
                        out.append(
                            Series(metric.name, "histogram", dict(point.attributes), point.sum / point.count)
                        )
                    elif isinstance(metric.data, Sum):
                        out.append(Series(metric.name, "counter", dict(point.attributes), point.value))
    return out


def check_complete(
    per_call: list[Series], after: list[Series], counts: list[Series], calls: int
) -> list[str]:
    """Every counter total must be calls x its per-call value; every histogram must count every call."""
    problems: list[str] = []
    now = {(s.metric, json.dumps(s.attributes, sort_keys=True)): s for s in after}
    seen = {(s.metric, json.dumps(s.attributes, sort_keys=True)): s for s in counts}
    for s in per_call:
        key = (s.metric, json.dumps(s.attributes, sort_keys=True))
        if s.kind == "counter":
            total = now[key].value if key in now else 0.0
            if abs(total - calls * s.value) > 1e-9 * max(1.0, calls * s.value):
                problems.append(f"{s.metric} {s.attributes}: total {total} != {calls} x {s.value}")
        else:
            count = seen[key].value if key in seen else 0
            if count != calls:
                problems.append(f"{s.metric} {s.attributes}: count {count} != {calls}")
    return problems


# -- the plain-SDK baseline ----------------------------------------------------------
def bare_sdk_recorder(series: list[Series], model_call: Any, meter_provider: Any) -> Any:
    """One synchronous SDK instrument call per number, duration timed like nexus-otel times it."""
    from nexus_otel.semconv import METRICS, OPERATION_DURATION

    specs = {spec.name: spec for spec in METRICS}
    meter = meter_provider.get_meter("benchmark.bare_sdk")
    instruments: dict[str, Any] = {}
    for s in series:
        if s.metric in instruments:
            continue
        spec = specs[s.metric]
        if s.kind == "histogram":
            instruments[s.metric] = meter.create_histogram(
                spec.name,
                unit=spec.unit,
                description=spec.description,
                explicit_bucket_boundaries_advisory=list(spec.buckets or ()),
            )
        else:
            instruments[s.metric] = meter.create_counter(
                spec.name, unit=spec.unit, description=spec.description
            )
    duration = [s for s in series if s.metric == OPERATION_DURATION.name]
    if len(duration) != 1:
        raise SystemExit(f"expected one duration series, nexus-otel recorded {len(duration)}")
    record_duration = instruments[duration[0].metric].record
    duration_attrs = duration[0].attributes
    others = [
        (
            instruments[s.metric].record if s.kind == "histogram" else instruments[s.metric].add,
            s.value,
            s.attributes,
        )
        for s in series
        if s is not duration[0]
    ]

    def bare_sdk_same_numbers() -> Any:
        start = perf_counter()
        response = model_call()
        record_duration(perf_counter() - start, duration_attrs)
        for record, value, attrs in others:
            record(value, attrs)
        return response

    return bare_sdk_same_numbers


# -- set-ups ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", choices=["configured", "api"])
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=3000)
    parser.add_argument("--client-calls", type=int, default=400)
    parser.add_argument("--client-repeats", type=int, default=10)
    parser.add_argument("--client-warmup", type=int, default=300)
    parser.add_argument(
        "--client-settle-every", type=int, default=1, help="flush the event export every N client batches"
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE.parent))  # the repository's nexus_otel, installed or not
    import nexus_otel
    from nexus_otel.semconv import INSTRUMENTATION_SCOPE

    sink = LoopbackSink()
    user_sdk: SdkSetup | None = None
    telemetry: Any = None
    if args.path == "configured":
        # Events leave only when the harness flushes them (see harness.measure's settle).
        telemetry = nexus_otel.configure(
            prometheus_port=0,
            otlp_endpoint=sink.url,
            service_name="benchmark",
            event_batch_size=2048,
            event_flush_interval_s=600,
        )
    else:
        user_sdk = install_sdk(set_global=True, otlp_endpoint=sink.url)

    def read_ours() -> tuple[list[Series], list[Series]]:
        """(values, counts): histogram series carry their mean in the first, their count in the second."""
        if telemetry is not None:
            snap = telemetry.metrics.snapshot()
            values = series_from_snapshot(snap)
            counts = [
                Series(name, "histogram", dict(key), state.count)
                for name, series in snap.histograms.items()
                for key, state in series.items()
            ]
            return values, counts
        assert user_sdk is not None
        values = series_from_reader(user_sdk, INSTRUMENTATION_SCOPE)
        data = user_sdk.metric_reader.get_metrics_data()
        counts = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                if sm.scope.name == INSTRUMENTATION_SCOPE:
                    counts += [
                        Series(m.name, "histogram", dict(p.attributes), p.count)
                        for m in sm.metrics
                        for p in m.data.data_points
                        if hasattr(p, "bucket_counts")
                    ]
        return values, counts

    if telemetry is not None:

        def flush_events() -> None:
            telemetry.events.flush()
    else:

        def flush_events() -> None:
            nexus_otel.get_recorder().events.flush()
            user_sdk.logger_provider.force_flush()

    response = make_chat_completion()

    def model_call_noop() -> Any:
        return response

    track_model_call = nexus_otel.track_model_call(model=MODEL, provider="openai", **ATTRIBUTION)(
        model_call_noop
    )
    track_model_call()  # one call, to read back exactly what nexus-otel records for it
    per_call, _ = read_ours()
    if not per_call:
        raise SystemExit("nexus-otel recorded nothing for a tracked call")
    baseline_provider = install_sdk(set_global=False).meter_provider
    bare_sdk_same_numbers = bare_sdk_recorder(per_call, model_call_noop, baseline_provider)

    noop_results = measure(
        {
            "model_call_noop": model_call_noop,
            "bare_sdk_same_numbers": bare_sdk_same_numbers,
            "track_model_call": track_model_call,
        },
        calls=args.calls,
        repeats=args.repeats,
        warmup=args.warmup,
        settle={"track_model_call": flush_events},
    )
    tracked_calls = 1 + args.warmup + args.calls * args.repeats
    after, counts = read_ours()
    problems = check_complete(per_call, after, counts, tracked_calls)

    client = make_client()
    instrumented = nexus_otel.instrument_openai(make_client())
    with nexus_otel.attribution(**ATTRIBUTION):
        client_results = measure(
            {
                "mocked_client_bare": lambda: client.chat.completions.create(**REQUEST),
                "mocked_client_instrumented": lambda: instrumented.chat.completions.create(**REQUEST),
            },
            calls=args.client_calls,
            repeats=args.client_repeats,
            warmup=args.client_warmup,
            settle={"mocked_client_instrumented": flush_events},
            settle_every=args.client_settle_every,
        )
    instrumented_calls = args.client_warmup + args.client_calls * args.client_repeats

    flush_events()
    events = sink.counts()["log_records"]
    if telemetry is not None:
        nexus_otel.shutdown()
    sink.stop()
    emit(
        {**noop_results, **client_results},
        path=args.path,
        numbers_per_call=[s.__dict__ for s in per_call],
        instrument_calls_per_call=len(per_call),
        complete=not problems,
        problems=problems,
        events={"expected": tracked_calls + instrumented_calls, "exported": events},
    )


if __name__ == "__main__":
    main()
