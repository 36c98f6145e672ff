"""Migration 6's ``team_hour`` table and covering indexes: folded per batch, backfilled, read by plan."""

from __future__ import annotations

import pytest

from exporters.rollup import RollupWriter, open_database
from recommender.params import Query, TimeRange
from recommender.store import events as store_events
from recommender.store.reader import Rollup
from tests.rollup_data import seeded_events, utc

START = utc("2026-01-30T20:00:00")


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    path = tmp_path_factory.mktemp("team-hours") / "rollup.db"
    events = seeded_events(seed=11, start=START, days=3, calls=1500)
    writer = RollupWriter(path, retention_days=None)
    for i in range(0, len(events), 250):
        writer.write(events[i : i + 250])
    writer.close()
    return path


def _plan(path, sql: str, params: list[object]) -> str:
    db = open_database(path)
    try:
        return " | ".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall())
    finally:
        db.close()


class _Recorder(Rollup):
    """The product's reader, keeping the SQL it ran (to ask SQLite how it plans exactly that)."""

    def __init__(self, path) -> None:
        super().__init__(path)
        self.statements: list[tuple[str, list[object]]] = []

    def execute(self, sql, params=()):
        self.statements.append((sql, list(params)))
        return super().execute(sql, params)


@pytest.mark.parametrize("filters", [{}, {"team": "search"}, {"team": "search", "project": "web"}], ids=str)
def test_errors_by_type_reads_only_the_covering_index(path, filters):
    rollup = _Recorder(path)
    query = Query(TimeRange(START, START + 2 * 86400, "custom"), tuple(sorted(filters.items())))
    got = store_events.errors_by_type(rollup, query)
    assert sum(r["errors"] for r in got) > 10
    (sql, params), *_ = rollup.statements
    assert "USING COVERING INDEX idx_model_calls_errors " in _plan(path, sql, params)


@pytest.mark.parametrize("by", ["model", "feature", "provider"])
@pytest.mark.parametrize("filters", [{}, {"team": "search"}], ids=str)
def test_feedback_by_reads_only_the_covering_index(path, by, filters):
    rollup = _Recorder(path)
    query = Query(TimeRange(START, START + 2 * 86400, "custom"), tuple(sorted(filters.items())))
    got = store_events.feedback_by(rollup, query, by)
    assert got or filters  # the seeded feedback names no team
    (sql, params), *_ = rollup.statements
    plan = _plan(path, sql, params)
    assert "SCAN f USING COVERING INDEX idx_feedback_ts_covering" in plan or (
        "SEARCH f USING COVERING INDEX idx_feedback_ts_covering" in plan
    ), plan


def test_the_old_time_indexes_are_gone(path):
    db = open_database(path)
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    db.close()
    assert {"idx_model_calls_errors", "idx_feedback_ts_covering"} <= names
    assert not names & {"idx_model_calls_errors_ts", "idx_feedback_ts"}
