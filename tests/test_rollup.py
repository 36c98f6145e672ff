"""The SQLite rollup: aggregates equal raw sums, idempotent re-delivery, migrations, retention, spend."""

from __future__ import annotations

import math
import subprocess
import sys
import threading

import pytest

from exporters.rollup import (
    AGG_TABLES,
    LATENCY_BOUNDS_S,
    LATENCY_COLUMNS,
    MIGRATIONS,
    Migration,
    RollupWriter,
    applied_migrations,
    latency_quantile,
    migrate,
    open_database,
    schema_version,
    spend_usd,
)
from nexus_otel.events import FeatureUseEvent, FeedbackEvent, RevenueEvent, SessionEvent
from nexus_otel.sinks.rollup import RollupEventSink
from tests.rollup_data import model_call, reference_aggregates, reference_user_days, seeded_events, utc

START = utc("2026-01-30T00:00:00")


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "rollup.db"


@pytest.fixture
def writer(db_path):
    w = RollupWriter(db_path, retention_days=None)
    yield w
    w.close()


def rows(db_path, sql, params=()):
    db = open_database(db_path, readonly=True)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def count(db_path, table):
    return rows(db_path, f"SELECT COUNT(*) FROM {table}")[0][0]


def test_aggregates_equal_the_sums_of_raw_events(writer, db_path):
    events = seeded_events(seed=7, start=START, days=4, calls=3000)
    for i in range(0, len(events), 257):
        writer.write(events[i : i + 257])

    columns = ["requests", "errors", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
               "reasoning_tokens", "cost_usd", "baseline_cost_usd", "priced_requests", "unpriced_requests",
               "latency_sum_s", "latency_count", "latency_le_00", "latency_le_14", "latency_le_28", "ttft_sum_s",
               "ttft_count"]  # fmt: skip
    key = "bucket_start, model, provider, operation, feature, team, project, outcome, routed"
    for table, width in AGG_TABLES.items():
        expected = reference_aggregates(events, width)
        got = {tuple(r[:9]): dict(zip(columns, r[9:], strict=True))
               for r in rows(db_path, f"SELECT {key}, {', '.join(columns)} FROM {table}")}  # fmt: skip
        assert set(got) == set(expected), table
        for k, want in expected.items():
            for column in columns:
                assert got[k][column] == pytest.approx(want.get(column, 0), rel=1e-9, abs=1e-9), (
                    table,
                    k,
                    column,
                )
    # and every table agrees with the raw rows the database holds
    raw_cost, raw_requests = rows(db_path, "SELECT TOTAL(cost_usd), COUNT(*) FROM model_calls")[0]
    for table in AGG_TABLES:
        cost, requests = rows(db_path, f"SELECT TOTAL(cost_usd), SUM(requests) FROM {table}")[0]
        assert requests == raw_requests == 3000
        assert cost == pytest.approx(raw_cost, rel=1e-12)
    # the days span the month boundary: January and February buckets both exist
    days = {r[0] for r in rows(db_path, "SELECT DISTINCT date(bucket_start, 'unixepoch') FROM agg_day")}
    assert days == {"2026-01-30", "2026-01-31", "2026-02-01", "2026-02-02"}


def test_user_day_matches_per_user_activity(writer, db_path):
    events = seeded_events(seed=11, start=START, days=3, calls=1500)
    for i in range(0, len(events), 100):
        writer.write(events[i : i + 100])
    expected = reference_user_days(events)
    got = rows(db_path, "SELECT day, user_id, requests, input_tokens, cost_usd, feature_uses, feature_count, team, "
                        "project, first_seen, last_seen FROM user_day")  # fmt: skip
    assert len(got) == len(expected)
    features = {}
    for day, user, feature in rows(db_path, "SELECT day, user_id, feature FROM user_day_features"):
        features.setdefault((day, user), set()).add(feature)
    for day, user, requests, tokens, cost, uses, feature_count, team, project, first, last in got:
        want = expected[(day, user)]
        assert (requests, tokens, uses) == (want["requests"], want["input_tokens"], want["feature_uses"])
        assert cost == pytest.approx(want["cost_usd"], rel=1e-9, abs=1e-12)
        assert features.get((day, user), set()) == want["features"]
        assert feature_count == len(want["features"])
        assert (team, project) == (want["team"], want["project"])  # of the latest event that day
        assert (first, last) == (want["first_seen"], want["last_seen"])


