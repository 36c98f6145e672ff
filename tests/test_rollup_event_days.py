"""Migration 8's ``error_day`` and ``feedback_day``: folded, backfilled, and the answers read from them."""

from __future__ import annotations

import random

import pytest
from recommender_traffic import custom_query

from exporters.rollup import RollupWriter
from nexus_otel.events import FeedbackEvent
from recommender.params import Query, TimeRange
from recommender.store import events as store_events
from recommender.store.reader import Rollup
from tests.rollup_data import (
    assert_rows_close,
    copy_rollup,
    model_call,
    query_rows,
    redo_migrations_from,
    seeded_events,
    utc,
)

START = utc("2026-03-02T05:00:00")
DAYS = 6
MODELS = ("gpt-4o-mini", "claude-3-5-haiku", "gpt-4o")


def _extra_events() -> list:
    """Failed calls of several types and scopes; feedback naming its model, or not, before or after its call."""
    rng = random.Random(5)
    out: list = []
    for i in range(400):
        ts = START + rng.uniform(0, DAYS * 86400)
        failed = rng.random() < 0.5
        out.append(
            model_call(
                ts,
                f"x-{i}",
                team=rng.choice(("search", "support", None)),
                project=rng.choice(("web", None)),
                model=rng.choice(MODELS),
                provider="openai" if i % 3 else "anthropic",
                outcome="error" if failed else "success",
                error_type=rng.choice(("RateLimitError", "APITimeoutError", None)) if failed else None,
            )
        )
        named = i % 4 != 0
        out.append(
            FeedbackEvent(
                timestamp=ts + rng.uniform(-7200, 7200),  # may land on another day than its call
                request_id=f"x-{i}" if i % 10 else f"never-{i}",
                user_id=f"user-{i % 7}",
                team=rng.choice(("search", "support", None)),
                project=rng.choice(("web", None)),
                model=rng.choice(MODELS) if named else None,
                score=rng.random(),
            )
        )
    return out


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    path = tmp_path_factory.mktemp("event-days") / "rollup.db"
    events = seeded_events(seed=31, start=START, days=DAYS, calls=2000) + _extra_events()
    random.Random(2).shuffle(events)
    writer = RollupWriter(path, retention_days=None)
    for i in range(0, len(events), 300):  # feedback is often written before its call
        writer.write(events[i : i + 300])
    writer.close()
    return path


def test_error_day_holds_every_failed_call_by_day_scope_provider_and_type(path):
    raw = query_rows(
        path,
        "SELECT date(ts, 'unixepoch'), COALESCE(team, ''), COALESCE(project, ''), provider, "
        "COALESCE(error_type, 'unknown'), COUNT(*) FROM model_calls WHERE outcome = 'error' "
        "GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
    )
    got = query_rows(path, "SELECT * FROM error_day ORDER BY 1, 2, 3, 4, 5")
    assert got == raw
    assert {r[4] for r in got} >= {"RateLimitError", "APITimeoutError", "TimeoutError", "unknown"}


def test_feedback_day_holds_the_feedback_that_names_its_model(path):
    raw = query_rows(
        path,
        "SELECT date(ts, 'unixepoch'), COALESCE(team, ''), COALESCE(project, ''), model, COUNT(*), "
        "COUNT(score), TOTAL(score) FROM feedback WHERE model IS NOT NULL GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
    )
    got = query_rows(path, "SELECT * FROM feedback_day ORDER BY 1, 2, 3, 4")
    assert [r[:6] for r in got] == [r[:6] for r in raw]
    assert [r[6] for r in got] == pytest.approx([r[6] for r in raw], rel=1e-12)
    unnamed = query_rows(path, "SELECT COUNT(*) FROM feedback WHERE model IS NULL")[0][0]
    assert unnamed > 100  # the seeded feedback and a quarter of the extra rows are read raw


def test_migration_8_backfills_what_the_fold_writes(path, tmp_path):
    copy = tmp_path / "copy.db"
    copy_rollup(path, copy)
    redo_migrations_from(copy, 8)
    for table in ("error_day", "feedback_day"):
        sql = f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4"
        assert_rows_close(query_rows(copy, sql), query_rows(path, sql))


RANGES = [
    (START, START + DAYS * 86400),
    (START + 1234.5, START + 5 * 86400 + 7777.25),  # partial days at both edges
    (utc("2026-03-03T00:00:00"), utc("2026-03-06T00:00:00")),  # whole days only
    (START + 3600, START + 5 * 3600),  # inside one day
]
FILTERS = [
    {},
    {"team": "search"},
    {"team": "support", "project": "web"},
    {"provider": "openai"},
    {"model": "gpt-4o"},
]


def _clauses(filters: dict[str, str], alias: str = "", rated: bool = False) -> str:
    out = ""
    for name, value in sorted(filters.items()):
        column = f"{alias}{name}"
        if rated and name in ("model", "provider", "feature"):
            column = (
                f"COALESCE({column}, (SELECT c.{name} FROM model_calls c WHERE c.request_id = f.request_id))"
            )
        out += f" AND {column} = '{value}'"
    return out


@pytest.mark.parametrize("filters", FILTERS, ids=str)
@pytest.mark.parametrize("bounds", RANGES, ids=range(len(RANGES)))
def test_errors_by_type_equals_the_raw_failed_calls(path, bounds, filters):
    query = custom_query(*bounds, **filters)
    got = {
        (r["provider"], r["error_type"]): r["errors"]
        for r in store_events.errors_by_type(Rollup(path), query)
    }
    want = {
        (p, t): n
        for p, t, n in query_rows(
            path,
            "SELECT provider, COALESCE(error_type, 'unknown'), COUNT(*) FROM model_calls "
            f"WHERE ts >= {bounds[0]!r} AND ts < {bounds[1]!r} AND outcome = 'error'{_clauses(filters)} "
            "GROUP BY 1, 2",
        )
    }
    assert got == want
    assert want


@pytest.mark.parametrize("by", ["model", "provider"])
@pytest.mark.parametrize("filters", FILTERS, ids=str)
@pytest.mark.parametrize("bounds", RANGES, ids=range(len(RANGES)))
def test_feedback_by_equals_the_raw_feedback_with_the_rated_calls(path, bounds, filters, by):
    query = custom_query(*bounds, **filters)
    got = store_events.feedback_by(Rollup(path), query, by)
    key = f"COALESCE(f.{by}, (SELECT c.{by} FROM model_calls c WHERE c.request_id = f.request_id))"
    want = {
        k: (n, mean)
        for k, n, mean in query_rows(
            path,
            f"SELECT {key} AS k, COUNT(*), AVG(f.score) FROM feedback f "
            f"WHERE f.ts >= {bounds[0]!r} AND f.ts < {bounds[1]!r}{_clauses(filters, 'f.', rated=True)} "
            "GROUP BY k",
        )
        if k is not None
    }
    assert set(got) == set(want)
    assert want
    for k, (n, mean) in want.items():
        assert got[k]["count"] == n
        assert got[k]["mean_score"] == pytest.approx(mean, rel=1e-12)


def test_whole_days_of_feedback_by_model_come_from_feedback_day(path):
    statements: list[str] = []

    class Recorder(Rollup):
        def execute(self, sql, params=()):
            statements.append(sql)
            return super().execute(sql, params)

    query = Query(TimeRange(*RANGES[1], "custom"), (("team", "search"),))
    store_events.feedback_by(Recorder(path), query, "model")
    store_events.errors_by_type(Recorder(path), query)
    assert "FROM feedback_day" in statements[0]
    assert "f.model IS NULL" in statements[0]
    assert "FROM error_day" in statements[1]
