"""Migration 9's ``user_cost_ceiling`` and the costliest users read with it.

The ceilings are checked against the raw calls (folded and backfilled, with negative and
missing costs, after retention deleted part of a day), and the costliest users against a
``GROUP BY`` of every call of the range, on traffic where one pass of candidates proves the
list, where a second is needed, where every user has to be summed, and while the writer has
not folded its newest rows yet.
"""

from __future__ import annotations

import json
import random

import pytest
from recommender_traffic import custom_query

from exporters.rollup import RollupWriter
from exporters.rollup.connection import open_database
from exporters.rollup.retention import prune
from exporters.rollup.rows import prepare_rows
from recommender.store import spenders
from recommender.store.activity import activity_table
from recommender.store.reader import Rollup
from tests.rollup_data import (
    assert_rows_close,
    copy_rollup,
    model_call,
    query_rows,
    redo_migrations_from,
    utc,
)

START = utc("2026-03-02T05:00:00")
DAYS = 6
TEAMS = ("search", "support", None)

CEILINGS_SQL = "SELECT team, project, user_id, ceiling_usd FROM user_cost_ceiling ORDER BY 1, 2, 3"
POSITIVE_COSTS_SQL = (
    "SELECT COALESCE(team, ''), COALESCE(project, ''), user_id, TOTAL(MAX(cost_usd, 0)) FROM model_calls "
    "WHERE user_id IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
)


