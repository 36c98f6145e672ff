"""Per-call conditions as aggregate keys: model calls by prompt-size band and router-confidence band.

The recommender's cheaper-model and router-threshold checks ask questions no other
aggregate can answer, because their conditions are per call: "unrouted calls with at
most 2,000 input tokens" and "routed calls whose confidence falls in the 0.1-wide band
k". ``call_band_day`` and ``call_band_week`` (migration 4) and ``call_band_hour``
(migration 10) keep those calls' sums and the feedback given on them per UTC hour, day and
7-day week (aligned to the Unix epoch, so weeks start on Thursdays 00:00 UTC), keyed by the
band: whole weeks, days and hours are read from here and only the partial hours at a
range's edges from the raw calls.

Layout (both tables; ``WITHOUT ROWID``, so a range of the key is one contiguous read):
primary key ``(bucket_start, team, feature, model, provider, routed, routed_from, band)``.
There is no project (nor user) column: it would triple the rows, and those filters are
rare; readers use raw calls for them. With this many keys an hour holds far fewer rows than
calls only under real traffic: at 10M events over 90 days, ~1,000 rows per hour against
~4,600 calls (at 1M, the hour table read about as many rows as the raw hours).

* only calls with a feature and ``routed`` 0 or 1; routed calls only with a confidence
  (what the checks read; everything else would be rows nobody asks for);
* ``routed_from`` is ``''`` for unrouted calls (their checks do not split by it);
* ``band``: unrouted calls 1 when ``input_tokens <=`` :data:`SHORT_PROMPT_TOKENS`, else 0
  (-1 without a token count);
  routed calls :func:`confidence_band` of ``router_confidence`` (0..10), or
  :data:`OUT_OF_RANGE_BAND` for a confidence outside [0, 1] (readers then use raw calls);
* ``calls``, ``input_tokens``, ``output_tokens``, ``cache_read_tokens``, ``cost_usd``
  (priced calls), ``priced`` (sum of the calls' ``priced``), ``baseline_cost_usd``,
  ``min_confidence`` (routed calls: the lowest confidence in the group);
* ``feedback``, ``scored``, ``score_sum``: feedback rows on these calls (joined by
  ``request_id``), how many have a score, and the scores' sum. Feedback counts where its
  *call* is, as the recommender's raw join does.

Feedback and its call may arrive in either order and in different folds: new feedback is
joined to every call present; feedback whose call is missing waits in
``call_band_pending`` and is folded with the call. Each (feedback, call) pair is so counted
once, in the fold that takes the later one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

import sqlite_utils

from .band_grouping import (
    CONFIDENCE_BAND,
    CONFIDENCE_THRESHOLDS,
    OUT_OF_RANGE_BAND,
    SHORT_PROMPT_TOKENS,
    STAGE_WIDTH,
    THRESHOLD_PARAMS,
    confidence_band,
    group_band_rows,
    stage_band,
)

__all__ = [
    "BAND_KEY",
    "BAND_SUMS",
    "BAND_TABLES",
    "CONFIDENCE_BAND",
    "CONFIDENCE_THRESHOLDS",
    "GLOBAL_BAND_KEY",
    "GLOBAL_BAND_TABLES",
    "MIGRATION_4_BAND_TABLES",
    "OUT_OF_RANGE_BAND",
    "SHORT_PROMPT_TOKENS",
    "STAGE_INSERT",
    "backfill_band_hours",
    "backfill_call_bands",
    "backfill_global_bands",
    "band_key",
    "clear_stage",
    "confidence_band",
    "create_call_band_tables",
    "fold_call_bands",
    "group_band_rows",
    "merge_sums_sql",
    "stage_band",
]

#: Table -> bucket width in seconds.
BAND_TABLES: Final = {"call_band_hour": 3600, "call_band_day": 86400, "call_band_week": 7 * 86400}
#: The tables migration 4 created (``call_band_hour`` came with migration 10).
MIGRATION_4_BAND_TABLES: Final = ("call_band_day", "call_band_week")
BAND_KEY: Final = ("bucket_start", "team", "feature", "model", "provider", "routed", "routed_from", "band")
#: Table -> bucket width of the band tables over every team (migration 13): the same rows without
#: ``team``, ~420 keys a week at 10M events where ``call_band_week`` has ~2,400.
GLOBAL_BAND_TABLES: Final = {
    "call_band_global_hour": 3600,
    "call_band_global_day": 86400,
    "call_band_global_week": 7 * 86400,
}
GLOBAL_BAND_KEY: Final = tuple(c for c in BAND_KEY if c != "team")
#: (column, how it is added when rows meet)
BAND_SUMS: Final = (
    ("calls", "SUM"),
    ("input_tokens", "SUM"),
    ("output_tokens", "SUM"),
    ("cache_read_tokens", "SUM"),
    ("cost_usd", "TOTAL"),
    ("priced", "SUM"),
    ("baseline_cost_usd", "TOTAL"),
    ("min_confidence", "MIN"),
    ("feedback", "SUM"),
    ("scored", "SUM"),
    ("score_sum", "TOTAL"),
)
_COLUMNS = (*BAND_KEY, *(c for c, _ in BAND_SUMS))


def _band_sql(c: str) -> str:
    steps = " ".join(
        f"WHEN {c}.router_confidence >= :c{k} THEN {k}" for k in range(len(CONFIDENCE_THRESHOLDS), 0, -1)
    )
    return (
        f"CASE WHEN {c}.routed = 0 THEN COALESCE({c}.input_tokens <= {SHORT_PROMPT_TOKENS}, -1) "
        f"WHEN {c}.router_confidence < 0 OR {c}.router_confidence > 1 THEN {OUT_OF_RANGE_BAND} "
        f"{steps} ELSE 0 END"
    )


def _key_sql(c: str, width: int) -> str:
    return (
        f"(CAST({c}.ts AS INTEGER) / {width}) * {width}, COALESCE({c}.team, ''), "
        f"{c}.feature, {c}.model, {c}.provider, {c}.routed, "
        f"CASE WHEN {c}.routed = 1 THEN COALESCE({c}.routed_from, '') ELSE '' END, {_band_sql(c)}"
    )


def _scope_sql(c: str) -> str:
    """The calls the checks read: with a feature, unrouted, or routed with a confidence."""
    return (
        f"{c}.feature IS NOT NULL "
        f"AND ({c}.routed = 0 OR ({c}.routed = 1 AND {c}.router_confidence IS NOT NULL))"
    )


#: The stage keys calls by hour; each table regroups the stage to its width.
_STAGE_WIDTH = STAGE_WIDTH
_GROUP = ", ".join(str(i) for i in range(1, len(BAND_KEY) + 1))
_STAGE = "temp._nexus_fold_band"
_STAGE_CREATE = f"CREATE TEMP TABLE IF NOT EXISTS _nexus_fold_band ({', '.join(_COLUMNS)})"
_STAGE_CLEAR = f"DELETE FROM {_STAGE}"
#: For the in-memory fold (``prefold``): one row per hour key, columns in ``_COLUMNS`` order.
STAGE_INSERT: Final = f"INSERT INTO {_STAGE} VALUES ({', '.join('?' * len(_COLUMNS))})"

# New calls, grouped by hour key (the SQL fold path; prefold groups them in memory instead)
_STAGE_CALLS_SQL = f"""
INSERT INTO {_STAGE} ({", ".join(_COLUMNS)})
SELECT {_key_sql("c", _STAGE_WIDTH)}, COUNT(*), SUM(c.input_tokens), SUM(c.output_tokens),
       SUM(c.cache_read_tokens), TOTAL(c.cost_usd), SUM(c.priced), TOTAL(c.baseline_cost_usd),
       MIN(CASE WHEN c.routed = 1 THEN c.router_confidence END), 0, 0, 0.0
