"""The precomputer: standard periods of each scope answered before they are asked, kept fresh."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from prom_servers import wait_until
from recommender_traffic import RecordedTraffic, app_settings, auth
from scrape import Scrape

from nexus_otel.clock import SimulatedClock
from recommender.app import create_app
from recommender.config import ConfigError, load_settings
from recommender.precompute import INSIGHTS, PERIODS

DAY = 86400
T0 = datetime(2026, 11, 2, tzinfo=timezone.utc).timestamp()
NOW = T0 + 20 * DAY + 12 * 3600
ENDPOINTS = {
    "analytics": "/api/analytics",
    "costs": "/api/analytics/costs",
    "models": "/api/analytics/models",
    "recommendations": "/api/insights/recommendations",
}


def record(path, *, start: float, days: int, calls_per_day: int) -> None:
    with RecordedTraffic(path, start=start) as traffic:
        for day in range(days):
            for i in range(calls_per_day):
                team = "search" if i % 3 else "support"
                traffic.call(
                    start + day * DAY + 600 * i,
                    user_id=f"u{i % 5}",
                    team=team,
                    feature="chat",
                    model="gpt-test",
                )


def get(client, path, key):
    response = client.get(path, headers=auth(key))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_standard_periods_are_served_precomputed_and_equal_a_fresh_computation(tmp_path):
    rollup = tmp_path / "rollup.db"
    record(rollup, start=T0, days=20, calls_per_day=6)
    warm = create_app(app_settings(rollup))  # the thread is off: passes run here, on the test's clock
    fresh = create_app(app_settings(rollup)).test_client()
    precomputer = warm.extensions["nexus_precompute"]
    assert {who.scope for who in precomputer.principals} == {"admin", "team:search"}  # not user keys
    client = warm.test_client()
    with SimulatedClock(start=NOW):
        assert precomputer.run_pass() == len(INSIGHTS) * len(PERIODS) * 2
        for name, path in ENDPOINTS.items():
            for key in ("admin", "team-search"):
                for period in PERIODS:
                    served = get(client, f"{path}?period={period}", key)
                    assert served["cache"]["precomputed"] is True, (name, key, period)
                    computed = get(fresh, f"{path}?period={period}", key)
                    assert computed["cache"]["precomputed"] is False
                    assert served["data"] == computed["data"], (name, key, period)
                    assert served["query"] == computed["query"]
        # the endpoint's default period is one of the standard ones, asked for without `period`
        assert get(client, "/api/analytics/models", "team-search")["cache"]["precomputed"] is True
        # other filters, custom ranges and user keys are computed on request, as before
        assert (
            get(client, "/api/analytics/models?period=7d&model=gpt-test", "admin")["cache"]["precomputed"]
            is False
        )
        assert (
            get(client, f"/api/analytics?period=custom&from={T0}&to={NOW}", "admin")["cache"]["precomputed"]
            is False
        )
        assert get(client, "/api/analytics?period=7d", "user-alice")["cache"]["precomputed"] is False
        team = get(client, "/api/analytics/models?period=7d", "team-search")
    # the team's own calls only (4 of every day's 6, at 00:00-00:50): days 14-19 of the 7 days to 12:00
    assert team["data"]["total_requests"] == 6 * 4


def test_a_pass_after_new_rows_serves_them(tmp_path):
    rollup = tmp_path / "rollup.db"
    record(rollup, start=T0, days=10, calls_per_day=6)
    app = create_app(app_settings(rollup))
    client = app.test_client()
    precomputer = app.extensions["nexus_precompute"]
    later = T0 + 10 * DAY + 12 * 3600
    with SimulatedClock(start=later):
        precomputer.run_pass()
        before = get(client, "/api/analytics/costs?period=30d", "admin")
    assert before["cache"]["precomputed"] is True
    assert before["data"]["breakdown"]["team"][0]["requests"] == 40  # search: 4 of 6 calls a day

    record(rollup, start=T0 + 10 * DAY, days=1, calls_per_day=3)  # lands after the pass
    with SimulatedClock(start=later):
        stale = get(client, "/api/analytics/costs?period=30d", "admin")
        assert stale["data"] == before["data"]  # served from the pass until the next one
        precomputer.run_pass()
        after = get(client, "/api/analytics/costs?period=30d", "admin")
        computed = get(
            create_app(app_settings(rollup)).test_client(), "/api/analytics/costs?period=30d", "admin"
        )
    assert after["cache"]["precomputed"] is True
    assert after["data"]["breakdown"]["team"][0]["requests"] == 42
    assert after["data"] == computed["data"]


def test_a_pass_is_due_when_the_rollup_changed_or_after_ten_idle_intervals(tmp_path):
    rollup = tmp_path / "rollup.db"
    record(rollup, start=T0, days=2, calls_per_day=3)
    precomputer = create_app(app_settings(rollup, precompute_interval_s=0)).extensions["nexus_precompute"]
    precomputer.interval_s = 60.0  # the thread is off; only the rule is asked here
    with SimulatedClock(start=T0 + 2 * DAY):
        precomputer.run_pass()
    assert not precomputer.due(0.0)  # nothing changed
    assert precomputer.due(600.0)  # relative periods slide: redo after ten intervals anyway
    record(rollup, start=T0 + 2 * DAY, days=1, calls_per_day=1)
    assert precomputer.due(0.0)  # another connection committed rows
    with SimulatedClock(start=T0 + 3 * DAY):
        precomputer.run_pass()
    assert not precomputer.due(0.0)


def test_the_thread_keeps_answers_fresh_and_stops(tmp_path):
    # real time: the thread's passes read the real clock, so the calls are recorded in the last hours
    rollup = tmp_path / "rollup.db"
    now = time.time()
    record(rollup, start=now - 4 * 3600, days=1, calls_per_day=3)
    app = create_app(app_settings(rollup, precompute_interval_s=0.2))
    precomputer = app.extensions["nexus_precompute"]
    client = app.test_client()
    try:
        assert precomputer.running
        wait_until(lambda: precomputer.passes >= 1, timeout_s=120, what="the first precompute pass")
        first = get(client, "/api/analytics/models?period=24h", "team-search")
        assert first["cache"]["precomputed"] is True
        assert first["data"]["total_requests"] == 2  # calls 1 and 2 are the search team's

        record(rollup, start=now - 2 * 3600, days=1, calls_per_day=3)

        def refreshed() -> bool:
            body = get(client, "/api/analytics/models?period=24h", "team-search")
            return body["cache"]["precomputed"] and body["data"]["total_requests"] == 4

        wait_until(refreshed, timeout_s=120, what="a pass that sees the new calls")
    finally:
        precomputer.stop()
    assert not precomputer.running
    passes = precomputer.passes
    assert get(client, "/api/analytics/models?period=24h", "team-search")["data"]["total_requests"] == 4
    assert precomputer.passes == passes  # stopped: no pass ran since


@pytest.mark.parametrize("value", [-1, "soon", True])
def test_precompute_interval_is_validated(tmp_path, value):
    with pytest.raises(ConfigError, match="precompute_interval_s"):
        load_settings(
            overrides={"rollup_path": str(tmp_path / "r.db"), "precompute_interval_s": value}, environ={}
        )


def test_precompute_interval_zero_starts_no_thread(tmp_path):
    app = create_app(app_settings(tmp_path / "rollup.db", precompute_interval_s=0))
    assert not app.extensions["nexus_precompute"].running


def user_gauges(client, at: float) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The user gauges of a refresh computed at simulated time ``at`` (a scrape returns the last one)."""

    def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        got = Scrape(client.get("/metrics").get_data(as_text=True))
        if got.value("nexus_recommender_insights_timestamp_seconds", default=-1.0) != at:
            return None
        return {key: value for key, value in got.samples.items() if key[0].startswith("nexus_insights_")}

    return wait_until(scrape, timeout_s=120, what=f"user gauges computed at {at}", interval_s=0.2)


