"""The low-adoption check's active users from the day bitmaps equal the day rows' and the raw events' count.

``/api/insights/recommendations`` counts the range's active users for ``low_adoption``; without
filters and under team and project filters the per-day user bitmaps answer it (as they answer
the feature users), other filters keep the day rows or raw events. The rollup is recorded
through the decorators: 70 users, some switching team within a day, a rare costly feature and a
rare free one, so the check speaks under most scopes.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timezone

import pytest
from recommender_traffic import RecordedTraffic, custom_query

from recommender.insights.recommendations import ADOPTION_MIN_USERS, low_adoption
from recommender.store.reader import Rollup
from recommender.store.users import ActivitySource

DAY = 86400
T0 = datetime(2026, 6, 1, tzinfo=timezone.utc).timestamp()  # a Monday
END = T0 + 27 * DAY + 15 * 3600  # the data runs to day 27, 15:00
USERS = [f"p{i}" for i in range(70)]


@pytest.fixture(scope="module")
def rollup(tmp_path_factory):
    path = tmp_path_factory.mktemp("adoption-sets") / "rollup.db"
    rng = random.Random(41)
    events = []
    for day in range(28):
        for user in rng.sample(USERS, 45):
            for _ in range(rng.randrange(1, 3)):
                events.append((T0 + day * DAY + rng.uniform(0, DAY), user))
    with RecordedTraffic(path, start=T0) as traffic:
        # one user works for search in the morning and support in the afternoon of two days
        for day in (3, 27):
            traffic.call(T0 + day * DAY + 8 * 3600, user_id="switcher", team="search", feature="chat")
            traffic.call(T0 + day * DAY + 14 * 3600, user_id="switcher", team="support", feature="translate")
        # 'export' is free and old; 'translate' costs (gpt-test-big) and only two users touch it
        traffic.feature_use(T0 + 0.5 * DAY, "export", user_id="p1", team="search")
        traffic.feature_use(T0 + 26 * DAY, "export", user_id="p1", team="search")
        for day in (10, 20, 26):
            traffic.call(
                T0 + day * DAY + 11 * 3600,
                user_id="p2",
                team="search",
                project="web",
                feature="translate",
                model="gpt-test-big",
            )
        for ts, user in sorted(events):
            if ts >= END:
                continue
            traffic.call(
                ts,
                user_id=user,
                team=rng.choice(("search", "support", None)),
                project=rng.choice(("web", "api", None)),
                feature=rng.choice(("chat", "chat", "summary", None)),
                input_tokens=rng.randrange(10, 3000),
            )
    return Rollup(path)


RANGES = [
    (END - DAY, END),
    (END - 7 * DAY, END),
    (END - 30 * DAY, END),  # starts before the first event
    (T0 + 3 * DAY, T0 + 17 * DAY),  # whole days
    (T0 + 2.3 * DAY, T0 + 19.71 * DAY),  # starts and ends mid-day
    (T0 + 3 * DAY + 7 * 3600, T0 + 3 * DAY + 20 * 3600),  # inside one day: team scopes read raw events
    (T0 + 26 * DAY + 10 * 3600, T0 + 27 * DAY + 9 * 3600),  # just under a day, across midnight
]
#: scopes the bitmaps answer
SET_SCOPES = [
    {},
    {"team": "search"},
    {"team": "support"},
    {"project": "web"},
    {"team": "search", "project": "api"},
]
#: scopes they do not (the day rows or raw events answer them as before)
OTHER_SCOPES = [{"team": "search", "user_id": "p2"}, {"feature": "chat"}, {"user_id": "switcher"}]


def _scope_id(f: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in f.items()) or "all"


def _distinct_user_statements(rollup: Rollup) -> list[str]:
    """Start recording the statements on this thread's connection that take distinct users."""
    seen: list[str] = []
    rollup.connection().set_trace_callback(
        lambda sql: seen.append(sql) if "DISTINCT user_id" in sql else None
    )
    return seen