FROM model_calls c WHERE c.id > :calls AND {_scope_sql("c")} GROUP BY {_GROUP}
"""


def _stage_feedback_sql(source: str, where: str) -> str:
    return f"""
INSERT INTO {_STAGE} ({", ".join(_COLUMNS)})
SELECT {_key_sql("c", _STAGE_WIDTH)}, 0, 0, 0, 0, 0.0, 0, 0.0, NULL, COUNT(*), COUNT(f.score), TOTAL(f.score)
FROM {source} WHERE {where} AND {_scope_sql("c")} GROUP BY {_GROUP}
"""


# New feedback on any call present (the call first: feedback's own row id range, then the call by its
# unique request id)
_STAGE_NEW_FEEDBACK_SQL = _stage_feedback_sql(
    "feedback f CROSS JOIN model_calls c ON c.request_id = f.request_id", "f.id > :feedback"
)
_PEND_NEW_FEEDBACK_SQL = """
INSERT OR IGNORE INTO call_band_pending (feedback_id, request_id)
SELECT f.id, f.request_id FROM feedback f WHERE f.id > :feedback AND f.request_id IS NOT NULL
AND NOT EXISTS (SELECT 1 FROM model_calls c WHERE c.request_id = f.request_id)
"""
# Earlier feedback whose call arrived now (few rows: the pending table is read, new calls probed)
_PENDING_JOIN = (
    "call_band_pending p CROSS JOIN model_calls c ON c.request_id = p.request_id "
    "CROSS JOIN feedback f ON f.id = p.feedback_id"
)
_STAGE_PENDING_SQL = _stage_feedback_sql(_PENDING_JOIN, "c.id > :calls")
_UNPEND_SQL = """
DELETE FROM call_band_pending WHERE feedback_id IN (
    SELECT p.feedback_id FROM call_band_pending p CROSS JOIN model_calls c ON c.request_id = p.request_id
    WHERE c.id > :calls)
