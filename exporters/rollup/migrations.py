"""Versioned schema migrations for the rollup.

Each migration runs inside one transaction together with its row in
``_migrations``, so a migration is either fully applied and recorded or not at
all. New migrations are appended to :data:`MIGRATIONS` with the next version;
released ones are never edited. Tables and indexes are created with
sqlite-utils.

Since migration 5 the writer may commit raw rows before it folds them (the
deferred fold, ``fold_marks``). A migration that backfills a new table from raw
rows must therefore read only the rows at or below the fold marks; the next fold
adds the rest, as it does to every other aggregate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlite_utils

from .aggregate import RowMarks, backfill_team_activity, fold_marks, max_row_ids, set_fold_marks
from .bands import (
    GLOBAL_BAND_TABLES,
    backfill_band_hours,
    backfill_call_bands,
    backfill_global_bands,
    create_call_band_tables,
)
from .connection import immediate_transaction
from .event_days import backfill_event_days, create_event_day_tables
from .projections import (
    MIGRATION_7_PROJECTIONS,
    MIGRATION_12_PROJECTIONS,
    backfill_projections,
    create_projection_tables,
)
from .schema import AGG_DIMENSIONS, AGG_TABLES, agg_columns
from .team_hours import backfill_team_hours, create_team_hour_table
from .user_calls import create_v14_user_calls, regroup_v14_user_calls
from .user_ceilings import backfill_user_ceilings, create_user_ceiling_table
from .user_sets import (
    backfill_feature_weeks,
    backfill_user_sets,
    create_feature_week_table,
    create_user_set_tables,
)

__all__ = ["MIGRATIONS", "Migration", "applied_migrations", "migrate", "schema_version"]

_TABLE = "_migrations"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    apply: Callable[[sqlite_utils.Database], None]


_COMMON = {"id": int, "ts": float, "user_id": str, "session_id": str, "team": str, "project": str}


def _initial_schema(db: sqlite_utils.Database) -> None:
    db["model_calls"].create(
        {
            "id": int,
            "request_id": str,
            "ts": float,
            "user_id": str,
            "session_id": str,
            "team": str,
            "project": str,
            "feature": str,
            "model": str,
            "response_model": str,
            "provider": str,
            "operation": str,
            "server_address": str,
            "input_tokens": int,
            "output_tokens": int,
            "cache_read_tokens": int,
            "cache_write_tokens": int,
            "reasoning_tokens": int,
            "cost_usd": float,
            "baseline_cost_usd": float,
            "priced": int,
            "latency_s": float,
            "ttft_s": float,
            "streamed": int,
            "outcome": str,
            "error_type": str,
            "routed": int,
            "routed_from": str,
            "router_confidence": float,
        },
        pk="id",
        not_null={"request_id", "ts", "model", "provider", "operation", "outcome"},
    )
    db["model_calls"].create_index(["request_id"], unique=True)
    db["model_calls"].create_index(["ts"])
    db["model_calls"].create_index(["user_id", "ts"])

    raw_tables: dict[str, dict[str, type]] = {
        "feature_uses": {"feature": str, "count": int},
        "feedback": {
            "request_id": str,
            "feature": str,
            "model": str,
            "provider": str,
            "score": float,
            "comment_length": int,
        },
        "revenue": {"feature": str, "amount_usd": float, "plan": str},
        "sessions": {"feature": str, "state": str, "duration_s": float},
    }
    for name, extra in raw_tables.items():
        db[name].create({**_COMMON, "event_key": str, **extra}, pk="id", not_null={"ts", "event_key"})
        db[name].create_index(["event_key"], unique=True)
        db[name].create_index(["ts"])
        db[name].create_index(["user_id", "ts"])
    db["feedback"].create_index(["request_id"])
    db["sessions"].create_index(["session_id"])

    key = ("bucket_start", *AGG_DIMENSIONS)
    for table in AGG_TABLES:
        columns = agg_columns()
        db[table].create(columns, pk=key, not_null=set(columns))
        db[table].create_index(["team", "project", "bucket_start"])
        db[table].create_index(["model", "bucket_start"])

    db["user_day"].create(
        {
            "day": str,
            "user_id": str,
            "requests": int,
            "input_tokens": int,
            "output_tokens": int,
            "cost_usd": float,
            "feature_uses": int,
            "feature_count": int,
            "team": str,
            "project": str,
            "first_seen": float,
            "last_seen": float,
        },
        pk=("day", "user_id"),
        not_null={"day", "user_id", "requests", "feature_uses", "feature_count", "first_seen", "last_seen"},
    )
    db["user_day_features"].create(
        {"day": str, "user_id": str, "feature": str}, pk=("day", "user_id", "feature"), not_null={"feature"}
    )
    db["user_day_features"].create_index(["feature", "day"])
    db["user_day"].create_index(["user_id", "day"])
    db["user_day"].create_index(["team", "project", "day"])


def _recommender_tables(db: sqlite_utils.Database) -> None:
    """The recommender's tables: anomaly scores per hour and scope, and the Alertmanager inbox."""
    db["anomaly_scores"].create(
        {
            "detector": str,  # ecod | iforest
            "scope": str,  # all | team:<t> | model:<m> | provider:<p>
            "window_start": int,  # Unix seconds, start of the scored hour
            "window_end": int,
            "score": float,  # the detector's outlier score (higher is stranger)
            "threshold": float,  # the score above which the hour is an anomaly
            "is_anomaly": int,
            "features": str,  # JSON: the hour's feature values and their deviations
            "detected_at": float,
        },
        pk=("detector", "scope", "window_start"),
        not_null={"detector", "scope", "window_start", "window_end", "score", "threshold", "is_anomaly"},
    )
    db["anomaly_scores"].create_index(["window_start"])
    db["anomaly_scores"].create_index(["is_anomaly", "window_start"])
    db["anomaly_runs"].create(
        {
            "id": int,
            "ran_at": float,
            "range_start": float,
            "range_end": float,
            "detectors": str,  # JSON list
            "scopes": int,
            "windows": int,
            "anomalies": int,
            "seconds": float,
        },
        pk="id",
        not_null={"ran_at", "range_start", "range_end"},
    )
    db["alert_notifications"].create(
        {
            "id": int,
            "received_at": float,
            "fingerprint": str,
            "status": str,  # firing | resolved
            "alertname": str,
            "severity": str,
            "starts_at": str,  # RFC 3339 as Alertmanager sent it
            "ends_at": str,
            "labels": str,  # JSON
            "annotations": str,  # JSON
            "receiver": str,
            "group_key": str,
            "generator_url": str,
        },
        pk="id",
        not_null={"received_at", "fingerprint", "status", "starts_at"},
    )
    db["alert_notifications"].create_index(["fingerprint", "status", "starts_at"], unique=True)
    db["alert_notifications"].create_index(["received_at"])
    # errors by type and by provider read only the failed calls of a range
    db.execute("CREATE INDEX idx_model_calls_errors_ts ON model_calls (ts) WHERE outcome = 'error'")


