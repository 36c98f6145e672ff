"""Fold freshly inserted raw rows into the minute/hour/day aggregates and the per-user days.

The writer inserts raw rows with ``INSERT OR IGNORE``; :func:`fold_pending`
then folds every raw row above the fold marks (the highest row ids already
folded, stored in ``fold_marks``) and moves the marks, in one transaction:
with the insert itself, or later, for many inserts at once (the writer's
deferred fold). A re-delivered request id, ignored by the raw insert, gets no
row id and is never counted a second time, and once folded the aggregates
equal the sums of the raw rows they were built from. The aggregation runs in
SQL (GROUP BY + UPSERT), or from rows grouped in memory (``prefold``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import NamedTuple

from .bands import clear_stage as clear_band_stage
from .bands import fold_call_bands
from .event_days import fold_event_days
from .projections import fold_projections
from .schema import AGG_DIMENSIONS, AGG_TABLES, CALL_ROW_EXPRESSIONS, agg_columns, agg_sum_columns
from .team_hours import fold_team_hours
from .user_calls import fold_user_calls
from .user_ceilings import fold_user_ceilings
from .user_fold import USER_TEAM_DAY_CONFLICT, USER_TEAM_DAY_FEATURES_CONFLICT, fold_user_activity
from .user_sets import fold_user_sets

__all__ = [
    "MINUTE_STAGE_INSERT",
    "RowMarks",
    "backfill_team_activity",
    "fold_marks",
    "fold_new_rows",
    "fold_pending",
    "max_row_ids",
    "set_fold_marks",
]

_SUMS = agg_sum_columns()
_FLOAT_SUMS = frozenset(c for c, t in agg_columns().items() if t is float)


def _sum_expression(column: str) -> str:
    row = CALL_ROW_EXPRESSIONS[column]
    if row == "1":
        return "COUNT(*)"
    return f"TOTAL({row})" if column in _FLOAT_SUMS else f"SUM({row})"


_DIMENSION_EXPR = {d: CALL_ROW_EXPRESSIONS[d] for d in AGG_DIMENSIONS}
_SUM_EXPR = {c: _sum_expression(c) for c in _SUMS}
_KEY = ("bucket_start", *AGG_DIMENSIONS)
#: The new rows grouped by minute, computed once per transaction; agg_hour and
#: agg_day are folded from these (much fewer) rows instead of from the raw rows
#: again. Bucket starts nest (60 divides 3600 and 86400), so the hour and day
#: keys and sums are the same as grouping the raw rows directly.
_STAGE = "temp._nexus_fold_minute"
_STAGE_CREATE = f"CREATE TEMP TABLE IF NOT EXISTS _nexus_fold_minute ({', '.join((*_KEY, *_SUMS))})"
_STAGE_CLEAR = f"DELETE FROM {_STAGE}"
#: For a caller that grouped the new rows itself (``prefold``): one row per minute key, columns as created.
MINUTE_STAGE_INSERT = f"INSERT INTO {_STAGE} VALUES ({', '.join('?' * (len(_KEY) + len(_SUMS)))})"


def _stage_minutes_sql() -> str:
    width = AGG_TABLES["agg_minute"]
    select = [f"(CAST(ts AS INTEGER) / {width}) * {width}"]
    select += [_DIMENSION_EXPR[d] for d in AGG_DIMENSIONS]
    select += [_SUM_EXPR[c] for c in _SUMS]
    group_by = ", ".join(str(i) for i in range(1, len(_KEY) + 1))
    return (
        f"INSERT INTO {_STAGE} ({', '.join((*_KEY, *_SUMS))})\n"
        f"SELECT {', '.join(select)} FROM model_calls WHERE id > ? GROUP BY {group_by}"
    )


#: The minute stage regrouped by hour, once per fold: agg_hour takes it as it is, and agg_day,
#: team_hour and the hour-wide projections group its rows (a fifth to a sixtieth of the
#: minute stage's) instead of the minute stage's again.
_HOUR_STAGE = "temp._nexus_fold_hour"
_HOUR_STAGE_CREATE = f"CREATE TEMP TABLE IF NOT EXISTS _nexus_fold_hour ({', '.join((*_KEY, *_SUMS))})"
_HOUR_STAGE_CLEAR = f"DELETE FROM {_HOUR_STAGE}"
_HOUR = AGG_TABLES["agg_hour"]


def _regrouped(width_s: int, source: str) -> str:
    """``SELECT`` of ``source``'s rows (stage-shaped, narrower buckets) in ``width_s`` buckets."""
    select = [f"(bucket_start / {width_s}) * {width_s}", *AGG_DIMENSIONS]
    select += [f"TOTAL({c})" if c in _FLOAT_SUMS else f"SUM({c})" for c in _SUMS]
    group_by = ", ".join(str(i) for i in range(1, len(_KEY) + 1))
    return f"SELECT {', '.join(select)} FROM {source} GROUP BY {group_by}"