def _calls(seed: int, count: int, *, start: float = START, days: float = DAYS, prefix: str = "c") -> list:
    """Calls from 150 users whose spend falls off steeply (a few heavy users, a long tail), a
    few calls with a negative cost (a sender's correction: only in every third run of 400
    calls, so the fold meets batches with and without one) or none, some without a user."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        rank = min(int(rng.paretovariate(0.8)), 150)
        cost = rng.uniform(0.001, 0.05) * (160 - rank) / 10
        if rng.random() < 0.03 and (i // 400) % 3 == 0:
            cost = -cost
        out.append(
            model_call(
                start + rng.uniform(0, days * 86400),
                f"{prefix}-{i}",
                user_id=None if rng.random() < 0.02 else f"u{rank:03d}",
                team=rng.choice(TEAMS),
                project=rng.choice(("web", "api", None)),
                model=rng.choice(("gpt-4o", "gpt-4o-mini")),
                cost_usd=None if rng.random() < 0.02 else cost,
            )
        )
    return out


@pytest.fixture(autouse=True)
def _ceilings_from_one_whole_day(monkeypatch):
    """This traffic spans 6 days; the ceilings are used from 1 whole day on (10 by default)."""
    monkeypatch.setattr(spenders, "MIN_WHOLE_DAYS", 1)


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    path = tmp_path_factory.mktemp("ceilings") / "rollup.db"
    writer = RollupWriter(path, retention_days=None)
    events = _calls(41, 6000)
    for i in range(0, len(events), 400):
        writer.write(events[i : i + 400])
    writer.close()
    return path


def test_the_ceiling_adds_each_calls_positive_cost(path):
    got = query_rows(path, CEILINGS_SQL)
    assert len(got) > 150
    assert_rows_close(got, query_rows(path, POSITIVE_COSTS_SQL))
    negative = query_rows(path, "SELECT COUNT(*) FROM model_calls WHERE cost_usd < 0")[0][0]
    assert negative > 50


def test_migration_9_backfills_what_the_fold_writes(path, tmp_path):
    copy = tmp_path / "copy.db"
    copy_rollup(path, copy)
    redo_migrations_from(copy, 9)
    assert_rows_close(query_rows(copy, CEILINGS_SQL), query_rows(path, CEILINGS_SQL))
    negative = "SELECT COUNT(*) FROM model_calls INDEXED BY idx_model_calls_negative_cost WHERE cost_usd < 0"
    assert query_rows(copy, negative) == query_rows(
        path, "SELECT COUNT(*) FROM model_calls WHERE cost_usd < 0"
    )


RANGES = [
    (START, START + DAYS * 86400),
    (START + 1234.5, START + 5 * 86400 + 7777.25),  # partial days at both edges
    (utc("2026-03-03T00:00:00"), utc("2026-03-05T00:00:00")),  # whole days only
    (START + 3 * 86400 + 3600, START + 3 * 86400 + 5 * 3600),  # inside one day
]
FILTERS = [
    {},
    {"team": "search"},
    {"team": "support", "project": "web"},
    {"model": "gpt-4o"},
    {"user_id": "u002"},
]


def _reference(path, bounds: tuple[float, float], filters: dict[str, str], limit: int) -> list[tuple]:
    clauses = "".join(f" AND {name} = '{value}'" for name, value in sorted(filters.items()))
    return query_rows(
        path,
        "SELECT user_id, TOTAL(cost_usd) AS cost, COUNT(*) FROM model_calls "
        f"WHERE ts >= {bounds[0]!r} AND ts < {bounds[1]!r} AND user_id IS NOT NULL{clauses} "
        f"GROUP BY user_id ORDER BY cost DESC, user_id LIMIT {limit}",
    )


def _listed(rows: list[dict[str, object]]) -> list[tuple]:
    return [(r["user_id"], r["cost_usd"], r["requests"]) for r in rows]


@pytest.mark.parametrize("limit", [20, 5])
@pytest.mark.parametrize("filters", FILTERS, ids=str)
@pytest.mark.parametrize("bounds", RANGES, ids=range(len(RANGES)))
def test_the_costliest_users_equal_the_raw_calls_grouped_by_user(path, bounds, filters, limit):
    got = spenders.costliest_users(Rollup(path), custom_query(*bounds, **filters), limit=limit)
    want = _reference(path, bounds, filters, limit)
    assert [r[0] for r in _listed(got)] == [r[0] for r in want]
    assert_rows_close(_listed(got), want)
    assert want


class _Counting(Rollup):
    """Counts the statements that sum user costs, and the users each one was given."""

    def __init__(self, path: object) -> None:
        super().__init__(path)  # type: ignore[arg-type]
        self.passes: list[int | None] = []

    def rows(self, sql, params=()):
        if "GROUP BY user_id ORDER BY cost_usd DESC" in sql:
            among = [p for p in params if isinstance(p, str) and p.startswith("[")]
            self.passes.append(len(json.loads(among[0])) if among else None)
        return super().rows(sql, params)


def test_a_long_range_is_proven_by_its_first_candidates(path):
    rollup = _Counting(path)
    got = spenders.costliest_users(rollup, custom_query(*RANGES[0]), limit=5)
    assert rollup.passes == [10]  # twice the asked-for count, once
    assert [r[0] for r in _listed(got)] == [r[0] for r in _reference(path, RANGES[0], {}, 5)]


def test_a_range_of_few_whole_days_sums_every_user(path, monkeypatch):
    monkeypatch.setattr(spenders, "MIN_WHOLE_DAYS", 10)
    rollup = _Counting(path)
    got = spenders.costliest_users(rollup, custom_query(*RANGES[0]), limit=5)
    assert rollup.passes == [None]
    assert [r[0] for r in _listed(got)] == [r[0] for r in _reference(path, RANGES[0], {}, 5)]


#: One whole day: the first 40 candidates do not prove the top 20 here
ONE_DAY = (utc("2026-03-03T00:00:00"), utc("2026-03-04T00:00:00"))


def test_a_short_range_sums_the_users_whose_ceiling_reaches_the_first_list(path):
    rollup = _Counting(path)
    got = spenders.costliest_users(rollup, custom_query(*ONE_DAY), limit=20)
    first, second = rollup.passes
    assert first == 40
    assert second is not None
    assert second > 0  # only the users the first pass did not sum
    assert [r[0] for r in _listed(got)] == [r[0] for r in _reference(path, ONE_DAY, {}, 20)]


def test_past_the_candidate_cap_every_user_is_summed(path, monkeypatch):
    monkeypatch.setattr(spenders, "MAX_CANDIDATES", 41)
    rollup = _Counting(path)
    got = spenders.costliest_users(rollup, custom_query(*ONE_DAY), limit=20)
    assert rollup.passes == [40, None]
    assert [r[0] for r in _listed(got)] == [r[0] for r in _reference(path, ONE_DAY, {}, 20)]


def test_calls_the_writer_has_not_folded_yet_count(tmp_path):
    path = tmp_path / "rollup.db"
    writer = RollupWriter(path, retention_days=None, fold_interval_s=3600, fold_rows=10**6)
    try:
        writer.write(_calls(7, 3000))
        # a newcomer spends more in the unfolded rows than anyone did before, in the range's last
        # part day (read from raw rows; whole days are read from what the fold wrote)
        late = [
            model_call(START + 5 * 86400 + i * 60, f"late-{i}", user_id="u999", team="search", cost_usd=100.0)
            for i in range(20)
        ]
        writer.write_rows(prepare_rows(late), defer_fold=True)
        assert query_rows(path, "SELECT COUNT(*) FROM user_cost_ceiling WHERE user_id = 'u999'") == [(0,)]
        for filters in ({}, {"team": "search"}):
            got = spenders.costliest_users(Rollup(path), custom_query(*RANGES[1], **filters), limit=5)
            want = _reference(path, RANGES[1], filters, 5)
            assert want[0][0] == "u999"
            assert [r[0] for r in _listed(got)] == [r[0] for r in want]
    finally:
        writer.close()


def test_after_retention_the_backfilled_ceiling_still_bounds_every_range(path, tmp_path):
    """Retention deletes raw calls up to mid-day 3, the corrections among them too; the day rows stay."""
    copy = tmp_path / "pruned.db"
    copy_rollup(path, copy)
    cutoff = START + 3 * 86400 + 4 * 3600
    db = open_database(copy)
    prune(db, older_than_s=3600, now=cutoff + 3600)
    db.close()
    redo_migrations_from(copy, 9)
    assert query_rows(copy, f"SELECT COUNT(*) FROM model_calls WHERE ts < {cutoff!r}") == [(0,)]
    rollup = Rollup(copy)
    ceilings: dict[str, float] = {}
    for _, _, user, ceiling in query_rows(copy, CEILINGS_SQL):
        ceilings[user] = ceilings.get(user, 0.0) + ceiling
    for bounds in [*RANGES, (cutoff - 7200, cutoff + 7200), (START + 3 * 86400, cutoff)]:
        query = custom_query(*bounds)
        every_user = spenders._ranked(rollup, query, activity_table({}), 10**6)
        for row in every_user:
            assert float(row["cost_usd"]) <= ceilings[str(row["user_id"])] + 1e-9, (bounds, row)
        got = spenders.costliest_users(rollup, query, limit=20)
        assert _listed(got) == _listed(every_user[:20])


def test_ties_across_the_two_passes_rank_by_user_id(tmp_path):
    """60 users cost the same in the range; the later half also spent before it, so the ceilings
    put them first: the first pass sums a30…a39, the second everyone else, and the tie puts a00 first."""
    path = tmp_path / "rollup.db"
    day = utc("2026-03-03T00:00:00")
    calls = [
        model_call(day + 3600 * (i % 20) + k, f"in-{i}-{k}", user_id=f"a{i:02d}", cost_usd=0.5)
        for i in range(60)
        for k in range(2)
    ]
    calls += [
        model_call(day - 86400, f"before-{i}", user_id=f"a{i:02d}", cost_usd=2.0) for i in range(30, 60)
    ]
    writer = RollupWriter(path, retention_days=None)
    writer.write(calls)
    writer.close()
    bounds = (day, day + 86400)
    rollup = _Counting(path)
    got = spenders.costliest_users(rollup, custom_query(*bounds), limit=5)
    assert rollup.passes == [10, 50]
    assert [r["user_id"] for r in got] == ["a00", "a01", "a02", "a03", "a04"]
    assert [r[0] for r in _reference(path, bounds, {}, 5)] == ["a00", "a01", "a02", "a03", "a04"]
