"""``import nexus_otel`` in a fresh interpreter: time, modules pulled in, heavy ones absent.

    python benchmarks/bench_import.py [--runs 15]

Each run starts a new interpreter and times the import inside it (interpreter
start-up excluded). Also timed: the import plus the first touch of
``nexus_otel.track_model_call``, which loads the lazily imported recording code
(what a module that decorates at import time pays). One ``-X importtime`` run
lists the slowest modules. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: Heavy packages that belong to the collector/recommender, never to an app process.
MUST_NOT_IMPORT = ("flask", "numpy", "pyod", "sqlite_utils")
#: Reported for information: loaded only when configure() or a client integration needs them.
WATCHED = ("opentelemetry.sdk", "prometheus_client", "click", "httpx", "openai", "anthropic", "sqlite3")

_PROBE = """
import json, sys, time
before = set(sys.modules)
start = time.perf_counter_ns()
import nexus_otel
{touch}
elapsed = time.perf_counter_ns() - start
print(json.dumps({{"ns": elapsed, "modules": sorted(set(sys.modules) - before)}}))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def _probe(touch: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(touch=touch)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=_env(),
        timeout=60,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _slowest(limit: int, touch: str) -> list[dict]:
    """The modules with the largest self time under ``-X importtime``, interpreter start-up excluded."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import nexus_otel; {touch}"],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=_env(),
        timeout=60,
    )
    rows: list[dict] = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:") :].split("|")
        if name.strip() == "site" and not name.startswith("  "):
            rows = []  # everything so far was interpreter start-up
            continue
        rows.append({"module": name.strip(), "self_us": int(self_us), "cumulative_us": int(cumulative_us)})
    rows.sort(key=lambda r: r["self_us"], reverse=True)
    return rows[:limit]


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": statistics.median(ordered),
        "min_ms": ordered[0],
        "max_ms": ordered[-1],
        "runs": len(ordered),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)

    plain = [_probe("") for _ in range(args.runs)]
    try:
        first_use = [_probe("nexus_otel.track_model_call") for _ in range(max(5, args.runs // 3))]
    except subprocess.CalledProcessError as exc:  # the recording API is not importable (yet)
        first_use = []
        first_use_error = exc.stderr.strip().splitlines()[-1] if exc.stderr else str(exc)
    else:
        first_use_error = None
    modules = plain[-1]["modules"]
    used_modules = first_use[-1]["modules"] if first_use else []

    def loaded(prefix: str, mods: list[str]) -> bool:
        return any(m == prefix or m.startswith(prefix + ".") for m in mods)

    doc = {
        "import": _stats([p["ns"] / 1e6 for p in plain]),
        "import_and_first_use": _stats([p["ns"] / 1e6 for p in first_use]) if first_use else None,
        "first_use_error": first_use_error,
        "modules_count": len(modules),
        "modules_by_package": dict(Counter(m.split(".")[0] for m in modules).most_common()),
        "modules": modules,
        "first_use_modules_count": len(used_modules),
        "first_use_modules_by_package": dict(Counter(m.split(".")[0] for m in used_modules).most_common()),
        "forbidden": {name: loaded(name, modules) or loaded(name, used_modules) for name in MUST_NOT_IMPORT},
        "watched_on_import": {name: loaded(name, modules) for name in WATCHED},
        "watched_on_first_use": {name: loaded(name, used_modules) for name in WATCHED},
        "slowest_modules": _slowest(12, "nexus_otel.track_model_call" if first_use else ""),
    }
    json.dump(doc, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