def test_redelivery_is_counted_once_everywhere(writer, db_path):
    events = seeded_events(seed=3, start=START, days=1, calls=400)
    first = writer.write(events[:300])
    assert (first.inserted, first.duplicates) == (300, 0)

    def snapshot():
        return {t: sorted(rows(db_path, f"SELECT * FROM {t}"), key=repr)
                for t in (*AGG_TABLES, "user_day", "user_day_features", "user_team_day",
                          "user_team_day_features", "feature_use_day")}  # fmt: skip

    before = snapshot()
    again = writer.write(events[:300])  # the same OTLP request delivered twice
    assert (again.inserted, again.duplicates) == (0, 300)
    assert snapshot() == before

    overlap = writer.write(events[200:])  # a retry that overlaps new events
    assert (overlap.inserted, overlap.duplicates) == (len(events) - 300, 100)
    reference = reference_aggregates(events, 3600)
    assert count(db_path, "model_calls") == sum(int(r["requests"]) for r in reference.values())
    assert rows(db_path, "SELECT SUM(requests) FROM agg_hour")[0][0] == count(db_path, "model_calls")
    # product events carry no id; their content key makes re-delivery idempotent too
    for table in ("feature_uses", "feedback", "revenue", "sessions"):
        assert count(db_path, table) == sum(
            type(e).__name__ == {"feature_uses": "FeatureUseEvent", "feedback": "FeedbackEvent",
                                 "revenue": "RevenueEvent", "sessions": "SessionEvent"}[table] for e in events
        )  # fmt: skip


def test_duplicates_inside_one_batch_and_missing_request_ids(writer, db_path):
    a = model_call(START, "same", cost_usd=1.0)
    anonymous = model_call(START + 5, "", cost_usd=2.0)
    result = writer.write([a, a, anonymous, anonymous])
    assert (result.inserted, result.duplicates) == (2, 2)
    assert rows(db_path, "SELECT requests, cost_usd FROM agg_day") == [(2, 3.0)]
    (derived,) = rows(db_path, "SELECT request_id FROM model_calls WHERE cost_usd = 2.0")[0]
    assert derived.startswith("sha256:")


def test_a_bad_event_refuses_the_batch_and_stores_nothing(writer, db_path):
    good = model_call(START, "ok")
    with pytest.raises(ValueError, match="event 1: model, provider"):
        writer.write([good, model_call(START, "bad", model="")])
    with pytest.raises(ValueError, match="timestamp"):
        writer.write([FeatureUseEvent(timestamp="yesterday", feature="x")])  # type: ignore[arg-type]
    assert count(db_path, "model_calls") == 0
    assert count(db_path, "agg_minute") == 0