def _agg_upsert_sql(table: str, width_s: int) -> str:
    """Upsert the staged groups into ``table``: the stage of its width as it is, else regrouped."""
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in _SUMS)
    conflict = f"ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET {updates}"
    columns = ", ".join((*_KEY, *_SUMS))
    same_width = {AGG_TABLES["agg_minute"]: _STAGE, _HOUR: _HOUR_STAGE}
    if width_s in same_width:  # (WHERE true: an upsert's SELECT needs a WHERE before ON CONFLICT)
        select = f"SELECT {columns} FROM {same_width[width_s]} WHERE true"
        return f"INSERT INTO {table} ({columns})\n{select}\n{conflict}"
    return f"INSERT INTO {table} ({columns})\n{_regrouped(width_s, _HOUR_STAGE)}\n{conflict}"


_HOUR_STAGE_SQL = f"INSERT INTO {_HOUR_STAGE} ({', '.join((*_KEY, *_SUMS))})\n{_regrouped(_HOUR, _STAGE)}"
_STAGE_SQL = _stage_minutes_sql()

_AGG_SQL = {table: _agg_upsert_sql(table, width) for table, width in AGG_TABLES.items()}

# The new events' activity, one row per (UTC day, user, team, project, feature): a few rows
# per user instead of one per event. The fold reads these rows (``_ACTIVITY_SELECT_SQL``, or the
# same rows grouped in memory by ``prefold``) and ``user_fold`` turns them into user_day,
# user_team_day and their feature tables. Migration 3's backfill stages them in a temp table.
_ACTIVITY_COLUMNS = (
    "day, user_id, team, project, feature, requests, input_tokens, output_tokens, cost_usd, feature_uses, "
    "first_seen, last_seen"
)
_ACTIVITY_STAGE = "temp._nexus_fold_activity"
_ACTIVITY_STAGE_CREATE = f"CREATE TEMP TABLE IF NOT EXISTS _nexus_fold_activity ({_ACTIVITY_COLUMNS})"
_ACTIVITY_STAGE_CLEAR = f"DELETE FROM {_ACTIVITY_STAGE}"
_ACTIVITY_STAGE_SQL = f"""
WITH activity AS (
    SELECT ts, date(ts, 'unixepoch') AS day, user_id, 1 AS requests, input_tokens, output_tokens,
           cost_usd, 0 AS feature_uses, feature, team, project
    FROM model_calls WHERE id > :calls AND user_id IS NOT NULL
    UNION ALL
    SELECT ts, date(ts, 'unixepoch'), user_id, 0, 0, 0, NULL, count, feature, team, project
    FROM feature_uses WHERE id > :uses AND user_id IS NOT NULL
)
INSERT INTO {_ACTIVITY_STAGE} ({_ACTIVITY_COLUMNS})
SELECT day, user_id, team, project, feature, SUM(requests), SUM(input_tokens), SUM(output_tokens),
       TOTAL(cost_usd), SUM(feature_uses), MIN(ts), MAX(ts)
FROM activity GROUP BY day, user_id, team, project, feature
"""

