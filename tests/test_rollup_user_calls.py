"""``user_calls`` (migrations 14 and 15): the folded calls by day and user, and the user-filtered reads through it."""

from __future__ import annotations

import sqlite3

import pytest

from exporters.rollup import RollupWriter, prune
from exporters.rollup.rows import prepare_rows
from nexus_otel.events import ModelCallEvent
from recommender.params import Query, TimeRange
from recommender.store.activity import ActivitySource
from recommender.store.events import where
from recommender.store.reader import Rollup
from recommender.store.source import source
from recommender.store.user_calls import first_call_sql, user_calls_clause
from tests.rollup_data import copy_rollup, query_rows, redo_migrations_from, seeded_events, utc

START = utc("2026-03-02T09:30:00")
DAYS = 3


def _calls(seed: int, calls: int, start: float = START) -> list[ModelCallEvent]:
    events = seeded_events(seed=seed, start=start, days=DAYS, calls=calls)
    return sorted((e for e in events if isinstance(e, ModelCallEvent)), key=lambda e: e.timestamp)


@pytest.fixture(scope="module")
def rollup(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Calls folded in deferred batches, then 300 committed but not folded (above the fold mark)."""
    path = str(tmp_path_factory.mktemp("user-calls") / "rollup.db")
    writer = RollupWriter(path, retention_days=None, fold_rows=10**9, fold_interval_s=10**6)
    folded = _calls(seed=14, calls=3000)
    for i in range(0, len(folded), 500):
        writer.write_rows(prepare_rows(folded[i : i + 500]), defer_fold=True)
    writer.fold()
    # the tail: later and earlier times than the folded calls, so both ends of a range need it
    tail = _calls(seed=15, calls=300, start=START - 86400)
    writer.write_rows(prepare_rows(tail), defer_fold=True)
    writer._db.conn.close()  # the tail stays unfolded: close without the writer's final fold
    return path


def _folded_calls(path: str, upto: int | None = None) -> list[tuple]:
    upto_sql = "" if upto is None else f" AND id <= {upto}"
    return query_rows(
        path,
        "SELECT CAST(ts / 3600 AS INTEGER) * 3600, user_id, ts, id FROM model_calls "
        f"WHERE user_id IS NOT NULL{upto_sql} ORDER BY 1, 2, 3, 4",
    )


def _filed_calls(path: str) -> list[tuple]:
    """``user_calls`` listed call by call, ``(hour, user, ts, id)``; each group's bounds checked."""
    groups = query_rows(
        path,
        "SELECT u.day_start, u.first_call_id, u.first_ts, u.last_ts, MIN(j.value), MIN(c.ts), MAX(c.ts), "
        "COUNT(c.id), COUNT(*) "
        "FROM user_calls u, json_each(u.call_ids) j LEFT JOIN model_calls c ON c.id = j.value "
        "GROUP BY u.day_start, u.user_id, u.first_call_id",
    )
    for day, first_id, first_ts, last_ts, min_id, min_ts, max_ts, stored, listed in groups:
        assert stored == listed  # no id of a deleted call
        assert day <= first_ts <= last_ts < day + 86400
        assert (first_ts, last_ts) == (min_ts, max_ts)
        assert first_id <= min_id
    return query_rows(
        path,
        "SELECT CAST(c.ts / 3600 AS INTEGER) * 3600, u.user_id, c.ts, c.id FROM user_calls u, json_each(u.call_ids) j "
        "JOIN model_calls c ON c.id = j.value ORDER BY 1, 2, 3, 4",
    )


def _mark(path: str) -> int:
    return query_rows(path, "SELECT last_id FROM fold_marks WHERE source = 'model_calls'")[0][0]


def test_the_fold_files_every_folded_call_with_a_user_and_none_above_the_mark(rollup: str) -> None:
    mark = _mark(rollup)
    assert 0 < mark < query_rows(rollup, "SELECT MAX(id) FROM model_calls")[0][0]
    assert _filed_calls(rollup) == _folded_calls(rollup, mark)
    assert query_rows(
        rollup, "SELECT COUNT(*) FROM model_calls WHERE user_id IS NULL AND id <= " + str(mark)
    )[0][0]


def test_model_calls_has_no_index_led_by_user(rollup: str) -> None:
    indexes = query_rows(rollup, "SELECT name FROM pragma_index_list('model_calls')")
    led_by = {
        query_rows(rollup, f"SELECT name FROM pragma_index_info('{n}') WHERE seqno = 0")[0][0]
        for (n,) in indexes
    }
    assert "user_id" not in led_by
    assert "idx_model_calls_request_id" in {n for (n,) in indexes}


def _ranges(path: str) -> list[tuple[float, float]]:
    lo, hi = query_rows(path, "SELECT MIN(ts), MAX(ts) FROM model_calls")[0]
    return [
        (lo, hi + 1),
        (START + 3600.5, START + 86400 * 2 - 7.25),
        (START - 600, START + 1200),
        (hi - 90, hi + 1),
    ]


def _users(path: str) -> list[str]:
    return [
        u for (u,) in query_rows(path, "SELECT DISTINCT user_id FROM model_calls WHERE user_id IS NOT NULL")
    ]


def _truth(path: str, a: float, b: float, user: str, extra: str = "") -> tuple:
    return query_rows(
        path,
        "SELECT COUNT(*), TOTAL(cost_usd), TOTAL(input_tokens) FROM model_calls NOT INDEXED "
        f"WHERE ts >= {a!r} AND ts < {b!r} AND user_id = '{user}'{extra}",
    )[0]


def test_user_filtered_reads_equal_the_raw_calls_folded_or_not(rollup: str) -> None:
    conn = sqlite3.connect(rollup)
    users = [*_users(rollup), "nobody"]
    checked_tail = False
    for a, b in _ranges(rollup):
        for user in users:
            want = _truth(rollup, a, b, user)
            sql, params, ignored = where(
                "model_calls", Query(TimeRange(a, b, "custom"), (("user_id", user),)), alias="c"
            )
            got = conn.execute(
                f"SELECT COUNT(*), TOTAL(c.cost_usd), TOTAL(c.input_tokens) FROM model_calls c WHERE {sql}",
                params,
            ).fetchone()
            assert (got, ignored) == (want, []), (a, b, user)
            src = source(a, b, {"user_id": user}, columns=["requests", "cost_usd", "input_tokens"])
            assert src.segments
            assert all(s.table == "model_calls" for s in src.segments)
            got = conn.execute(
                f"SELECT SUM(requests), TOTAL(cost_usd), TOTAL(input_tokens) FROM {src.sql}", src.params
            )
            assert tuple(x or 0 for x in got.fetchone()) == want
            mark = _mark(rollup)
            checked_tail |= bool(_truth(rollup, a, b, user, f" AND id > {mark}")[0])
    assert checked_tail


def test_a_user_filtered_read_seeks_user_calls_instead_of_reading_the_range(rollup: str) -> None:
    conn = sqlite3.connect(rollup)
    query = Query(TimeRange(START, START + 2 * 86400, "custom"), (("user_id", "user-3"), ("model", "gpt-4o")))
    sql, params, _ = where("model_calls", query, alias="c")
    plan = [
        r[-1]
        for r in conn.execute(f"EXPLAIN QUERY PLAN SELECT COUNT(*) FROM model_calls c WHERE {sql}", params)
    ]
    assert "MULTI-INDEX OR" in plan
    assert any(step.startswith("SEARCH u USING PRIMARY KEY (day_start=? AND user_id=?") for step in plan), (
        plan
    )
    assert not any(
        step.startswith(("SCAN c", "SEARCH c USING INDEX", "SEARCH c USING COVERING")) for step in plan
    ), plan


def test_a_users_first_call_under_other_filters(rollup: str) -> None:
    conn = sqlite3.connect(rollup)
    mark = _mark(rollup)
    tail_first = 0
    for user in [*_users(rollup), "nobody"]:
        for model in ("gpt-4o", "claude-3-5-sonnet", "no-such-model"):
            want = query_rows(
                rollup,
                f"SELECT MIN(ts) FROM model_calls NOT INDEXED WHERE user_id = '{user}' AND model = '{model}'",
            )[0][0]
            got = conn.execute(first_call_sql(["model"]), (user, user, model, user, model)).fetchone()[0]
            assert got == want, (user, model)
            if want is not None:
                first_id = query_rows(
                    rollup, f"SELECT id FROM model_calls WHERE ts = {want!r} AND user_id = '{user}'"
                )
                tail_first += first_id[0][0] > mark
        sql, params = user_calls_clause(user)
        want = query_rows(
            rollup, f"SELECT MIN(ts), COUNT(*) FROM model_calls NOT INDEXED WHERE user_id = '{user}'"
        )
        assert (
            conn.execute(
                f"SELECT MIN(ts), COUNT(*) FROM model_calls WHERE user_id = ? AND {sql}", [user, *params]
            ).fetchall()
            == want
        )
    assert tail_first  # some first calls are among the unfolded ones (the tail starts a day earlier)
    query = Query(TimeRange(START - 86400, START + DAYS * 86400, "custom"), (("model", "gpt-4o"),))
    activity = ActivitySource(Rollup(rollup, read_workers=0), query)
    assert activity.table is None  # a model filter: the raw calls answer
    users = set(_users(rollup))
    got = activity.first_seen(users)
    want = dict(
        query_rows(
            rollup, "SELECT user_id, MIN(ts) FROM model_calls NOT INDEXED WHERE model = 'gpt-4o' GROUP BY 1"
        )
    )
    assert got == {u: t for u, t in want.items() if u in users}


def test_migration_14_files_the_folded_calls_and_the_next_fold_the_rest(rollup: str, tmp_path) -> None:
    path = str(tmp_path / "old.db")
    copy_rollup(rollup, path)
    redo_migrations_from(path, 14)  # back to 13 (with the (user_id, ts) index), then migrated again
    mark = _mark(path)
    assert _filed_calls(path) == _folded_calls(path, mark)
    assert not query_rows(
        path, "SELECT 1 FROM pragma_index_list('model_calls') WHERE name = 'idx_model_calls_user_id_ts'"
    )
    writer = RollupWriter(path, retention_days=None)
    writer.fold()
    writer.close()
    assert _mark(path) > mark
    assert _filed_calls(path) == _folded_calls(path)


def test_retention_deletes_the_rows_of_the_calls_it_deletes(rollup: str, tmp_path) -> None:
    path = str(tmp_path / "pruned.db")
    copy_rollup(rollup, path)
    writer = RollupWriter(path, retention_days=None)
    writer.fold()
    writer.close()
    cutoff = START + 86400 + 1234.5
    db = RollupWriter(path, retention_days=None)._db
    deleted = prune(db, older_than_s=1.0, now=cutoff + 1.0)
    assert deleted["model_calls"] > 0
    assert query_rows(path, "SELECT MIN(ts) FROM model_calls")[0][0] >= cutoff
    assert _filed_calls(path) == _folded_calls(path)
