"""Seeded synthetic events for the rollup and budget tests, plus reference sums computed in Python."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timezone

from exporters.rollup import open_database
from nexus_otel.events import (
    Event,
    FeatureUseEvent,
    FeedbackEvent,
    ModelCallEvent,
    RevenueEvent,
    SessionEvent,
)

__all__ = [
    "MIGRATION_6_TABLES",
    "assert_rows_close",
    "copy_rollup",
    "drop_migration_6",
    "drop_migration_7",
    "drop_migration_8",
    "drop_migration_9",
    "drop_migration_10",
    "drop_migration_11",
    "model_call",
    "redo_migrations_from",
    "reference_aggregates",
    "reference_user_days",
    "reference_user_team_days",
    "seeded_events",
    "utc",
]

MODELS = (("gpt-4o", "openai"), ("gpt-4o-mini", "openai"), ("claude-sonnet-4", "anthropic"))


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def model_call(ts: float, request_id: str, **fields: object) -> ModelCallEvent:
    defaults: dict[str, object] = {"model": "gpt-4o", "provider": "openai", "latency_s": 0.5}
    defaults.update(fields)
    return ModelCallEvent(timestamp=ts, request_id=request_id, **defaults)  # type: ignore[arg-type]


def seeded_events(*, seed: int, start: float, days: int, calls: int) -> list[Event]:
    """Model calls from 12 users over ``days`` days with every field varied, plus product events."""
    rng = random.Random(seed)
    events: list[Event] = []
    for i in range(calls):
        model, provider = rng.choice(MODELS)
        user = f"user-{rng.randrange(12)}"
        ts = start + rng.uniform(0, days * 86400)
        error = rng.random() < 0.1
        priced = rng.random() < 0.9
        routed = rng.random() < 0.2
        streamed = rng.random() < 0.3
        input_tokens = rng.randrange(1, 5000)
        output_tokens = rng.randrange(0, 2000)
        events.append(
            ModelCallEvent(
                timestamp=ts,
                request_id=f"req-{seed}-{i}",
                user_id=user if rng.random() < 0.95 else None,
                session_id=f"s-{rng.randrange(40)}",
                team=rng.choice(("search", "support", None)),
                project=rng.choice(("helpdesk", "web")),
                feature=rng.choice(("chat", "summary", "classify", None)),
                model=model,
                provider=provider,
                operation=rng.choice(("chat", "embeddings")),
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=rng.randrange(0, input_tokens + 1),
                reasoning_tokens=rng.randrange(0, output_tokens + 1),
                cache_write_tokens=rng.randrange(0, 50),
                cost_usd=round(rng.uniform(0.0001, 0.2), 6) if priced else None,
                baseline_cost_usd=round(rng.uniform(0.1, 0.3), 6) if routed else None,
                priced=priced,
                latency_s=rng.lognormvariate(-0.5, 1.2),
                ttft_s=rng.uniform(0.05, 1.0) if streamed else None,
                streamed=streamed,
                outcome="error" if error else "success",
                error_type="TimeoutError" if error else None,
                routed=routed,
                routed_from="gpt-4o" if routed else None,
                router_confidence=rng.random() if routed else None,
            )
        )
    for i in range(calls // 4):
        ts = start + rng.uniform(0, days * 86400)
        user = f"user-{rng.randrange(12)}"
        events.append(
            FeatureUseEvent(
                timestamp=ts,
                user_id=user,
                feature=rng.choice(("export", "search")),
                count=rng.randrange(1, 4),
            )
        )
        events.append(
            FeedbackEvent(timestamp=ts + 1, request_id=f"req-{seed}-{i}", user_id=user, score=rng.random())
        )
        if i % 5 == 0:
            events.append(
                RevenueEvent(timestamp=ts + 2, user_id=user, amount_usd=10.0 * (i % 3 + 1), plan="pro")
            )
            events.append(SessionEvent(timestamp=ts + 3, user_id=user, session_id=f"s-{i}", state="started"))
    rng.shuffle(events)
    return events


def _key(e: ModelCallEvent, width: int) -> tuple:
    bucket = int(e.timestamp) // width * width
    return (
        bucket,
        e.model,
        e.provider,
        e.operation,
        e.feature or "",
        e.team or "",
        e.project or "",
        e.outcome,
        int(e.routed),
    )


def reference_aggregates(events: list[Event], width: int) -> dict[tuple, dict[str, float]]:
    out: dict[tuple, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for e in events:
        if not isinstance(e, ModelCallEvent):
            continue
        row = out[_key(e, width)]
        row["requests"] += 1
        row["errors"] += e.outcome == "error"
        for column in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        ):
            row[column] += getattr(e, column)
        row["cost_usd"] += e.cost_usd or 0.0
        row["baseline_cost_usd"] += e.baseline_cost_usd or 0.0
        row["priced_requests"] += e.priced
        row["unpriced_requests"] += not e.priced
        row["latency_sum_s"] += e.latency_s
        row["latency_count"] += 1
        row["latency_le_00"] += e.latency_s <= 0.01
        row["latency_le_14"] += e.latency_s <= 1.28
        row["latency_le_28"] += e.latency_s <= 163.84
        row["ttft_sum_s"] += e.ttft_s or 0.0
        row["ttft_count"] += e.ttft_s is not None
    return out


def reference_user_days(events: list[Event]) -> dict[tuple[str, str], dict[str, object]]:
    out: dict[tuple[str, str], dict[str, object]] = {}
    for e in sorted(events, key=lambda e: e.timestamp):
        if not isinstance(e, (ModelCallEvent, FeatureUseEvent)) or e.user_id is None:
            continue
        day = datetime.fromtimestamp(e.timestamp, timezone.utc).date().isoformat()
        row = out.setdefault(
            (day, e.user_id),
            {
                "requests": 0,
                "input_tokens": 0,
                "cost_usd": 0.0,
                "feature_uses": 0,
                "features": set(),
                "first_seen": e.timestamp,
            },
        )
        _add_activity(row, e)
        if e.feature:
            row["features"].add(e.feature)
        row["team"], row["project"], row["last_seen"] = e.team, e.project, e.timestamp
    return out


def _add_activity(row: dict[str, object], e: Event) -> None:
    """One model call or feature use added to a per-user day row of a reference table."""
    if isinstance(e, ModelCallEvent):
        row["requests"] += 1  # type: ignore[operator]
        row["input_tokens"] += e.input_tokens  # type: ignore[operator]
        row["cost_usd"] += e.cost_usd or 0.0  # type: ignore[operator]
    else:
        row["feature_uses"] += e.count  # type: ignore[operator,attr-defined]


def reference_user_team_days(
    events: list[Event],
) -> tuple[dict[tuple[str, str, str, str], dict[str, object]], dict[tuple[str, ...], list[float]]]:
    """``user_team_day`` and ``user_team_day_features`` computed in Python: per (day, team, project, user)."""
    days: dict[tuple[str, str, str, str], dict[str, object]] = {}
    features: dict[tuple[str, ...], list[float]] = {}
    for e in events:
        if not isinstance(e, (ModelCallEvent, FeatureUseEvent)) or e.user_id is None:
            continue
        day = datetime.fromtimestamp(e.timestamp, timezone.utc).date().isoformat()
        key = (day, e.team or "", e.project or "", e.user_id)
        row = days.setdefault(
            key,
            {"requests": 0, "input_tokens": 0, "cost_usd": 0.0, "feature_uses": 0,
             "first_seen": e.timestamp, "last_seen": e.timestamp},
        )  # fmt: skip
        _add_activity(row, e)
        row["first_seen"] = min(row["first_seen"], e.timestamp)
        row["last_seen"] = max(row["last_seen"], e.timestamp)
        if e.feature is not None:
            seen = features.setdefault((*key, e.feature), [e.timestamp, e.timestamp])
            seen[0], seen[1] = min(seen[0], e.timestamp), max(seen[1], e.timestamp)
    return days, features


def query_rows(path: object, sql: str) -> list[tuple]:
    """All rows of ``sql`` over the rollup at ``path``, read-only."""
    db = open_database(path, readonly=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


#: What migration 6 adds: tables, and the covering indexes that replace two time indexes.
MIGRATION_6_TABLES: tuple[str, ...] = ("team_hour", "user_ordinals", "active_users_day", "feature_users_day")
MIGRATION_6_INDEXES: tuple[str, ...] = ("idx_model_calls_errors", "idx_feedback_ts_covering")


def drop_migration_15(db: object) -> None:
    """Turn a migrated rollup's schema back into version 14's: ``user_calls`` one row per call again."""
    db.execute(  # type: ignore[attr-defined]
        "CREATE TABLE user_calls_v14 (hour INTEGER NOT NULL, user_id TEXT NOT NULL, ts REAL NOT NULL, "
        "call_id INTEGER NOT NULL, PRIMARY KEY (hour, user_id, ts, call_id)) WITHOUT ROWID"
    )
    db.execute(  # type: ignore[attr-defined]
        "INSERT INTO user_calls_v14 SELECT CAST(c.ts / 3600 AS INTEGER) * 3600, u.user_id, c.ts, c.id "
        "FROM user_calls u, json_each(u.call_ids) j JOIN model_calls c ON c.id = j.value"
    )
    db["user_calls"].drop()  # type: ignore[index]
    db.execute("ALTER TABLE user_calls_v14 RENAME TO user_calls")  # type: ignore[attr-defined]


def drop_migration_14(db: object) -> None:
    """Turn a migrated rollup's schema back into version 13's (the caller deletes the ``_migrations`` rows)."""
    db["user_calls"].drop(ignore=True)  # type: ignore[index]
    db["model_calls"].create_index(["user_id", "ts"], if_not_exists=True)  # type: ignore[index]


def drop_migration_13(db: object) -> None:
    """Turn a migrated rollup's schema back into version 12's (the caller deletes the ``_migrations`` rows)."""
    from exporters.rollup.bands import GLOBAL_BAND_TABLES

    drop_migration_14(db)

    for table in GLOBAL_BAND_TABLES:
        db[table].drop(ignore=True)  # type: ignore[index]


def drop_migration_12(db: object) -> None:
    """Turn a migrated rollup's schema back into version 11's (the caller deletes the ``_migrations`` rows)."""
    drop_migration_13(db)
    from exporters.rollup.projections import MIGRATION_12_PROJECTIONS, projection_tables

    for table in projection_tables(MIGRATION_12_PROJECTIONS):
        db[table].drop(ignore=True)  # type: ignore[index]


def drop_migration_11(db: object) -> None:
    """Turn a migrated rollup's schema back into version 10's (the caller deletes the ``_migrations`` rows)."""
    drop_migration_12(db)
    db["feature_users_week"].drop(ignore=True)  # type: ignore[index]


def drop_migration_10(db: object) -> None:
    """Turn a migrated rollup's schema back into version 9's (the caller deletes the ``_migrations`` rows)."""
    drop_migration_11(db)
    db["call_band_hour"].drop(ignore=True)  # type: ignore[index]


def drop_migration_9(db: object) -> None:
    """Turn a migrated rollup's schema back into version 8's (the caller deletes the ``_migrations`` rows)."""
    from exporters.rollup.user_ceilings import CALLS_BY_TIME_INDEX, NEGATIVE_COST_INDEX

    drop_migration_10(db)
    db["user_cost_ceiling"].drop(ignore=True)  # type: ignore[index]
    db.execute(f"DROP INDEX IF EXISTS {NEGATIVE_COST_INDEX}")  # type: ignore[attr-defined]
    db.execute(f"DROP INDEX IF EXISTS {CALLS_BY_TIME_INDEX}")  # type: ignore[attr-defined]
    db.execute("CREATE INDEX idx_model_calls_ts ON model_calls (ts)")  # type: ignore[attr-defined]


def drop_migration_8(db: object) -> None:
    """Turn a migrated rollup's schema back into version 7's (the caller deletes the ``_migrations`` rows)."""
    from exporters.rollup.event_days import UNNAMED_FEEDBACK_INDEX

    drop_migration_9(db)
    for table in ("error_day", "feedback_day"):
        db[table].drop(ignore=True)  # type: ignore[index]
    for index in (UNNAMED_FEEDBACK_INDEX, "idx_sessions_started"):
        db.execute(f"DROP INDEX IF EXISTS {index}")  # type: ignore[attr-defined]


def drop_migration_7(db: object) -> None:
    """Turn a migrated rollup's schema back into version 6's (the caller deletes the ``_migrations`` rows)."""
    from exporters.rollup.projections import MIGRATION_7_PROJECTIONS, projection_tables

    drop_migration_8(db)
    for table in projection_tables(MIGRATION_7_PROJECTIONS):
        db[table].drop(ignore=True)  # type: ignore[index]


def drop_migration_6(db: object) -> None:
    """Turn a migrated rollup's schema back into version 5's (the caller deletes the ``_migrations`` rows)."""
    drop_migration_7(db)
    for table in MIGRATION_6_TABLES:
        db[table].drop(ignore=True)  # type: ignore[index]
    for index in MIGRATION_6_INDEXES:
        db.execute(f"DROP INDEX IF EXISTS {index}")  # type: ignore[attr-defined]
    db.execute(  # type: ignore[attr-defined]
        "CREATE INDEX idx_model_calls_errors_ts ON model_calls (ts) WHERE outcome = 'error'"
    )
    db.execute("CREATE INDEX idx_feedback_ts ON feedback (ts)")  # type: ignore[attr-defined]


_DROP_FROM = {
    6: drop_migration_6,
    7: drop_migration_7,
    8: drop_migration_8,
    9: drop_migration_9,
    10: drop_migration_10,
    11: drop_migration_11,
    12: drop_migration_12,
    13: drop_migration_13,
    14: drop_migration_14,
    15: drop_migration_15,
}


def redo_migrations_from(path: object, version: int) -> None:
    """Take a rollup back to schema ``version - 1``, then migrate it again: what upgrading an old file does."""
    from exporters.rollup import MIGRATIONS, migrate, schema_version

    db = open_database(path)  # type: ignore[arg-type]
    _DROP_FROM[version](db)
    db.execute("DELETE FROM _migrations WHERE version >= ?", (version,))
    db.conn.commit()
    assert schema_version(db) == version - 1
    assert [m.version for m in migrate(db)] == [m.version for m in MIGRATIONS[version - 1 :]]
    db.close()


def redo_migration_6(path: object) -> None:
    """:func:`redo_migrations_from` version 6."""
    redo_migrations_from(path, 6)


def copy_rollup(path: object, dest: object) -> None:
    """A consistent copy of the rollup at ``path`` (``VACUUM INTO``), to migrate or break."""
    db = open_database(path)  # type: ignore[arg-type]
    try:
        db.conn.execute("VACUUM INTO ?", (str(dest),))
    finally:
        db.close()


def assert_rows_close(got: list[tuple], want: list[tuple]) -> None:
    """Row by row equal: integers exactly, floats to 1e-12 (a float sum differs in its last bits with the order)."""
    import pytest

    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a == tuple(pytest.approx(y, rel=1e-12) if isinstance(y, float) else y for y in b), (a, b)