def _user_team_day(db: sqlite_utils.Database) -> None:
    """Per-user days keyed by team and project too, and feature-use counts per day, from the raw events kept.

    The key starts with team because team-scoped reads (a team API key) are what this table is
    for: a team's days are then one range of the primary key. Project-only and per-user reads
    have their own (column, day) indexes.
    """
    db["user_team_day"].create(
        {
            "day": str,
            "team": str,
            "project": str,
            "user_id": str,
            "requests": int,
            "input_tokens": int,
            "output_tokens": int,
            "cost_usd": float,
            "feature_uses": int,
            "first_seen": float,
            "last_seen": float,
        },
        pk=("team", "day", "project", "user_id"),
        not_null={"day", "team", "project", "user_id", "requests", "feature_uses", "first_seen", "last_seen"},
    )
    db["user_team_day"].create_index(["project", "day"])
    db["user_team_day"].create_index(["user_id", "day"])
    db["user_team_day_features"].create(
        {
            "day": str,
            "team": str,
            "project": str,
            "user_id": str,
            "feature": str,
            "first_seen": float,
            "last_seen": float,
        },
        pk=("team", "day", "project", "user_id", "feature"),
        not_null={"day", "team", "project", "user_id", "feature", "first_seen", "last_seen"},
    )
    db["user_team_day_features"].create_index(["project", "day"])
    db["feature_use_day"].create(
        {"day": str, "team": str, "project": str, "feature": str, "uses": float},
        pk=("day", "team", "project", "feature"),
        not_null={"day", "team", "project", "feature", "uses"},
    )
    backfill_team_activity(db.conn)


def _call_bands(db: sqlite_utils.Database) -> None:
    """Calls and their feedback by prompt-size and router-confidence band, per day and week (``bands``)."""
    create_call_band_tables(db)
    backfill_call_bands(db.conn)


def _fold_marks(db: sqlite_utils.Database) -> None:
    """The highest raw row ids folded into the aggregates, so the writer can fold later than it inserts.

    Every row present was folded when it was inserted (earlier versions fold in the same
    transaction), so the marks start at the current highest ids.
    """
    db["fold_marks"].create({"source": str, "last_id": int}, pk="source", not_null={"last_id"})
    tops: RowMarks = max_row_ids(db.conn)
    set_fold_marks(db.conn, tops)


