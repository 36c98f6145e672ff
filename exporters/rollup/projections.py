"""Narrow aggregates: the minute/hour/day sums summed over fewer dimensions, by hour, day and week.

``agg_hour`` and ``agg_day`` key every bucket by all eight aggregate dimensions, so at
10M events a day holds ~2,900 rows and a 90-day answer grouped by model read ~290k of
them, although the model breakdown of a team has ~300 keys a day. A projection keeps the
same sums per (bucket, a subset of the dimensions) at three widths: hour, day and
epoch-aligned week (a week starts on a Thursday 00:00 UTC, as ``call_band_week``). A
reader whose grouping and filters fall inside a projection's dimensions reads whole weeks,
then whole days, then whole hours from it, and only the partial hours at the range's
edges from ``agg_minute`` and the raw calls (``recommender.store.source``).

Every projection is folded from the fold's minute stage (the new calls grouped by minute
and every dimension), once to the hour, and the hour groups of the batch to the day and
the week; migration 7 fills them from ``agg_hour`` and ``agg_day`` the same way. Integer
sums are exactly those of the full aggregates; a float sum (cost, latency) is the same
numbers added in another order, equal up to the last bits. ``WITHOUT ROWID``: a range of
buckets is one contiguous read of the primary key.
"""

from __future__ import annotations

import functools
import sqlite3
from dataclasses import dataclass
from typing import Final

import sqlite_utils

from .schema import AGG_DIMENSIONS, agg_columns, agg_sum_columns

__all__ = [
    "PROJECTIONS",
    "PROJECTION_WIDTHS",
    "Projection",
    "backfill_projections",
    "create_projection_tables",
    "fold_projections",
    "merge_projection_sql",
    "projection_tables",
]

HOUR: Final = 3600
DAY: Final = 86400
WEEK: Final = 7 * DAY
#: Bucket width -> table name suffix, widest first (the order a range is covered in).
PROJECTION_WIDTHS: Final = {WEEK: "week", DAY: "day", HOUR: "hour"}
_TYPES: Final = {int: "INTEGER", str: "TEXT", float: "REAL"}


@dataclass(frozen=True, slots=True)
class Projection:
    """The aggregate sums summed over every dimension but ``dimensions``."""

    name: str
    dimensions: tuple[str, ...]
    #: the sums kept (default: all of the aggregates'); fewer columns are faster to read
    sums: tuple[str, ...] = agg_sum_columns()

    def __post_init__(self) -> None:
        unknown = [d for d in self.dimensions if d not in AGG_DIMENSIONS]
        if unknown or not self.dimensions:
            raise ValueError(f"projection {self.name!r}: dimensions must be some of {AGG_DIMENSIONS}")
        if "requests" not in self.sums or set(self.sums) - set(agg_sum_columns()):
            raise ValueError(f"projection {self.name!r}: sums must include requests and be aggregate sums")

    def table(self, width: int) -> str:
        """The table holding this projection's ``width``-second buckets."""
        return f"agg_{self.name}_{PROJECTION_WIDTHS[width]}"

    @property
    def key(self) -> tuple[str, ...]:
        return ("bucket_start", *self.dimensions)


#: Fewest keys first: a reader takes the first that holds every dimension it groups or filters by
#: and every sum it adds. Keys a day at 10M events: ``feature`` ~180 (breakdowns by feature, totals);
#: ``model`` ~300 (by team, project, model and provider, routing savings, latency quantiles);
#: ``usage`` ~2,200 (tokens and cost by feature and model, split by outcome: prompt caching,
#: each model's features), which is why it keeps only the token and cost sums.
PROJECTIONS: Final = (
    Projection("feature", ("team", "project", "feature")),
    Projection("model", ("team", "project", "model", "provider", "routed")),
    Projection(
        "usage",
        ("team", "project", "feature", "model", "provider", "outcome"),
        sums=(
            "requests",
            "errors",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cost_usd",
            "baseline_cost_usd",
            "unpriced_requests",
        ),
    ),
)
_FLOAT_SUMS: Final = frozenset(c for c, t in agg_columns().items() if t is float)


