"""Every library benchmark in one run, side by side.

    python benchmarks/run_library.py            # full run (~7 minutes on 2 cores)
    python benchmarks/run_library.py --quick    # smoke run, fewer calls

Creates the peers' virtualenvs under ``benchmarks/.venvs/`` on first use (from
``benchmarks/requirements-peers-*.txt``; needs the package index), runs each
benchmark script in its own interpreter, prints a Markdown table and the target
ratios, and writes everything to ``benchmarks/results/library.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any

from otel_setup import silence_exporter_env
from report import render

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

#: peer name -> requirements file; each gets benchmarks/.venvs/<name>.
PEERS = {
    "openlit": "requirements-peers-openlit.txt",
    "official": "requirements-peers-official.txt",
    "official-v2": "requirements-peers-official-v2.txt",
}
VENVS = HERE / ".venvs"
RESULTS = HERE / "results" / "library.json"


def log(message: str) -> None:
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


def peer_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def ensure_venv(name: str, install: bool) -> Path | None:
    python = peer_python(name)
    if python.exists():
        return python
    if not install:
        log(f"{name}: no virtualenv at {python.parent.parent} and --no-install given; skipped")
        return None
    log(f"{name}: creating {python.parent.parent} and installing {PEERS[name]} ...")
    venv.EnvBuilder(with_pip=True, clear=True).create(python.parent.parent)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", str(HERE / PEERS[name])],
        check=True,
        timeout=900,
    )
    return python


def run_json(cmd: list[str], *, label: str, timeout: int = 600) -> dict[str, Any]:
    """Run one benchmark script; its last stdout line is a JSON document."""
    env = silence_exporter_env(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    started = time.monotonic()
    log(f"{label}: running")
    proc = subprocess.run(
        cmd, check=False, capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout
    )
    elapsed = time.monotonic() - started
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        log(f"{label}: FAILED after {elapsed:.0f}s: {tail}")
        return {"error": tail}
    log(f"{label}: done in {elapsed:.0f}s")
    return json.loads(lines[-1])


def ours_ready() -> str | None:
    """None when the recording API imports, else the reason it does not."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    probe = (
        "import nexus_otel; nexus_otel.track_model_call; nexus_otel.instrument_openai; nexus_otel.configure"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )
    if proc.returncode == 0:
        return None
    return (proc.stderr.strip().splitlines() or ["import failed"])[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls: a smoke run, not figures")
    parser.add_argument("--no-install", action="store_true", help="skip peers whose virtualenv is missing")
    parser.add_argument("--skip-peers", action="store_true", help="benchmark nexus-otel only")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    if args.quick:
        ours_sizes = ["--calls", "500", "--repeats", "3", "--warmup", "300"]
        client_sizes = ["--client-calls", "100", "--client-repeats", "3", "--client-warmup", "50"]
        peer_sizes = ["--calls", "100", "--repeats", "3", "--warmup", "50"]
        import_runs = ["--runs", "5"]
    else:
        ours_sizes = ["--calls", "1500", "--repeats", "16", "--warmup", "3000"]
        # Bare and instrumented alternate call by call (the order swapping every call), so
        # load changing over milliseconds hits both alike; the export is flushed every 400
        # calls, as with one batch of 400.
        client_sizes = [
            "--client-calls", "1", "--client-repeats", "20000", "--client-warmup", "300",
            "--client-settle-every", "400",
        ]  # fmt: skip
        peer_sizes = ["--calls", "1", "--repeats", "20000", "--warmup", "300", "--settle-every", "400"]
        import_runs = ["--runs", "21"]

    started = time.monotonic()
    results: dict[str, Any] = {
        "command": "python benchmarks/run_library.py" + (" --quick" if args.quick else ""),
        "machine": {"cpus": os.cpu_count(), "platform": sys.platform, "python": sys.version.split()[0]},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    results["import"] = run_json(
        [sys.executable, str(HERE / "bench_import.py"), *import_runs], label="import nexus_otel"
    )
    reason = ours_ready()
    for path in ("configured", "api"):
        if reason is None:
            results[f"ours_{path}"] = run_json(
                [sys.executable, str(HERE / "bench_ours.py"), path, *ours_sizes, *client_sizes],
                label=f"nexus-otel ({path})",
            )
        else:
            results[f"ours_{path}"] = {"error": f"nexus_otel recording API not importable: {reason}"}
            log(f"nexus-otel ({path}): skipped, {reason}")
    if not args.skip_peers:
        for name in PEERS:
            try:
                python = ensure_venv(name, install=not args.no_install)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                log(f"{name}: installing failed: {exc}")
                results[f"peer_{name}"] = {"error": f"virtualenv install failed: {exc}"}
                continue
            if python is None:
                results[f"peer_{name}"] = {"error": "virtualenv missing (--no-install)"}
                continue
            results[f"peer_{name}"] = run_json(
                [str(python), str(HERE / "bench_peer.py"), name, *peer_sizes], label=f"peer {name}"
            )
    results["elapsed_s"] = round(time.monotonic() - started, 1)

    table, summary = render(results)
    results["summary"] = summary
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(table)
    log(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
