"""Machine instructions per mocked OpenAI call, under callgrind: a figure other jobs cannot move.

    python benchmarks/bench_instructions.py              # nexus-otel and the official instrumentation
    python benchmarks/bench_instructions.py --calls 200  # fewer calls (each run takes ~1-3 min)

Timings on a shared 2-core machine move by tens of percent with the load;
instruction counts do not. Each target runs the same mocked OpenAI call as
``bench_ours.py``/``bench_peer.py`` (same SDK set-up, events/spans over
OTLP/HTTP to ``otlp_sink.py``) inside ``valgrind --tool=callgrind``, once
uninstrumented and once instrumented. Counting is switched on
(``callgrind_control -i on``) only around ``--calls`` calls and the flush of
the background queues that follows, so start-up is not counted. Threads are
counted apart: the caller's thread (what the call waits for) and every other
thread (background export). Needs ``valgrind``; the peer runs in its
virtualenv under ``benchmarks/.venvs/`` (see ``run_library.py``).

Instructions are not time: a cache miss costs many, an interpreted bytecode
tens. They rank the work each library adds to the same call, independent of load.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGETS = {"nexus-otel": None, "official": "official", "official-v2": "official-v2"}


# -- the worker, run under valgrind ------------------------------------------------------
def worker(target: str, mode: str, calls: int) -> None:
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(REPO))
    from openai_mock import REQUEST, make_client
    from otlp_sink import LoopbackSink

    sink = LoopbackSink()
    if target == "nexus-otel":
        import nexus_otel

        # No periodic metric export inside the counted window (it would land in one mode only).
        telemetry = nexus_otel.configure(
            prometheus_port=0,
            otlp_endpoint=sink.url,
            service_name="benchmark",
            export_interval_s=3600,
            event_batch_size=2048,
            event_flush_interval_s=600,
        )
        client = make_client()
        if mode == "instrumented":
            nexus_otel.instrument_openai(client)
        completions = client.chat.completions
        attribution = nexus_otel.attribution(feature="ticket-summary", team="support", project="helpdesk")

        def call() -> Any:
            return completions.create(**REQUEST)

        flush = telemetry.events.flush
    else:
        from bench_peer import PEERS
        from openai.resources.chat.completions import Completions
        from otel_setup import install_sdk

        original_create = Completions.create
        setup = install_sdk(otlp_endpoint=sink.url)
        PEERS[target](setup)
        completions = make_client().chat.completions
        if mode == "instrumented":

            def call() -> Any:
                return completions.create(**REQUEST)
        else:

            def call() -> Any:
                return original_create(completions, **REQUEST)

        flush = setup.flush
        attribution = None
    if attribution is not None:
        attribution.__enter__()
    for _ in range(200):  # warm-up: caches, lazy imports, first series
        call()
    flush()
    control = shutil.which("callgrind_control") or "callgrind_control"
    subprocess.run([control, "-i", "on", str(os.getpid())], check=True, capture_output=True)
    for _ in range(calls):
        call()
    # Background work is flushed from another thread, so that whatever a flush runs on the
    # thread calling it (export, deferred recording) is counted as background, not as the
    # caller's: in an application that work happens on a background thread.
    flusher = threading.Thread(target=flush)
    flusher.start()
    flusher.join()
    subprocess.run([control, "-i", "off", str(os.getpid())], check=True, capture_output=True)
    sink.stop()
    os._exit(0)  # nothing after the counted window matters


# -- the driver ------------------------------------------------------------------------------
def _count(python: str, target: str, mode: str, calls: int, workdir: Path) -> dict[str, float]:
    out = workdir / f"{target}.{mode}"
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(REPO)}
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--separate-threads=yes",
            f"--callgrind-out-file={out}",
            python,
            str(Path(__file__).resolve()),
            "--worker",
            target,
            mode,
            str(calls),
        ],
        check=True,
        capture_output=True,
        env=env,
        timeout=1800,
    )
    caller = other = 0
    for path in glob.glob(f"{out}-*"):
        with open(path) as f:
            total = next((int(line.split()[1]) for line in f if line.startswith("totals:")), 0)
        if path.endswith("-01"):
            caller += total
        else:
            other += total
    return {"caller": caller / calls, "background": other / calls, "total": (caller + other) / calls}


def _real_python(python: str) -> str:
    # valgrind must run the interpreter itself, not a pyenv or venv shim script.
    return subprocess.run(
        [python, "-c", "import sys; print(sys.executable)"], check=True, capture_output=True, text=True
    ).stdout.strip()


def main(argv: list[str] | None = None) -> None:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--targets", nargs="+", default=["nexus-otel", "official"], choices=sorted(TARGETS))
    parser.add_argument("--output", type=Path, help="write the JSON document here too")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed")
    results: dict[str, Any] = {"calls": args.calls, "unit": "instructions per call", "targets": {}}
    with tempfile.TemporaryDirectory(prefix="bench-instr-") as tmp:
        for target in args.targets:
            venv = TARGETS[target]
            python = str(HERE / ".venvs" / venv / "bin" / "python") if venv else sys.executable
            if not Path(python).exists():
                sys.stderr.write(f"[instructions] {target}: no {python}; skipped\n")
                continue
            python = _real_python(python)
            counts = {}
            for mode in ("bare", "instrumented"):
                sys.stderr.write(f"[instructions] {target} {mode} ...\n")
                counts[mode] = _count(python, target, mode, args.calls, Path(tmp))
            bare, inst = counts["bare"], counts["instrumented"]
            counts["overhead"] = {k: inst[k] - bare[k] for k in ("caller", "background", "total")}
            results["targets"][target] = counts
    ours = results["targets"].get("nexus-otel")
    for target, counts in results["targets"].items():
        if ours and target != "nexus-otel":
            counts["ratio_to_nexus_otel"] = {
                k: counts["overhead"][k] / ours["overhead"][k] for k in ("caller", "total")
            }
    text = json.dumps(results, indent=2)
    if args.output:
        args.output.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