def projection_tables() -> list[str]:
    """Every projection table, projection by projection, widest bucket first."""
    return [p.table(width) for p in PROJECTIONS for width in PROJECTION_WIDTHS]


def _total(column: str) -> str:
    return f"TOTAL({column})" if column in _FLOAT_SUMS else f"SUM({column})"


def _grouped(projection: Projection, width: int, source: str) -> str:
    """``SELECT`` of ``source``'s rows (aggregate-shaped, narrower buckets) in ``width`` buckets."""
    key = projection.key
    select = ", ".join((f"(bucket_start / {width}) * {width}", *key[1:], *map(_total, projection.sums)))
    return f"SELECT {select} FROM {source} GROUP BY {', '.join(str(i + 1) for i in range(len(key)))}"


def _columns(projection: Projection, constraint: str = "") -> str:
    """Column definitions of the projection's rows (key, then sums)."""
    types = agg_columns()
    return ", ".join(f"{c} {_TYPES[types[c]]}{constraint}" for c in (*projection.key, *projection.sums))


def _upsert(projection: Projection, width: int, source: str) -> str:
    """Rows of ``source`` (aggregate-shaped, no wider buckets) grouped into the ``width`` table."""
    key = projection.key
    return (
        f"INSERT INTO {projection.table(width)} ({', '.join((*key, *projection.sums))})\n"
        f"{_grouped(projection, width, source)}\n"
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {merge_projection_sql(projection, width)}"
    )


def merge_projection_sql(projection: Projection, width: int) -> str:
    """The ``DO UPDATE SET`` list that adds an incoming row's sums to the stored row of a projection table."""
    table = projection.table(width)
    return ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in projection.sums)


def create_projection_tables(db: sqlite_utils.Database) -> None:
    """Create every projection table (migration 7)."""
    for projection in PROJECTIONS:
        columns = _columns(projection, " NOT NULL")
        for width in PROJECTION_WIDTHS:
            db.execute(
                f"CREATE TABLE {projection.table(width)} ({columns}, "
                f"PRIMARY KEY ({', '.join(projection.key)})) WITHOUT ROWID"
            )


@functools.cache
def _fold_sql(projection: Projection, source: str) -> tuple[str, ...]:
    """The fold's statements for one projection: fill its hour stage from ``source``, add it, clear it.

    The stage is created once per connection (``IF NOT EXISTS``) and emptied after each fold: a
    ``CREATE``/``DROP`` per fold would change the schema and make SQLite prepare every cached
    statement of the connection again.
    """
    stage = f"_nexus_fold_{projection.name}_hour"
    return (
        f"CREATE TEMP TABLE IF NOT EXISTS {stage} ({_columns(projection)})",
        f"INSERT INTO temp.{stage} {_grouped(projection, HOUR, source)}",
        *(_upsert(projection, width, f"temp.{stage}") for width in PROJECTION_WIDTHS),
        f"DELETE FROM temp.{stage}",
    )


def fold_projections(conn: sqlite3.Connection, stage: str) -> None:
    """Add the staged minute groups (``stage``: the fold's minute stage table) to every projection."""
    for projection in PROJECTIONS:
        for sql in _fold_sql(projection, stage):
            conn.execute(sql)


def backfill_projections(conn: sqlite3.Connection) -> None:
    """Fill the projections from ``agg_hour`` and ``agg_day`` (migration 7): every call folded so far.

    Hours come from ``agg_hour``; days and weeks from ``agg_day``, which holds the same sums
    (the aggregates are never pruned) in a tenth of the rows.
    """
    for projection in PROJECTIONS:
        conn.execute(_upsert(projection, HOUR, "agg_hour"))
        for width in (DAY, WEEK):
            conn.execute(_upsert(projection, width, "agg_day"))
