"""The recommender's analytics, costs and models endpoints on rollups recorded through the decorators.

Figures are checked against hand-worked answers (users, retention) or against
sums over the raw rows the product stored (totals on arbitrary ranges).
"""

from __future__ import annotations

import random
import sqlite3
import time
from datetime import datetime, timezone

import pytest
from prom_servers import wait_until
from recommender_traffic import RecordedTraffic, app_settings, auth

from nexus_otel.clock import SimulatedClock
from recommender.app import create_app

DAY = 86400
T0 = datetime(2026, 11, 2, tzinfo=timezone.utc).timestamp()  # a Monday
NOW = T0 + 27 * DAY + 12 * 3600  # Sunday 2026-11-29 12:00 UTC
#: user -> (team, days after T0 with one call at 10:00 UTC)
ACTIVITY = {
    "alice": ("search", (0, 1, 7, 14, 21, 27)),
    "bob": ("search", (0, 8, 22)),
    "carol": ("support", (20, 26, 27)),
    "dave": ("support", (27,)),
    "erin": ("support", (3, 15)),
}
CALL_COST = 1000 * 2e-6 + 100 * 8e-6  # gpt-test: 1000 input, 100 output tokens


@pytest.fixture(scope="module")
def users_app(tmp_path_factory):
    rollup = tmp_path_factory.mktemp("users") / "rollup.db"
    with RecordedTraffic(rollup, start=T0) as traffic:
        for user, (team, days) in ACTIVITY.items():
            for day in days:
                traffic.call(T0 + day * DAY + 10 * 3600, user_id=user, team=team, feature="chat")
        traffic.feature_use(T0 + 27 * DAY + 11 * 3600, "export", user_id="alice", team="search")
        traffic.revenue(T0 + 26 * DAY, "alice", 30.0, team="search")
        traffic.revenue(T0 + 10 * DAY, "bob", 10.0, team="search")
    return create_app(app_settings(rollup)).test_client()


def get(client, path, key="admin"):
    with SimulatedClock(start=NOW):
        response = client.get(path, headers=auth(key))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_active_users_new_returning_and_churn_are_exact(users_app):
    users = get(users_app, "/api/analytics?period=7d")["data"]["metrics"]["users"]
    # trailing windows end at 12:01 on day 27: carol's day-26 call at 10:00 is just outside the last 24 h
    assert (users["dau"], users["wau"], users["mau"]) == (3, 4, 5)
    assert users["active_users"] == 4  # alice, bob (day 22), carol (26, 27), dave
    assert (users["new_users"], users["returning_users"]) == (1, 3)  # dave is new
    # the previous 7 days saw alice (14), erin (15) and carol (20 at 10:00 < 20 12:01); erin did not come back
    assert (users["previous_active_users"], users["churned_users"], users["churn_rate"]) == (3, 1, 0.3333)
    assert users["stickiness_dau_mau"] == 0.6


def test_weekly_retention_cohorts_are_exact(users_app):
    cohorts = get(users_app, "/api/analytics?period=30d")["data"]["metrics"]["users"]["retention_cohorts"]
    table = {c["cohort_week"]: (c["users"], [r["active"] for r in c["retention"]]) for c in cohorts}
    assert table == {
        "2026-11-02": (3, [3, 2, 2, 2]),  # alice, bob, erin; weeks 1-3: alice+bob, alice+erin, alice+bob
        "2026-11-16": (1, [1, 1]),  # carol
        "2026-11-23": (1, [1]),  # dave
    }


def test_team_filter_counts_only_that_teams_users_and_costs(users_app):
    data = get(users_app, "/api/analytics?period=30d&team=search")["data"]["metrics"]
    assert data["users"]["mau"] == 2
    assert data["usage"]["requests"] == 9
    assert data["costs"]["total_usd"] == pytest.approx(9 * CALL_COST)
    assert data["business"]["revenue_usd"] == 40.0


