"""Read-side helpers over the rollup: file statistics, spend in a time range, latency quantiles."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlite_utils

from .aggregate import fold_marks, max_row_ids
from .migrations import schema_version
from .projections import projection_tables
from .schema import AGG_TABLES, LATENCY_BOUNDS_S, RAW_TABLES

__all__ = ["RollupStats", "latency_quantile", "rollup_stats", "spend_usd"]

_OTHER_TABLES = (
    "user_day",
    "user_day_features",
    "user_team_day",
    "user_team_day_features",
    "feature_use_day",
    "active_users_day",
    "feature_users_day",
    "error_day",
    "feedback_day",
    "feature_users_week",
)
#: Of those, the ones whose day column is the first day of a week.
_WEEK_COLUMN_TABLES = {"feature_users_week": "week"}
#: Tables without a time: rows counted, no time range.
_UNTIMED_TABLES = ("user_ordinals", "user_cost_ceiling")
#: Tables keyed by a ``bucket_start`` (Unix seconds) like the aggregates.
_BUCKET_TABLES = (*AGG_TABLES, "team_hour", *projection_tables())


@dataclass(frozen=True, slots=True)
class RollupStats:
    path: str
    schema_version: int
    size_bytes: int  # the database file plus its WAL
    rows: dict[str, int]
    #: table -> (first, last) Unix seconds of its rows, None when empty
    time_range: dict[str, tuple[float, float] | None]
    #: raw rows committed but not yet in the aggregates (a writer's deferred fold)
    unfolded_rows: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "schema_version": self.schema_version,
            "size_bytes": self.size_bytes,
            "rows": self.rows,
            "unfolded_rows": self.unfolded_rows,
            "time_range": {
                t: None if r is None else {"first": r[0], "last": r[1]} for t, r in self.time_range.items()
            },
        }


def rollup_stats(db: sqlite_utils.Database, path: str | os.PathLike[str]) -> RollupStats:
    """Row counts per table, time range of raw and aggregate tables, file size and schema version."""
    path = os.fspath(path)
    tables = [t for t in (*RAW_TABLES, *_BUCKET_TABLES, *_OTHER_TABLES, *_UNTIMED_TABLES) if db[t].exists()]
    rows = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
    ranges: dict[str, tuple[float, float] | None] = {}
    for table in tables:
        if table in _UNTIMED_TABLES:
            continue
        if table in _BUCKET_TABLES:
            sql = f"SELECT MIN(bucket_start), MAX(bucket_start) FROM {table}"
        elif table in _OTHER_TABLES:
            day_start = f"CAST(strftime('%s', {_WEEK_COLUMN_TABLES.get(table, 'day')}) AS INTEGER)"
            sql = f"SELECT MIN({day_start}), MAX({day_start}) FROM {table}"
        else:
            sql = f"SELECT MIN(ts), MAX(ts) FROM {table}"
        low, high = db.execute(sql).fetchone()
        ranges[table] = None if low is None else (float(low), float(high))
    size = sum(os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p))
    unfolded = 0
    if db["fold_marks"].exists():
        tops, marks = max_row_ids(db.conn), fold_marks(db.conn)
        unfolded = sum(top - mark for top, mark in zip(tops, marks, strict=True))
    return RollupStats(path, schema_version(db), size, rows, ranges, unfolded)


def spend_usd(
    db: sqlite_utils.Database,
    *,
    start: float,
    end: float,
    filters: Mapping[str, str] | None = None,
) -> float:
    """Cost in USD of model calls with ``start <= ts < end``, exactly.

    ``filters`` maps ``team``/``project``/``model``/``provider``/``feature`` to a
    required value. The coarsest aggregate table whose buckets both ends fall on
    answers the query; when neither is minute-aligned the raw events do (which
    must still be within retention).
    """
    allowed = {"team", "project", "model", "provider", "feature"}
    filters = dict(filters or {})
    unknown = set(filters) - allowed
    if unknown:
        raise ValueError(f"unknown spend filter(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    if end <= start:
        return 0.0
    clauses, params = [], []
    for name, value in sorted(filters.items()):
        clauses.append(f"{name} = ?")
        params.append(value)
    for table, width in sorted(AGG_TABLES.items(), key=lambda item: -item[1]):
        if start % width == 0 and end % width == 0:
            where = " AND ".join(["bucket_start >= ?", "bucket_start < ?", *clauses])
            sql = f"SELECT TOTAL(cost_usd) FROM {table} WHERE {where}"
            return float(db.execute(sql, [int(start), int(end), *params]).fetchone()[0])
    where = " AND ".join(["ts >= ?", "ts < ?", *clauses])
    return float(
        db.execute(
            f"SELECT TOTAL(cost_usd) FROM model_calls WHERE {where}", [start, end, *params]
        ).fetchone()[0]
    )


def latency_quantile(cumulative: Sequence[int], count: int, q: float) -> float | None:
    """The ``q`` quantile (0..1) of a latency histogram, interpolated like PromQL's ``histogram_quantile``.

    ``cumulative`` are the summed ``latency_le_*`` columns, ``count`` the summed
    ``latency_count``. Returns None without observations; above the last bound
    the last bound is returned, as Prometheus does.
    """
    if not 0 <= q <= 1:
        raise ValueError("q must be between 0 and 1")
    if count <= 0:
        return None
    if len(cumulative) != len(LATENCY_BOUNDS_S):
        raise ValueError(f"expected {len(LATENCY_BOUNDS_S)} bucket counts, got {len(cumulative)}")
    rank = q * count
    lower_bound, lower_count = 0.0, 0
    for bound, seen in zip(LATENCY_BOUNDS_S, cumulative, strict=True):
        if seen >= rank:
            if seen == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (seen - lower_count)
        lower_bound, lower_count = bound, seen
    return LATENCY_BOUNDS_S[-1]