def mau(gauges: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
    return gauges[("nexus_insights_active_users", frozenset({("window", "mau")}))]


def test_user_gauges_show_the_precomputed_answers_and_equal_a_computation(tmp_path):
    rollup = tmp_path / "rollup.db"
    with RecordedTraffic(rollup, start=NOW - 75 * DAY) as traffic:
        for day in range(75):
            for user in range(8):
                # users 0-3 every day; 4-5 only in the first 40 days (they churn); 6-7 every third day
                if (user in (4, 5) and day >= 40) or (user >= 6 and day % 3):
                    continue
                feature = ("chat", "search", "summarise")[user % 3]
                traffic.call(NOW - (75 - day) * DAY + 3600 * user, user_id=f"u{user}", feature=feature)
    settings = app_settings(rollup, metrics_cache_s=0)
    served = create_app(settings)
    with SimulatedClock(start=NOW):
        served.extensions["nexus_precompute"].run_pass()
        from_pass = user_gauges(served.test_client(), NOW)
        computed = user_gauges(create_app(settings).test_client(), NOW)  # no pass: computed on the spot
    assert from_pass == computed
    assert mau(computed) == 6
    assert computed[("nexus_insights_churned_users", frozenset())] == 2
    assert {labels for name, labels in computed if name == "nexus_insights_feature_adoption_ratio"} == {
        frozenset({("feature", f)}) for f in ("chat", "search", "summarise")
    }
    # a new user after the pass: the gauges keep showing what the API serves until the next pass
    with RecordedTraffic(rollup, start=NOW - 1800) as traffic:
        traffic.call(NOW - 1800, user_id="u-new", feature="chat")
    later = NOW + 60  # calls are on whole hours: a minute later no window edge crosses one
    with SimulatedClock(start=later):
        assert user_gauges(served.test_client(), later) == from_pass
        served.extensions["nexus_precompute"].run_pass()
    latest = later + 60
    with SimulatedClock(start=latest):
        after = user_gauges(served.test_client(), latest)
        assert after == user_gauges(create_app(settings).test_client(), latest)
    assert mau(after) == 7