@pytest.mark.parametrize("period", ["24h", "7d", "30d", "90d"])
def test_user_metrics_from_raw_events_equal_those_from_user_day(users_app, period):
    # every call is on gpt-test, so a model filter (answered from the raw events, in one read per
    # request) must give exactly the unfiltered answer (read from user_day)
    plain = get(users_app, f"/api/analytics?period={period}")["data"]["metrics"]
    raw = get(users_app, f"/api/analytics?period={period}&model=gpt-test")["data"]["metrics"]
    assert raw["users"] == plain["users"]
    assert plain["users"]["active_users"] > 0
    # "chat" is touched by calls only (the "export" feature use is no call, so a model filter drops it)
    chat = [[f for f in m["usage"]["feature_adoption"] if f["feature"] == "chat"] for m in (plain, raw)]
    assert chat[0] == chat[1]
    assert chat[0][0]["users"] == plain["users"]["active_users"]


def test_team_user_metrics_follow_the_teams_own_activity(users_app):
    users = get(users_app, "/api/analytics?period=30d&team=support")["data"]["metrics"]["users"]
    # carol (20, 26, 27), dave (27), erin (3, 15); the 30 days end at 12:01 on day 27
    assert (users["dau"], users["wau"], users["mau"]) == (2, 2, 3)
    assert users["daily_active_users"] == [
        {"day": day, "users": n}
        for day, n in (
            ("2026-11-05", 1),
            ("2026-11-17", 1),
            ("2026-11-22", 1),
            ("2026-11-28", 1),
            ("2026-11-29", 2),
        )
    ]
    assert (users["new_users"], users["churned_users"]) == (3, 0)


def test_feature_adoption_and_business_figures(users_app):
    data = get(users_app, "/api/analytics?period=7d")["data"]["metrics"]
    adoption = {f["feature"]: f for f in data["usage"]["feature_adoption"]}
    assert adoption["chat"]["users"] == 4
    assert adoption["chat"]["adoption"] == 1.0
    assert adoption["export"]["users"] == 1
    assert adoption["export"]["adoption"] == 0.25
    business = data["business"]
    assert business["revenue_usd"] == 30.0
    assert business["previous_period_revenue_usd"] == 0.0
    assert business["mrr_usd"] == 40.0  # both payments fall in the 30 days before the end
    assert business["ai_cost_usd"] == pytest.approx(6 * CALL_COST)  # 6 calls in the last 7 days


@pytest.fixture(scope="module")
def random_app(tmp_path_factory):
    rollup = tmp_path_factory.mktemp("random") / "rollup.db"
    rng = random.Random(11)
    with RecordedTraffic(rollup, start=T0) as traffic:
        for _ in range(600):
            traffic.call(
                T0 + rng.uniform(0, 3 * DAY),
                model=rng.choice(("gpt-test", "gpt-test-big")),
                team=rng.choice(("search", "support")),
                user_id=rng.choice(("alice", "bob", "carol")),
                input_tokens=rng.randrange(10, 5000),
                output_tokens=rng.randrange(0, 800),
                latency_s=rng.uniform(0.05, 4.0),
                error=rng.random() < 0.1,
            )
    return rollup, create_app(app_settings(rollup)).test_client()


def test_totals_on_arbitrary_ranges_equal_the_raw_rows(random_app):
    """Ranges that start and end anywhere (mixing minute, hour, day rows and raw edges) sum exactly."""
    rollup, client = random_app
    raw = sqlite3.connect(rollup)
    rng = random.Random(5)
    for _ in range(12):
        start = T0 + rng.uniform(-3600, 2 * DAY)
        end = start + rng.choice((rng.uniform(60, 7200), rng.uniform(DAY, 2 * DAY)))
        team = rng.choice((None, "search"))
        path = f"/api/analytics/costs?period=custom&from={start}&to={end}" + (f"&team={team}" if team else "")
        data = get(client, path)["data"]
        where = "ts >= ? AND ts < ?" + (" AND team = ?" if team else "")
        params = (start, end, team) if team else (start, end)
        count, cost = raw.execute(
            f"SELECT COUNT(*), TOTAL(cost_usd) FROM model_calls WHERE {where}", params
        ).fetchone()
        assert data["total_usd"] == pytest.approx(cost, abs=1e-9)
        assert sum(r["requests"] for r in data["breakdown"]["model"]) == count


