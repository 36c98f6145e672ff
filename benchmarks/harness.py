"""Timing loop shared by every benchmark script (standard library only).

Each case is a zero-argument callable making one call. Cases of one script are
interleaved repeat by repeat (A B C, B C A, ...), so drift in machine load
hits them alike. Every call is timed on its own with ``perf_counter_ns``; the
timer's own cost is in every sample, so scripts compare cases by their
difference to a baseline case measured the same way. ``mean`` includes the
occasional slow call (garbage collection, a background export batch taking the
GIL), so it is the honest cost per call; ``median`` and ``p95`` show the shape.

Work a case leaves for a background thread (batched span or event export) is
charged to it: after each batch of calls the case's *settle* callable flushes
that work, is timed, and its time divided by the batch size is ``export_us``.
``amortized_us = mean_us + export_us`` is the full cost of one call.

CPU time is counted per batch as well: ``cpu_us`` is the caller's thread CPU time per
call, ``cpu_all_in_us`` the whole process's (every thread, the settle included) per
call. Other processes on the machine cannot inflate either, which makes them the
figures to compare on a shared machine; wall-clock figures include being descheduled.
"""

from __future__ import annotations

import gc
import json
import platform
import statistics
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from time import perf_counter_ns, process_time_ns, thread_time_ns
from typing import Any

__all__ = ["Stats", "emit", "environment", "measure"]


@dataclass(frozen=True)
class Stats:
    """Per-call figures in microseconds."""

    mean_us: float
    median_us: float
    p95_us: float
    export_us: float
    amortized_us: float
    cpu_us: float
    cpu_all_in_us: float
    calls: int

    @classmethod
    def of(cls, samples_ns: list[int], settle_ns: int, thread_cpu_ns: int, process_cpu_ns: int) -> Stats:
        ordered = sorted(samples_ns)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        mean = statistics.fmean(ordered) / 1000
        export = settle_ns / len(ordered) / 1000
        return cls(
            mean_us=mean,
            median_us=statistics.median(ordered) / 1000,
            p95_us=p95 / 1000,
            export_us=export,
            amortized_us=mean + export,
            cpu_us=thread_cpu_ns / len(ordered) / 1000,
            cpu_all_in_us=process_cpu_ns / len(ordered) / 1000,
            calls=len(ordered),
        )


def measure(
    cases: Mapping[str, Callable[[], Any]],
    *,
    calls: int,
    repeats: int,
    warmup: int,
    settle: Mapping[str, Callable[[], Any]] | None = None,
    settle_every: int = 1,
) -> dict[str, Stats]:
    """Run every case ``warmup`` times, then ``repeats`` rounds of ``calls`` timed calls each.

    ``settle[name]``, when given, runs after every ``settle_every``-th batch of that case's
    calls and after its last one (untimed during the warm-up) to finish the background work
    those batches left. Small batches interleave the cases finely, so that load changing
    over seconds hits them alike; ``settle_every`` keeps the background work in export
    batches of a realistic size. Keep ``calls * settle_every`` below the background queues'
    capacity (the SDK's batch processors hold 2048) so that work is done, not dropped.
    """
    settle = settle or {}
    names = list(cases)
    for name in names:
        fn = cases[name]
        # In batches like the timed rounds, so no background queue overflows during warm-up either.
        for done in range(warmup):
            fn()
            if name in settle and (done + 1) % (calls * settle_every) == 0:
                settle[name]()
        if name in settle:
            settle[name]()
    samples: dict[str, list[int]] = {name: [] for name in names}
    settled: dict[str, int] = dict.fromkeys(names, 0)
    thread_cpu: dict[str, int] = dict.fromkeys(names, 0)
    process_cpu: dict[str, int] = dict.fromkeys(names, 0)
    gc.collect()
    for round_no in range(repeats):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            fn = cases[name]
            out = samples[name]
            append = out.append
            process_start, thread_start = process_time_ns(), thread_time_ns()
            for _ in range(calls):
                start = perf_counter_ns()
                fn()
                append(perf_counter_ns() - start)
            thread_cpu[name] += thread_time_ns() - thread_start
            if name in settle and ((round_no + 1) % settle_every == 0 or round_no == repeats - 1):
                start = perf_counter_ns()
                settle[name]()
                settled[name] += perf_counter_ns() - start
            process_cpu[name] += process_time_ns() - process_start
    return {
        name: Stats.of(values, settled[name], thread_cpu[name], process_cpu[name])
        for name, values in samples.items()
    }


def environment() -> dict[str, str]:
    """Versions that explain a figure: Python and the packages under test."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for dist in (
        "openai",
        "opentelemetry-api",
        "opentelemetry-sdk",
        "openlit",
        "opentelemetry-instrumentation-genai-openai",
        "opentelemetry-instrumentation-openai-v2",
        "opentelemetry-util-genai",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def emit(results: dict[str, Stats], **extra: Any) -> None:
    """Print one JSON document on stdout for ``run_library.py`` to collect."""
    doc = {
        "cases": {name: asdict(stats) for name, stats in results.items()},
        "environment": environment(),
        **extra,
    }
    json.dump(doc, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()