def test_concurrent_writers_commit_every_batch_once(db_path):
    writer = RollupWriter(db_path, retention_days=None, flush_interval_s=0.01)
    events = seeded_events(seed=5, start=START, days=2, calls=2000)
    calls = [e for e in events if e.name == "nexus.model_call"]
    chunks = [calls[i : i + 50] for i in range(0, len(calls), 50)]
    results = []

    def send(part):
        for chunk in part:
            results.append(writer.write(chunk))
            results.append(writer.write(chunk[:10]))  # a retry of part of it

    threads = [threading.Thread(target=send, args=(chunks[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    assert sum(r.inserted for r in results) == len(calls) == count(db_path, "model_calls")
    assert sum(r.duplicates for r in results) == 10 * len(chunks)
    assert rows(db_path, "SELECT SUM(requests) FROM agg_minute")[0][0] == len(calls)


def test_migrations_apply_once_and_are_recorded(db_path):
    db = open_database(db_path)
    assert schema_version(db) == 0
    assert [m.version for m in migrate(db)] == [m.version for m in MIGRATIONS]
    assert migrate(db) == []
    assert [(r["version"], r["name"]) for r in applied_migrations(db)] == [
        (m.version, m.name) for m in MIGRATIONS
    ]
    assert schema_version(db) == MIGRATIONS[-1].version

    def add_column(d):
        d["agg_day"].add_column("note", str)

    def broken(d):
        d["model_calls"].add_column("half_done", str)
        raise RuntimeError("migration bug")

    v = MIGRATIONS[-1].version
    assert [m.version for m in migrate(db, (*MIGRATIONS, Migration(v + 1, "add note", add_column)))] == [
        v + 1
    ]
    with pytest.raises(RuntimeError, match="migration bug"):
        migrate(
            db, (*MIGRATIONS, Migration(v + 1, "add note", add_column), Migration(v + 2, "broken", broken))
        )
    # the failed migration left neither its column nor its record behind
    assert "half_done" not in db["model_calls"].columns_dict
    assert schema_version(db) == v + 1
    db.close()
    # code that knows fewer migrations than the file has refuses it
    with pytest.raises(RuntimeError, match="newer than this nexus-otel supports"):
        RollupWriter(db_path)


def test_prune_deletes_raw_events_and_keeps_aggregates(db_path):
    writer = RollupWriter(db_path, retention_days=30)
    now = utc("2026-03-15T00:00:00")
    old = [model_call(now - 40 * 86400 + i, f"old-{i}", user_id="u", cost_usd=0.5) for i in range(10)]
    new = [model_call(now - 86400 + i, f"new-{i}", user_id="u", cost_usd=0.25) for i in range(4)]
    writer.write([*old, *new, FeatureUseEvent(timestamp=now - 40 * 86400, user_id="u", feature="f")])
    assert writer.prune(now=now) == {
        "model_calls": 10,
        "feature_uses": 1,
        "feedback": 0,
        "revenue": 0,
        "sessions": 0,
    }
    writer.close()
    assert count(db_path, "model_calls") == 4
    for table in AGG_TABLES:
        assert rows(db_path, f"SELECT SUM(requests), TOTAL(cost_usd) FROM {table}")[0] == (14, 6.0)
    assert rows(db_path, "SELECT SUM(requests) FROM user_day")[0][0] == 14


def test_spend_uses_exact_boundaries(writer, db_path):
    t0 = utc("2026-02-01T03:00:00")
    writer.write([model_call(t0 + 29 * 60 + 59, "a", cost_usd=1.0), model_call(t0 + 30 * 60, "b", cost_usd=2.0),
                  model_call(t0 + 30 * 60 + 10, "c", cost_usd=4.0, team="x")])  # fmt: skip
    db = open_database(db_path, readonly=True)
    assert spend_usd(db, start=t0, end=t0 + 86400) == 7.0  # hour-aligned: agg_hour
    assert spend_usd(db, start=t0 + 1800, end=t0 + 86400) == 6.0  # half past: agg_minute
    assert spend_usd(db, start=t0 + 1805, end=t0 + 86400) == 4.0  # mid-minute: raw events
    assert spend_usd(db, start=t0, end=t0 + 86400, filters={"team": "x"}) == 4.0
    with pytest.raises(ValueError, match="unknown spend filter"):
        spend_usd(db, start=t0, end=t0 + 1, filters={"user_id": "u"})
    db.close()


def test_latency_quantiles_from_the_histogram_columns(writer, db_path):
    latencies = [0.05 * (i + 1) for i in range(100)]  # 0.05 .. 5.0 s
    writer.write([model_call(START + i, f"l{i}", latency_s=s) for i, s in enumerate(latencies)])
    cumulative = rows(db_path, f"SELECT {', '.join(LATENCY_COLUMNS)}, latency_count FROM agg_day")[0]
    p50 = latency_quantile(cumulative[:-1], cumulative[-1], 0.5)
    p95 = latency_quantile(cumulative[:-1], cumulative[-1], 0.95)
    # the buckets grow by sqrt(2): interpolation stays within one bucket of the truth
    assert 2.5 / math.sqrt(2) <= p50 <= 2.5 * math.sqrt(2)
    assert 4.75 / math.sqrt(2) <= p95 <= 4.75 * math.sqrt(2)
    assert latency_quantile([0] * len(LATENCY_BOUNDS_S), 0, 0.5) is None


def test_embedded_sink_writes_the_rollup(db_path):
    sink = RollupEventSink(db_path, retention_days=None)
    events = [model_call(START, "e1", user_id="u", feature="chat"), FeatureUseEvent(timestamp=START, user_id="u", feature="search"),
              FeedbackEvent(timestamp=START, request_id="e1", score=1.0), RevenueEvent(timestamp=START, amount_usd=5.0),
              SessionEvent(timestamp=START, session_id="s")]  # fmt: skip
    sink.export(events)
    sink.export(events[:1])  # the event pipeline retrying a batch
    sink.shutdown()
    assert [
        count(db_path, t) for t in ("model_calls", "feature_uses", "feedback", "revenue", "sessions")
    ] == [1] * 5
    assert rows(db_path, "SELECT requests, feature_count FROM user_day") == [(1, 2)]
    with pytest.raises(RuntimeError, match="shut down"):
        sink.export(events)


def test_importing_nexus_otel_does_not_import_sqlite_utils():
    code = "import sys, nexus_otel, nexus_otel.sinks.rollup; print('sqlite_utils' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