def test_models_report_ranks_and_compares(random_app):
    rollup, client = random_app
    data = get(client, "/api/analytics/models?period=custom&from=2026-11-02&to=2026-11-06")["data"]
    raw = sqlite3.connect(rollup)
    expected = dict(raw.execute("SELECT model, COUNT(*) FROM model_calls GROUP BY model").fetchall())
    assert {m["model"]: m["requests"] for m in data["models"]} == expected
    assert sum(d["share"] for d in data["distribution"]) == pytest.approx(1.0, abs=1e-3)
    big, small = (
        next(m for m in data["models"] if m["model"] == name) for name in ("gpt-test-big", "gpt-test")
    )
    # the big model's prices are five times the small one's, token for token
    assert big["cost_per_1k_tokens_usd"] > 4 * small["cost_per_1k_tokens_usd"]
    assert data["top_performers"]["cheapest_per_request"]["model"] == "gpt-test"
    errors = dict(
        raw.execute("SELECT model, AVG(outcome = 'error') FROM model_calls GROUP BY model").fetchall()
    )
    assert {m["model"]: m["error_rate"] for m in data["models"]} == pytest.approx(errors)
    assert data["comparison"]["metrics"][0] == "requests"


def test_latency_quantiles_follow_the_raw_latencies(random_app):
    rollup, client = random_app
    perf = get(client, "/api/analytics?period=custom&from=2026-11-02&to=2026-11-06")["data"]["metrics"][
        "performance"
    ]
    latencies = sorted(r[0] for r in sqlite3.connect(rollup).execute("SELECT latency_s FROM model_calls"))
    true_p95 = latencies[int(0.95 * len(latencies))]
    # histogram buckets grow by sqrt(2): the interpolated quantile is within one bucket of the truth
    assert true_p95 / 1.42 <= perf["latency_p95_s"] <= true_p95 * 1.42


WEEKLY = (0.3, 0.2, 0.1, 0.0, -0.1, -0.2, -0.3)  # Monday .. Sunday


def daily_cost(day_start: float, first: float) -> float:
    d = (day_start - first) / DAY
    return 1.0 + 0.02 * d + WEEKLY[datetime.fromtimestamp(day_start, timezone.utc).weekday()]


def test_forecast_recovers_trend_and_weekly_seasonality(tmp_path):
    first = datetime(2026, 9, 14, tzinfo=timezone.utc).timestamp()
    now = datetime(2026, 11, 10, tzinfo=timezone.utc).timestamp()
    rollup = tmp_path / "rollup.db"
    with RecordedTraffic(rollup, start=first) as traffic:
        day = first
        while day < now:
            # three calls a day whose input tokens make the day's cost (gpt-test input: $2 per million)
            for hour in (9, 13, 17):
                tokens = round(daily_cost(day, first) / 3 / 2e-6)
                traffic.call(day + hour * 3600, input_tokens=tokens, output_tokens=0)
            day += DAY
    client = create_app(app_settings(rollup)).test_client()
    with SimulatedClock(start=now):
        data = client.get("/api/analytics/costs?period=30d", headers=auth("admin")).get_json()["data"]
    month = data["forecasts"]["month"]
    november = [datetime(2026, 11, d, tzinfo=timezone.utc).timestamp() for d in range(1, 31)]
    truth = sum(daily_cost(t, first) for t in november)
    assert month["spent_usd"] == pytest.approx(sum(daily_cost(t, first) for t in november[:9]), rel=1e-6)
    assert abs(month["forecast_usd"] - truth) / truth < 0.01
    assert month["lower_usd"] <= truth <= month["upper_usd"]
    model = data["forecasts"]["model"]
    assert model["trend_usd_per_day"] == pytest.approx(0.02, abs=0.002)
    assert model["weekday_effect_usd"]["mon"] == pytest.approx(0.3, abs=0.02)
    year = data["forecasts"]["year"]
    assert year["forecast_usd"] > month["forecast_usd"]
    assert year["upper_usd"] - year["lower_usd"] > 0


