"""Before/after, side by side: two recommender trees answering the same requests in turn.

    git archive <base-commit> recommender | tar -x -C /tmp/rec-base
    python benchmarks/recommender/compare.py --base /tmp/rec-base --rollup /tmp/nexus-bench/rollup-10m.db

The base tree's ``recommender/`` package (and its ``exporters/``, if it holds one:
the base then needs ``--base-rollup``, the same data at its schema) and this checkout's
are loaded in two worker processes (each ``create_app`` with every answer computed on request:
result cache and precomputer off, the clock frozen at the data's end, as in
``run.py``). Each (endpoint, period, key) is sent to one worker and then the
other, the order alternating from case to case and round to round, so both
see the same machine load and page cache: on a shared machine only such
side-by-side figures compare. Timings in ms go to ``--output`` (JSON) after
every case, a line per case to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ENDPOINTS = (
    "/api/analytics",
    "/api/analytics/costs",
    "/api/analytics/models",
    "/api/insights/recommendations",
    "/api/anomalies",
)


def worker(rollup: str) -> None:
    """Read 'path period key' lines from stdin, answer each with the seconds its request took."""
    sys.path.insert(0, str(HERE))
    import run as bench

    import recommender
    from nexus_otel.clock import SimulatedClock

    meta = bench._ensure_rollup(Path(rollup), 0, 0)
    with SimulatedClock(start=float(meta["end"])):
        from recommender.app import create_app

        client = create_app(bench._settings(rollup)).test_client()
        client.get("/api/anomalies", headers=bench._auth("admin"))  # needs one stored detection run
        print(json.dumps({"ready": recommender.__file__}), flush=True)
        for line in sys.stdin:
            path, period, key = line.split()
            t = time.perf_counter()
            response = client.get(f"{path}?period={period}", headers=bench._auth(key))
            took = time.perf_counter() - t
            if response.status_code != 200:
                raise SystemExit(f"{path} {period} {key}: {response.status_code}")
            print(json.dumps({"s": took}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="a directory holding the base commit's recommender/")
    parser.add_argument("--rollup", default="/tmp/nexus-bench/rollup-10m.db")
    parser.add_argument(
        "--base-rollup",
        help="the file the base answers from (default: --rollup); when --base holds its own exporters/, "
        "a copy of the same data at the base's schema version (a newer schema is refused)",
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--periods", default="30d,90d")
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS), help="comma-separated paths")
    parser.add_argument("--keys", default="admin,team")
    parser.add_argument("--output", default="/tmp/nexus-bench/compare.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.rollup)
        return 0
    trees = {"before": f"{args.base}{os.pathsep}{ROOT}", "after": str(ROOT)}
    procs = {}
    rollups = {"before": args.base_rollup or args.rollup, "after": args.rollup}
    for name, path in trees.items():
        procs[name] = subprocess.Popen(
            [sys.executable, __file__, "--worker", "--base", args.base, "--rollup", rollups[name]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": path},
        )
        print(name, procs[name].stdout.readline().strip(), file=sys.stderr, flush=True)  # type: ignore[union-attr]
    cases = [
        (p, per, k)
        for p in args.endpoints.split(",")
        for per in args.periods.split(",")
        for k in args.keys.split(",")
    ]
    samples: dict[tuple[str, str, str], dict[str, list[float]]] = {
        c: {"before": [], "after": []} for c in cases
    }

    def ask(name: str, case: tuple[str, str, str]) -> float:
        proc = procs[name]
        proc.stdin.write(" ".join(case) + "\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        return float(json.loads(proc.stdout.readline())["s"])  # type: ignore[union-attr]

    for r in range(args.rounds):
        for i, case in enumerate(cases):
            order = ("before", "after") if (i + r) % 2 == 0 else ("after", "before")
            for name in order:
                samples[case][name].append(ask(name, case))
            b, a = samples[case]["before"][-1], samples[case]["after"][-1]
            print(f"{' '.join(case):45} before {b * 1000:9.1f} ms  after {a * 1000:9.1f} ms", file=sys.stderr)
            rows: list[dict[str, Any]] = [
                {
                    "endpoint": c[0],
                    "period": c[1],
                    "key": c[2],
                    **{k: [round(x * 1000, 1) for x in v] for k, v in s.items()},
                }
                for c, s in samples.items()
            ]
            Path(args.output).write_text(json.dumps(rows, indent=1) + "\n")
    for proc in procs.values():
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
