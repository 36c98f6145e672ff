"""One-shot step of docker-compose.yml: demo history before the stack starts.

Runs once per set of volumes (a marker file makes later runs a no-op):

1. ``NEXUS_DEMO_HISTORY_DAYS`` days of simulated traffic through the real
   decorators into the rollup (``/data/rollup.db``), and the last 25 hours of
   the metrics as OpenMetrics (``nexus_otel.demo``'s backfill);
2. budgets sized from the month-to-date spend (``/data/budgets.yaml``), one team
   past each alert threshold, which the collector then loads;
3. that history as TSDB blocks in Prometheus's volume (``promtool``), and the
   recording rules evaluated over it level by level, so the anomaly bands'
   "same hour yesterday" and every dashboard panel have data on first start.

Everything is done by the functions ``nexus-otel demo`` uses; this script only
puts the results where the compose services expect them.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from nexus_otel.demo.backfill import run_backfill
from nexus_otel.demo.prometheus import (
    PrometheusSetup,
    backfill_metrics,
    backfill_recording_rules,
    recording_rule_levels,
    start_prometheus,
)
from nexus_otel.demo.run import INSTANCE_ID, SERVICE_NAME, Demo, DemoOptions

DATA = Path(os.environ.get("NEXUS_DEMO_DATA", "/data"))
TSDB = Path(os.environ.get("NEXUS_DEMO_TSDB", "/prometheus"))
RULES = Path(os.environ.get("NEXUS_DEMO_RULES", "/app/rules"))
PROMETHEUS_UID = 65534  # the prom/prometheus image runs as nobody
NEXUS_UID = 10001  # the Dockerfile's "nexus" user runs the collector and recommender


def main() -> int:
    marker = DATA / ".history-done"
    if marker.exists():
        print(f"history already in place ({marker}); nothing to do")
        return 0
    options = DemoOptions(
        workdir=DATA,
        history_days=float(os.environ.get("NEXUS_DEMO_HISTORY_DAYS", "7")),
        calls_per_day=float(os.environ.get("NEXUS_DEMO_CALLS_PER_DAY", "20000")),
        scrape_interval_s=15.0,
    )
    DATA.mkdir(parents=True, exist_ok=True)
    for stale in ("rollup.db", "rollup.db-wal", "rollup.db-shm", "history.om"):
        (DATA / stale).unlink(missing_ok=True)
    demo = Demo(options)
    history = DATA / "history.om"
    began = time.monotonic()
    end = time.time()
    start, metrics_start = end - options.history_days * 86400, end - options.metrics_history_hours * 3600
    print(f"backfilling {options.history_days:g} days of demo traffic ...", flush=True)
    result = run_backfill(
        rollup=demo.rollup,
        start=start,
        end=end,
        calls_per_day=options.calls_per_day,
        seed=options.seed,
        users=options.users,
        openmetrics=history,
        metrics_windows=((metrics_start, end),),
        scrape_step_s=120.0,
        service_name=SERVICE_NAME,
        service_instance_id=INSTANCE_ID,
    )
    print(f"  {result.calls} calls in {time.monotonic() - began:.0f} s", flush=True)
    print(f"budgets: {demo.write_budgets()}")

    work = Path(os.environ.get("TMPDIR", "/tmp")) / "nexus-history-prometheus"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "tsdb").symlink_to(TSDB)
    TSDB.mkdir(parents=True, exist_ok=True)
    backfill_metrics(history, TSDB)
    history.unlink()
    setup = PrometheusSetup(
        workdir=work,
        rule_files=(),
        scrape_targets={},
        scrape_interval_s=options.scrape_interval_s,
    )
    prometheus = start_prometheus(setup)
    try:
        for level in recording_rule_levels(RULES / "recording.yml", work / "rule-levels"):
            print(f"recording rules over the history: {level.name}", flush=True)
            backfill_recording_rules(
                prometheus_url=prometheus.url,
                rules=level,
                start=metrics_start,
                end=end,
                tsdb=setup.tsdb,
                eval_interval_s=60.0,
            )
            prometheus.stop()
            prometheus = start_prometheus(setup)  # loads the blocks just written
    finally:
        prometheus.stop()
    (TSDB / "lock").unlink(missing_ok=True)
    if os.geteuid() == 0:  # in compose: hand each volume to the user of its service
        for root, uid in ((TSDB, PROMETHEUS_UID), (DATA, NEXUS_UID)):
            for path in [root, *root.rglob("*")]:
                os.chown(path, uid, uid)
    marker.write_text(f"{time.time():.0f}\n")
    print(f"done in {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