def test_budget_status_month_to_date(tmp_path):
    rollup = tmp_path / "rollup.db"
    with RecordedTraffic(rollup, start=T0) as traffic:
        for day in range(10):
            traffic.call(T0 + day * DAY + 3600, team="search", input_tokens=500_000, output_tokens=0)  # $1
            traffic.call(
                T0 + day * DAY + 7200, team="support", input_tokens=250_000, output_tokens=0
            )  # $0.50
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        "budgets:\n  - team: search\n    monthly_usd: 20\n  - team: support\n    monthly_usd: 100\n"
    )
    client = create_app(app_settings(rollup, budgets_path=str(budgets))).test_client()
    with SimulatedClock(start=T0 + 10 * DAY):
        admin = client.get("/api/analytics/costs?period=mtd", headers=auth("admin")).get_json()["data"]
        team = client.get("/api/analytics/costs?period=mtd", headers=auth("team-search")).get_json()["data"]
    by_team = {b["team"]: b for b in admin["budgets"]}
    assert by_team["search"]["spent_usd"] == pytest.approx(10.0)
    assert by_team["search"]["used_ratio"] == pytest.approx(0.5)
    # $1 a day for the 19 days left of November (12th to 30th): forecast 29 against 20
    assert by_team["search"]["forecast_usd"] == pytest.approx(29.0, rel=0.02)
    assert admin["budgets"][0]["team"] == "search"  # the most threatened budget first
    assert [b["team"] for b in team["budgets"]] == ["search"]
    assert admin["total_usd"] == pytest.approx(15.0)
    assert team["total_usd"] == pytest.approx(10.0)


def test_answers_are_cached_per_scope_and_refreshed_when_stale(tmp_path):
    rollup = tmp_path / "rollup.db"
    with RecordedTraffic(rollup, start=T0) as traffic:
        traffic.call(T0 + 3600, team="search", user_id="alice")
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        "budgets:\n  - team: search\n    monthly_usd: 20\n  - team: support\n    monthly_usd: 5\n"
    )
    client = create_app(app_settings(rollup, response_cache_s=1.0, budgets_path=str(budgets))).test_client()
    path = "/api/analytics/costs?period=mtd&team=search"

    def ask(key: str = "admin") -> dict:
        with SimulatedClock(start=T0 + DAY):
            return client.get(path, headers=auth(key)).get_json()

    first, team = ask(), ask("team-search")
    # the same filters through a team key are a separate entry: it never sees other teams' budgets
    assert {b["team"] for b in first["data"]["budgets"]} == {"search", "support"}
    assert {b["team"] for b in team["data"]["budgets"]} == {"search"}
    with RecordedTraffic(rollup, start=T0) as traffic:  # a second call lands after the first answer
        traffic.call(T0 + 7200, team="search", user_id="alice")
    cached = ask()
    assert cached["data"] == first["data"]
    assert cached["cache"]["computed_at"] == first["cache"]["computed_at"]
    time.sleep(1.1)
    stale = ask()  # past its time: served as it was while a thread recomputes it
    assert stale["data"]["total_usd"] == pytest.approx(CALL_COST)
    assert stale["cache"]["age_s"] >= 1.0
    wait_until(
        lambda: ask()["data"]["total_usd"] == pytest.approx(2 * CALL_COST), timeout_s=10, what="the refresh"
    )