#: Failed calls by type (``store.events.errors_by_type``) read ``provider`` and ``error_type`` under
#: the scope filters: with every column it reads in the partial index, SQLite answers the query from
#: the index alone instead of fetching each failed call's table row (one random read per row).
#: ``outcome`` is in it too: SQLite counts a partial index as covering only if it holds the
#: columns of its own WHERE clause.
ERRORS_INDEX_SQL = (
    "CREATE INDEX idx_model_calls_errors ON model_calls "
    "(ts, provider, error_type, team, project, model, feature, user_id, outcome) WHERE outcome = 'error'"
)
#: Feedback per model, feature or provider (``store.events.feedback_by``) reads the score and the
#: rated call's request id (for feedback naming no model) under the scope filters; the same
#: reasoning, and ``ts`` first so every range read of feedback (retention too) still uses it.
FEEDBACK_INDEX_SQL = (
    "CREATE INDEX idx_feedback_ts_covering ON feedback "
    "(ts, team, project, feature, model, provider, user_id, score, request_id)"
)


#: Sessions started in a range (``COUNT(DISTINCT session_id)``, ``/api/analytics``) under the scope
#: filters, from the index alone.
SESSIONS_INDEX_SQL = (
    "CREATE INDEX idx_sessions_started ON sessions (state, ts, session_id, team, project, feature, user_id)"
)


def _covering_indexes(db: sqlite_utils.Database) -> None:
    """Replace the failed-call and feedback time indexes by covering ones (the new ones start with ``ts``)."""
    db.execute("DROP INDEX IF EXISTS idx_model_calls_errors_ts")
    db.execute(ERRORS_INDEX_SQL)
    db.execute("DROP INDEX IF EXISTS idx_feedback_ts")
    db.execute(FEEDBACK_INDEX_SQL)


def _activity_sets(db: sqlite_utils.Database) -> None:
    """Migration 6: per-day user bitmaps, calls per (hour, team, project), covering indexes.

    The new tables are filled from aggregates (``user_team_day`` and its features table,
    ``agg_hour``), which the fold marks describe: rows above the marks are added by the next
    fold, to every aggregate at once.
    """
    create_user_set_tables(db)
    backfill_user_sets(db.conn)
    create_team_hour_table(db)
    backfill_team_hours(db.conn)
    _covering_indexes(db)


def _projections(db: sqlite_utils.Database) -> None:
    """Migration 7: the aggregates summed over fewer dimensions, by hour, day and week.

    Filled from ``agg_hour`` and ``agg_day``, which the fold marks describe (see migration 6).
    """
    create_projection_tables(db, MIGRATION_7_PROJECTIONS)
    backfill_projections(db.conn, MIGRATION_7_PROJECTIONS)


def _event_days(db: sqlite_utils.Database) -> None:
    """Migration 8: failed calls by type and feedback by model per day; sessions by state and time.

    Filled from the raw rows at or below the fold marks; the next fold adds the rest.
    """
    create_event_day_tables(db)
    marks = fold_marks(db.conn)
    backfill_event_days(db.conn, calls_upto=marks.calls, feedback_upto=marks.feedback)
    db.execute(SESSIONS_INDEX_SQL)


def _user_ceilings(db: sqlite_utils.Database) -> None:
    """Migration 9: a cost ceiling per (team, project, user); the user-call index covers the cost.

    Filled from ``user_team_day`` and the raw calls at or below the fold mark; the next fold adds the rest.
    """
    create_user_ceiling_table(db)
    backfill_user_ceilings(db.conn, calls_upto=fold_marks(db.conn).calls)


def _band_hours(db: sqlite_utils.Database) -> None:
    """Migration 10: the call bands per hour, filled from the raw rows at or below the fold marks."""
    create_call_band_tables(db, ["call_band_hour"])
    marks = fold_marks(db.conn)
    backfill_band_hours(db.conn, calls_upto=marks.calls, feedback_upto=marks.feedback)


def _feature_weeks(db: sqlite_utils.Database) -> None:
    """Migration 11: users per feature per week as bitmaps, the OR of the day bitmaps."""
    create_feature_week_table(db)
    backfill_feature_weeks(db.conn)


def _admin_projections(db: sqlite_utils.Database) -> None:
    """Migration 12: the projections over every team (no team or project) and by team and project alone.

    Each regroups migration 7's projection it narrows, width by width.
    """
    create_projection_tables(db, MIGRATION_12_PROJECTIONS)
    backfill_projections(db.conn, MIGRATION_12_PROJECTIONS)


