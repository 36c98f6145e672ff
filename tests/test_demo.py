"""`nexus-otel demo` pieces: the backfill, the rule levels, the command's arguments and its Ctrl-C."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nexus_otel.demo.backfill import history_incidents, run_backfill
from nexus_otel.demo.prometheus import recording_rule_levels
from tests.scrape import scrape

ROOT = Path(__file__).resolve().parent.parent
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "OTEL_"))},
    "PYTHONUNBUFFERED": "1",
    "PYTHONPATH": str(ROOT),
}
DAY = 86400.0


def test_backfill_writes_every_call_at_its_time_and_a_valid_metrics_history(tmp_path):
    end = 1_790_000_000.0
    result = run_backfill(
        rollup=tmp_path / "rollup.db",
        start=end - 2 * DAY,
        end=end,
        calls_per_day=3000,
        openmetrics=tmp_path / "history.om",
        metrics_windows=((end - 3600, end),),
        scrape_step_s=600,
    )
    db = sqlite3.connect(tmp_path / "rollup.db")
    count, first, last, slow = db.execute(
        "SELECT COUNT(*), MIN(ts), MAX(ts), AVG(latency_s) FROM model_calls"
    ).fetchone()
    assert count == result.calls > 4000
    assert end - 2 * DAY <= first < end - 2 * DAY + 600
    assert end - 600 < last <= end
    assert slow > 0.1  # simulated provider latency passed on the simulated clock
    # one scrape every 10 minutes over the last hour: 7 timestamps per series, then # EOF
    text = (tmp_path / "history.om").read_text()
    assert text.endswith("# EOF\n")
    stamps = {line.rsplit(" ", 1)[1] for line in text.splitlines() if line and not line.startswith("#")}
    assert stamps == {str(int(end - 3600 + 600 * i)) for i in range(7)}
    done = subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(tmp_path / "history.om"), str(tmp_path / "tsdb")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # the totals the live process continues from are the history's
    requests = sum(h.count for h in result.metrics.histograms["gen_ai.client.operation.duration"].values())
    assert requests == result.calls


def test_history_incidents_fall_inside_the_window_at_14_utc():
    end = 1_790_000_000.0
    incidents = history_incidents(end - 7 * DAY, end)
    assert sorted(i.kind for i in incidents) == ["cost_spike", "errors", "latency", "usage_drop"]
    for incident in incidents:
        at = end - 7 * DAY + incident.start_s
        assert (at % DAY) / 3600 == 14.0
    assert [i.kind for i in history_incidents(end - 2.5 * DAY, end)] == ["cost_spike"]


def test_recording_rules_split_by_dependency_level(tmp_path):
    levels = recording_rule_levels(ROOT / "rules" / "recording.yml", tmp_path)
    text = [p.read_text() for p in levels]
    assert len(levels) >= 2
    assert "record: team_project_feature_provider_model:nexus_cost_usd:rate5m" in text[0]
    assert "record: team_project:nexus_cost_usd:rate5m" in text[1]  # built on the level-0 series


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--history-days", "0"], "--history-days"),
        (["--incident", "meteor@1m+2m"], "KIND@START+DURATION"),
        (["--collector-port", "70000"], "--collector-port"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(tmp_path, args, message):
    result = subprocess.run(
        [sys.executable, "-m", "nexus_otel", "demo", "--workdir", str(tmp_path / "d"), *args],
        capture_output=True, text=True, timeout=60, env=ENV, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "d").exists()


def test_refuses_a_workdir_it_did_not_make(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    result = subprocess.run(
        [sys.executable, "-m", "nexus_otel", "demo", "--workdir", str(tmp_path), "--no-prometheus"],
        capture_output=True, text=True, timeout=60, env=ENV, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "was not made by the demo" in result.stderr
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_without_prometheus_serves_the_collector_and_ctrl_c_keeps_every_call(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "nexus_otel", "demo", "--workdir", str(tmp_path / "demo"), "--no-prometheus",
         "--history-days", "0.2", "--calls-per-day", "200000", "--collector-port", "0", "--recommender-port", "0",
         "--summary-every", "1",
         # live arrivals follow the wall clock's diurnal curve: at night on a weekend ~0.2 calls/s, so
         # a few seconds often held none; a cost spike from the start floors them at 40 % of the peak
         "--incident", "cost_spike@0m+10m"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV,
    )  # fmt: skip
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "live traffic is running" in line:
                break
        url = next(m.group(1) for m in (re.match(r"collector:\s+(\S+)", x) for x in lines) if m)
        deadline = time.monotonic() + 30
        while True:  # the app exports every 5 s; the active users come from the backfilled rollup
            metrics = scrape(f"{url}/metrics")
            if metrics.value("nexus_cost_usd_total", default=0) > 0:
                break
            assert time.monotonic() < deadline, "no cost reached the collector"
            time.sleep(0.5)
        assert metrics.value("nexus_active_users", {"window": "1d"}) > 0
        time.sleep(5)  # some live calls (~1.8/s)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(lines) + out
    match = re.search(r"done: ([\d,]+) calls backfilled, ([\d,]+) live; the rollup holds ([\d,]+) calls", out)
    backfilled, live, held = (int(g.replace(",", "")) for g in match.groups())
    assert live > 0
    assert held == backfilled + live


def test_stopping_live_traffic_cuts_the_calls_in_flight_short_and_records_them(tmp_path, monkeypatch):
    import threading

    import nexus_otel
    from nexus_otel.demo.live import LiveTraffic
    from nexus_otel.demo.traffic import Incident

    monkeypatch.chdir(tmp_path)
    rollup = tmp_path / "rollup.db"
    nexus_otel.configure(rollup=str(rollup), service_name="live-stop-test", event_flush_interval_s=0.1)
    # a verbose, slow model: each call's simulated latency is minutes
    slow = (Incident("cost_spike", 0, 3600), Incident("latency", 0, 3600))
    traffic = LiveTraffic(calls_per_day=20_000_000, incidents=slow, max_concurrency=4)
    try:
        traffic.start()
        time.sleep(1.0)  # arrivals every few ms: all four threads are inside a call
        stopper = threading.Thread(target=traffic.stop)
        stopper.start()
        stopper.join(timeout=60)  # a liveness bound, far below one call's simulated latency
        assert not stopper.is_alive(), "stop() waited for the simulated provider latency"
    finally:
        nexus_otel.shutdown()
    calls = traffic.totals().calls
    assert calls >= 4
    assert sqlite3.connect(rollup).execute("SELECT COUNT(*) FROM model_calls").fetchone()[0] == calls


def test_a_live_cost_spike_keeps_calls_coming_at_the_quietest_hour():
    """At 04:00 on a Saturday the curve is ~5% of peak: a spike there must still cost real money."""
    from datetime import datetime, timezone

    from nexus_otel.demo.live import SPIKE_RATE_FLOOR, LiveTraffic
    from nexus_otel.demo.traffic import Incident, TrafficSimulator

    saturday_4am = datetime(2026, 12, 5, 4, tzinfo=timezone.utc).timestamp()
    quiet = TrafficSimulator.rate_factor(saturday_4am)
    assert quiet < SPIKE_RATE_FLOOR / 4
    traffic = LiveTraffic(calls_per_day=20_000, incidents=(Incident("cost_spike", 60, 600),))
    traffic.started_at = saturday_4am
    assert traffic.rate_factor(saturday_4am + 30) == TrafficSimulator.rate_factor(saturday_4am + 30)  # before
    assert traffic.rate_factor(saturday_4am + 60) == SPIKE_RATE_FLOOR
    assert traffic.rate_factor(saturday_4am + 660) == TrafficSimulator.rate_factor(saturday_4am + 660)
    weekday_peak = datetime(2026, 12, 2, 15, tzinfo=timezone.utc).timestamp()
    traffic.started_at = weekday_peak
    assert (
        traffic.rate_factor(weekday_peak + 60)
        == TrafficSimulator.rate_factor(weekday_peak + 60)
        > SPIKE_RATE_FLOOR
    )
    traffic._pool.shutdown()


@pytest.mark.parametrize("during", ["backfilling", "loading the metrics history"])
def test_ctrl_c_during_start_up_stops_cleanly_and_keeps_what_was_recorded(tmp_path, during):
    """Ctrl-C in a terminal reaches the whole process group: promtool must not die with it."""
    if during.startswith("loading") and shutil.which("promtool") is None:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nexus_otel", "demo", "--workdir", str(tmp_path / "demo"),
         "--history-days", "0.1", "--calls-per-day", "40000", "--metrics-history-hours", "2.4",
         "--collector-port", "0", "--recommender-port", "0", "--prometheus-port", "0", "--alertmanager-port", "0"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )  # fmt: skip
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith(during):
                break
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: every process of the group
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = "".join(lines) + out
    assert proc.returncode == 0, text
    assert "interrupted during start-up" in text
    assert "failed" not in text
    match = re.search(r"done: ([\d,]+) calls backfilled, ([\d,]+) live; the rollup holds ([\d,]+) calls", out)
    backfilled, live, held = (int(g.replace(",", "")) for g in match.groups())
    assert live == 0
    assert held == backfilled > 0
    with sqlite3.connect(tmp_path / "demo" / "rollup.db") as db:
        assert db.execute("SELECT COUNT(*) FROM model_calls").fetchone()[0] == held
