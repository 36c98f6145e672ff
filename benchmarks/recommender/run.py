"""Recommender benchmark: endpoint latency, export throughput and memory, anomaly detection, on a big rollup.

    python benchmarks/recommender/run.py --rollup /tmp/nexus-bench/rollup-10m.db

Builds the rollup with ``generate.py`` when the file is missing (``--events``,
``--days``). "Now" is the end of the generated data (frozen with
``nexus_otel.clock.SimulatedClock``). In one run, side by side:

* every GET endpoint for ``period=30d`` and ``90d`` with an admin key and a
  team-scoped key (``team:search``, the biggest team), through Flask's test
  client in-process: warm-ups, then N timed requests, p50/p95/max;
* the baseline: the same cost-by-team totals and overall p95 latency computed
  naively from the raw ``model_calls`` rows (GROUP BY, and sorting every
  latency), beside the same figures from the aggregates (``grouped``/``derived``);
* one endpoint over a real ``nexus-otel recommender`` (waitress) over HTTP with
  urllib, beside the same request through the test client: the WSGI/HTTP overhead;
* ``/metrics`` (``metrics_cache_s=0``): the scrape, and the refresh it triggers
  (the gauges are computed on a background thread, so both are reported);
* CSV export of ~1M calls streamed through the test client, in a fresh
  subprocess sampling its RSS every 10 ms: rows/s and peak RSS growth, beside a
  naive ``fetchall()`` + ``csv.writer`` in another fresh subprocess;
* ``detect()`` (pyod ECOD + IForest fit and score, last 28 days, every scope).

Every endpoint whose p95 misses the target is re-run once with each SQL
statement timed (``Rollup.execute``/``rows`` wrapped in this process only), and
the slowest statements are reported with their calling function and
``EXPLAIN QUERY PLAN``. Figures go to ``benchmarks/results/recommender.json``,
a Markdown table to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import json
import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

TARGET_P95_MS = 200.0
TARGET_EXPORT_RSS_MB = 50.0
ENDPOINTS = (
    ("analytics", "/api/analytics"),
    ("costs", "/api/analytics/costs"),
    ("models", "/api/analytics/models"),
    ("recommendations", "/api/insights/recommendations"),
    ("anomalies", "/api/anomalies"),
)
PERIODS = ("24h", "7d", "30d", "90d", "mtd")
#: what this run measures (``--endpoints``, ``--periods``, ``--keys``); 30d and 90d unless asked
SELECTED: dict[str, tuple[str, ...]] = {
    "endpoints": tuple(name for name, _ in ENDPOINTS),
    "periods": ("30d", "90d"),
    "keys": ("admin", "team"),
}
#: name -> (key, scope); "team" is the biggest team's key (its filter sends user metrics to user_team_day);
#: "user" the 100th busiest of the 20,000 users of generate.py's 10M-event file (~7.4k calls in 90 days):
#: every figure of a user-scoped key comes from that user's raw calls
KEYS = {
    "admin": ("bench-admin-key-000001", "admin"),
    "team": ("bench-team-key-search", "team:search"),
    "user": ("bench-user-key-02088", "user:user-02088"),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[key][0]}"}


def _settings(rollup: str, response_cache_s: float = 0) -> dict[str, Any]:
    """Benchmark settings; ``response_cache_s=0``: every request computes its answer (what a cache miss costs)."""
    from recommender.auth import hash_api_key

    return {
        "rollup_path": rollup,
        "api_keys": [{"name": n, "hash": hash_api_key(k), "scope": s} for n, (k, s) in KEYS.items()],
        "anomaly_interval_s": 1e9,  # detection runs once (timed on its own), not on every request
        "metrics_cache_s": 0,  # every /metrics scrape recomputes its gauges
        **({"response_cache_s": response_cache_s} if _has_response_cache() else {}),
        # the precomputer is measured on its own (precomputed_bench); elsewhere every request computes
        **({"precompute_interval_s": 0} if _has_precompute() else {}),
    }


def _has_precompute() -> bool:
    from recommender.config import DEFAULTS

    return "precompute_interval_s" in DEFAULTS


def _has_response_cache() -> bool:
    from recommender.config import DEFAULTS

    return "response_cache_s" in DEFAULTS


def _stats(samples_s: list[float]) -> dict[str, Any]:
    ms = sorted(s * 1000 for s in samples_s)
    q = statistics.quantiles(ms, n=20, method="inclusive") if len(ms) > 1 else ms * 19
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(q[18], 2),
        "max_ms": round(ms[-1], 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


#: a case whose first (warm-up) call takes longer than this gets only SLOW_SAMPLES timed calls
SLOW_S = 5.0
SLOW_SAMPLES = 2


def _timed(
    fn: Any, *, requests: int, warmup: int, budget_s: float, first: Any = None
) -> tuple[dict[str, Any], Any]:
    """Warm-ups, then up to ``requests`` timed calls (at least 5 when over ``budget_s``).

    The first warm-up may be ``first`` (e.g. the same call under the SQL profiler). When it takes
    more than :data:`SLOW_S`, the case gets no more warm-ups and :data:`SLOW_SAMPLES` timed calls:
    the figure is then plainly far off any target and more samples would only cost minutes.
    """
    t = time.perf_counter()
    last = (first or fn)()
    slow = time.perf_counter() - t > SLOW_S
    for _ in range(0 if slow else warmup - 1):
        last = fn()
    samples: list[float] = []
    began = time.perf_counter()
    want = SLOW_SAMPLES if slow else requests
    while len(samples) < want:
        t = time.perf_counter()
        last = fn()
        samples.append(time.perf_counter() - t)
        if not slow and len(samples) >= 5 and time.perf_counter() - began > budget_s:
            break
    return {**_stats(samples), "slow_case": slow}, last


# --- the rollup -------------------------------------------------------------------------------------


def _ensure_rollup(path: Path, events: int, days: int) -> dict[str, Any]:
    meta = Path(f"{path}.json")
    if not path.exists():
        from generate import generate

        log(f"generating {events:,} events over {days} days into {path} ...")
        return generate(path, events=events, days=days)
    if meta.exists():
        return json.loads(meta.read_text())
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    end = conn.execute("SELECT MAX(ts) FROM model_calls").fetchone()[0]
    counts = {
        t: conn.execute(f"SELECT MAX(id) FROM {t}").fetchone()[0] or 0
        for t in ("model_calls", "feature_uses", "feedback", "revenue", "sessions")
    }
    conn.close()
    return {"path": str(path), "end": float(end), "rows": counts, "events": sum(counts.values())}


def _table_rows(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    out = {}
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
        if not name.startswith("sqlite_"):
            try:  # the highest rowid: instant, and the row count of a table never deleted from
                out[name] = conn.execute(f"SELECT MAX(rowid) FROM {name}").fetchone()[0] or 0
            except sqlite3.OperationalError:  # WITHOUT ROWID: count (aggregates, thousands of rows)
                out[name] = conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]
    conn.close()
    return out


# --- SQL profiling (only for endpoints that miss the target) ----------------------------------------


class _Eager:
    """A fully fetched cursor, so a statement's whole cost is charged to it."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.description = cursor.description
        self.lastrowid = cursor.lastrowid
        self._rows = cursor.fetchall()
        self._i = 0

    def __iter__(self) -> Any:
        while self._i < len(self._rows):
            self._i += 1
            yield self._rows[self._i - 1]

    def fetchone(self) -> Any:
        if self._i >= len(self._rows):
            return None
        self._i += 1
        return self._rows[self._i - 1]

    def fetchmany(self, size: int = 1) -> list[Any]:
        out = self._rows[self._i : self._i + size]
        self._i += len(out)
        return out

    def fetchall(self) -> list[Any]:
        out = self._rows[self._i :]
        self._i = len(self._rows)
        return out


