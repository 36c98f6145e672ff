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

import math
import sqlite3
from bisect import bisect_right
from collections.abc import Sequence
from typing import Any, Final

import sqlite_utils

__all__ = [
    "BAND_KEY",
    "BAND_SUMS",
    "BAND_TABLES",
    "CONFIDENCE_BAND",
    "CONFIDENCE_THRESHOLDS",
    "MIGRATION_4_BAND_TABLES",
    "OUT_OF_RANGE_BAND",
    "SHORT_PROMPT_TOKENS",
    "STAGE_INSERT",
    "backfill_band_hours",
    "backfill_call_bands",
    "clear_stage",
    "confidence_band",
    "create_call_band_tables",
    "fold_call_bands",
    "group_band_rows",
    "merge_sums_sql",
    "stage_band",
]

#: A prompt of at most this many input tokens is short (the cheaper-model check's threshold).
SHORT_PROMPT_TOKENS: Final = 2000
#: Width of the router-confidence bands (the router-threshold check's bands).
CONFIDENCE_BAND: Final = 0.1
#: ``band`` of a routed call whose confidence is outside [0, 1].
OUT_OF_RANGE_BAND: Final = 99
#: Table -> bucket width in seconds.
BAND_TABLES: Final = {"call_band_hour": 3600, "call_band_day": 86400, "call_band_week": 7 * 86400}
#: The tables migration 4 created (``call_band_hour`` came with migration 10).
MIGRATION_4_BAND_TABLES: Final = ("call_band_day", "call_band_week")
BAND_KEY: Final = ("bucket_start", "team", "feature", "model", "provider", "routed", "routed_from", "band")
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


def confidence_band(confidence: float) -> int:
    """The band index of a confidence: the recommender's ``int(round(confidence / 0.1, 9))``."""
    return int(round(confidence / CONFIDENCE_BAND, 9))


def _threshold(k: int) -> float:
    """The smallest float in [0, 1] whose band is ``k`` (bisection over the floats themselves)."""
    lo, hi = 0.0, 1.0  # confidence_band(lo) < k <= confidence_band(hi)
    while math.nextafter(lo, 2.0) < hi:
        mid = (lo + hi) / 2
        if mid <= lo or mid >= hi:
            mid = math.nextafter(lo, 2.0)
        if confidence_band(mid) >= k:
            hi = mid
        else:
            lo = mid
    return hi


#: ``CONFIDENCE_THRESHOLDS[k - 1]``: the lowest confidence of band k (1..10). Bound as SQL
#: parameters, so SQL and Python compare the same doubles and agree with :func:`confidence_band`.
CONFIDENCE_THRESHOLDS: Final = tuple(_threshold(k) for k in range(1, confidence_band(1.0) + 1))
_THRESHOLD_PARAMS: Final = {f"c{k}": t for k, t in enumerate(CONFIDENCE_THRESHOLDS, start=1)}


def stage_band(routed: int, input_tokens: int, confidence: float) -> int:
    """``band`` of an in-scope call (as the SQL below computes it), for the in-memory fold."""
    if routed == 0:
        return 1 if input_tokens <= SHORT_PROMPT_TOKENS else 0
    if not 0.0 <= confidence <= 1.0:
        return OUT_OF_RANGE_BAND
    return bisect_right(CONFIDENCE_THRESHOLDS, confidence)