# Migration 3's backfill of the team-keyed user tables from the staged activity of every raw row
# (the fold does the same per transaction in ``user_fold``). A missing team or project is '' as in
# the other aggregate keys; a missing feature stays out of the features table.
#: The activity stage rows of the new events, for the fold (``user_fold``), which groups them further.
_ACTIVITY_SELECT_SQL = _ACTIVITY_STAGE_SQL.replace(
    f"INSERT INTO {_ACTIVITY_STAGE} ({_ACTIVITY_COLUMNS})\n", ""
)

_USER_TEAM_DAY_SQL = f"""
INSERT INTO user_team_day (day, team, project, user_id, requests, input_tokens, output_tokens, cost_usd,
                           feature_uses, first_seen, last_seen)
SELECT day, COALESCE(team, ''), COALESCE(project, ''), user_id, SUM(requests), SUM(input_tokens),
       SUM(output_tokens), TOTAL(cost_usd), SUM(feature_uses), MIN(first_seen), MAX(last_seen)
FROM {_ACTIVITY_STAGE} GROUP BY 1, 2, 3, 4
{USER_TEAM_DAY_CONFLICT}"""

_USER_TEAM_DAY_FEATURES_SQL = f"""
INSERT INTO user_team_day_features (day, team, project, user_id, feature, first_seen, last_seen)
SELECT day, COALESCE(team, ''), COALESCE(project, ''), user_id, feature, MIN(first_seen), MAX(last_seen)
FROM {_ACTIVITY_STAGE} WHERE feature IS NOT NULL GROUP BY 1, 2, 3, 4, 5
{USER_TEAM_DAY_FEATURES_CONFLICT}"""


# Feature-use counts per (day, team, project, feature), users or not: the analytics' "uses" per
# feature read millions of raw feature uses at 10M events. Few rows per batch, so both fold paths
# read them back by row id instead of grouping them in memory.
_FEATURE_USE_DAY_SQL = """
INSERT INTO feature_use_day (day, team, project, feature, uses)
SELECT date(ts, 'unixepoch'), COALESCE(team, ''), COALESCE(project, ''), feature, TOTAL(count)
FROM feature_uses WHERE id > ? AND feature IS NOT NULL GROUP BY 1, 2, 3, 4
ON CONFLICT (day, team, project, feature) DO UPDATE SET uses = feature_use_day.uses + excluded.uses
"""


def backfill_team_activity(conn: sqlite3.Connection) -> None:
    """Fill ``user_team_day``, its features table and ``feature_use_day`` from every raw row (migration 3).

    Goes through the same stage and upserts as the fold, so a backfilled table equals one
    folded batch by batch from the same rows.
    """
    conn.execute(_ACTIVITY_STAGE_CREATE)
    conn.execute(_ACTIVITY_STAGE_CLEAR)
    conn.execute(_ACTIVITY_STAGE_SQL, {"calls": 0, "uses": 0})
    conn.execute(_USER_TEAM_DAY_SQL)
    conn.execute(_USER_TEAM_DAY_FEATURES_SQL)
    conn.execute(_ACTIVITY_STAGE_CLEAR)
    conn.execute(_FEATURE_USE_DAY_SQL, (0,))


class RowMarks(NamedTuple):
    """Row ids of the three raw tables the fold reads: calls, feature uses, feedback."""

    calls: int
    uses: int
    feedback: int


_SOURCES = {"model_calls": "calls", "feature_uses": "uses", "feedback": "feedback"}


def max_row_ids(conn: sqlite3.Connection) -> RowMarks:
    """The highest ``model_calls``, ``feature_uses`` and ``feedback`` row ids (0 when empty).

    Call inside the write transaction: rows inserted after it get larger ids.
    """
    ids = [conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0] for table in _SOURCES]
    return RowMarks(*ids)


def fold_marks(conn: sqlite3.Connection) -> RowMarks:
    """The highest raw row ids already folded into the aggregates (the ``fold_marks`` table, migration 5)."""
    stored = dict(conn.execute("SELECT source, last_id FROM fold_marks").fetchall())
    return RowMarks(*(stored.get(table, 0) for table in _SOURCES))


