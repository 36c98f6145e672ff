"""Migration 6's ``team_hour`` table and covering indexes: folded per batch, backfilled, read by plan."""

from __future__ import annotations

import pytest
from recommender_traffic import custom_query

from exporters.rollup import RollupWriter, open_database
from exporters.rollup.team_hours import TEAM_HOUR_SUMS
from recommender.store import events as store_events
from recommender.store.reader import Rollup
from recommender.store.source import source
from recommender.store.totals import series
from tests.rollup_data import (
    assert_rows_close,
    copy_rollup,
    model_call,
    query_rows,
    redo_migration_6,
    seeded_events,
    utc,
)

START = utc("2026-01-30T20:00:00")
HOUR = 3600
_SUMS = ", ".join(f"TOTAL({c})" if t == "REAL" else f"SUM({c})" for c, t in TEAM_HOUR_SUMS)


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    path = tmp_path_factory.mktemp("team-hours") / "rollup.db"
    events = seeded_events(seed=11, start=START, days=3, calls=1500)
    writer = RollupWriter(path, retention_days=None)
    for i in range(0, len(events), 250):
        writer.write(events[i : i + 250])
    # a re-delivery folds through the SQL grouping: both fold paths fed the table
    writer.write([*events[:40], model_call(START + 7200.5, "late", team="search", project="web")])
    writer.close()
    return path


def _team_hours(path) -> list[tuple]:
    return query_rows(path, "SELECT * FROM team_hour ORDER BY bucket_start, team, project")


def test_team_hour_equals_the_raw_calls_per_hour_team_and_project(path):
    raw = query_rows(
        path,
        f"SELECT CAST(ts / {HOUR} AS INTEGER) * {HOUR}, COALESCE(team, ''), COALESCE(project, ''), "
        "COUNT(*), SUM(outcome = 'error'), SUM(input_tokens), SUM(output_tokens), SUM(priced != 0), "
        "SUM(priced = 0), TOTAL(COALESCE(cost_usd, 0.0)) FROM model_calls GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    got = _team_hours(path)
    assert len(got) > 100
    assert_rows_close(got, raw)
    agg = query_rows(
        path, f"SELECT bucket_start, team, project, {_SUMS} FROM agg_hour GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    assert_rows_close(got, agg)


def test_migration_6_backfills_what_the_fold_writes(path, tmp_path):
    copy = tmp_path / "copy.db"
    copy_rollup(path, copy)
    redo_migration_6(copy)
    assert_rows_close(_team_hours(copy), _team_hours(path))


RANGES = [
    (START, START + 3 * 86400),
    (START + 1234.5, START + 2 * 86400 + 7777.25),  # raw and minute edges around whole hours and days
    (START + 5 * HOUR, START + 9 * HOUR),
]


@pytest.mark.parametrize("filters", [{}, {"team": "search"}, {"team": "", "project": "web"}], ids=str)
@pytest.mark.parametrize("bounds", RANGES, ids=range(len(RANGES)))
def test_hourly_request_series_from_team_hour_equals_the_raw_calls(path, bounds, filters):
    rollup = Rollup(path)
    query = custom_query(*bounds, **filters)
    tables = {s.table for s in source(*bounds, filters, max_width=HOUR, columns=("requests",)).segments}
    # unfiltered, the projection over every team has fewer rows an hour
    assert ("team_hour" if filters else "agg_feature_global_hour") in tables
    got = [(r["t"], r["requests"]) for r in series(rollup, query, step=HOUR, sums=("requests",))]
    clauses = "".join(f" AND COALESCE({name}, '') = ?" for name in sorted(filters))
    want = query_rows(
        path,
        f"SELECT CAST(ts / {HOUR} AS INTEGER) * {HOUR}, COUNT(*) FROM model_calls "
        f"WHERE ts >= {bounds[0]!r} AND ts < {bounds[1]!r}{clauses} GROUP BY 1 ORDER BY 1".replace(
            "?", "{}"
        ).format(*(repr(filters[k]) for k in sorted(filters))),
    )
    assert got == [tuple(r) for r in want]
    assert len(got) > 3
    # a float sum or another dimension is not answered from team_hour (not exactly agg_hour's)
    for columns in (("requests", "cost_usd"), ("model", "requests")):
        assert "team_hour" not in {
            s.table for s in source(*bounds, filters, max_width=HOUR, columns=columns).segments
        }


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
    query = custom_query(START, START + 2 * 86400, **filters)
    got = store_events.errors_by_type(rollup, query)
    assert sum(r["errors"] for r in got) > 10
    (sql, params), *_ = rollup.statements
    assert "USING COVERING INDEX idx_model_calls_errors " in _plan(path, sql, params)


@pytest.mark.parametrize("by", ["model", "feature", "provider"])
@pytest.mark.parametrize("filters", [{}, {"team": "search"}], ids=str)
def test_feedback_by_reads_only_the_covering_index(path, by, filters):
    rollup = _Recorder(path)
    query = custom_query(START, START + 2 * 86400, **filters)
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
