"""SimulatedClock: traffic recorded through the real decorators lands at simulated times."""

from __future__ import annotations

import sqlite3
import time

import pytest

import nexus_otel
from nexus_otel import clock
from nexus_otel.clock import SimulatedClock
from nexus_otel.telemetry import ConfigError
from tests.rollup_data import utc

START = utc("2026-03-02T09:00:00")


@pytest.fixture
def rollup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "rollup.db"
    nexus_otel.configure(rollup=str(path), event_flush_interval_s=0.05, service_name="clock-test")
    yield path
    nexus_otel.shutdown()


def test_calls_and_product_events_take_the_simulated_time_and_duration(rollup):
    with SimulatedClock(start=START) as sim:
        with nexus_otel.track_model_call(
            model="gpt-4o", provider="openai", user_id="ann", feature="chat"
        ) as call:
            clock.sleep(2.5)  # the provider takes 2.5 simulated seconds, instantly
            call.record_usage(input_tokens=10, output_tokens=5)
        sim.advance(86400)
        nexus_otel.track_feature("search", user_id="ann")
        assert sim.now == START + 2.5 + 86400
    nexus_otel.shutdown()
    db = sqlite3.connect(rollup)
    ts, latency = db.execute("SELECT ts, latency_s FROM model_calls").fetchone()
    assert ts == pytest.approx(START)
    assert latency == pytest.approx(2.5)
    assert db.execute("SELECT ts FROM feature_uses").fetchone()[0] == pytest.approx(START + 2.5 + 86400)
    assert [r[0] for r in db.execute("SELECT day FROM user_day ORDER BY day")] == ["2026-03-02", "2026-03-03"]


def test_the_real_clock_comes_back_and_only_one_simulation_runs_at_a_time():
    with SimulatedClock(start=1000.0) as sim:
        assert clock.now() == 1000.0
        with pytest.raises(RuntimeError, match="already active"):
            SimulatedClock(start=5.0).__enter__()
        with pytest.raises(ValueError, match="only moves forward"):
            sim.advance(-1)
    assert abs(clock.now() - time.time()) < 5
    assert clock.sleep is time.sleep


def _one_call_at(path, ts: float, **settings) -> None:
    nexus_otel.configure(rollup=str(path), service_name="retention-test", **settings)
    with SimulatedClock(start=ts), nexus_otel.track_model_call(model="gpt-4o", provider="openai") as call:
        call.record_usage(input_tokens=10, output_tokens=5)
    nexus_otel.shutdown()


def test_embedded_rollup_retention_prunes_old_raw_events_unless_told_to_keep_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "rollup.db"
    now = time.time()
    _one_call_at(path, now - 200 * 86400, rollup_retention_days=0)
    _one_call_at(path, now - 100, rollup_retention_days=0)  # opening it again keeps the old call
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM model_calls").fetchone()[0] == 2
    _one_call_at(path, now - 50)  # the default, 90 days, prunes the 200-day-old call
    assert db.execute("SELECT COUNT(*) FROM model_calls WHERE ts > ?", (now - 3600,)).fetchone()[0] == 2
    assert db.execute("SELECT COUNT(*) FROM model_calls").fetchone()[0] == 2
    assert db.execute("SELECT SUM(requests) FROM agg_day").fetchone()[0] == 3  # aggregates keep it


@pytest.mark.parametrize("days", [-1, float("nan")])
def test_a_negative_retention_is_refused_with_its_name(tmp_path, days):
    with pytest.raises(ConfigError, match="rollup_retention_days"):
        nexus_otel.configure(rollup=str(tmp_path / "r.db"), rollup_retention_days=days)