@pytest.mark.parametrize("filters", SET_SCOPES + OTHER_SCOPES, ids=_scope_id)
@pytest.mark.parametrize("bounds", RANGES, ids=range(len(RANGES)))
def test_low_adoption_from_day_bitmaps_equals_the_day_rows_and_raw_events(rollup, bounds, filters):
    query = custom_query(*bounds, **filters)
    per_month = 30 / (query.range.days or 1)
    sets = ActivitySource(rollup, query)
    assert (sets.sets is not None) == (filters in SET_SCOPES)
    got = low_adoption(rollup, query, per_month, source=sets)
    assert got == low_adoption(rollup, query, per_month)  # the check's own source
    assert got == low_adoption(rollup, query, per_month, source=ActivitySource(rollup, query, sets=False))
    if filters:  # user_team_day and the raw events agree; user_day answers part days by first/last event
        assert got == low_adoption(rollup, query, per_month, source=ActivitySource(rollup, query, raw=True))


@pytest.mark.parametrize("filters", SET_SCOPES, ids=_scope_id)
@pytest.mark.parametrize("bounds", RANGES, ids=range(len(RANGES)))
def test_active_user_count_from_day_bitmaps_reads_no_distinct_users(rollup, bounds, filters):
    start, end = bounds
    query = custom_query(start, end, **filters)
    src = ActivitySource(rollup, query)
    try:
        statements = _distinct_user_statements(rollup)
        n = src.count(start, end)
    finally:
        rollup.connection().set_trace_callback(None)
    assert n == ActivitySource(rollup, query, sets=False).count(start, end)
    one_day = math.floor(start / DAY) == math.ceil(end / DAY) - 1 and end - start < DAY
    if filters and one_day:  # only raw events say who was active inside one day under a team filter
        assert statements
    else:
        assert statements == []  # the bitmaps answered (edge days read ordinals, not DISTINCT user_id)


@pytest.mark.parametrize("filters", SET_SCOPES, ids=_scope_id)
def test_every_window_from_day_bitmaps_equals_the_day_rows_and_raw_events(rollup, filters):
    query = custom_query(T0, END, **filters)
    sets, rows = ActivitySource(rollup, query), ActivitySource(rollup, query, sets=False)
    raw = ActivitySource(rollup, query, raw=True)
    for a in (T0 - DAY, T0, T0 + 0.5 * DAY, T0 + 6 * DAY, T0 + 26 * DAY + 12 * 3600):
        for length in (3600, 0.75 * DAY, DAY, 1.5 * DAY, 8 * DAY, 40 * DAY):
            b = a + length
            assert sets.count(a, b) == rows.count(a, b), (a, b)
            assert sets.feature_users(a, b) == rows.feature_users(a, b), (a, b)
            if filters:
                assert sets.count(a, b) == raw.count(a, b), (a, b)
                assert sets.feature_users(a, b) == raw.feature_users(a, b), (a, b)


def test_low_adoption_fixture_is_not_trivial(rollup):
    """The equality tests above compare answers with recommendations in them, under team scopes too."""
    query = custom_query(END - 30 * DAY, END)
    found = {r["target"]: r for r in low_adoption(rollup, query, 1.0)}
    assert set(found) == {"feature:translate", "feature:export"}
    assert found["feature:translate"]["impact"]["active_users"] == 71
    team = custom_query(END - 7 * DAY, END, team="search")
    found = {r["target"]: r for r in low_adoption(rollup, team, 30 / 7)}
    assert found["feature:translate"]["impact"]["users"] == 1  # p2 (the switcher used it for support)
    assert found["feature:translate"]["impact"]["active_users"] >= ADOPTION_MIN_USERS
    web = custom_query(T0 + 2.3 * DAY, T0 + 19.71 * DAY, project="web")
    assert [r["target"] for r in low_adoption(rollup, web, 1.0)] == ["feature:translate"]