"""


def merge_sums_sql(table: str) -> str:
    """The ``DO UPDATE SET`` list that adds an incoming band row to the stored one of ``table``."""
    updates = []
    for column, how in BAND_SUMS:
        old, new = f"{table}.{column}", f"excluded.{column}"
        if how == "MIN":  # scalar MIN() is NULL when either side is: keep the side that has one
            updates.append(f"{column} = COALESCE(MIN({old}, {new}), {old}, {new})")
        else:
            updates.append(f"{column} = {old} + {new}")
    return ", ".join(updates)


def band_key(table: str) -> tuple[str, ...]:
    """The primary key of a band table."""
    return GLOBAL_BAND_KEY if table in GLOBAL_BAND_TABLES else BAND_KEY


def _upsert_sql(table: str, width: int, source: str = _STAGE) -> str:
    """``source``'s band rows (narrower buckets, with or without team) grouped into ``table``."""
    key = band_key(table)
    select = [f"(bucket_start / {width}) * {width}", *key[1:], *(f"{how}({c})" for c, how in BAND_SUMS)]
    columns = (*key, *(c for c, _ in BAND_SUMS))
    group = ", ".join(str(i) for i in range(1, len(key) + 1))
    return (
        f"INSERT INTO {table} ({', '.join(columns)})\n"
        f"SELECT {', '.join(select)} FROM {source} WHERE true GROUP BY {group}\n"
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {merge_sums_sql(table)}"
    )


_ALL_TABLES: Final = {**BAND_TABLES, **GLOBAL_BAND_TABLES}
_UPSERT_SQL: Final = {table: _upsert_sql(table, width) for table, width in _ALL_TABLES.items()}


_TYPES: Final = {"bucket_start": "INTEGER", "routed": "INTEGER", "band": "INTEGER", "cost_usd": "REAL"} | {
    c: "INTEGER" if how == "SUM" else "REAL" for c, how in BAND_SUMS
}


def create_call_band_tables(
    db: sqlite_utils.Database, tables: Sequence[str] = MIGRATION_4_BAND_TABLES
) -> None:
    """The band ``tables`` and, with migration 4's, the pending-feedback table.

    Plain SQL, not sqlite-utils: it cannot create a ``WITHOUT ROWID`` table. A rowid table
    would keep the key in a second b-tree and read every row of a range through it (124k
    rows: 1.2 s instead of 0.6 s at 1M events), and every upsert would write both.
    """
    for table in tables:
        key = band_key(table)
        columns = ", ".join(
            f"{c} {_TYPES.get(c, 'TEXT')}{'' if c == 'min_confidence' else ' NOT NULL'}"
            for c in (*key, *(c for c, _ in BAND_SUMS))
        )
        db.execute(f"CREATE TABLE {table} ({columns}, PRIMARY KEY ({', '.join(key)})) WITHOUT ROWID")
    if "call_band_day" in tables:
        db["call_band_pending"].create(
            {"feedback_id": int, "request_id": str}, pk="feedback_id", not_null={"request_id"}
        )


