"""``/api/insights/recommendations``: each kind fires on traffic built to need it, and stays silent on look-alikes.

All traffic is recorded through the real decorators (tests/recommender_traffic.py)
with the round test prices (per million tokens: gpt-test $2 in / $1 cached / $8 out,
gpt-test-big $10 / $5 / $40, claude-test $3 / $0.30 / $15), so every expected
figure below is worked out by hand from those prices and the counts recorded.
Periods are 7 days, so a month is 30/7 of the recorded traffic.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from prom_servers import wait_until
from recommender_traffic import DATA, RecordedTraffic, app_settings, auth
from scrape import Scrape

import recommender.app
from nexus_otel.clock import SimulatedClock

END = datetime(2025, 3, 11, tzinfo=timezone.utc).timestamp()  # "now" of every request
DAY = 86400.0
MONTH = 30 / 7  # a 7-day period extrapolated to 30 days
PRICES = str(DATA / "test-prices.yaml")
# cost of one 500-in / 100-out call
BIG_500 = 500 * 10e-6 + 100 * 40e-6  # gpt-test-big: $0.009
SMALL_500 = 500 * 2e-6 + 100 * 8e-6  # gpt-test: $0.0018


def spread(n: int, *, start: float = END - 6 * DAY, end: float = END - 120) -> list[float]:
    """``n`` call times evenly over ``[start, end)``."""
    return [start + i * (end - start) / n for i in range(n)]


def recommendations(rollup: Path, key: str = "admin", **settings: object) -> list[dict]:
    app = recommender.app.create_app(app_settings(rollup, price_files=[PRICES], **settings))
    with SimulatedClock(start=END):
        response = app.test_client().get("/api/insights/recommendations?period=7d", headers=auth(key))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]["recommendations"]


def of_kind(items: list[dict], kind: str) -> list[dict]:
    return [r for r in items if r["kind"] == kind]


# --- cheaper_model -------------------------------------------------------------------


def record_two_models(path: Path, cheap_score: float, *, offset_s: float = 0.0) -> None:
    """'chat' on gpt-test-big and gpt-test, 200 short calls each with 40 ratings each, plus long big calls."""
    with RecordedTraffic(path, start=END - 7 * DAY) as traffic:
        for model, score in (("gpt-test-big", 0.9), ("gpt-test", cheap_score)):
            for i, ts in enumerate(spread(200)):
                rid = traffic.call(
                    ts + offset_s, model=model, feature="chat", input_tokens=500, output_tokens=100
                )
                if i % 5 == 0:
                    traffic.feedback(ts + 30, rid, score)
        for ts in spread(30):  # long prompts: not part of the "short prompt" comparison
            traffic.call(
                ts + offset_s, model="gpt-test-big", feature="chat", input_tokens=5000, output_tokens=100
            )


def test_cheaper_model_recommended_when_rated_as_well(tmp_path: Path) -> None:
    record_two_models(tmp_path / "r.db", cheap_score=0.88)
    [rec] = of_kind(recommendations(tmp_path / "r.db"), "cheaper_model")
    assert rec["target"] == "feature:chat"
    assert "gpt-test instead of gpt-test-big" in rec["title"]
    expected = 200 * (BIG_500 - SMALL_500) * MONTH  # 200 short big calls/week, $0.0072 less each
    assert rec["estimated_monthly_savings_usd"] == pytest.approx(expected, abs=0.01)
    assert rec["impact"]["requests_per_month"] == pytest.approx(200 * MONTH)
    assert rec["evidence"]["expensive_feedback"]["count"] == 40
    assert rec["evidence"]["cheaper_feedback"]["mean_score"] == pytest.approx(0.88)


def test_cheaper_model_silent_when_rated_worse(tmp_path: Path) -> None:
    record_two_models(tmp_path / "r.db", cheap_score=0.7)
    assert of_kind(recommendations(tmp_path / "r.db"), "cheaper_model") == []


# --- prompt_caching ------------------------------------------------------------------


def record_big_prompts(
    path: Path,
    *,
    cache_read: int,
    team: str | None = None,
    feature: str = "support",
    base: int = 3000,
    traffic: RecordedTraffic | None = None,
) -> None:
    def record(t: RecordedTraffic) -> None:
        for i, ts in enumerate(spread(200)):
            t.call(
                ts,
                model="claude-test",
                provider="anthropic",
                feature=feature,
                team=team,
                input_tokens=base + (i % 5) * 100,
                output_tokens=200,
                cache_read_tokens=cache_read,
            )

    if traffic is not None:
        record(traffic)
        return
    with RecordedTraffic(path, start=END - 7 * DAY) as t:
        record(t)


def caching_savings(base: int) -> float:
    # the shortest 5% of prompts are `base` tokens: that prefix on all 200 calls, $3 -> $0.30 per 1M
    return base * 200 * (3.00 - 0.30) / 1e6 * MONTH


def test_prompt_caching_recommended_for_steady_uncached_prompts(tmp_path: Path) -> None:
    record_big_prompts(tmp_path / "r.db", cache_read=0)
    [rec] = of_kind(recommendations(tmp_path / "r.db"), "prompt_caching")
    assert rec["target"] == "feature:support"
    assert rec["estimated_monthly_savings_usd"] == pytest.approx(caching_savings(3000), abs=0.01)
    assert rec["evidence"]["p5_input_tokens"] == 3000
    assert rec["evidence"]["cache_read_share"] == 0


def test_prompt_caching_silent_when_already_cached(tmp_path: Path) -> None:
    record_big_prompts(tmp_path / "r.db", cache_read=2500)
    assert of_kind(recommendations(tmp_path / "r.db"), "prompt_caching") == []


# --- router_threshold ----------------------------------------------------------------


def record_router(path: Path, low_band_score: float) -> None:
    """'qa': 200 unrouted gpt-test-big calls rated 0.8; 60 routed to gpt-test at 0.65 and 60 at 0.85."""
    with RecordedTraffic(path, start=END - 7 * DAY) as traffic:
        for i, ts in enumerate(spread(200)):
            rid = traffic.call(ts, model="gpt-test-big", feature="qa", input_tokens=500, output_tokens=100)
            if i < 30:
                traffic.feedback(ts + 30, rid, 0.8)
        for confidence, score in ((0.65, low_band_score), (0.85, 0.8)):
            for i, ts in enumerate(spread(60)):
                rid = traffic.call(
                    ts + 7,
                    model="gpt-test",
                    feature="qa",
                    input_tokens=500,
                    output_tokens=100,
                    routed_from="gpt-test-big",
                    router_confidence=confidence,
                )
                if i < 30:
                    traffic.feedback(ts + 37, rid, score)


def test_router_threshold_lowered_when_lowest_band_matches_baseline(tmp_path: Path) -> None:
    record_router(tmp_path / "r.db", low_band_score=0.8)
    [rec] = of_kind(recommendations(tmp_path / "r.db"), "router_threshold")
    assert rec["target"] == "feature:qa"
    assert rec["evidence"]["direction"] == "lower"
    assert rec["evidence"]["suggested_threshold"] == pytest.approx(0.5)
    # one more band routes about as many calls as the 0.6 band (60/week), each saving $0.0072
    assert rec["estimated_monthly_savings_usd"] == pytest.approx(60 * (BIG_500 - SMALL_500) * MONTH, abs=0.01)


def test_router_threshold_raised_when_low_band_is_worse(tmp_path: Path) -> None:
    record_router(tmp_path / "r.db", low_band_score=0.5)
    [rec] = of_kind(recommendations(tmp_path / "r.db"), "router_threshold")
    assert rec["target"] == "feature:qa"
    assert rec["evidence"]["direction"] == "raise"
    assert rec["evidence"]["suggested_threshold"] == pytest.approx(0.7)
    assert rec["estimated_monthly_savings_usd"] is None
    assert rec["impact"]["quality_delta"] == pytest.approx(-0.3)
    # keeping the 60 low-confidence calls a week on gpt-test-big costs $0.0072 more each
    assert rec["impact"]["monthly_cost_increase_usd"] == pytest.approx(
        60 * (BIG_500 - SMALL_500) * MONTH, abs=1e-4
    )


def test_router_threshold_silent_when_difference_is_unclear(tmp_path: Path) -> None:
    record_router(tmp_path / "r.db", low_band_score=0.73)  # 0.07 lower: neither clearly worse nor as good
    assert of_kind(recommendations(tmp_path / "r.db"), "router_threshold") == []


# --- provider_errors -----------------------------------------------------------------


def record_errors(path: Path, recent_errors: int) -> None:
    """anthropic: 300 calls with 3 errors over days -6..-1.5, then 100 calls in the last 24 h."""
    with RecordedTraffic(path, start=END - 7 * DAY) as traffic:
        for i, ts in enumerate(spread(300, end=END - 1.5 * DAY)):
            traffic.call(ts, model="claude-test", provider="anthropic", error=i % 100 == 0)
        for i, ts in enumerate(spread(100, start=END - DAY + 600)):
            traffic.call(ts, model="claude-test", provider="anthropic", error=i < recent_errors)
        for ts in spread(200):
            traffic.call(ts + 11, model="gpt-test", provider="openai")


def test_provider_errors_when_recent_rate_rises(tmp_path: Path) -> None:
    record_errors(tmp_path / "r.db", recent_errors=10)
    [rec] = of_kind(recommendations(tmp_path / "r.db"), "provider_errors")
    assert rec["target"] == "provider:anthropic"
    assert rec["estimated_monthly_savings_usd"] is None
    # 10% now vs 1% before, on 100 requests a day: 9 extra failures a day
    assert rec["impact"]["failed_requests_per_month"] == pytest.approx((0.10 - 0.01) * 100 * 30)
    assert "openai" in rec["action"]
    assert rec["evidence"]["recent"]["errors"] == 10
    assert rec["evidence"]["earlier"]["requests"] == 300


def test_provider_errors_silent_at_steady_rate(tmp_path: Path) -> None:
    record_errors(tmp_path / "r.db", recent_errors=1)
    assert of_kind(recommendations(tmp_path / "r.db"), "provider_errors") == []


# --- low_adoption --------------------------------------------------------------------


def record_adoption(path: Path, translate_users: int) -> None:
    """40 users chat once; ``translate_users`` of them also make 5 gpt-test-big 'translate' calls."""
    with RecordedTraffic(path, start=END - 7 * DAY) as traffic:
        for i, ts in enumerate(spread(40)):
            traffic.call(ts, user_id=f"u{i}", feature="chat")
            if i < translate_users:
                for k in range(5):
                    traffic.call(
                        ts + 60 * (k + 1), user_id=f"u{i}", feature="translate", model="gpt-test-big"
                    )


def test_low_adoption_for_feature_few_users_touch(tmp_path: Path) -> None:
    record_adoption(tmp_path / "r.db", translate_users=1)
    [rec] = of_kind(recommendations(tmp_path / "r.db"), "low_adoption")
    assert rec["target"] == "feature:translate"
    assert rec["impact"]["users"] == 1
    assert rec["impact"]["active_users"] == 40
    # 5 calls of 1000 in / 100 out on gpt-test-big at $0.014 each
    assert rec["estimated_monthly_savings_usd"] == pytest.approx(5 * 0.014 * MONTH, abs=0.01)
    assert rec["impact"]["monthly_usd"] == pytest.approx(5 * 0.014 * MONTH)


def test_low_adoption_silent_above_five_percent(tmp_path: Path) -> None:
    record_adoption(tmp_path / "r.db", translate_users=3)  # 7.5%
    assert of_kind(recommendations(tmp_path / "r.db"), "low_adoption") == []


@pytest.mark.parametrize(("first_use_days_ago", "fires"), [(20, True), (5, False)])
def test_low_adoption_of_free_feature_needs_age(tmp_path: Path, first_use_days_ago: int, fires: bool) -> None:
    """A feature without model cost only counts once it has been around for 14+ days (not just launched)."""
    with RecordedTraffic(tmp_path / "r.db", start=END - 21 * DAY) as traffic:
        for i, ts in enumerate(spread(30)):
            traffic.call(ts, user_id=f"u{i}", feature="chat")
        traffic.feature_use(END - first_use_days_ago * DAY, "export", user_id="u0")
        traffic.feature_use(END - DAY, "export", user_id="u0")
    found = of_kind(recommendations(tmp_path / "r.db"), "low_adoption")
    if not fires:
        assert found == []
        return
    [rec] = found
    assert rec["target"] == "feature:export"
    assert rec["estimated_monthly_savings_usd"] is None
    assert rec["impact"]["adoption"] == pytest.approx(1 / 30, abs=1e-5)
    assert rec["evidence"]["in_use_for_days"] == pytest.approx(first_use_days_ago, abs=1)


# --- budget_overrun ------------------------------------------------------------------


def record_daily_spend(traffic: RecordedTraffic, team: str, calls_per_day: int = 20) -> None:
    """March 1-10: ``calls_per_day`` gpt-test-big calls ($0.014 each) a day for ``team``."""
    first = datetime(2025, 3, 1, tzinfo=timezone.utc).timestamp()
    for day in range(10):
        for k in range(calls_per_day):
            traffic.call(first + day * DAY + 3600 + k * 60, model="gpt-test-big", team=team)


def write_budgets(path: Path, **limits: float) -> Path:
    lines = ["budgets:"] + [f"  - {{team: {team}, monthly_usd: {usd}}}" for team, usd in limits.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("limit", "fires"), [(5.0, True), (10.0, False)])
def test_budget_overrun(tmp_path: Path, limit: float, fires: bool) -> None:
    with RecordedTraffic(tmp_path / "r.db", start=END - 11 * DAY) as traffic:
        record_daily_spend(traffic, "search")
    budgets = write_budgets(tmp_path / "budgets.yaml", search=limit)
    found = of_kind(recommendations(tmp_path / "r.db", budgets_path=str(budgets)), "budget_overrun")
    if not fires:
        assert found == []
        return
    [rec] = found
    assert rec["target"] == "budget:team:search"
    # $0.28 a day: 10 days spent, 21 days (March 11-31) forecast at the same rate
    forecast = 31 * 20 * 0.014
    assert rec["impact"]["forecast_usd"] == pytest.approx(forecast, abs=1e-3)
    assert rec["impact"]["monthly_usd"] == pytest.approx(forecast - limit, abs=1e-3)
    assert rec["estimated_monthly_savings_usd"] is None


# --- scoping and ranking -------------------------------------------------------------


def test_team_key_sees_only_its_teams_recommendations(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with RecordedTraffic(path, start=END - 11 * DAY) as traffic:
        record_big_prompts(path, cache_read=0, team="search", feature="s-docs", base=3000, traffic=traffic)
        record_big_prompts(path, cache_read=0, team="ads", feature="a-docs", base=4000, traffic=traffic)
        record_daily_spend(traffic, "ads", calls_per_day=5)
        # search compares two models on 'chat'; its ratings carry no team (only the rated calls do)
        for model, score in (("gpt-test-big", 0.9), ("gpt-test", 0.9)):
            for i, ts in enumerate(spread(100)):
                rid = traffic.call(ts, model=model, feature="chat", team="search", input_tokens=500)
                if i % 4 == 0:
                    traffic.feedback(ts + 30, rid, score)
        # ads has a failing provider in the last day
        for i, ts in enumerate(spread(100, start=END - DAY + 600)):
            traffic.call(ts, model="claude-test", provider="anthropic", team="ads", error=i % 2 == 0)
        for ts in spread(100, end=END - 2 * DAY):
            traffic.call(ts, model="claude-test", provider="anthropic", team="ads")
    budgets = write_budgets(tmp_path / "budgets.yaml", search=1000, ads=0.5)

    admin = recommendations(path, budgets_path=str(budgets))
    assert {r["target"] for r in admin} == {
        "feature:s-docs",
        "feature:a-docs",
        "feature:chat",
        "budget:team:ads",
        "provider:anthropic",
    }
    # money first, largest first; the error spike (no money) last
    assert admin[-1]["kind"] == "provider_errors"
    money = [r["estimated_monthly_savings_usd"] or r["impact"]["monthly_usd"] for r in admin[:-1]]
    assert money == sorted(money, reverse=True)
    by_target = {r["target"]: r for r in admin}
    assert by_target["feature:a-docs"]["estimated_monthly_savings_usd"] == pytest.approx(
        caching_savings(4000), abs=0.01
    )

    team = recommendations(path, "team-search", budgets_path=str(budgets))
    assert sorted((r["kind"], r["target"]) for r in team) == [
        ("cheaper_model", "feature:chat"),
        ("prompt_caching", "feature:s-docs"),
    ]
    caching = of_kind(team, "prompt_caching")[0]
    assert caching["estimated_monthly_savings_usd"] == pytest.approx(caching_savings(3000), abs=0.01)
    assert caching["evidence"]["calls"] == 200
    cheaper = of_kind(team, "cheaper_model")[0]
    assert cheaper["estimated_monthly_savings_usd"] == pytest.approx(
        100 * (BIG_500 - SMALL_500) * MONTH, abs=0.01
    )
    assert cheaper["evidence"]["cheaper_feedback"]["count"] == 25

    assert len(recommendations(path, budgets_path=str(budgets), recommendations_top_n=1)) == 1


def test_quiet_traffic_gets_no_recommendations(tmp_path: Path) -> None:
    with RecordedTraffic(tmp_path / "r.db", start=END - 7 * DAY) as traffic:
        for i, ts in enumerate(spread(300)):
            rid = traffic.call(ts, user_id=f"u{i % 30}", feature="chat", error=i % 50 == 0)
            if i % 3 == 0:
                traffic.feedback(ts + 30, rid, 0.8)
    assert recommendations(tmp_path / "r.db") == []


# --- the /metrics gauges -------------------------------------------------------------


def savings_gauges(client) -> dict[tuple[str, str], float]:
    got = Scrape(client.get("/metrics").get_data(as_text=True))
    return {
        (labels["kind"], labels["target"]): got.value("nexus_recommendation_monthly_savings_usd", labels)
        for labels in got.series("nexus_recommendation_monthly_savings_usd")
    }


def test_savings_gauges_show_what_the_api_serves_for_30_days(tmp_path: Path) -> None:
    rollup = tmp_path / "r.db"
    record_two_models(rollup, cheap_score=0.88)
    app = recommender.app.create_app(app_settings(rollup, price_files=[PRICES], metrics_cache_s=0))
    client = app.test_client()
    with SimulatedClock(start=END):
        app.extensions["nexus_precompute"].run_pass()
        [rec] = of_kind(recommendations_now(client), "cheaper_model")
    # the same traffic again, a second later, lands after the pass: the gauges agree with the API
    # (the pass's answer) until the next pass
    record_two_models(rollup, cheap_score=0.88, offset_s=1.0)
    with SimulatedClock(start=END):
        gauges = wait_until(lambda: savings_gauges(client), timeout_s=60, what="savings gauges")
        assert gauges[("cheaper_model", "feature:chat")] == pytest.approx(
            rec["estimated_monthly_savings_usd"]
        )
        app.extensions["nexus_precompute"].run_pass()
        [doubled] = of_kind(recommendations_now(client), "cheaper_model")
        assert doubled["estimated_monthly_savings_usd"] == pytest.approx(
            2 * rec["estimated_monthly_savings_usd"]
        )
        assert wait_until(
            lambda: (
                savings_gauges(client).get(("cheaper_model", "feature:chat"))
                == pytest.approx(doubled["estimated_monthly_savings_usd"])
            ),
            timeout_s=60,
            what="the gauges after the next pass",
        )


def recommendations_now(client) -> list[dict]:
    response = client.get("/api/insights/recommendations?period=30d", headers=auth("admin")).get_json()
    assert response["cache"]["precomputed"] is True
    return response["data"]["recommendations"]