class SqlProfiler:
    """Wraps ``Rollup.execute`` in this process; records (caller, sql) -> seconds."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def __enter__(self) -> SqlProfiler:
        from recommender.store.reader import Rollup

        self._original = Rollup.execute
        profiler = self

        def execute(rollup: Any, sql: str, params: Any = ()) -> Any:
            t = time.perf_counter()
            cursor = _Eager(profiler._original(rollup, sql, params))
            profiler.records.append(
                {"seconds": time.perf_counter() - t, "sql": sql, "params": list(params), "caller": _caller()}
            )
            return cursor

        Rollup.execute = execute  # Rollup.rows goes through execute
        return self

    def __exit__(self, *exc: object) -> None:
        from recommender.store.reader import Rollup

        Rollup.execute = self._original


def _caller() -> str:
    chain = []
    for frame in inspect.stack()[2:12]:
        path = frame.filename
        if "/recommender/" in path and not path.endswith(("store/reader.py", "views/common.py")):
            rel = path.split("/recommender/", 1)[1]
            chain.append(f"{rel.removesuffix('.py').replace('/', '.')}.{frame.function}")
        if len(chain) == 3:
            break
    return " <- ".join(chain)


def _plan(path: str, sql: str, params: list[Any]) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
    finally:
        conn.close()


def profile_request(client: Any, url: str, headers: dict[str, str], rollup: str) -> dict[str, Any]:
    with SqlProfiler() as prof:
        t = time.perf_counter()
        response = client.get(url, headers=headers)
        total = time.perf_counter() - t
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    sql_s = sum(r["seconds"] for r in prof.records)
    by_caller: dict[str, float] = {}
    for r in prof.records:
        by_caller[r["caller"]] = by_caller.get(r["caller"], 0.0) + r["seconds"]
    top = sorted(prof.records, key=lambda r: -r["seconds"])[:5]
    return {
        "request_ms": round(total * 1000, 1),
        "sql_ms": round(sql_s * 1000, 1),
        "statements": len(prof.records),
        "by_function_ms": {
            k: round(v * 1000, 1) for k, v in sorted(by_caller.items(), key=lambda kv: -kv[1])[:8]
        },
        "slowest": [
            {
                "ms": round(r["seconds"] * 1000, 1),
                "caller": r["caller"],
                "sql": " ".join(r["sql"].split())[:600],
                "plan": _plan(rollup, r["sql"], r["params"]) if i < 3 else None,
            }
            for i, r in enumerate(top)
        ],
    }


# --- baseline: the same figures from the raw calls ---------------------------------------------------


def baseline(path: str, now: float, requests: int, warmup: int, budget_s: float) -> list[dict[str, Any]]:
    from recommender.params import parse_query
    from recommender.store.reader import Rollup
    from recommender.store.totals import derived, grouped, total

    rollup = Rollup(path)
    out = []
    for period in PERIODS:
        query = parse_query({"period": period}, now=now)
        start, end = query.range.start, query.range.end

        def aggregates(query: Any = query) -> tuple[dict[str, float], float | None]:
            by_team = {r["team"]: float(r["cost_usd"]) for r in grouped(rollup, query, ("team",))}
            return by_team, derived(total(rollup, query))["latency_p95_s"]

        def naive(start: float = start, end: float = end) -> tuple[dict[str, float], float]:
            conn = rollup.connection()
            by_team = {
                r[0]: float(r[1])
                for r in conn.execute(
                    "SELECT COALESCE(team, ''), TOTAL(cost_usd) FROM model_calls WHERE ts >= ? AND ts < ? "
                    "GROUP BY 1",
                    (start, end),
                )
            }
            latencies = [
                r[0]
                for r in conn.execute(
                    "SELECT latency_s FROM model_calls WHERE ts >= ? AND ts < ? ORDER BY latency_s",
                    (start, end),
                )
            ]
            return by_team, latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]

        agg_stats, (agg_teams, agg_p95) = _timed(
            aggregates, requests=requests, warmup=warmup, budget_s=budget_s
        )
        raw_stats, (raw_teams, raw_p95) = _timed(
            naive, requests=max(5, requests // 2), warmup=1, budget_s=budget_s
        )
        worst = max(
            abs(agg_teams[t] - raw_teams.get(t, 0.0)) / max(raw_teams.get(t, 0.0), 1e-9) for t in agg_teams
        )
        out.append(
            {
                "period": period,
                "what": "cost by team + overall p95 latency",
                "aggregates": agg_stats,
                "naive_raw": raw_stats,
                "speedup_p50": round(raw_stats["p50_ms"] / agg_stats["p50_ms"], 1),
                "cost_by_team_max_rel_diff": worst,
                "p95_latency_s": {"aggregates_histogram": agg_p95, "raw_exact": round(raw_p95, 4)},
            }
        )
        log(f"  baseline {period}: aggregates p50 {agg_stats['p50_ms']} ms, raw p50 {raw_stats['p50_ms']} ms")
    rollup.close()
    return out


# --- export (child processes) ------------------------------------------------------------------------


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class _RssSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = _rss_kb()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, _rss_kb())
            time.sleep(0.01)


def export_child(args: argparse.Namespace) -> None:
    """Runs in a fresh process: one export, RSS sampled every 10 ms; prints one JSON line."""
    t_from, t_to = args.export_from, args.export_to
    if args.child == "export-stream":
        from recommender.app import create_app

        app = create_app(_settings(args.rollup))
        client = app.test_client()
        body = {"format": "csv", "dataset": "calls", "period": "custom", "from": str(t_from), "to": str(t_to)}

        def run(body: dict[str, Any]) -> tuple[int, int]:
            response = client.post("/api/analytics/export", json=body, headers=_auth("admin"), buffered=False)
            assert response.status_code == 200, response.status_code
            rows = size = 0
            for chunk in response.iter_encoded():
                size += len(chunk)
                rows += chunk.count(b"\r\n")
            response.close()
            return rows - 1, size  # minus the header line

        run({**body, "from": str(t_to - 60)})  # warm: imports, the connection, the code paths
    else:
        from recommender.export import CALL_COLUMNS, _iso, neutralise

        def run(body: Any) -> tuple[int, int]:
            conn = sqlite3.connect(f"file:{args.rollup}?mode=ro", uri=True)
            selected = ", ".join("ts" if c == "time" else c for c in CALL_COLUMNS)
            rows = conn.execute(
                f"SELECT {selected} FROM model_calls WHERE ts >= ? AND ts < ? ORDER BY ts, id", (t_from, t_to)
            ).fetchall()
            i = CALL_COLUMNS.index("time")
            with open(os.devnull, "w", newline="") as f:
                writer = csv.writer(f, lineterminator="\r\n")
                writer.writerow(CALL_COLUMNS)
                for row in rows:
                    writer.writerow([neutralise(v) for v in (*row[:i], _iso(row[i]), *row[i + 1 :])])
                size = f.tell() if f.seekable() else 0
            conn.close()
            return len(rows), size

        body = None
    import gc

    gc.collect()
    before = _rss_kb()
    sampler = _RssSampler()
    sampler.peak = before
    sampler.start()
    t = time.perf_counter()
    rows, size = run(body)
    seconds = time.perf_counter() - t
    sampler.stop.set()
    sampler.join()
    print(
        json.dumps(
            {
                "mode": args.child,
                "rows": rows,
                "bytes": size,
                "seconds": round(seconds, 2),
                "rows_per_s": round(rows / seconds),
                "rss_before_mb": round(before / 1024, 1),
                "rss_peak_mb": round(sampler.peak / 1024, 1),
                "rss_growth_mb": round((sampler.peak - before) / 1024, 1),
            }
        )
    )


def export_bench(path: str, rows: int) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    last = conn.execute("SELECT MAX(ts) FROM model_calls").fetchone()[0]
    first = conn.execute(
        "SELECT ts FROM model_calls ORDER BY ts DESC LIMIT 1 OFFSET ?", (rows - 1,)
    ).fetchone()
    conn.close()
    t_from = first[0] if first else 0.0
    t_to = last + 1.0
    out: dict[str, Any] = {"from": t_from, "to": t_to}
    for mode in ("export-stream", "export-naive"):
        cmd = [
            sys.executable,
            __file__,
            "--rollup",
            path,
            "--child",
            mode,
            "--export-from",
            repr(t_from),
            "--export-to",
            repr(t_to),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"{mode} failed: {done.stderr[-2000:]}")
        out["stream" if mode == "export-stream" else "naive"] = json.loads(
            done.stdout.strip().splitlines()[-1]
        )
        log(f"  {mode}: {out['stream' if mode == 'export-stream' else 'naive']}")
    return out


# --- HTTP through the real server -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_compare(  # noqa: PLR0917 - a benchmark step's knobs, called once
    path: str, client: Any, now: float, requests: int, warmup: int, budget_s: float
) -> dict[str, Any]:
    """``/api/analytics/models`` for the last 30 days (explicit from/to: the server runs on the real clock)."""
    end = (now // 60) * 60 + 60
    url = f"/api/analytics/models?period=custom&from={end - 30 * 86400:.0f}&to={end:.0f}"
    config = Path(f"{path}.recommender.yaml")
    import yaml

    settings = _settings(path)
    config.write_text(yaml.safe_dump({"recommender": {**settings, "api_keys": settings["api_keys"]}}))
    port = _free_port()
    exe = Path(sys.executable).with_name("nexus-otel")
    cmd = [
        str(exe) if exe.exists() else "nexus-otel",
        "recommender",
        "--config",
        str(config),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("recommender did not start")

        def over_http() -> int:
            req = urllib.request.Request(base + url, headers=_auth("admin"))
            with urllib.request.urlopen(req, timeout=120) as resp:
                return len(resp.read())

        def in_process() -> int:
            response = client.get(url, headers=_auth("admin"))
            assert response.status_code == 200
            return len(response.get_data())

        http_stats, size = _timed(over_http, requests=requests, warmup=warmup, budget_s=budget_s)
        test_stats, _ = _timed(in_process, requests=requests, warmup=warmup, budget_s=budget_s)
    finally:
        server.terminate()
        server.wait(10)
        config.unlink(missing_ok=True)
    return {
        "endpoint": "/api/analytics/models (30 days, custom from/to)",
        "server": "nexus-otel recommender (waitress, 4 threads), urllib, one request at a time",
        "http": http_stats,
        "test_client": test_stats,
        "response_bytes": size,
        "overhead_p50_ms": round(http_stats["p50_ms"] - test_stats["p50_ms"], 2),
    }


# --- anomaly detection --------------------------------------------------------------------------------


def anomaly_bench(path: str, now: float, meta: dict[str, Any], runs: int = 1) -> dict[str, Any]:
    from recommender.insights.anomalies import detect
    from recommender.store.reader import Rollup

    rollup = Rollup(path)
    times, sql_s, result = [], [], {}
    for _ in range(runs):
        with SqlProfiler() as prof:
            t = time.perf_counter()
            result = detect(rollup, now=now)
            times.append(time.perf_counter() - t)
        sql_s.append(sum(r["seconds"] for r in prof.records))
    found = {}
    for name, (a, b) in (meta.get("incidents") or {}).items():
        found[name] = [
            f"{r['detector']} {r['scope']}"
            for r in rollup.rows(
                "SELECT detector, scope FROM anomaly_scores WHERE is_anomaly AND window_start >= ? AND window_start < ? "
                "ORDER BY scope, detector",
                (a, b),
            )
        ]
    rollup.close()
    return {
        "what": "detect(rollup, now): hourly features over the last 28 days, ECOD + IForest fit and score per scope",
        "seconds": [round(t, 2) for t in times],
        "sql_read_seconds": [round(t, 2) for t in sql_s],
        "fit_score_store_seconds": [round(t - q, 2) for t, q in zip(times, sql_s, strict=True)],
        "scopes": result.get("scopes"),
        "windows_scored": result.get("windows"),
        "anomalies": result.get("anomalies"),
        "incident_hours_flagged": found,
    }


# --- main ------------------------------------------------------------------------------------------------


def _cases() -> list[tuple[str, str, str, str]]:
    """(name, path, period, key) of every selected endpoint case (see ``--endpoints/--periods/--keys``)."""
    return [
        (name, path, period, key)
        for name, path in ENDPOINTS
        if name in SELECTED["endpoints"]
        for period in PERIODS
        if period in SELECTED["periods"]
        for key in KEYS
        if key in SELECTED["keys"]
    ]


def endpoints_bench(  # noqa: PLR0917 - a benchmark step's knobs, called once
    client: Any, rollup: str, requests: int, warmup: int, budget_s: float, profile: bool
) -> list[dict[str, Any]]:
    out = []
    for name, path, period, key in _cases():
        url = f"{path}?period={period}"

        def call(url: str = url, key: str = key) -> int:
            response = client.get(url, headers=_auth(key))
            if response.status_code != 200:
                raise RuntimeError(
                    f"{url} ({key}): {response.status_code} {response.get_data(as_text=True)[:300]}"
                )
            return len(response.get_data())

        profiled: dict[str, Any] = {}

        def first(url: str = url, key: str = key, profiled: dict[str, Any] = profiled) -> None:
            # the first warm-up runs with every SQL statement timed (eagerly fetched)
            profiled.update(profile_request(client, url, _auth(key), rollup))

        stats, size = _timed(
            call,
            requests=requests,
            warmup=warmup,
            budget_s=budget_s,
            first=first if profile else None,
        )
        row = {
            "endpoint": path,
            "name": name,
            "period": period,
            "key": key,
            **stats,
            "response_bytes": size,
            "target_met": stats["p95_ms"] < TARGET_P95_MS,
        }
        log(
            f"  {path:32} {period} {key:5}  p50 {stats['p50_ms']:>9.1f} ms  p95 {stats['p95_ms']:>9.1f} ms"
            f"  (n={stats['n']})"
        )
        if profiled and not row["target_met"]:
            row["profile"] = profiled
            for top in profiled["slowest"][:2]:
                log(f"    SQL {top['ms']} ms in {top['caller']}")
        out.append(row)
    return out


def cached_bench(rollup: str, requests: int) -> list[dict[str, Any]]:
    """With the result cache on (60 s): the request that computes, then ``requests`` hits."""
    from recommender.app import create_app

    app = create_app(_settings(rollup, response_cache_s=60))
    client = app.test_client()
    out = []
    for _name, path, period, key in _cases():
        url = f"{path}?period={period}"
        t = time.perf_counter()
        response = client.get(url, headers=_auth(key))
        miss = time.perf_counter() - t
        assert response.status_code == 200
        samples = []
        for _ in range(requests):
            t = time.perf_counter()
            response = client.get(url, headers=_auth(key))
            samples.append(time.perf_counter() - t)
            assert response.status_code == 200
        stats = _stats(samples)
        out.append(
            {
                "endpoint": path,
                "period": period,
                "key": key,
                "miss_ms": round(miss * 1000, 1),
                "hit": stats,
                "target_met": stats["p95_ms"] < TARGET_P95_MS,
            }
        )
        log(
            f"  cached {path:32} {period} {key:5} miss {miss * 1000:9.1f} ms  hit p95 {stats['p95_ms']:.2f} ms"
        )
    return out


def precomputed_bench(rollup: str, requests: int, interval_s: float) -> dict[str, Any]:
    """The precomputer running (its thread, on the frozen clock): its pass, then the answers it serves.

    Only the selected periods are precomputed (the product keeps 24h, 7d, 30d, 90d and mtd), so the
    pass time is that of the benchmarked cases. Served figures are timed twice: with the thread idle
    after its pass, and while a second pass recomputes everything on another thread (the GIL and
    the cores are shared with it: the worst case a viewer sees).
    """
    from recommender.app import create_app
    from recommender.precompute import Precomputer

    app = create_app(_settings(rollup))  # response_cache_s=0: an answer not precomputed would compute
    scopes = {KEYS[k][1] for k in SELECTED["keys"]}
    principals = [p for p in app.extensions["nexus_keys"].principals() if p.scope in scopes]
    pre = Precomputer(
        app.extensions["nexus_rollup"],
        app.config["NEXUS"],
        principals,
        interval_s=interval_s,
        periods=tuple(p for p in PERIODS if p in SELECTED["periods"]),
    )
    app.extensions["nexus_precompute"] = pre
    client = app.test_client()
    pre.start()
    while pre.passes < 1:
        time.sleep(0.5)
    first_pass_s = pre.last_pass_s
    jobs = [
        {"endpoint": n, "scope": sc, "period": p, "seconds": round(sec, 2)} for n, sc, p, sec in pre.last_jobs
    ]
    log(f"  first pass: {first_pass_s:.1f} s for {len(jobs)} answers")
    cases = [(path, period, key) for _n, path, period, key in _cases() if path != "/api/anomalies"]

    def ask(path: str, period: str, key: str) -> float:
        t = time.perf_counter()
        response = client.get(f"{path}?period={period}", headers=_auth(key))
        took = time.perf_counter() - t
        body = response.get_json()
        assert response.status_code == 200, (path, period, key)
        assert body["cache"]["precomputed"], (path, period, key)
        return took

    idle = []
    for path, period, key in cases:
        stats = _stats([ask(path, period, key) for _ in range(requests)])
        idle.append({"endpoint": path, "period": period, "key": key, **stats})
        log(f"  served {path:32} {period} {key:5} p95 {stats['p95_ms']:.2f} ms")
    busy_samples: dict[tuple[str, str, str], list[float]] = {c: [] for c in cases}
    second = threading.Thread(target=pre.run_pass, name="bench-second-pass")
    second.start()
    while second.is_alive():
        for case in cases:
            busy_samples[case].append(ask(*case))
        time.sleep(1.0)  # a dashboard's pace, not a tight loop competing with the pass for the GIL
    second.join()
    pre.stop()
    during = [
        {"endpoint": c[0], "period": c[1], "key": c[2], **_stats(v)} for c, v in busy_samples.items() if v
    ]
    return {
        "interval_s": interval_s,
        "first_pass_s": round(first_pass_s or 0.0, 1),
        "second_pass_s": round(pre.last_pass_s or 0.0, 1),
        "jobs": jobs,
        "served_idle": idle,
        "served_during_pass": during,
    }


def metrics_bench(  # noqa: PLR0917 - a benchmark step's knobs, called once
    app: Any, client: Any, now: float, requests: int, warmup: int, budget_s: float
) -> dict[str, Any]:
    collector = next(iter(app.extensions["nexus_metrics_registry"]._collector_to_names))  # our one collector
    # the first scrape of a fresh app waits at most FIRST_WAIT_S for the first refresh, then answers without gauges
    t = time.perf_counter()
    cold = client.get("/metrics").get_data(as_text=True)
    cold_ms = (time.perf_counter() - t) * 1000
    cold_gauges = "nexus_insights_active_users" in cold
    if collector._worker is not None:
        collector._worker.join()
    refresh, _ = _timed(
        lambda: collector._compute(now), requests=max(5, requests // 4), warmup=1, budget_s=budget_s
    )
    # a scrape: served from the last refresh while the next one runs on a background thread
    worker_wait = []

    samples: list[float] = []
    size = 0
    for i in range(warmup + max(5, requests // 4)):
        t = time.perf_counter()
        response = client.get("/metrics")
        elapsed = time.perf_counter() - t
        assert response.status_code == 200
        size = len(response.get_data())
        if i >= warmup:
            samples.append(elapsed)
        worker = collector._worker
        if worker is not None:  # let the refresh this scrape started finish, outside the timed part
            t = time.perf_counter()
            worker.join()
            worker_wait.append(time.perf_counter() - t)
    scrape_stats = _stats(samples)
    return {
        "endpoint": "/metrics",
        "scrape": scrape_stats,
        "refresh": refresh,
        "response_bytes": size,
        "cold_scrape_ms": round(cold_ms, 1),
        "cold_scrape_had_gauges": cold_gauges,
        "note": "a scrape returns the gauges of the previous refresh and starts the next on a thread; "
        "'refresh' is what that thread computes (anomaly gauges, 30d recommendations, 90d/30d users)",
    }


def table(results: dict[str, Any]) -> str:
    lines = [
        "| endpoint | period | key | p50 ms | p95 ms | max ms | n | target met (p95 < 200 ms) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results.get("endpoints", []):
        lines.append(
            f"| `{r['endpoint']}` | {r['period']} | {r['key']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
            f"{r['max_ms']:.1f} | {r['n']} | {'yes' if r['target_met'] else '**no**'} |"
        )
    m = results.get("metrics")
    if m:
        for part in ("scrape", "refresh"):
            s = m[part]
            lines.append(
                f"| `/metrics` ({part}) | 30d+90d | none | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | "
                f"{s['max_ms']:.1f} | {s['n']} | {'yes' if s['p95_ms'] < TARGET_P95_MS else '**no**'} |"
            )
    out = ["\n".join(lines), ""]
    if results.get("cached"):
        out.append(
            "| with the result cache (60 s) | period | key | miss ms | hit p50 ms | hit p95 ms | hit target met |"
        )
        out.append("| --- | --- | --- | ---: | ---: | ---: | --- |")
        for r in results["cached"]:
            out.append(
                f"| `{r['endpoint']}` | {r['period']} | {r['key']} | {r['miss_ms']:.1f} | {r['hit']['p50_ms']:.2f} | "
                f"{r['hit']['p95_ms']:.2f} | {'yes' if r['target_met'] else '**no**'} |"
            )
        out.append("")
    pre = results.get("precomputed")
    if pre:
        during = {(r["endpoint"], r["period"], r["key"]): r for r in pre["served_during_pass"]}
        out.append(
            f"Precomputed (one pass: {pre['first_pass_s']} s for {len(pre['jobs'])} answers, sequential; "
            f"a second pass {pre['second_pass_s']} s while the served requests below ran)"
        )
        out.append("")
        out.append(
            "| precomputed, served | period | key | idle p50 ms | idle p95 ms | during a pass p50 / p95 ms (n) "
            "| target met |"
        )
        out.append("| --- | --- | --- | ---: | ---: | ---: | --- |")
        for r in pre["served_idle"]:
            d = during.get((r["endpoint"], r["period"], r["key"]))
            busy = f"{d['p50_ms']:.2f} / {d['p95_ms']:.2f} ({d['n']})" if d else "-"
            worst = max(r["p95_ms"], d["p95_ms"] if d else 0.0)
            out.append(
                f"| `{r['endpoint']}` | {r['period']} | {r['key']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
                f"{busy} | {'yes' if worst < TARGET_P95_MS else '**no**'} |"
            )
        out.append("")
    if results.get("baseline"):
        out.append(
            "| baseline: cost by team + p95 latency | period | aggregates p50 / p95 ms | naive raw p50 / p95 ms | speed-up (p50) |"
        )
        out.append("| --- | --- | ---: | ---: | ---: |")
        for b in results["baseline"]:
            out.append(
                f"| same figures | {b['period']} | {b['aggregates']['p50_ms']:.1f} / {b['aggregates']['p95_ms']:.1f} | "
                f"{b['naive_raw']['p50_ms']:.1f} / {b['naive_raw']['p95_ms']:.1f} | {b['speedup_p50']}x |"
            )
        out.append("")
    h = results.get("http")
    if h:
        out.append(
            f"HTTP ({h['endpoint']}): real server p50 {h['http']['p50_ms']:.1f} ms / p95 {h['http']['p95_ms']:.1f} ms "
            f"vs test client p50 {h['test_client']['p50_ms']:.1f} ms / p95 {h['test_client']['p95_ms']:.1f} ms "
            f"(overhead p50 {h['overhead_p50_ms']:+.1f} ms, {h['response_bytes']:,} bytes)"
        )
    e = results.get("export")
    if e:
        s, n = e["stream"], e["naive"]
        out.append(
            f"Export CSV, {s['rows']:,} calls: streamed {s['rows_per_s']:,} rows/s, peak RSS growth "
            f"{s['rss_growth_mb']} MB ({'meets' if s['rss_growth_mb'] < TARGET_EXPORT_RSS_MB else '**misses**'} "
            f"< {TARGET_EXPORT_RSS_MB:.0f} MB); naive fetchall + csv: {n['rows_per_s']:,} rows/s, "
            f"RSS growth {n['rss_growth_mb']} MB"
        )
    a = results.get("anomalies")
    if a:
        out.append(
            f"Anomaly detection (pyod ECOD + IForest, 28 days): {a['seconds'][0]} s = "
            f"{a['sql_read_seconds'][0]} s reading hourly sums + {a['fit_score_store_seconds'][0]} s features, "
            f"fit, score and store, for {a['scopes']} scopes / {a['windows_scored']:,} scored windows "
            f"({a['anomalies']} anomalies; injected incidents flagged: "
            f"{ {k: len(v) for k, v in a['incident_hours_flagged'].items()} })"
        )
    if m:
        out.append(
            f"/metrics cold scrape (fresh app): {m['cold_scrape_ms']} ms, gauges present: {m['cold_scrape_had_gauges']}"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollup", default="/tmp/nexus-bench/rollup-10m.db")
    parser.add_argument("--events", type=int, default=10_000_000, help="when generating the rollup")
    parser.add_argument("--days", type=int, default=90, help="when generating the rollup")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per case")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--budget-s",
        type=float,
        default=60.0,
        help="stop a case after this long once it has 5 samples (slow endpoints)",
    )
    parser.add_argument("--export-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=[
            "endpoints",
            "cached",
            "precomputed",
            "baseline",
            "http",
            "metrics",
            "export",
            "anomalies",
            "profile",
        ],
    )
    parser.add_argument(
        "--endpoints",
        default=",".join(SELECTED["endpoints"]),
        help="comma-separated subset of " + ",".join(n for n, _ in ENDPOINTS),
    )
    parser.add_argument(
        "--periods",
        default=",".join(SELECTED["periods"]),
        help="comma-separated subset of " + ",".join(PERIODS),
    )
    parser.add_argument(
        "--keys", default=",".join(SELECTED["keys"]), help="comma-separated subset of admin,team,user"
    )
    parser.add_argument(
        "--precompute-interval-s",
        type=float,
        default=60.0,
        help="the precomputer's interval in the precomputed step (no rollup changes: it re-runs after 10)",
    )
    parser.add_argument("--output", default=str(ROOT / "benchmarks/results/recommender.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--export-from", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--export-to", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name, known in (("endpoints", [n for n, _ in ENDPOINTS]), ("periods", PERIODS), ("keys", list(KEYS))):
        chosen = tuple(v for v in getattr(args, name).split(",") if v)
        if not chosen or set(chosen) - set(known):
            parser.error(f"--{name} must be a comma-separated subset of {','.join(known)}")
        SELECTED[name] = chosen
    if args.child:
        export_child(args)
        return 0

    from nexus_otel.clock import SimulatedClock

    path = Path(args.rollup)
    meta = _ensure_rollup(path, args.events, args.days)
    now = float(meta["end"])
    rollup = str(path)
    results: dict[str, Any] = {
        "benchmark": "recommender",
        "command": "python benchmarks/recommender/run.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip(),
        "git_dirty_paths": subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "recommender", "exporters"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split("\n"),
        "machine": {
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "rollup": {**meta, "file_bytes": path.stat().st_size, "table_rows": _table_rows(path)},
        "now": datetime.fromtimestamp(now, timezone.utc).isoformat(),
        "method": {
            "requests": args.requests,
            "warmup": args.warmup,
            "budget_s": args.budget_s,
            "target_p95_ms": TARGET_P95_MS,
            "keys": {k: s for k, (_, s) in KEYS.items()},
        },
    }
    log(f"rollup {path}: {meta.get('events', 0):,} events, now = {results['now']}")
    with SimulatedClock(start=now):
        if "anomalies" not in args.skip:
            log("anomaly detection ...")
            results["anomalies"] = anomaly_bench(rollup, now, meta)
            log(f"  {results['anomalies']}")
        from recommender.app import create_app

        app = create_app(_settings(rollup))
        client = app.test_client()
        if (
            "anomalies" in args.skip
        ):  # the endpoint needs one stored run; without it the first request runs it
            client.get("/api/anomalies", headers=_auth("admin"))
        if "endpoints" not in args.skip:
            log("endpoints (test client) ...")
            results["endpoints"] = endpoints_bench(
                client, rollup, args.requests, args.warmup, args.budget_s, "profile" not in args.skip
            )
        if "cached" not in args.skip and _has_response_cache():
            log("endpoints with the result cache on (response_cache_s=60) ...")
            results["cached"] = cached_bench(rollup, args.requests)
        if "precomputed" not in args.skip and _has_precompute():
            log("precomputed answers (the precompute thread) ...")
            results["precomputed"] = precomputed_bench(rollup, args.requests, args.precompute_interval_s)
        if "metrics" not in args.skip:
            log("/metrics ...")
            results["metrics"] = metrics_bench(app, client, now, args.requests, args.warmup, args.budget_s)
        if "baseline" not in args.skip:
            log("baseline: aggregates vs raw calls ...")
            results["baseline"] = baseline(rollup, now, args.requests, args.warmup, args.budget_s)
        if "http" not in args.skip:
            log("HTTP vs test client ...")
            results["http"] = http_compare(rollup, client, now, args.requests, args.warmup, args.budget_s)
    if "export" not in args.skip:
        log("export (fresh subprocesses) ...")
        results["export"] = export_bench(rollup, args.export_rows)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