def group_band_rows(calls: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]] | None:
    """The band stage rows of new ``model_calls`` rows (``rows.py`` layout), grouped in memory as
    :data:`_STAGE_CALLS_SQL` groups them in SQL; None: let the SQL decide (a NULL token count, a
    NaN confidence, a time SQLite's integer division would bucket differently).

    Runs after ``prefold``'s minute and activity grouping (in C or Python), as its own loop: one
    key tuple and eight additions per in-scope call.
    """
    groups: dict[tuple[Any, ...], list[Any]] = {}
    hour, short, thresholds, isnan, last_ts = (
        _STAGE_WIDTH,
        SHORT_PROMPT_TOKENS,
        CONFIDENCE_THRESHOLDS,
        math.isnan,
        _LAST_TS,
    )
    get = groups.get
    try:
        for (
            ts, _, _, team, _, feature, _, model, _, provider, _, _, input_tokens, output_tokens, cache_read,
            _, _, cost, base, priced, _, _, _, _, _, routed, routed_from, confidence,
        ) in calls:  # fmt: skip
            if feature is None:
                continue  # out of scope: no check reads it
            if routed == 0:
                key = (
                    int(ts) // hour * hour,
                    team or "",
                    feature,
                    model,
                    provider,
                    0,
                    "",
                    int(input_tokens <= short),
                )
            elif routed == 1 and confidence is not None:
                if isnan(confidence):  # SQLite stores NaN as NULL, which is out of scope
                    return None
                band = bisect_right(thresholds, confidence) if 0.0 <= confidence <= 1.0 else OUT_OF_RANGE_BAND
                bucket = int(ts) // hour * hour
                key = (bucket, team or "", feature, model, provider, 1, routed_from or "", band)
            else:
                continue
            if not 0.0 <= ts <= last_ts:
                return None
            acc = get(key)
            if acc is None:
                # calls, input, output, cache read, cost, priced, baseline, min confidence, feedback x3
                groups[key] = [1, input_tokens, output_tokens, cache_read, cost or 0.0, priced, base or 0.0,
                               confidence if routed else None, 0, 0, 0.0]  # fmt: skip
                continue
            acc[0] += 1
            acc[1] += input_tokens
            acc[2] += output_tokens
            acc[3] += cache_read
            if cost is not None:
                acc[4] += cost
            acc[5] += priced
            if base is not None:
                acc[6] += base
            if routed and confidence < acc[7]:
                acc[7] = confidence
    except TypeError:  # a NULL where the SQL would compute NULL
        return None
    out = [(*key, *sums) for key, sums in groups.items()]
    if any(isinstance(v, float) and isnan(v) for row in out for v in row):
        return None
    return out


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
_STAGE_WIDTH = BAND_TABLES["call_band_hour"]
_LAST_TS = 253_402_300_799.0  # 9999-12-31T23:59:59Z: as prefold, times past it go to the SQL grouping
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


def _upsert_sql(table: str, width: int) -> str:
    select = [f"(bucket_start / {width}) * {width}", *BAND_KEY[1:]]
    select += [f"{how}({column})" for column, how in BAND_SUMS]
    return (
        f"INSERT INTO {table} ({', '.join(_COLUMNS)})\n"
        f"SELECT {', '.join(select)} FROM {_STAGE} GROUP BY {_GROUP}\n"
        f"ON CONFLICT ({', '.join(BAND_KEY)}) DO UPDATE SET {merge_sums_sql(table)}"
    )


_UPSERT_SQL: Final = {table: _upsert_sql(table, width) for table, width in BAND_TABLES.items()}


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
        columns = ", ".join(
            f"{c} {_TYPES.get(c, 'TEXT')}{'' if c == 'min_confidence' else ' NOT NULL'}" for c in _COLUMNS
        )
        db.execute(f"CREATE TABLE {table} ({columns}, PRIMARY KEY ({', '.join(BAND_KEY)})) WITHOUT ROWID")
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
    tables: Sequence[str] = tuple(BAND_TABLES),
) -> None:
    """Fold the calls above ``calls_after`` (``staged``: already in the stage) and the feedback above
    ``feedback_after`` into the band ``tables``."""
    if new_calls and not staged:
        conn.execute(_STAGE_CALLS_SQL, {"calls": calls_after, **_THRESHOLD_PARAMS})
    if new_calls and conn.execute("SELECT EXISTS (SELECT 1 FROM call_band_pending)").fetchone()[0]:
        conn.execute(_STAGE_PENDING_SQL, {"calls": calls_after, **_THRESHOLD_PARAMS})
        conn.execute(_UNPEND_SQL, {"calls": calls_after})
    if conn.execute("SELECT COALESCE(MAX(id), 0) FROM feedback").fetchone()[0] > feedback_after:
        conn.execute(_STAGE_NEW_FEEDBACK_SQL, {"feedback": feedback_after, **_THRESHOLD_PARAMS})
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
    params = {"calls": calls_upto, "feedback": feedback_upto, **_THRESHOLD_PARAMS}
    conn.execute(_BACKFILL_HOUR_CALLS_SQL, params)
    conn.execute(_BACKFILL_HOUR_FEEDBACK_SQL, params)
    conn.execute(_UPSERT_SQL["call_band_hour"])
    conn.execute(_STAGE_CLEAR)
