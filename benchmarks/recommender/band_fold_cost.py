"""What folding ``call_band_day``/``call_band_week`` adds to the collector's write transaction.

    mkdir -p /tmp/fold-base && git archive main exporters | tar -x -C /tmp/fold-base
    python benchmarks/recommender/band_fold_cost.py --base /tmp/fold-base --events 200000 --batch 5000

Two worker processes, one with the base commit's ``exporters/`` first on its path and one
with this checkout's, each with a ``RollupWriter`` on its own file, write the same batches
(made from the same seed), batch by batch in turn with the order alternating, so both see
the same machine load; each reports the CPU and wall time of its ``write`` calls. The
events are the collector benchmark's model calls (``benchmarks/collector/workload.py``)
with 20 % routed at a random confidence, and feedback on 5 % of the calls, mostly a batch
after them (some a batch before: the pending path). Prints microseconds per event of both
sides and the difference: what the band fold adds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR = ROOT / "benchmarks" / "collector"

__all__ = ["main"]


def _batches(n: int, batch: int, seed: int) -> list[list[object]]:
    sys.path.insert(0, str(COLLECTOR))
    from workload import model_call_events

    from nexus_otel.events import FeedbackEvent

    rng = random.Random(seed)
    calls = []
    for event in model_call_events(n, seed=seed):
        routed = rng.random() < 0.2
        confidence = round(rng.uniform(0.5, 1.0), 3)
        calls.append(
            dataclasses.replace(event, routed=True, routed_from="gpt-4o", router_confidence=confidence)
            if routed
            else event
        )
    batches: list[list[object]] = [calls[i : i + batch] for i in range(0, n, batch)]
    for b in range(len(batches)):
        rated = [c for c in batches[b] if rng.random() < 0.05]
        target = b + 1 if rng.random() < 0.9 and b + 1 < len(batches) else max(b - 1, 0)
        batches[target] += [
            FeedbackEvent(timestamp=c.timestamp + 5, request_id=c.request_id, score=rng.random())  # type: ignore[attr-defined]
            for c in rated
        ]
    return batches


def worker(path: str, *, events: int, batch: int, seed: int) -> None:
    """Write the batch whose number each stdin line names; answer with the write's CPU and wall seconds."""
    from exporters.rollup import RollupWriter

    batches = _batches(events, batch, seed)
    writer = RollupWriter(path, retention_days=None)
    print(json.dumps({"ready": len(batches)}), flush=True)
    for line in sys.stdin:
        chunk = batches[int(line)]
        w, c = time.perf_counter(), time.process_time()
        writer.write(chunk)  # type: ignore[arg-type]
        print(
            json.dumps({"cpu": time.process_time() - c, "wall": time.perf_counter() - w, "n": len(chunk)}),
            flush=True,
        )
    writer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="a directory holding the base commit's exporters/")
    parser.add_argument("--events", type=int, default=200_000, help="model calls (feedback adds ~5 %%)")
    parser.add_argument("--batch", type=int, default=5000, help="model calls per write")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, events=args.events, batch=args.batch, seed=args.seed)
        return 0
    with tempfile.TemporaryDirectory(prefix="band-fold-") as tmp:
        procs = {}
        for side, path in (("base", f"{args.base}{os.pathsep}{ROOT}"), ("bands", str(ROOT))):
            procs[side] = subprocess.Popen(
                [sys.executable, __file__, "--base", args.base, "--worker", f"{tmp}/{side}.db",
                 "--events", str(args.events), "--batch", str(args.batch), "--seed", str(args.seed)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": path},
            )  # fmt: skip
        ready = {json.loads(p.stdout.readline())["ready"] for p in procs.values()}  # type: ignore[union-attr]
        count = ready.pop()
        totals = {side: {"cpu": 0.0, "wall": 0.0, "n": 0} for side in procs}
        for i in range(count):
            for side in ("base", "bands") if i % 2 == 0 else ("bands", "base"):
                procs[side].stdin.write(f"{i}\n")  # type: ignore[union-attr]
                procs[side].stdin.flush()  # type: ignore[union-attr]
                answer = json.loads(procs[side].stdout.readline())  # type: ignore[union-attr]
                for k in totals[side]:
                    totals[side][k] += answer[k]
        for p in procs.values():
            p.stdin.close()  # type: ignore[union-attr]
            p.wait()
    n = totals["base"]["n"]
    print(
        f"{n:,} events ({args.events:,} model calls, the rest feedback) in {count} writes of {args.batch:,} calls"
    )
    for side, t in totals.items():
        print(f"  {side:6} {1e6 * t['cpu'] / n:7.2f} us CPU/event  {1e6 * t['wall'] / n:7.2f} us wall/event")
    cpu = {side: t["cpu"] for side, t in totals.items()}
    wall = {side: t["wall"] for side, t in totals.items()}
    print(
        f"  bands add {1e6 * (cpu['bands'] - cpu['base']) / n:+.2f} us CPU/event "
        f"({100 * (cpu['bands'] / cpu['base'] - 1):+.1f} %), {1e6 * (wall['bands'] - wall['base']) / n:+.2f} us wall/event"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
