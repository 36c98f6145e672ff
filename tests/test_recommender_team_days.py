"""Team-scoped user metrics from ``user_team_day`` equal the raw-event computation they replaced.

Users here switch team (and project) within a day, the case ``user_day`` (one team per day)
cannot answer; the rollup is recorded through the decorators.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timezone

import pytest
from recommender_traffic import RecordedTraffic, app_settings, auth, custom_query

from nexus_otel.clock import SimulatedClock
from recommender.app import create_app
from recommender.insights.costs import top_users
from recommender.insights.recommendations import _first_used
from recommender.params import Query
from recommender.store.events import feature_uses_by_feature
from recommender.store.reader import Rollup
from recommender.store.users import ActivitySource, _user_metrics_from_sets, user_metrics

DAY = 86400
T0 = datetime(2026, 11, 2, tzinfo=timezone.utc).timestamp()  # a Monday
END = T0 + 27 * DAY + 12 * 3600  # the data runs to day 27, 12:00
TEAMS = ("search", "support", None)


@pytest.fixture(scope="module")
def rollup(tmp_path_factory):
    path = tmp_path_factory.mktemp("team-days") / "rollup.db"
    rng = random.Random(23)
    with RecordedTraffic(path, start=T0) as traffic:
        # ann works for search in the morning and support in the afternoon of days 0 and 26
        for day in (0, 26):
            traffic.call(T0 + day * DAY + 9 * 3600, user_id="ann", team="search", feature="chat")
            traffic.call(T0 + day * DAY + 15 * 3600, user_id="ann", team="support", feature="summary")
        # a user first seen early on a Monday (day 21): a cohort week that starts with a part day
        traffic.call(T0 + 21 * DAY + 2 * 3600, user_id="newcomer", team="search", feature="chat")
        traffic.call(T0 + 22 * DAY + 2 * 3600, user_id="newcomer", team="search", project="web")
        events = []
        for _ in range(900):
            events.append((T0 + rng.uniform(0, 27.5 * DAY), rng.randrange(4)))
        for ts, kind in sorted(events):
            user = f"u{rng.randrange(9)}"
            team = rng.choice(TEAMS)
            if kind == 0:
                # some uses come without a user (a batch job): they count as uses, not as users
                who = user if rng.random() < 0.9 else None
                traffic.feature_use(
                    ts, rng.choice(("export", "chat")), user_id=who, team=team, count=rng.randrange(1, 4)
                )  # type: ignore[arg-type]
            else:
                traffic.call(
                    ts,
                    user_id=user,
                    team=team,
                    project=rng.choice(("web", "api", None)),
                    feature=rng.choice(("chat", "summary", "classify", None)),
                    input_tokens=rng.randrange(10, 4000),
                )
    return Rollup(path)


RANGES = [
    (END - DAY, END),
    (END - 7 * DAY, END),
    (END - 30 * DAY, END),
    (T0 + 3 * DAY, T0 + 17 * DAY),  # whole days
    (T0 + 2.3 * DAY, T0 + 19.71 * DAY),  # starts and ends mid-day
    (T0 + 26 * DAY + 8 * 3600, T0 + 26 * DAY + 10 * 3600),  # two hours inside one day
    (T0 + 26 * DAY + 10 * 3600, T0 + 27 * DAY + 9 * 3600),  # just under a day, across midnight
]
FILTERS = [
    {"team": "search"},
    {"team": "support"},
    {"project": "web"},
    {"team": "search", "project": "api"},
    {"team": "support", "user_id": "ann"},
    {"team": "search", "user_id": "u3"},
]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()))
@pytest.mark.parametrize("bounds", RANGES, ids=range(len(RANGES)))
def test_team_scoped_user_metrics_equal_the_raw_computation(rollup, bounds, filters):
    query = custom_query(*bounds, **filters)
    days = ActivitySource(rollup, query)
    assert days.table == "user_team_day"
    raw = ActivitySource(rollup, query, raw=True)
    got = user_metrics(rollup, query, source=days)
    assert got == user_metrics(rollup, query, source=raw)
    start, end = bounds
    assert days.feature_users(start, end) == raw.feature_users(start, end)
    top, want = top_users(rollup, query), _raw_top_users(rollup, query)
    assert [(r["user_id"], r["requests"]) for r in top] == [(r["user_id"], r["requests"]) for r in want]
    assert [r["cost_usd"] for r in top] == pytest.approx([r["cost_usd"] for r in want], rel=1e-12)
    assert _first_used(rollup, query, days) == _first_used(rollup, query, raw)


def test_every_window_of_a_loaded_range_equals_its_raw_answer(rollup):
    query = custom_query(T0, END, team="search")
    days, raw = ActivitySource(rollup, query), ActivitySource(rollup, query, raw=True)
    days.load(T0, END)
    for a in (T0, T0 + 0.5 * DAY, T0 + 6 * DAY, T0 + 26 * DAY + 12 * 3600):
        for length in (3600, 0.75 * DAY, DAY, 1.5 * DAY, 8 * DAY):
            b = min(a + length, END)
            assert days.count(a, b) == raw.count(a, b), (a, b)
            assert sorted(days.user_days(a, b)) == sorted(raw.user_days(a, b)), (a, b)


def test_a_user_switching_teams_within_a_day_counts_for_both(rollup):
    # day 26: ann was search at 09:00 and support at 15:00; user_day knows only support
    morning = custom_query(T0 + 26 * DAY, T0 + 26 * DAY + 12 * 3600, team="search", user_id="ann")
    assert user_metrics(rollup, morning)["active_users"] == 1
    afternoon = custom_query(T0 + 26 * DAY + 12 * 3600, T0 + 27 * DAY, team="search", user_id="ann")
    assert user_metrics(rollup, afternoon)["active_users"] == 0
    last_user_day_team = rollup.execute(
        "SELECT team FROM user_day WHERE user_id = 'ann' AND day = '2026-11-28'"
    ).fetchone()[0]
    assert last_user_day_team == "support"
    client = create_app(app_settings(rollup.path)).test_client()
    with SimulatedClock(start=T0 + 27 * DAY):  # the last 7 days end at day 27 00:00
        response = client.get("/api/analytics?period=7d", headers=auth("team-search"))
    users = response.get_json()["data"]["metrics"]["users"]
    reference = user_metrics(rollup, custom_query(T0 + 20 * DAY, T0 + 27 * DAY, team="search"))
    ann_raw = ActivitySource(rollup, custom_query(T0, T0 + 27 * DAY, team="search", user_id="ann"), raw=True)
    assert ann_raw.users(T0 + 20 * DAY, T0 + 27 * DAY) == {"ann"}
    assert users["active_users"] == reference["active_users"]
    assert users["dau"] == reference["dau"]
    assert users["new_users"] == reference["new_users"]


def _raw_top_users(rollup: Rollup, query: Query) -> list[dict[str, object]]:
    clauses = "".join(f" AND {name} = ?" for name, _ in query.filters)
    return rollup.rows(
        "SELECT user_id, TOTAL(cost_usd) AS cost_usd, COUNT(*) AS requests FROM model_calls "
        f"WHERE ts >= ? AND ts < ? AND user_id IS NOT NULL{clauses} "
        "GROUP BY user_id ORDER BY cost_usd DESC, user_id LIMIT 20",
        [query.range.start, query.range.end, *(v for _, v in query.filters)],
    )


@pytest.mark.parametrize(
    "filters", [{}, {"team": "search"}, {"feature": "export"}, {"user_id": "u2"}], ids=str
)
@pytest.mark.parametrize("bounds", RANGES, ids=range(len(RANGES)))
def test_feature_use_counts_from_day_rows_equal_the_raw_sums(rollup, bounds, filters):
    query = custom_query(*bounds, **filters)
    clauses = "".join(f" AND {name} = ?" for name, _ in query.filters)
    raw = rollup.execute(
        f"SELECT feature, TOTAL(count) FROM feature_uses WHERE ts >= ? AND ts < ?{clauses} GROUP BY feature",
        [*bounds, *(v for _, v in query.filters)],
    ).fetchall()
    assert feature_uses_by_feature(rollup, query) == dict(raw)
    assert rollup.execute("SELECT COUNT(*) FROM feature_uses WHERE user_id IS NULL").fetchone()[0] > 0


SET_FILTERS = [
    {},
    {"team": "search"},
    {"team": "support"},
    {"project": "web"},
    {"team": "search", "project": "api"},
]
SET_RANGES = [
    *RANGES,
    (T0 - 3 * DAY, T0 + 2.5 * DAY),  # starts before the first event
    (T0 + 26 * DAY + 8 * 3600, END),  # inside the last two days
    (T0 + 0.25 * DAY, T0 + 0.75 * DAY),  # inside the first day
    (T0 + 7 * DAY, T0 + 14 * DAY),  # one whole Monday-to-Monday week
    (T0 + 2.3 * DAY, T0 + 21 * DAY + 5 * 3600),  # ends early on a Monday: a cohort week of 5 hours
    (T0 + 21 * DAY + 3 * 3600, T0 + 22 * DAY + 5 * 3600),  # starts on a Monday, ends a day later
]


@pytest.mark.parametrize(
    "filters", SET_FILTERS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()) or "all"
)
@pytest.mark.parametrize("bounds", SET_RANGES, ids=range(len(SET_RANGES)))
def test_user_metrics_from_day_bitmaps_equal_the_day_rows_and_raw_events(rollup, bounds, filters):
    """The bitmaps answer exactly what the day tables answered (and, for team scopes, the raw events)."""
    query = custom_query(*bounds, **filters)
    sets = ActivitySource(rollup, query)
    assert sets.sets is not None
    rows = ActivitySource(rollup, query, sets=False)
    assert rows.sets is None
    got = user_metrics(rollup, query, source=sets)
    assert got == user_metrics(rollup, query, source=rows)
    start, end = bounds
    assert sets.feature_users(start, end) == rows.feature_users(start, end)
    if filters:  # user_team_day equals the raw events; user_day answers part days by first/last event
        assert got == user_metrics(rollup, query, source=ActivitySource(rollup, query, raw=True))
    # the bitmaps were read, unless a window lies inside one day (team scope: raw events answer it)
    one_day = math.floor(start / DAY) == math.ceil(end / DAY) - 1 and end - start < DAY
    assert (_user_metrics_from_sets(sets.sets, query, 12) is None) == (bool(filters) and one_day)


def test_user_metrics_from_day_bitmaps_are_not_trivial(rollup):
    query = custom_query(T0 + 2.3 * DAY, T0 + 19.71 * DAY)
    got = user_metrics(rollup, query, source=ActivitySource(rollup, query))
    assert got["active_users"] >= 9
    assert got["returning_users"] == got["active_users"]
    assert got["previous_active_users"] > 0
    assert len(got["daily_active_users"]) == 18
    first = custom_query(T0 - 0.5 * DAY, T0 + 20 * DAY)
    got = user_metrics(rollup, first, source=ActivitySource(rollup, first))
    assert got["new_users"] == got["active_users"]
    cohort = got["retention_cohorts"][0]
    assert cohort["users"] > 0
    assert [w["week"] for w in cohort["retention"]] == [0, 1, 2]
    assert cohort["retention"][0]["active"] == cohort["users"]


def test_day_bitmaps_of_every_window_equal_the_day_rows(rollup):
    for filters in ({}, {"team": "search"}):
        query = custom_query(T0, END, **filters)
        sets, rows = ActivitySource(rollup, query), ActivitySource(rollup, query, sets=False)
        for a in (T0, T0 + 0.5 * DAY, T0 + 6 * DAY, T0 + 26 * DAY + 12 * 3600):
            for length in (3600, 0.75 * DAY, DAY, 1.5 * DAY, 8 * DAY):
                b = min(a + length, END)
                bits = sets.sets.window(a, b)
                if bits is None:
                    assert filters
                    assert b - a < DAY
                    continue
                assert bits.bit_count() == rows.count(a, b), (filters, a, b)