def _global_bands(db: sqlite_utils.Database) -> None:
    """Migration 13: the call bands over every team, regrouped from the team tables width by width."""
    create_call_band_tables(db, list(GLOBAL_BAND_TABLES))
    backfill_global_bands(db.conn)


def _user_calls(db: sqlite_utils.Database) -> None:
    """Migration 14: ``user_calls`` from the folded calls, in place of the ``(user_id, ts)`` index."""
    create_v14_user_calls(db, calls_upto=fold_marks(db.conn).calls)
    db.execute("DROP INDEX IF EXISTS idx_model_calls_user_id_ts")


def _grouped_user_calls(db: sqlite_utils.Database) -> None:
    """Migration 15: ``user_calls`` one row per (day, user, fold) with the calls' ids, not one per call."""
    regroup_v14_user_calls(db)


#: Every migration, in version order.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _initial_schema),
    Migration(2, "recommender: anomaly scores, alert inbox, failed-call index", _recommender_tables),
    Migration(3, "user_team_day: per-user days by team and project; feature_use_day", _user_team_day),
    Migration(
        4, "call_band_day, call_band_week: calls and feedback by prompt-size and confidence band", _call_bands
    ),
    Migration(5, "fold_marks: raw rows folded so far, for the deferred fold", _fold_marks),
    Migration(
        6,
        "user_ordinals, active_users_day, feature_users_day: users per day as bitmaps; "
        "team_hour: calls per hour, team, project; covering indexes for failed calls and feedback",
        _activity_sets,
    ),
    Migration(
        7,
        "agg_feature_*, agg_model_*, agg_usage_*: the aggregates over fewer dimensions, "
        "per hour, day and week",
        _projections,
    ),
    Migration(
        8,
        "error_day, feedback_day: failed calls by type and feedback by model per day; "
        "covering index for sessions started",
        _event_days,
    ),
    Migration(
        9,
        "user_cost_ceiling: the most a user can have cost in any range; index of negative-cost calls",
        _user_ceilings,
    ),
    Migration(
        10, "call_band_hour: calls and feedback by prompt-size and confidence band per hour", _band_hours
    ),
    Migration(11, "feature_users_week: users per feature per week as bitmaps", _feature_weeks),
    Migration(
        12,
        "agg_feature_global_*, agg_model_global_*, agg_usage_global_*, agg_owner_*: the projections "
        "without team and project, and by team and project alone",
        _admin_projections,
    ),
    Migration(
        13,
        "call_band_global_hour, call_band_global_day, call_band_global_week: the call bands over every team",
        _global_bands,
    ),
    Migration(
        14,
        "user_calls: each folded call by hour and user, in place of the (user_id, ts) index of model_calls",
        _user_calls,
    ),
    Migration(
        15,
        "user_calls: one row per day, user and fold listing its calls' ids, not one per call",
        _grouped_user_calls,
    ),
)


def _ensure_table(db: sqlite_utils.Database) -> None:
    if not db[_TABLE].exists():
        db[_TABLE].create({"version": int, "name": str, "applied_at": str}, pk="version", if_not_exists=True)


def applied_migrations(db: sqlite_utils.Database) -> list[dict[str, object]]:
    """Rows of ``_migrations`` (version, name, applied_at), oldest first; empty for a new file."""
    if not db[_TABLE].exists():
        return []
    return list(db[_TABLE].rows_where(order_by="version"))


def schema_version(db: sqlite_utils.Database) -> int:
    """The highest applied migration version, 0 for a new file."""
    if not db[_TABLE].exists():
        return 0
    return db.execute(f"SELECT COALESCE(MAX(version), 0) FROM {_TABLE}").fetchone()[0]


def migrate(db: sqlite_utils.Database, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[Migration]:
    """Apply the pending migrations in version order; return those applied.

    A file whose schema is newer than this code knows is refused rather than
    written with assumptions that no longer hold.
    """
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise ValueError("migration versions must be unique and increasing")
    _ensure_table(db)
    applied: list[Migration] = []
    current = schema_version(db)
    known = versions[-1] if versions else 0
    if current > known:
        raise RuntimeError(
            f"rollup schema version {current} is newer than this nexus-otel supports ({known}); "
            "upgrade nexus-otel"
        )
    for migration in migrations:
        if migration.version <= current:
            continue
        with immediate_transaction(db):
            # re-check inside the transaction: another process may have migrated meanwhile
            if schema_version(db) >= migration.version:
                continue
            migration.apply(db)
            db[_TABLE].insert(
                {
                    "version": migration.version,
                    "name": migration.name,
                    "applied_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
            )
        applied.append(migration)
    return applied