def set_fold_marks(conn: sqlite3.Connection, marks: RowMarks) -> None:
    """Record that the aggregates hold every raw row up to ``marks`` (inside the fold's transaction)."""
    conn.executemany(
        "INSERT INTO fold_marks (source, last_id) VALUES (?, ?) "
        "ON CONFLICT (source) DO UPDATE SET last_id = excluded.last_id",
        zip(_SOURCES, marks, strict=True),
    )


def fold_pending(
    conn: sqlite3.Connection,
    *,
    stage: Callable[[sqlite3.Connection, RowMarks, RowMarks], list | None] | None = None,
) -> int:
    """Fold every raw row above the fold marks and advance the marks, inside the caller's transaction.

    The marks move in the same transaction as the sums, so each raw row is folded exactly
    once however the folds are spaced (per write, deferred, or after a crash). ``stage``, as
    for :func:`fold_new_rows`, is also given the marks and the highest row ids, so it can tell
    whether the rows it holds are exactly the ones above the marks. Returns how many call and
    feature-use rows were folded.
    """
    marks, tops = fold_marks(conn), max_row_ids(conn)
    if tops == marks:
        return 0
    fold_new_rows(
        conn,
        calls_after=marks.calls,
        uses_after=marks.uses,
        feedback_after=marks.feedback,
        new_calls=tops.calls > marks.calls,
        new_uses=tops.uses > marks.uses,
        stage=None if stage is None else (lambda c: stage(c, marks, tops)),
    )
    set_fold_marks(conn, tops)
    return (tops.calls - marks.calls) + (tops.uses - marks.uses)


def fold_new_rows(
    conn: sqlite3.Connection,
    *,
    calls_after: int,
    uses_after: int,
    feedback_after: int,
    new_calls: bool,
    new_uses: bool,
    stage: Callable[[sqlite3.Connection], list | None] | None = None,
) -> None:
    """Add the rows above the given ids to the aggregates (inside the caller's transaction).

    ``stage``, when given, fills the minute and band stages and adds the new calls to
    ``user_calls`` and ``error_day`` itself (from rows it knows were all inserted) and returns
    the activity stage rows; None falls back to grouping in SQL.
    New feedback is folded into the band tables whatever else is new.
    """
    clear_band_stage(conn)
    if new_calls:
        conn.execute(_STAGE_CREATE)
        conn.execute(_STAGE_CLEAR)
        conn.execute(_HOUR_STAGE_CREATE)
    if not (new_calls or new_uses):
        fold_event_days(conn, calls_after=calls_after, feedback_after=feedback_after)
        fold_call_bands(
            conn, calls_after=calls_after, feedback_after=feedback_after, new_calls=False, staged=False
        )
        return
    activity = None if stage is None else stage(conn)
    staged = activity is not None
    fold_event_days(conn, calls_after=calls_after, feedback_after=feedback_after, calls=not staged)
    if activity is None:
        if new_calls:
            conn.execute(_STAGE_SQL, (calls_after,))
        activity = conn.execute(_ACTIVITY_SELECT_SQL, {"calls": calls_after, "uses": uses_after}).fetchall()
    if new_calls:
        conn.execute(_HOUR_STAGE_SQL)
        for sql in _AGG_SQL.values():
            conn.execute(sql)
        fold_team_hours(conn, _HOUR_STAGE)
        fold_projections(conn, minute_stage=_STAGE, hour_stage=_HOUR_STAGE)
        conn.execute(_STAGE_CLEAR)
        conn.execute(_HOUR_STAGE_CLEAR)
        fold_user_ceilings(conn, activity, calls_after=calls_after)
        if not staged:  # the stage filed them from memory
            fold_user_calls(conn, calls_after=calls_after)
    fold_user_activity(conn, activity)
    fold_user_sets(conn, activity)
    if new_uses:
        conn.execute(_FEATURE_USE_DAY_SQL, (uses_after,))
    fold_call_bands(
        conn, calls_after=calls_after, feedback_after=feedback_after, new_calls=new_calls, staged=staged
    )