def clear_stage(conn: sqlite3.Connection) -> None:
    """Create (once per connection) and empty the band stage: the fold's first step."""
    conn.execute(_STAGE_CREATE)
    conn.execute(_STAGE_CLEAR)


def fold_call_bands(
    conn: sqlite3.Connection,
    *,
    calls_after: int,
    feedback_after: int,
    new_calls: bool,
    staged: bool,
    tables: Sequence[str] = tuple(_ALL_TABLES),
) -> None:
    """Fold the calls above ``calls_after`` (``staged``: already in the stage) and the feedback above
    ``feedback_after`` into the band ``tables``."""
    if new_calls and not staged:
        conn.execute(_STAGE_CALLS_SQL, {"calls": calls_after, **THRESHOLD_PARAMS})
    if new_calls and conn.execute("SELECT EXISTS (SELECT 1 FROM call_band_pending)").fetchone()[0]:
        conn.execute(_STAGE_PENDING_SQL, {"calls": calls_after, **THRESHOLD_PARAMS})
        conn.execute(_UNPEND_SQL, {"calls": calls_after})
    if conn.execute("SELECT COALESCE(MAX(id), 0) FROM feedback").fetchone()[0] > feedback_after:
        conn.execute(_STAGE_NEW_FEEDBACK_SQL, {"feedback": feedback_after, **THRESHOLD_PARAMS})
        conn.execute(_PEND_NEW_FEEDBACK_SQL, {"feedback": feedback_after})
    if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {_STAGE})").fetchone()[0]:
        for table in tables:
            conn.execute(_UPSERT_SQL[table])
        conn.execute(_STAGE_CLEAR)


def backfill_call_bands(conn: sqlite3.Connection) -> None:
    """Fill migration 4's tables from every raw call and feedback row, through the fold's SQL."""
    clear_stage(conn)
    fold_call_bands(
        conn, calls_after=0, feedback_after=0, new_calls=True, staged=False, tables=MIGRATION_4_BAND_TABLES
    )


# Migration 10: what the folds so far put in the day table, by hour: the calls at or below the
# fold mark, and the feedback at or below its mark on them (each such pair was counted by the
# fold that took the later of the two; pairs with a newer side are the next folds' to count).
_BACKFILL_HOUR_CALLS_SQL = f"""
INSERT INTO {_STAGE} ({", ".join(_COLUMNS)})
SELECT {_key_sql("c", _STAGE_WIDTH)}, COUNT(*), SUM(c.input_tokens), SUM(c.output_tokens),
       SUM(c.cache_read_tokens), TOTAL(c.cost_usd), SUM(c.priced), TOTAL(c.baseline_cost_usd),
       MIN(CASE WHEN c.routed = 1 THEN c.router_confidence END), 0, 0, 0.0
FROM model_calls c WHERE c.id <= :calls AND {_scope_sql("c")} GROUP BY {_GROUP}
"""
_BACKFILL_HOUR_FEEDBACK_SQL = _stage_feedback_sql(
    "feedback f CROSS JOIN model_calls c ON c.request_id = f.request_id",
    "f.id <= :feedback AND c.id <= :calls",
)


def backfill_band_hours(conn: sqlite3.Connection, *, calls_upto: int, feedback_upto: int) -> None:
    """Fill ``call_band_hour`` from the kept raw rows at or below the fold marks (migration 10)."""
    clear_stage(conn)
    params = {"calls": calls_upto, "feedback": feedback_upto, **THRESHOLD_PARAMS}
    conn.execute(_BACKFILL_HOUR_CALLS_SQL, params)
    conn.execute(_BACKFILL_HOUR_FEEDBACK_SQL, params)
    conn.execute(_UPSERT_SQL["call_band_hour"])
    conn.execute(_STAGE_CLEAR)


def backfill_global_bands(conn: sqlite3.Connection) -> None:
    """Fill the band tables over every team from the team ones, width by width (migration 13)."""
    for table, width in GLOBAL_BAND_TABLES.items():
        conn.execute(_upsert_sql(table, width, table.replace("_global", "")))
