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
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path[:0] = [str(REPO), str(HERE)]

from common import TARGETS, log  # noqa: E402
from e2e import decode_ceiling, end_to_end, log_request_templates  # noqa: E402
from render import render_benchmark, rss_benchmark  # noqa: E402
from report import markdown, summarise  # noqa: E402
from writes import rollup_vs_executemany  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "collector.json"


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
