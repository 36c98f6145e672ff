"""``team_hour``: calls per hour, team and project only, for the recommender's hourly request series.

``agg_hour`` keys every hour by model, provider, operation, feature, team, project, outcome
and routed, so an hour holds hundreds of rows; the peak-hours figure of ``/api/analytics``
(requests per hour of day over the range) read every one of them although it needs one number
per hour (per team under a team key). ``team_hour`` (migration 6) keeps those numbers
per (hour, team, project): a 30-day range is ~13k rows at most instead of ~hundreds of thousands.

It is folded from the fold's minute stage (the new calls grouped by minute and every
aggregate dimension, see ``aggregate``), so it equals ``agg_hour`` summed over the dimensions
it drops; migration 6 fills it from ``agg_hour`` the same way. A missing team or project is
``''``, as in the other aggregate keys. ``WITHOUT ROWID``: a range of hours is one contiguous
read of the primary key.
"""

from __future__ import annotations

import sqlite3
from typing import Final

import sqlite_utils

__all__ = [
    "TEAM_HOUR_EXACT_SUMS",
    "TEAM_HOUR_FILTERS",
    "TEAM_HOUR_SUMS",
    "backfill_team_hours",
    "create_team_hour_table",
    "fold_team_hours",
]

HOUR: Final = 3600
#: The agg_hour sums kept per (hour, team, project) (column, SQLite type).
TEAM_HOUR_SUMS: Final = (
    ("requests", "INTEGER"),
    ("errors", "INTEGER"),
    ("input_tokens", "INTEGER"),
    ("output_tokens", "INTEGER"),
    ("priced_requests", "INTEGER"),
    ("unpriced_requests", "INTEGER"),
    ("cost_usd", "REAL"),
)
#: Sums a reader may take from team_hour and get exactly agg_hour's answer: integers add up the same
#: in any grouping; a float sum regrouped may differ from agg_hour's in the last bits.
TEAM_HOUR_EXACT_SUMS: Final = frozenset(c for c, t in TEAM_HOUR_SUMS if t == "INTEGER")
#: Filters team_hour can honour.
TEAM_HOUR_FILTERS: Final = frozenset({"team", "project"})

_KEY = ("bucket_start", "team", "project")
_SUMS = tuple(c for c, _ in TEAM_HOUR_SUMS)
_COLUMNS = ", ".join((*_KEY, *_SUMS))


def _upsert_from(source: str) -> str:
    """Group ``source`` (rows with agg_hour's columns, minute or hour buckets) into team_hour."""
    totals = ", ".join(f"TOTAL({c})" if t == "REAL" else f"SUM({c})" for c, t in TEAM_HOUR_SUMS)
    updates = ", ".join(f"{c} = team_hour.{c} + excluded.{c}" for c in _SUMS)
    return (
        f"INSERT INTO team_hour ({_COLUMNS})\n"
        f"SELECT (bucket_start / {HOUR}) * {HOUR}, team, project, {totals} FROM {source} GROUP BY 1, 2, 3\n"
        f"ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET {updates}"
    )


def create_team_hour_table(db: sqlite_utils.Database) -> None:
    """Create ``team_hour`` (migration 6)."""
    columns = ", ".join(
        [f"{k} {'INTEGER' if k == 'bucket_start' else 'TEXT'} NOT NULL" for k in _KEY]
        + [f"{c} {t} NOT NULL" for c, t in TEAM_HOUR_SUMS]
    )
    db.execute(f"CREATE TABLE team_hour ({columns}, PRIMARY KEY ({', '.join(_KEY)})) WITHOUT ROWID")


def fold_team_hours(conn: sqlite3.Connection, stage: str) -> None:
    """Add the staged minute groups (``stage``: the fold's minute stage table) to ``team_hour``."""
    conn.execute(_upsert_from(stage))


def backfill_team_hours(conn: sqlite3.Connection) -> None:
    """Fill ``team_hour`` from ``agg_hour`` (migration 6): every call folded so far, pruned or not."""
    conn.execute(_upsert_from("agg_hour"))
