"""Fold freshly inserted raw rows into the minute/hour/day aggregates and ``user_day``.

The writer inserts raw rows with ``INSERT OR IGNORE`` and then calls
:func:`fold_new_rows` in the same transaction with the highest row ids that
existed before. Only rows above them (the ones this transaction actually
inserted) are folded, so a re-delivered request id, ignored by the raw insert,
is never counted a second time, and the aggregates always equal the sums of the
raw rows they were built from. The aggregation itself runs in SQL (GROUP BY +
UPSERT) so the hot path stays out of Python loops.
"""

from __future__ import annotations

import sqlite3

from .schema import AGG_DIMENSIONS, AGG_TABLES, LATENCY_BOUNDS_S, LATENCY_COLUMNS, agg_sum_columns

__all__ = ["fold_new_rows", "max_row_ids"]

_DIMENSION_EXPR = {
    "model": "model",
    "provider": "provider",
    "operation": "operation",
    "feature": "COALESCE(feature, '')",
    "team": "COALESCE(team, '')",
    "project": "COALESCE(project, '')",
    "outcome": "outcome",
    "routed": "routed",
}

_SUM_EXPR = {
    "requests": "COUNT(*)",
    "errors": "SUM(outcome = 'error')",
    "input_tokens": "SUM(input_tokens)",
    "output_tokens": "SUM(output_tokens)",
    "cache_read_tokens": "SUM(cache_read_tokens)",
    "cache_write_tokens": "SUM(cache_write_tokens)",
    "reasoning_tokens": "SUM(reasoning_tokens)",
    "cost_usd": "TOTAL(cost_usd)",
    "baseline_cost_usd": "TOTAL(baseline_cost_usd)",
    "priced_requests": "SUM(priced != 0)",
    "unpriced_requests": "SUM(priced = 0)",
    "latency_sum_s": "TOTAL(latency_s)",
    "latency_count": "COUNT(*)",
    **{
        col: f"SUM(latency_s <= {bound!r})"
        for col, bound in zip(LATENCY_COLUMNS, LATENCY_BOUNDS_S, strict=True)
    },
    "ttft_sum_s": "TOTAL(ttft_s)",
    "ttft_count": "COUNT(ttft_s)",
}


def _agg_upsert_sql(table: str, width_s: int) -> str:
    sums = agg_sum_columns()
    key = ("bucket_start", *AGG_DIMENSIONS)
    select = [f"(CAST(ts AS INTEGER) / {width_s}) * {width_s}"]
    select += [_DIMENSION_EXPR[d] for d in AGG_DIMENSIONS]
    select += [_SUM_EXPR[c] for c in sums]
    group_by = ", ".join(str(i) for i in range(1, len(key) + 1))
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in sums)
    return (
        f"INSERT INTO {table} ({', '.join((*key, *sums))})\n"
        f"SELECT {', '.join(select)} FROM model_calls WHERE id > ? GROUP BY {group_by}\n"
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


_AGG_SQL = {table: _agg_upsert_sql(table, width) for table, width in AGG_TABLES.items()}

# One row per (UTC day, user) from the new model calls and feature uses, plus
# one per (day, user, feature) in user_day_features. team/project come from the
# user's latest event of the day: SQLite takes bare columns from the row that
# holds the single MAX() of their query. On conflict they are replaced only by
# a later event.
_ACTIVITY_CTE = """
WITH activity AS (
    SELECT ts, date(ts, 'unixepoch') AS day, user_id, 1 AS requests, input_tokens, output_tokens,
           cost_usd, 0 AS feature_uses, feature, team, project
    FROM model_calls WHERE id > :calls AND user_id IS NOT NULL
    UNION ALL
    SELECT ts, date(ts, 'unixepoch'), user_id, 0, 0, 0, NULL, count, feature, team, project
    FROM feature_uses WHERE id > :uses AND user_id IS NOT NULL
)"""

_USER_DAY_FEATURES_SQL = f"""{_ACTIVITY_CTE}
INSERT OR IGNORE INTO user_day_features (day, user_id, feature)
SELECT DISTINCT day, user_id, feature FROM activity WHERE feature IS NOT NULL
"""

_USER_DAY_SQL = f"""{_ACTIVITY_CTE}, latest AS (
    SELECT day, user_id, team, project, MAX(ts) AS last_seen FROM activity GROUP BY day, user_id
), grouped AS (
    SELECT day, user_id, SUM(requests) AS requests, SUM(input_tokens) AS input_tokens,
           SUM(output_tokens) AS output_tokens, TOTAL(cost_usd) AS cost_usd,
           SUM(feature_uses) AS feature_uses, MIN(ts) AS first_seen
    FROM activity GROUP BY day, user_id
)
INSERT INTO user_day (day, user_id, requests, input_tokens, output_tokens, cost_usd, feature_uses,
                      feature_count, team, project, first_seen, last_seen)
SELECT g.day, g.user_id, g.requests, g.input_tokens, g.output_tokens, g.cost_usd, g.feature_uses,
       (SELECT COUNT(*) FROM user_day_features f WHERE f.day = g.day AND f.user_id = g.user_id),
       l.team, l.project, g.first_seen, l.last_seen
FROM grouped g JOIN latest l USING (day, user_id) WHERE true
ON CONFLICT (day, user_id) DO UPDATE SET
    requests = user_day.requests + excluded.requests,
    input_tokens = user_day.input_tokens + excluded.input_tokens,
    output_tokens = user_day.output_tokens + excluded.output_tokens,
    cost_usd = user_day.cost_usd + excluded.cost_usd,
    feature_uses = user_day.feature_uses + excluded.feature_uses,
    feature_count = excluded.feature_count,
    team = CASE WHEN excluded.last_seen >= user_day.last_seen THEN excluded.team ELSE user_day.team END,
    project = CASE WHEN excluded.last_seen >= user_day.last_seen
                   THEN excluded.project ELSE user_day.project END,
    first_seen = MIN(user_day.first_seen, excluded.first_seen),
    last_seen = MAX(user_day.last_seen, excluded.last_seen)
"""


def max_row_ids(conn: sqlite3.Connection) -> tuple[int, int]:
    """The highest ``model_calls`` and ``feature_uses`` row ids (0 when empty).

    Call inside the write transaction: rows inserted after it get larger ids.
    """
    calls = conn.execute("SELECT COALESCE(MAX(id), 0) FROM model_calls").fetchone()[0]
    uses = conn.execute("SELECT COALESCE(MAX(id), 0) FROM feature_uses").fetchone()[0]
    return calls, uses


def fold_new_rows(
    conn: sqlite3.Connection, *, calls_after: int, uses_after: int, new_calls: bool, new_uses: bool
) -> None:
    """Add the rows above the given ids to the aggregates (inside the caller's transaction)."""
    if new_calls:
        for sql in _AGG_SQL.values():
            conn.execute(sql, (calls_after,))
    if new_calls or new_uses:
        params = {"calls": calls_after, "uses": uses_after}
        conn.execute(_USER_DAY_FEATURES_SQL, params)
        conn.execute(_USER_DAY_SQL, params)
